//! The suite checks itself: backends with one planted bug each (wrappers around the
//! in-memory reference) must fail the cases meant to catch that bug, while the unmodified
//! reference passes them. A case that cannot fail would show up here.

use std::ops::Range;
use std::sync::Arc;

use meta_conformance::{
    Factory, Fresh, MemoryFactory, Outcome, RawTarget, TestVolume, async_trait, find_case,
    run_case_async,
};
use meta_core::{
    Attr, Backend, BackendInfo, Counter, DirEntry, IdKind, Ino, InodeLocks, LockType, Op, OpOutput,
    Pending, RenameFlags, Result, Session, SessionHoldings, Setting, Sid, Slice, Statfs, Timespec,
};

/// One planted bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    /// read_dir skips the first entry after a cursor.
    ReaddirSkipsAfterCursor,
    /// reserve_ids loses every other update: the call hands out the previous range again.
    ReserveOverlaps,
    /// RENAME_NOREPLACE is ignored.
    NoreplaceIgnored,
    /// statfs reports 4 KiB too much.
    StatfsOff,
    /// Slices come back newest first.
    ChunkReversed,
    /// The results of a batch with a failure come back rotated.
    ResultsRotated,
    /// setattr keeps the old ctime (the op's time is replaced by the epoch).
    SetattrTimeLost,
    /// Opens are not recorded (an open becomes a heartbeat, a create-and-open a create).
    OpenForgotten,
    /// Exclusive flocks are taken as shared ones.
    FlockAlwaysShared,
    /// A byte-range lock covers only its first byte.
    PlockFirstByteOnly,
    /// list_sessions answers nothing.
    SessionsHidden,
}

/// Calls so far, and the last inode and chunk ranges handed out.
type LastRanges = (u64, Option<Range<u64>>, Option<Range<u64>>);

#[derive(Debug)]
struct Mutant {
    inner: Arc<dyn Backend>,
    bug: Bug,
    /// The last range `reserve_ids` returned per kind, and a call counter.
    last: std::sync::Mutex<LastRanges>,
}

#[async_trait]
impl Backend for Mutant {
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }
    async fn format(&self, setting: &Setting, force: bool) -> Result<()> {
        self.inner.format(setting, force).await
    }
    async fn load(&self) -> Result<Setting> {
        self.inner.load().await
    }
    async fn apply(&self, ops: &[Op]) -> Result<Vec<Result<OpOutput>>> {
        let ops: Vec<Op> = ops
            .iter()
            .map(|op| match (self.bug, op.clone()) {
                (
                    Bug::NoreplaceIgnored,
                    Op::Rename {
                        parent,
                        name,
                        new_parent,
                        new_name,
                        flags,
                        caller,
                        time,
                    },
                ) if flags == RenameFlags::NOREPLACE => Op::Rename {
                    parent,
                    name,
                    new_parent,
                    new_name,
                    flags: RenameFlags::NONE,
                    caller,
                    time,
                },
                (
                    Bug::SetattrTimeLost,
                    Op::SetAttr {
                        ino, mask, values, ..
                    },
                ) => Op::SetAttr {
                    caller: meta_core::Caller::ROOT,
                    ino,
                    mask,
                    values,
                    time: Timespec::default(),
                },
                (Bug::OpenForgotten, Op::Open { sid, .. }) => Op::Heartbeat {
                    sid,
                    expire: Timespec {
                        sec: i64::MAX / 2,
                        nsec: 0,
                    },
                },
                (Bug::OpenForgotten, mut op @ Op::Mknod { .. }) => {
                    if let Op::Mknod { opened_by, .. } = &mut op {
                        *opened_by = None;
                    }
                    op
                }
                (
                    Bug::FlockAlwaysShared,
                    Op::Flock {
                        ino,
                        owner,
                        typ: LockType::Write,
                    },
                ) => Op::Flock {
                    ino,
                    owner,
                    typ: LockType::Read,
                },
                (
                    Bug::PlockFirstByteOnly,
                    Op::Setlk {
                        ino,
                        owner,
                        typ,
                        start,
                        pid,
                        ..
                    },
                ) => Op::Setlk {
                    ino,
                    owner,
                    typ,
                    start,
                    end: start,
                    pid,
                },
                (_, op) => op,
            })
            .collect();
        let mut r = self.inner.apply(&ops).await?;
        if self.bug == Bug::ResultsRotated && r.iter().any(|x| x.is_err()) {
            r.rotate_left(1);
        }
        Ok(r)
    }
    async fn reserve_ids(&self, kind: IdKind, n: u64) -> Result<Range<u64>> {
        let r = self.inner.reserve_ids(kind, n).await?;
        if self.bug == Bug::ReserveOverlaps {
            let mut l = self.last.lock().unwrap_or_else(|p| p.into_inner());
            l.0 += 1;
            let odd = l.0 % 2 == 1;
            let prev = if kind == IdKind::Inode {
                &mut l.1
            } else {
                &mut l.2
            };
            if odd && let Some(p) = prev.clone().filter(|p| p.end - p.start >= n) {
                return Ok(p.start..p.start + n);
            }
            *prev = Some(r.clone());
        }
        Ok(r)
    }
    async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)> {
        self.inner.lookup(parent, name).await
    }
    async fn get_attr(&self, ino: Ino) -> Result<Attr> {
        self.inner.get_attr(ino).await
    }
    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        if self.bug == Bug::ReaddirSkipsAfterCursor && after.is_some() {
            let mut v = self
                .inner
                .read_dir(ino, after, limit.saturating_add(1), plus)
                .await?;
            if !v.is_empty() {
                v.remove(0);
            }
            return Ok(v);
        }
        self.inner.read_dir(ino, after, limit, plus).await
    }
    async fn read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        let mut v = self.inner.read_chunk(ino, indx).await?;
        if self.bug == Bug::ChunkReversed {
            v.reverse();
        }
        Ok(v)
    }
    async fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        self.inner.read_link(ino).await
    }
    async fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.inner.get_xattr(ino, name).await
    }
    async fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.inner.list_xattr(ino).await
    }
    async fn statfs(&self) -> Result<Statfs> {
        let mut s = self.inner.statfs().await?;
        if self.bug == Bug::StatfsOff {
            s.used_space += 4096;
        }
        Ok(s)
    }
    async fn dir_stats(&self, dirs: &[Ino]) -> Result<Vec<meta_core::DirStat>> {
        self.inner.dir_stats(dirs).await
    }
    async fn quotas(&self) -> Result<Vec<(Ino, meta_core::Quota)>> {
        self.inner.quotas().await
    }
    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        self.inner.get_counter(counter).await
    }
    async fn scan_inodes(
        &self,
        cursor: Option<&[u8]>,
        limit: usize,
    ) -> Result<meta_core::InodePage> {
        self.inner.scan_inodes(cursor, limit).await
    }
    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        let mut v = self.inner.list_chunks(ino).await?;
        if self.bug == Bug::ChunkReversed {
            for (_, s) in &mut v {
                s.reverse();
            }
        }
        Ok(v)
    }
    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        self.inner.list_pending(limit).await
    }
    async fn list_sessions(&self) -> Result<Vec<Session>> {
        if self.bug == Bug::SessionsHidden {
            return Ok(Vec::new());
        }
        self.inner.list_sessions().await
    }
    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        self.inner.session_holdings(sid).await
    }
    async fn list_locks(&self, ino: Ino) -> Result<InodeLocks> {
        self.inner.list_locks(ino).await
    }
}

struct MutantFactory(Bug);
struct MutantVolume(Box<dyn TestVolume>, Bug);

#[async_trait]
impl Factory for MutantFactory {
    fn name(&self) -> &str {
        "mutant"
    }
    async fn create(&self) -> anyhow::Result<Fresh> {
        match MemoryFactory.create().await? {
            Fresh::Volume(v) => Ok(Fresh::Volume(Box::new(MutantVolume(v, self.0)))),
            skip => Ok(skip),
        }
    }
}

#[async_trait]
impl TestVolume for MutantVolume {
    async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        Ok(Arc::new(Mutant {
            inner: self.0.open().await?,
            bug: self.1,
            last: std::sync::Mutex::new((0, None, None)),
        }))
    }
    async fn plant_garbage(&self, target: &RawTarget, garbage: &[u8]) -> anyhow::Result<bool> {
        self.0.plant_garbage(target, garbage).await
    }
}

/// Each bug and the cases that must catch it.
const KILLERS: &[(Bug, &[(&str, &str)])] = &[
    (
        Bug::ReaddirSkipsAfterCursor,
        &[
            ("readdir", "pagination_10k"),
            ("readdir", "pagination_10k_plus"),
            ("readdir", "cursor_semantics"),
        ],
    ),
    (
        Bug::ReserveOverlaps,
        &[
            ("ids", "reserve_ranges"),
            ("ids", "two_meta_unique"),
            ("ids", "metaprime_off"),
        ],
    ),
    (
        Bug::NoreplaceIgnored,
        &[
            ("rename", "noreplace"),
            ("errno", "rename"),
            ("concurrency", "race_rename_noreplace"),
            ("model", "randomized_vs_memory"),
        ],
    ),
    (
        Bug::StatfsOff,
        &[
            ("statfs", "counters"),
            ("errno", "enospc_inodes"),
            ("links", "nlink_counts"),
            ("model", "randomized_vs_memory"),
        ],
    ),
    (
        Bug::ChunkReversed,
        &[
            ("data", "write_read_order"),
            ("dump", "across_backends"),
            ("model", "randomized_vs_memory"),
        ],
    ),
    (
        Bug::ResultsRotated,
        &[
            ("batch", "positional_results"),
            ("batch", "apply_batch_chunks"),
            ("batch", "failing_op_leaves_no_trace"),
            ("model", "randomized_vs_memory"),
        ],
    ),
    (
        Bug::SetattrTimeLost,
        &[
            ("setattr", "mode_owner_ctime"),
            ("setattr", "times"),
            ("model", "randomized_vs_memory"),
        ],
    ),
    (
        Bug::OpenForgotten,
        &[
            ("session", "unlink_open_file"),
            ("session", "rename_over_and_rmdir_open"),
            ("session", "two_clients_unlink_while_open"),
            ("session", "crashed_session_is_cleaned_up"),
            ("session", "lifecycle_and_errors"),
            ("model", "randomized_vs_memory"),
        ],
    ),
    (
        Bug::FlockAlwaysShared,
        &[
            ("session", "flock_matrix"),
            ("session", "crashed_session_is_cleaned_up"),
            ("session", "lock_race_16x2"),
            ("session", "lock_ops_in_one_batch_see_each_other"),
        ],
    ),
    (
        Bug::PlockFirstByteOnly,
        &[
            ("session", "plock_split_merge_getlk"),
            ("model", "randomized_vs_memory"),
        ],
    ),
    (Bug::SessionsHidden, &[("session", "lifecycle_and_errors")]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_planted_bug_is_caught_and_the_reference_passes() {
    let mut survivors = Vec::new();
    for (bug, cases) in KILLERS {
        for (group, name) in *cases {
            let case = find_case(group, name).unwrap_or_else(|| panic!("no case {group}::{name}"));
            let control = run_case_async(Arc::new(MemoryFactory), case).await;
            assert!(
                matches!(control, Ok(Outcome::Passed)),
                "{group}::{name} fails on the reference: {control:?}"
            );
            match run_case_async(Arc::new(MutantFactory(*bug)), case).await {
                Err(_) => {}
                Ok(o) => survivors.push(format!("{bug:?} survives {group}::{name} ({o:?})")),
            }
        }
    }
    assert!(
        survivors.is_empty(),
        "planted bugs not caught:\n{}",
        survivors.join("\n")
    );
}

#[test]
fn the_case_list_is_consistent() {
    let cases = meta_conformance::CASES;
    assert!(cases.len() >= 70, "only {} cases", cases.len());
    let mut seen = std::collections::HashSet::new();
    for c in cases {
        assert!(seen.insert((c.group, c.name)), "duplicate case {c:?}");
        assert!(find_case(c.group, c.name).is_some());
    }
    assert!(find_case("rename", "no_such_case").is_none());
}
