//! dump, load, fsck and quota repair on the in-memory backend, on sound volumes and on
//! volumes with damage planted in their raw records.

mod common;

use std::sync::Arc;

use common::{ME, kind, slice, volume};
use meta_core::memory::memory_backend;
use meta_core::{
    Attr, Backend, CHUNK_SIZE, Caller, Counter, ErrorKind, FileType, Ino, Meta, MetaOptions,
    Pending, Setting, XattrFlags,
};

#[tokio::test]
async fn dump_load_round_trip() {
    let m = volume().await;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await.unwrap();
    let (f, _) = m.create(ME, d, &[0xff, b'x'], 0o644).await.unwrap();
    m.link(Caller::ROOT, f, Ino::ROOT, b"hard").await.unwrap();
    m.symlink(ME, d, b"s", b"../hard").await.unwrap();
    m.setxattr(Caller::ROOT, f, b"user.k", &[0, 1, 2], XattrFlags::NONE)
        .await
        .unwrap();
    let id = m.new_slice_id().await.unwrap();
    m.write(Caller::ROOT, f, 2, slice(id, 10, 20))
        .await
        .unwrap();
    // Pending deletions travel too: a deleted file with data, a dropped slice.
    let (gone, _) = m.create(ME, d, b"gone", 0o644).await.unwrap();
    let gid = m.new_slice_id().await.unwrap();
    m.write(Caller::ROOT, gone, 0, slice(gid, 0, 5))
        .await
        .unwrap();
    m.unlink(ME, d, b"gone").await.unwrap();
    let tid = m.new_slice_id().await.unwrap();
    m.write(Caller::ROOT, f, 3, slice(tid, 0, 7)).await.unwrap();
    m.truncate(Caller::ROOT, f, 3 * CHUNK_SIZE).await.unwrap();
    let pending = m.list_pending(10).await.unwrap();
    assert_eq!(pending.len(), 2, "{pending:?}");
    let mut first = Vec::new();
    meta_core::dump::dump(&**m.backend(), &mut first, &mut |_| {})
        .await
        .unwrap();
    let target = memory_backend();
    meta_core::dump::load(&target, &mut first.as_slice(), false, &mut |_| {})
        .await
        .unwrap();
    let mut second = Vec::new();
    meta_core::dump::dump(&target, &mut second, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
    let rep = meta_core::fsck::fsck(&target).await.unwrap();
    assert!(rep.is_clean(), "{:?}", rep.problems);
    assert_eq!(target.list_pending(10).await.unwrap(), pending);
    assert_eq!(
        target.read_chunk(gone, 0).await.unwrap(),
        vec![slice(gid, 0, 5)]
    );
    // Loading into a formatted store without force is refused; malformed input names the line.
    assert_eq!(
        kind(meta_core::dump::load(&target, &mut first.as_slice(), false, &mut |_| {}).await),
        ErrorKind::AlreadyExists
    );
    let bad = [first.split(|&b| b == b'\n').next().unwrap(), b"\n{oops\n"].concat();
    let e = meta_core::dump::load(&memory_backend(), &mut bad.as_slice(), false, &mut |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
}

/// A volume on a memory store the test can also write raw records into (to plant damage).
async fn raw_volume(
    name: &str,
) -> (
    meta_core::memory::MemStore,
    Arc<meta_core::kv::KvBackend<meta_core::memory::MemStore>>,
    Meta,
) {
    let store = meta_core::memory::MemStore::new();
    let b = Arc::new(meta_core::kv::KvBackend::new(store.clone()));
    Meta::format(&*b, &Setting::new(name), false)
        .await
        .expect("format");
    let m = Meta::open(b.clone(), MetaOptions::default(), None)
        .await
        .expect("open");
    (store, b, m)
}

#[tokio::test]
async fn fsck_finds_planted_damage() {
    let (store, b, m) = raw_volume("c").await;
    let (f, mut a) = m.create(ME, Ino::ROOT, b"f", 0o644).await.unwrap();
    a.nlink = 5;
    store.put_raw(&meta_core::kv::attr_key(f), &meta_core::kv::encode_attr(&a));
    let orphan: Attr = a;
    store.put_raw(
        &meta_core::kv::attr_key(Ino(900)),
        &meta_core::kv::encode_attr(&orphan),
    );
    let rep = meta_core::fsck::fsck(&*b).await.unwrap();
    let text = rep.problems.join("\n");
    assert!(text.contains("nlink 5"), "{text}");
    assert!(text.contains("inode 900"), "{text}");
    assert!(text.contains("totalInodes"), "{text}");
}

#[tokio::test]
async fn fsck_finds_pending_deletions_of_live_data_and_wrong_parents() {
    use meta_core::kv::{counter_key, encode_counter, encode_pending, pending_key};
    let (store, b, m) = raw_volume("c").await;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await.unwrap();
    let (f, mut a) = m.create(ME, d, b"f", 0o644).await.unwrap();
    let id = m.new_slice_id().await.unwrap();
    m.write(Caller::ROOT, f, 0, slice(id, 0, 5)).await.unwrap();
    let rep = meta_core::fsck::fsck(&*b).await.unwrap();
    assert!(rep.is_clean(), "{:?}", rep.problems);
    // A pending deletion of the live file, one of its slice, one of a file far above
    // nextInode whose slice is far above nextChunk, and f's parent field naming the root.
    let far = Ino(1 << 40);
    for p in [
        Pending::File { ino: f, length: 5 },
        Pending::Slice { id, size: 5 },
        Pending::File {
            ino: far,
            length: 5,
        },
    ] {
        store.put_raw(&pending_key(p), &encode_pending(p));
    }
    store.put_raw(
        &meta_core::kv::chunk_key(far, 0),
        &meta_core::kv::encode_chunk(&[slice(1 << 41, 0, 5)]),
    );
    a.parent = Ino::ROOT;
    store.put_raw(&meta_core::kv::attr_key(f), &meta_core::kv::encode_attr(&a));
    let rep = meta_core::fsck::fsck(&*b).await.unwrap();
    let text = rep.problems.join("\n");
    assert!(
        text.contains(&format!("inode {f} is pending deletion but is live")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "slice {id} is pending deletion but live inode {f}"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("largest inode {}", far.0)), "{text}");
    assert!(
        text.contains(&format!("largest slice ID {}", 1u64 << 41)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "inode {f} lies in {d} but its parent field says 1"
        )),
        "{text}"
    );
    // Counters put back above them: those two problems go, the others stay.
    store.put_raw(&counter_key(Counter::NextInode), &encode_counter(1 << 41));
    store.put_raw(&counter_key(Counter::NextChunk), &encode_counter(1 << 42));
    let rep = meta_core::fsck::fsck(&*b).await.unwrap();
    let text = rep.problems.join("\n");
    assert!(!text.contains("counter"), "{text}");
    assert!(text.contains("pending deletion but is live"), "{text}");
    assert!(
        !text.contains(&format!("of inode {f}, pending")),
        "reported twice: {text}"
    );
}

#[tokio::test]
async fn dump_refuses_an_entry_whose_type_is_not_its_inodes() {
    let (store, b, m) = raw_volume("c").await;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await.unwrap();
    m.create(ME, d, b"inside", 0o644).await.unwrap();
    // The entry says "regular file": a walk by it would leave d's subtree out.
    store.put_raw(
        &meta_core::kv::entry_key(Ino::ROOT, b"d"),
        &meta_core::kv::encode_entry(meta_core::Entry {
            ino: d,
            typ: FileType::Regular,
        }),
    );
    let mut out = Vec::new();
    let e = meta_core::dump::dump(&*b, &mut out, &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(
        e.to_string().contains(&format!(
            "entry 1/d says regular but inode {d} is a directory"
        )),
        "{e}"
    );
}

/// `good` (a dump's lines) with `edit` applied to the JSON of its lines.
fn edited(good: &[u8], edit: impl Fn(&mut Vec<serde_json::Value>)) -> Vec<u8> {
    let mut lines: Vec<serde_json::Value> = good
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("dump line"))
        .collect();
    edit(&mut lines);
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

#[tokio::test]
async fn load_checks_the_whole_dump_before_writing_anything() {
    let m = volume().await;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await.unwrap();
    let (f, _) = m.create(ME, d, b"f", 0o644).await.unwrap();
    let id = m.new_slice_id().await.unwrap();
    m.write(Caller::ROOT, f, 0, slice(id, 0, 5)).await.unwrap();
    let mut good = Vec::new();
    meta_core::dump::dump(&**m.backend(), &mut good, &mut |_| {})
        .await
        .unwrap();
    // Lines: the header, the root, d, f.
    let line = |v: &Vec<serde_json::Value>, ino: Ino| {
        v.iter()
            .position(|l| l["ino"] == serde_json::json!(ino.0))
            .unwrap()
    };
    type Edit = Box<dyn Fn(&mut Vec<serde_json::Value>)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "line 4 is malformed",
            Box::new(|v| v[3] = serde_json::json!({"ino": 7, "attr": "garbage"})),
        ),
        (
            "directory 2 has a second record",
            Box::new(move |v| {
                let i = line(v, d);
                let dup = v[i].clone();
                v.push(dup);
            }),
        ),
        (
            "the root (inode 1) is a regular",
            Box::new(move |v| {
                let i = line(v, Ino::ROOT);
                v[i]["attr"]["typ"] = "regular".into();
            }),
        ),
        (
            "which is no directory of the dump",
            Box::new(move |v| {
                let i = line(v, f);
                v[i]["links"][0][0] = 77.into();
            }),
        ),
        (
            "has 2 links",
            Box::new(move |v| {
                let i = line(v, d);
                let l = v[i]["links"][0].clone();
                v[i]["links"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!([l[0], "again"]));
            }),
        ),
        (
            "has no link",
            Box::new(move |v| {
                let i = line(v, f);
                v[i]["links"] = serde_json::json!([]);
            }),
        ),
        (
            "chunk 0 appears twice",
            Box::new(move |v| {
                let i = line(v, f);
                let c = v[i]["chunks"][0].clone();
                v[i]["chunks"].as_array_mut().unwrap().push(c);
            }),
        ),
        (
            "unknown field",
            Box::new(move |v| {
                let i = line(v, f);
                v[i]["xattrz"] = serde_json::json!([]);
            }),
        ),
        (
            "unknown counter \"nextThing\"",
            Box::new(|v| v[0]["counters"]["nextThing"] = 5.into()),
        ),
        (
            "is pending deletion and has a record",
            Box::new(move |v| {
                v.push(serde_json::json!({"pending": {"File": {"ino": f.0, "length": 5}}}));
            }),
        ),
        (
            "is pending deletion but the inode of line",
            Box::new(move |v| {
                v.push(serde_json::json!({"pending": {"Slice": {"id": id, "size": 5}}}));
            }),
        ),
        (
            "quota on inode",
            Box::new(move |v| {
                v[0]["quotas"] = serde_json::json!([{"dir": f.0, "max_space": 0, "max_inodes": 9}]);
            }),
        ),
    ];
    for (want, edit) in cases {
        let bad = edited(&good, edit);
        // An empty target stays empty.
        let target = memory_backend();
        let e = meta_core::dump::load(&target, &mut bad.as_slice(), false, &mut |_| {})
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{want}: {e}");
        assert!(format!("{e:#}").contains(want), "{want}: {e:#}");
        assert!(
            target.load().await.is_err(),
            "{want}: the target was formatted"
        );
        // A forced load over a volume leaves it as it was.
        let kept = volume().await;
        kept.create(ME, Ino::ROOT, b"keep", 0o644).await.unwrap();
        let e = meta_core::dump::load(&**kept.backend(), &mut bad.as_slice(), true, &mut |_| {})
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{want}: {e}");
        kept.lookup(Ino::ROOT, b"keep").await.unwrap();
    }
    // The dump itself passes every check, and so does a second record of a file under
    // another name (a dump of a live volume, without a snapshot, of a file renamed meanwhile).
    let target = memory_backend();
    meta_core::dump::load(&target, &mut good.as_slice(), false, &mut |_| {})
        .await
        .unwrap();
    let renamed = edited(&good, |v| {
        let i = line(v, f);
        let mut again = v[i].clone();
        again["links"][0][1] = "f2".into();
        v.push(again);
    });
    let target = memory_backend();
    meta_core::dump::load(&target, &mut renamed.as_slice(), false, &mut |_| {})
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_quota_repair_says_the_quota_is_gone_and_its_limits() {
    let (store, _, m) = raw_volume("q").await;
    let (q, _) = m.mkdir(ME, Ino::ROOT, b"q", 0o755).await.unwrap();
    let (sub, mut a) = m.mkdir(ME, q, b"sub", 0o755).await.unwrap();
    m.set_quota(q, 0, 100).await.unwrap();
    // A repair of a sound subtree keeps the limits.
    assert_eq!(m.repair_quota(q).await.unwrap().max_inodes, 100);
    // sub's nlink says it has a subdirectory that no listing finds: every new quota over it
    // is refused, the repair's too.
    a.nlink = 3;
    store.put_raw(
        &meta_core::kv::attr_key(sub),
        &meta_core::kv::encode_attr(&a),
    );
    let e = m.repair_quota(q).await.unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains(&format!(
            "the quota of directory {q} (max_space 0, max_inodes 100) was removed"
        )),
        "{text}"
    );
}

/// `Meta::format` refuses a new volume name with a control character; a volume named so
/// before the rule (written by the backend directly) is formatted again under its name as
/// a no-op, and opens.
#[tokio::test]
async fn new_volume_names_are_checked_stored_ones_kept() {
    let b = Arc::new(memory_backend());
    let e = Meta::format(&*b, &Setting::new("a\nb"), false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{e}");
    assert!(b.load().await.is_err(), "nothing was formatted");
    b.format(&Setting::new("a\nb"), false).await.unwrap();
    Meta::format(&*b, &Setting::new("a\nb"), false)
        .await
        .expect("formatting again under the stored name");
    let m = Meta::open(b, MetaOptions::default(), None)
        .await
        .expect("open");
    m.close().await.unwrap();
}
