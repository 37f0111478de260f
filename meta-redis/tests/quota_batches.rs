//! Directory quotas inside one call of the Lua library (`lua/quota.lua`): batch by batch, the
//! same ops give the same results and the same quotas as the in-memory reference
//! (meta_core's generic logic), on a standalone server, with `strict_keys`, and on a Cluster.
//!
//! Each batch is one call, and exercises what a call keeps from one op to the next: the
//! memoized quota chain of a directory (an empty directory renamed from under quota A to
//! under quota B after a create in it, then a create in it again; a quota created or
//! removed after an op walked the directory; a walk through a memoized ancestor), the quotas
//! hash read whole (two quotas or fewer) or field by field (more), and the undo of the usage
//! changes of an op that fails on a later quota of its chain (EDQUOT), the op before it
//! having changed another quota in the same call; usages on both sides of 2^52 and 2^53,
//! where the library leaves its numbers for 32-bit halves and comes back (`quota_addf`),
//! within one call and from one call to the next, with EDQUOT at a space limit there.

mod common;

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use common::ops::{file, mkdir, rename, set_quota, set_size, truncate, unlink};
use common::{CLUSTER_ENV, STANDALONE_ENV, open, server, unique_prefix, with_param};
use meta_conformance::util::kind_of;
use meta_core::memory::memory_backend;
use meta_core::quota::Quota;
use meta_core::{Backend, Ino, Op, RenameFlags, Setting};

/// The batches, each one call; what each op must give is the reference's answer.
fn batches() -> Vec<(&'static str, Vec<Op>)> {
    vec![
        (
            // Quotas A (10) and B (11): the hash is read whole. y (12) is walked by the
            // create of f0 (its chain memoized: [A]), emptied, renamed under B, and gets f2,
            // which must charge B, not A.
            "an empty directory renamed from under quota A to under quota B",
            vec![
                mkdir(1, "A", 10),
                mkdir(1, "B", 11),
                set_quota(10, 1000, &[10]),
                set_quota(11, 1000, &[11]),
                mkdir(10, "y", 12),
                file(12, "f0", 13),
                unlink(12, "f0"),
                rename(10, "y", 11, "y", RenameFlags::NONE),
                file(12, "f2", 14),
            ],
        ),
        (
            // A walked directory (20, chain []) gets a quota, then loses it, in the same call.
            "a quota created and removed after a walk",
            vec![
                mkdir(1, "C", 20),
                file(20, "c1", 21),
                set_quota(20, 1000, &[20]),
                file(20, "c2", 22),
                Op::RemoveQuota { dir: Ino(20) },
                file(20, "c3", 23),
            ],
        ),
        (
            // Three nested quotas (the hash now has more than two: read field by field).
            // g2 passes the limit of the outermost one (40: 3 inodes) after changing the two
            // inner ones: both changes are undone. The op before it changed B's quota, which
            // must still be written.
            "an op failing on the last quota of its chain",
            vec![
                mkdir(1, "G", 40),
                mkdir(40, "h", 41),
                mkdir(41, "i", 42),
                set_quota(40, 3, &[40, 41, 42]),
                set_quota(41, 100, &[41, 42]),
                set_quota(42, 100, &[42]),
                file(42, "g1", 43),
                file(11, "b1", 44),
                file(42, "g2", 45),
                file(41, "g3", 46),
            ],
        ),
        (
            // The first op of the call to touch the three quotas fails (EDQUOT on 40): the
            // undo must not drop B's quota, changed before it, from the call's writes.
            "a failing op the first of its call to change its quotas",
            vec![file(11, "b2", 47), file(42, "g4", 48), file(11, "b3", 49)],
        ),
        (
            // Walks through memoized ancestors: i (42) first, then h (41) from the memo, then
            // j (51, new) stopping at i, in one call (G's limit raised first: an existing
            // quota keeps its usage, no subtree needed).
            "walks that stop at a memoized directory",
            vec![
                set_quota(40, 10, &[]),
                unlink(42, "g1"),
                file(41, "h1", 50),
                mkdir(42, "j", 51),
                file(51, "j1", 52),
                unlink(51, "j1"),
                unlink(41, "h1"),
            ],
        ),
        (
            // A space limit of 2^53 + 2^52 on L (60). f's length goes past 2^52 (the usage
            // leaves the fast form), creates and a growth the limit refuses follow in that
            // form, then the usage comes back below 2^52.
            "usages past 2^52 and back in one call",
            vec![
                mkdir(1, "L", 60),
                space_quota(60, P53 + P52),
                file(60, "f", 61),
                set_size(61, P52 - 4097),
                file(60, "g", 62),
                set_size(61, P52 + 1),
                file(60, "h", 63),
                set_size(62, P53),
                set_size(62, P53 - P52 - 3 * 4096),
                set_size(62, P53 - P52 - 2 * 4096),
                unlink(60, "f"),
                file(60, "i", 64),
            ],
        ),
        (
            // The next calls start from the kept quota: past 2^53 (and refused above the
            // limit) in one call, back below 2^52 in the next.
            "usages past 2^53 from one call to the next",
            vec![
                set_size(63, P53 + 4097),
                truncate(64, P52 - 1),
                file(60, "j", 65),
                set_size(64, 5),
            ],
        ),
        (
            "back below 2^52",
            vec![
                set_size(63, 1),
                set_size(62, 0),
                unlink(60, "i"),
                file(60, "k", 66),
            ],
        ),
        (
            // M (70), without limits: usages past 2^53 that no number holds exactly, reached
            // by changes below 2^52 each, then by one past 2^53.
            "odd usages past 2^53",
            vec![
                mkdir(1, "M", 70),
                space_quota(70, 0),
                file(70, "a", 71),
                set_size(71, P52 - 1),
                file(70, "b", 72),
                set_size(72, P52 - 1),
                file(70, "c", 73),
                set_size(73, P52 - 1),
                set_size(71, P53 + 1),
                set_size(72, 3),
                set_size(71, 7),
                unlink(70, "b"),
                unlink(70, "c"),
            ],
        ),
    ]
}

const P52: u64 = 1 << 52;
const P53: u64 = 1 << 53;

/// A new quota on the empty directory `dir` limited to `max_space` bytes of space.
fn space_quota(dir: u64, max_space: u64) -> Op {
    Op::SetQuota {
        dir: Ino(dir),
        max_space,
        max_inodes: 0,
        subtree: vec![Ino(dir)],
    }
}

async fn quotas(b: &dyn Backend) -> anyhow::Result<BTreeMap<Ino, Quota>> {
    Ok(b.quotas().await?.into_iter().collect())
}

async fn scenario(url: &str) -> anyhow::Result<()> {
    let b = open(url, &unique_prefix("q")).await?;
    let reference = memory_backend();
    let setting = Setting::new("quota-batches");
    meta_core::Meta::format(&b, &setting, false).await?;
    meta_core::Meta::format(&reference, &setting, false).await?;
    for (what, ops) in batches() {
        let got = b.apply(&ops).await?;
        let want = reference.apply(&ops).await?;
        ensure!(got.len() == want.len(), "{what}: {got:?} vs {want:?}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            ensure!(
                kind_of(g) == kind_of(w),
                "{what}, op {i}: redis {g:?}, reference {w:?}"
            );
        }
        let (g, w) = (quotas(&b).await?, quotas(&reference).await?);
        ensure!(g == w, "{what}: redis {g:?}, reference {w:?}");
    }
    // What the batches must have done (not only what the reference did).
    let q = quotas(&b).await?;
    let used = |d: u64| q.get(&Ino(d)).map(|q| q.used.inodes);
    ensure!(
        used(10) == Some(0) && used(11) == Some(5),
        "A: y moved out; B: y, f2, b1, b2, b3: {q:?}"
    );
    ensure!(used(20).is_none(), "the removed quota: {q:?}");
    ensure!(
        used(40) == Some(3) && used(41) == Some(2) && used(42) == Some(1),
        "G: h, i, j; h: i, j; i: j (g1 gone, the rest refused or gone): {q:?}"
    );
    let l = q.get(&Ino(60)).context("L's quota")?;
    ensure!(
        (l.used.inodes, l.used.length, l.used.space) == (4, 1, 4 * 4096),
        "L: g, j, k empty, h of 1 byte (f and i gone): {l:?}"
    );
    let m = q.get(&Ino(70)).context("M's quota")?;
    ensure!(
        (m.used.inodes, m.used.length, m.used.space) == (1, 7, 4096),
        "M: a of 7 bytes: {m:?}"
    );
    b.erase().await?;
    Ok(())
}

#[tokio::test]
async fn same_quotas_as_the_reference() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "quota batches") else {
        return Ok(());
    };
    scenario(&url).await.context("standalone")?;
    scenario(&with_param(&url, "strict_keys=true"))
        .await
        .context("strict_keys")?;
    Ok(())
}

#[tokio::test]
async fn same_quotas_as_the_reference_cluster() -> anyhow::Result<()> {
    let Some(url) = server(CLUSTER_ENV, "quota batches cluster") else {
        return Ok(());
    };
    scenario(&url).await.context("cluster")
}
