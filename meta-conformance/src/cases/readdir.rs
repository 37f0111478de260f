//! readdir: cursor pagination over 10,000 entries, with and without attributes.

use std::collections::{BTreeMap, HashSet};

use rand::{Rng, SeedableRng};

use super::prelude::*;

const ENTRIES: usize = 10_000;

/// Creates 10,000 entries with varied byte names (1–40 bytes, any byte but `/` and NUL,
/// mostly not UTF-8) and types in a new directory; returns it and name → (ino, attr).
async fn populate(m: &Meta) -> Result<(Ino, BTreeMap<Vec<u8>, (Ino, Attr)>)> {
    let (dir, _) = m.mkdir(ME, ROOT, b"big", 0o755).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(10_000);
    let mut seen = HashSet::new();
    let mut ops = Vec::with_capacity(ENTRIES);
    while ops.len() < ENTRIES {
        let len = rng.random_range(1..=40);
        let name: Vec<u8> = (0..len)
            .map(|_| {
                loop {
                    let b: u8 = rng.random_range(1..=255);
                    if b != b'/' {
                        break b;
                    }
                }
            })
            .collect();
        if name == b"." || name == b".." || !seen.insert(name.clone()) {
            continue;
        }
        let i = ops.len();
        let typ = match i % 10 {
            0 => FileType::Directory,
            7 => FileType::Symlink,
            _ => FileType::Regular,
        };
        ops.push(mknod_op(
            dir,
            &name,
            m.new_ino().await?,
            typ,
            t(i as i64, 0),
        ));
    }
    let mut want = BTreeMap::new();
    for (op, r) in ops.iter().zip(m.apply_batch(ops.clone()).await) {
        let Op::Mknod { name, .. } = op else {
            unreachable!()
        };
        match r.with_context(|| format!("create {name:?}"))? {
            OpOutput::Entry { ino, attr, .. } => {
                want.insert(name.clone(), (ino, attr));
            }
            other => bail!("mknod returned {other:?}"),
        }
    }
    Ok((dir, want))
}

/// Checks one full listing against the expected entries: the exact set, strictly
/// increasing byte order, types, and attributes exactly when `plus`.
fn check_listing(
    got: &[meta_core::DirEntry],
    want: &BTreeMap<Vec<u8>, (Ino, Attr)>,
    plus: bool,
    what: &str,
) -> Result<()> {
    ensure!(
        got.len() == want.len(),
        "{what}: {} entries listed, {} exist",
        got.len(),
        want.len()
    );
    for w in got.windows(2) {
        ensure!(
            w[0].name < w[1].name,
            "{what}: not in strictly increasing byte order: {:?} then {:?}",
            w[0].name,
            w[1].name
        );
    }
    for e in got {
        let Some((ino, attr)) = want.get(&e.name) else {
            bail!("{what}: unexpected entry {:?}", e.name);
        };
        ensure!(
            e.ino == *ino && e.typ == attr.typ,
            "{what}: entry {:?} is {} {:?}",
            e.name,
            e.ino,
            e.typ
        );
        match (&e.attr, plus) {
            (Some(a), true) => ensure!(
                a == attr,
                "{what}: attrs of {:?}: {a:?} vs {attr:?}",
                e.name
            ),
            (None, false) => {}
            (a, _) => bail!("{what}: plus={plus} but attr {a:?} for {:?}", e.name),
        }
    }
    Ok(())
}

/// readdir without attributes over 10,000 entries, paged with limits 1000, 333 and 7: every
/// page continues strictly after its cursor, the union is exactly the set of names, in byte
/// order, each page at most `limit` long; the directory's nlink counts its subdirectories.
pub async fn pagination_10k(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (dir, want) = populate(&m).await?;
    let b = ctx.backend();
    for page in [1000, 333, 7] {
        let got = list_all(&*b, dir, false, page).await?;
        check_listing(&got, &want, false, &format!("limit {page}"))?;
    }
    let dirs = want
        .values()
        .filter(|(_, a)| a.typ == FileType::Directory)
        .count();
    ensure!(
        m.getattr(dir).await?.nlink as usize == 2 + dirs,
        "nlink of the big dir"
    );
    Ok(())
}

/// readdir with attributes ("readdirplus") over 10,000 entries, paged with limits 512 and
/// 4096: the same guarantees, and every entry carries exactly the inode's attributes.
pub async fn pagination_10k_plus(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (dir, want) = populate(&m).await?;
    let b = ctx.backend();
    for page in [512, 4096] {
        let got = list_all(&*b, dir, true, page).await?;
        check_listing(&got, &want, true, &format!("plus, limit {page}"))?;
    }
    Ok(())
}

/// The readdir cursor: listing starts strictly after the cursor name, which need not exist
/// (a deleted name resumes correctly); past the last name the result is empty; `limit`
/// bounds the page (0 gives nothing); order is unsigned byte order.
pub async fn cursor_semantics(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    let mut all: Vec<Vec<u8>> = vec![
        b"a".to_vec(),
        b"ab".to_vec(),
        b"b".to_vec(),
        b"Z".to_vec(),
        vec![0x01],
        vec![0xff],
        vec![0x7f, 0x80],
        b"c".to_vec(),
    ];
    for n in &all {
        m.create(ME, d, n, 0o644).await?;
    }
    all.sort();
    let b = ctx.backend();
    let names_of = |v: Vec<meta_core::DirEntry>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
    ensure!(
        names_of(b.read_dir(d, None, 100, false).await?) == all,
        "full listing order"
    );
    ensure!(
        names_of(b.read_dir(d, Some(b""), 100, false).await?) == all,
        "after the empty name"
    );
    ensure!(
        names_of(b.read_dir(d, None, 0, false).await?).is_empty(),
        "limit 0"
    );
    ensure!(
        names_of(b.read_dir(d, None, 1, false).await?) == all[..1],
        "limit 1"
    );
    let after_a = names_of(b.read_dir(d, Some(b"a"), 2, false).await?);
    ensure!(
        after_a == vec![b"ab".to_vec(), b"b".to_vec()],
        "after a: {after_a:?}"
    );
    let after_aa = names_of(b.read_dir(d, Some(b"aa"), 100, false).await?);
    let want: Vec<Vec<u8>> = all
        .iter()
        .filter(|n| n.as_slice() > b"aa".as_slice())
        .cloned()
        .collect();
    ensure!(after_aa == want, "after a missing name: {after_aa:?}");
    ensure!(
        names_of(b.read_dir(d, Some(&[0xff]), 100, false).await?).is_empty(),
        "after the last"
    );
    ensure!(
        names_of(b.read_dir(d, Some(&[0xff, 0xff]), 100, false).await?).is_empty(),
        "past the last"
    );
    m.unlink(ME, d, b"b").await?;
    let resumed = names_of(b.read_dir(d, Some(b"b"), 100, false).await?);
    ensure!(
        resumed == vec![b"c".to_vec(), vec![0x7f, 0x80], vec![0xff]],
        "resume after a deleted name: {resumed:?}"
    );
    let (e, _) = m.mkdir(ME, ROOT, b"empty", 0o755).await?;
    ensure!(
        b.read_dir(e, None, 100, true).await?.is_empty(),
        "an empty dir"
    );
    Ok(())
}
