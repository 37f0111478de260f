//! The model-based randomized test: random batches of raw ops (valid and invalid) applied
//! to the backend under test and to the in-memory reference; every result and the final
//! state must match.
//!
//! Ops carry their own inode numbers, slice IDs and times, so applying the same `Op` values
//! on two backends must give identical outputs. Both volumes are formatted with the same
//! format record and both reserve the same ID ranges first; the first batch sets the root's
//! atime/mtime to fixed values with a fixed op time (which sets its ctime too), so even the
//! root's format-time stamps agree and the dumps can be compared byte for byte.

use std::sync::Arc;

use meta_core::memory::memory_backend;
use meta_core::types::MAX_FILE_LEN;
use meta_core::{CHUNK_SIZE, DirEntry, IdKind, Imported, LockOwner, LockType, SessionInfo, Sid};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::prelude::*;
use crate::SEED_ENV;

/// Seed used when `META_CONFORMANCE_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x5eed_0004;
/// Batches run when `META_CONFORMANCE_MODEL_BATCHES` is not set.
pub const DEFAULT_BATCHES: usize = 300;
/// Compare the whole state every this many batches.
const CHECK_EVERY: usize = 25;
/// Reopen the volume under test every this many batches.
const REOPEN_EVERY: usize = 60;
/// Session IDs of the model's own sessions start here (far above the counter, which the
/// clients of the test context draw from: their sessions are not part of the model).
const MODEL_SID: Sid = 1 << 40;

const NAMES: [&[u8]; 6] = [b"a", b"b", b"c", b"d", b"e", b"f"];
const XNAMES: [&[u8]; 3] = [b"user.a", b"user.b", b"trusted.c"];
const SIZES: [u64; 8] = [
    0,
    1,
    4095,
    4096,
    10_000,
    CHUNK_SIZE - 1,
    CHUNK_SIZE + 5,
    3 * CHUNK_SIZE,
];

/// The model test over `META_CONFORMANCE_MODEL_BATCHES` (default 300) random batches of
/// 1–12 ops each from seed `META_CONFORMANCE_SEED` (default fixed): every op result (output
/// or error kind) on the backend under test equals the in-memory reference's; every 25
/// batches and at the end the dumps, pending records and statfs are equal; the volume under
/// test is reopened every 60 batches; both pass fsck at the end. A failure names its seed.
pub async fn randomized_vs_memory(ctx: &TestCtx) -> Result<()> {
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s
            .trim()
            .parse::<u64>()
            .with_context(|| format!("{SEED_ENV}={s:?} is not a u64"))?,
        Err(_) => DEFAULT_SEED,
    };
    let batches = match std::env::var("META_CONFORMANCE_MODEL_BATCHES") {
        Ok(s) => s
            .trim()
            .parse::<usize>()
            .context("META_CONFORMANCE_MODEL_BATCHES")?,
        Err(_) => DEFAULT_BATCHES,
    };
    run_model(ctx, seed, batches).await.with_context(|| {
        format!(
            "model test on {} failed with seed {seed}; rerun with {SEED_ENV}={seed}",
            ctx.backend_name()
        )
    })
}

/// What the generator knows about the reference volume before a batch.
#[derive(Default)]
struct View {
    dirs: Vec<Ino>,
    live: Vec<(Ino, Attr)>,
    entries: Vec<(Ino, Vec<u8>)>,
    dir_entries: Vec<(Ino, Vec<u8>)>,
    other_entries: Vec<(Ino, Vec<u8>)>,
    files: Vec<Ino>,
    /// Every chunk of the live regular files: inode, index, slices.
    chunks: Vec<(Ino, u32, Vec<Slice>)>,
    pending: Vec<Pending>,
    /// The model's sessions, and the inodes they hold open.
    sessions: Vec<Sid>,
    opens: Vec<(Sid, Ino)>,
    /// Directories with a quota.
    quotas: Vec<Ino>,
}

/// The model's sessions (IDs from [`MODEL_SID`] on) and what they hold, for comparison.
async fn model_sessions(b: &dyn Backend) -> Result<Vec<(meta_core::Session, String)>> {
    let mut out = Vec::new();
    for s in b.list_sessions().await? {
        if s.info.sid < MODEL_SID {
            continue;
        }
        let h = b.session_holdings(s.info.sid).await?;
        out.push((s, format!("{h:?}")));
    }
    Ok(out)
}

async fn view_of(b: &dyn Backend) -> Result<View> {
    let mut v = View::default();
    for (ino, attr) in all_inodes(b).await? {
        if attr.typ == FileType::Directory {
            v.dirs.push(ino);
            let listed: Vec<DirEntry> = list_all(b, ino, false, 1000).await?;
            for e in listed {
                if e.typ == FileType::Directory {
                    v.dir_entries.push((ino, e.name.clone()));
                } else {
                    v.other_entries.push((ino, e.name.clone()));
                }
                v.entries.push((ino, e.name));
            }
        } else if attr.typ == FileType::Regular {
            v.files.push(ino);
            for (indx, slices) in b.list_chunks(ino).await? {
                v.chunks.push((ino, indx, slices));
            }
        }
        v.live.push((ino, attr));
    }
    v.pending = b.list_pending(usize::MAX).await?;
    v.quotas = b.quotas().await?.into_iter().map(|(d, _)| d).collect();
    for (s, _) in model_sessions(b).await? {
        let sid = s.info.sid;
        v.sessions.push(sid);
        for ino in b.session_holdings(sid).await?.open {
            v.opens.push((sid, ino));
        }
    }
    Ok(v)
}

struct Gen {
    rng: StdRng,
    next_ino: u64,
    ino_end: u64,
    next_slice: u64,
    dead: Vec<Ino>,
    clock: i64,
    next_sid: Sid,
}

impl Gen {
    fn pct(&mut self, p: u32) -> bool {
        self.rng.random_range(0..100) < p
    }

    fn pick<T: Clone>(&mut self, v: &[T]) -> Option<T> {
        if v.is_empty() {
            None
        } else {
            Some(v[self.rng.random_range(0..v.len())].clone())
        }
    }

    fn time(&mut self) -> Timespec {
        self.clock += 1;
        if self.pct(5) {
            t(
                self.rng.random_range(-1000..self.clock),
                self.rng.random_range(0..1_000_000_000),
            )
        } else {
            t(self.clock, self.rng.random_range(0..1_000_000_000))
        }
    }

    /// Who runs an op: root, the usual user, a user in group 1000 through a supplementary
    /// group, or a stranger, so the permission rules (perm.rs) are exercised on every op.
    fn caller(&mut self) -> Caller {
        match self.rng.random_range(0..10) {
            0..=3 => Caller::ROOT,
            4..=7 => ME,
            8 => Caller::with_groups(2000, 2000, [1000]),
            _ => Caller::new(2000, 2000),
        }
    }

    fn owner(&mut self) -> u32 {
        [0, 1000, 2000][self.rng.random_range(0..3)]
    }

    fn name(&mut self, view: &View) -> Vec<u8> {
        match self.rng.random_range(0..100) {
            0..=89 => NAMES[self.rng.random_range(0..NAMES.len())].to_vec(),
            90..=94 => match self.pick(&view.entries) {
                Some((_, n)) => n,
                None => b"a".to_vec(),
            },
            _ => {
                [&b""[..], b".", b"..", b"x/y", &[b'n'; 256]][self.rng.random_range(0..5)].to_vec()
            }
        }
    }

    fn fresh_ino(&mut self) -> Ino {
        if self.next_ino + 1 >= self.ino_end {
            return Ino(self.ino_end - 1);
        }
        self.next_ino += 1;
        Ino(self.next_ino)
    }

    fn bad_ino(&mut self) -> Ino {
        match self.rng.random_range(0..4) {
            0 => Ino::ZERO,
            1 => MISSING,
            _ => self.pick(&self.dead.clone()).unwrap_or(MISSING),
        }
    }

    fn dir(&mut self, view: &View) -> Ino {
        match self.rng.random_range(0..100) {
            0..=87 => self.pick(&view.dirs).unwrap_or(ROOT),
            88..=94 => self.pick(&view.live).map(|(i, _)| i).unwrap_or(ROOT),
            _ => self.bad_ino(),
        }
    }

    fn inode(&mut self, view: &View) -> Ino {
        match self.rng.random_range(0..100) {
            0..=84 => self.pick(&view.live).map(|(i, _)| i).unwrap_or(ROOT),
            85..=89 => ROOT,
            _ => self.bad_ino(),
        }
    }

    /// A regular file most of the time, else any inode.
    fn file(&mut self, view: &View) -> Ino {
        if self.pct(75)
            && let Some(f) = self.pick(&view.files)
        {
            return f;
        }
        self.inode(view)
    }

    /// An entry of the wanted kind (directory or not) most of the time, else any entry.
    fn entry_of(&mut self, view: &View, dir: bool) -> (Ino, Vec<u8>) {
        let pool = if dir {
            &view.dir_entries
        } else {
            &view.other_entries
        };
        if self.pct(60)
            && let Some(e) = self.pick(pool)
        {
            return e;
        }
        self.entry(view)
    }

    /// An existing entry most of the time, else a random (parent, name).
    fn entry(&mut self, view: &View) -> (Ino, Vec<u8>) {
        if self.pct(75)
            && let Some(e) = self.pick(&view.entries)
        {
            return e;
        }
        (self.dir(view), self.name(view))
    }

    /// A session of the model most of the time, else one that does not exist.
    fn sid(&mut self, view: &View) -> Sid {
        if self.pct(90)
            && let Some(s) = self.pick(&view.sessions)
        {
            return s;
        }
        self.next_sid + 1000
    }

    fn lock_owner(&mut self, view: &View) -> LockOwner {
        LockOwner {
            sid: self.sid(view),
            owner: self.rng.random_range(0..3),
        }
    }

    fn lock_type(&mut self) -> LockType {
        [LockType::Read, LockType::Write, LockType::Unlock][self.rng.random_range(0..3)]
    }

    /// An op of the session family: register, beat, close, open, release, locks.
    fn session_op(&mut self, view: &View, time: Timespec) -> Op {
        let later = Timespec {
            sec: time.sec + 1000,
            nsec: time.nsec,
        };
        match self.rng.random_range(0..100) {
            0..=9 => {
                self.next_sid += 1;
                let sid = if self.pct(5) { Sid::MIN } else { self.next_sid };
                Op::OpenSession {
                    info: Box::new(SessionInfo {
                        sid,
                        host: "model".into(),
                        pid: 1,
                        version: "model".into(),
                        started: time,
                        label: String::new(),
                    }),
                    expire: later,
                }
            }
            10..=14 => Op::Heartbeat {
                sid: self.sid(view),
                expire: if self.pct(50) { later } else { time },
            },
            15..=19 => Op::CloseSession {
                sid: self.sid(view),
                expired_before: if self.pct(50) { None } else { Some(time) },
                at_most: None,
            },
            20..=44 => Op::Open {
                sid: self.sid(view),
                ino: self.inode(view),
            },
            45..=64 => match self.pick(&view.opens) {
                Some((sid, ino)) if self.pct(90) => {
                    let mut inos = vec![(ino, self.pct(50))];
                    if self.pct(30)
                        && let Some((_, other)) = self.pick(&view.opens)
                    {
                        inos.push((other, self.pct(50)));
                    }
                    Op::Release { sid, inos }
                }
                _ => Op::Release {
                    sid: self.sid(view),
                    inos: vec![(self.inode(view), self.pct(50))],
                },
            },
            65..=79 => Op::Flock {
                ino: self.file(view),
                owner: self.lock_owner(view),
                typ: self.lock_type(),
            },
            _ => {
                let a = self.rng.random_range(0..20);
                let b = if self.pct(10) {
                    u64::MAX
                } else {
                    self.rng.random_range(0..20)
                };
                let (start, end) = if self.pct(95) {
                    (a.min(b), a.max(b))
                } else {
                    (a.max(b), a.min(b))
                };
                Op::Setlk {
                    ino: self.file(view),
                    owner: self.lock_owner(view),
                    typ: self.lock_type(),
                    start,
                    end,
                    pid: self.rng.random_range(1..5),
                }
            }
        }
    }

    /// What an imported create carries: usually a consistent record (a regular file's
    /// slice inside its length), sometimes a bad one (a slice past the length, data for a
    /// non-regular file).
    fn imported(&mut self, typ: FileType) -> Imported {
        let (atime, mtime, ctime) = (self.time(), self.time(), self.time());
        let regular = typ == FileType::Regular || self.pct(10);
        let slice = (regular && self.pct(70)).then(|| self.slice());
        let end = slice.map_or(0, |s| s.end());
        let length = match (regular, self.rng.random_range(0..10)) {
            (false, _) => 0,
            (true, 0) => end.saturating_sub(1),
            (true, 1) => MAX_FILE_LEN + 1,
            (true, _) => end + self.rng.random_range(0..3) * 5000,
        };
        Imported {
            atime,
            mtime,
            ctime,
            length,
            slice,
        }
    }

    fn slice(&mut self) -> Slice {
        let pos = [
            0u32,
            100,
            4096,
            (CHUNK_SIZE - 4096) as u32,
            (CHUNK_SIZE - 10) as u32,
        ][self.rng.random_range(0..5)];
        let len = [1u32, 100, 4096, 65_536, 20][self.rng.random_range(0..5)];
        let off = self.rng.random_range(0..10);
        let id = if self.pct(15) {
            0
        } else {
            self.next_slice += 1;
            self.next_slice
        };
        let size = if self.pct(5) {
            off + len - 1
        } else {
            off + len + self.rng.random_range(0..10)
        };
        Slice {
            pos,
            id,
            size,
            off,
            len,
        }
    }

    /// A compaction: mostly of a chunk as the view lists it (current unless an earlier op of
    /// the batch changed it), sometimes with a stale list, keeping some of its slices and
    /// adding new ones (valid or not); else of any inode with an empty list.
    fn compact(&mut self, view: &View) -> Op {
        match self.pick(&view.chunks) {
            Some((ino, indx, mut expect)) if self.pct(90) => {
                if self.pct(15) {
                    if expect.is_empty() || self.pct(50) {
                        let s = self.slice();
                        expect.push(s);
                    } else {
                        expect.pop();
                    }
                }
                let mut slices: Vec<Slice> = Vec::new();
                for s in &expect {
                    if self.pct(25) {
                        slices.push(*s);
                    }
                }
                for _ in 0..self.rng.random_range(0..3) {
                    let s = self.slice();
                    slices.push(s);
                }
                Op::CompactChunk {
                    ino,
                    indx,
                    expect,
                    slices,
                }
            }
            _ => Op::CompactChunk {
                ino: self.file(view),
                indx: self.rng.random_range(0..4),
                expect: Vec::new(),
                slices: vec![self.slice()],
            },
        }
    }

    /// A quota op: set one with small limits (often hit) on a directory with its subtree as
    /// the view lists it (sometimes stale or empty: EAGAIN), or remove one.
    fn quota_op(&mut self, view: &View) -> Op {
        let dir = match self.rng.random_range(0..10) {
            0..=2 => self.pick(&view.quotas).unwrap_or(ROOT),
            _ => self.dir(view),
        };
        if self.pct(25) {
            return Op::RemoveQuota { dir };
        }
        let mut subtree = vec![dir];
        let mut i = 0;
        while i < subtree.len() {
            let parent = subtree[i];
            i += 1;
            for (d, a) in &view.live {
                if a.typ == FileType::Directory && a.parent == parent && *d != ROOT {
                    subtree.push(*d);
                }
            }
        }
        match self.rng.random_range(0..10) {
            0 => subtree.clear(),
            1 if subtree.len() > 1 => {
                subtree.pop();
            }
            _ => {}
        }
        Op::SetQuota {
            dir,
            max_space: if self.pct(50) {
                0
            } else {
                4096 * self.rng.random_range(1..24)
            },
            max_inodes: if self.pct(30) {
                0
            } else {
                self.rng.random_range(1..10)
            },
            subtree,
        }
    }

    fn op(&mut self, view: &View) -> Op {
        let time = self.time();
        if self.pct(12) {
            return self.session_op(view, time);
        }
        if self.pct(4) {
            return self.quota_op(view);
        }
        match self.rng.random_range(0..100) {
            0..=24 => {
                let typ = match self.rng.random_range(0..20) {
                    0..=8 => FileType::Regular,
                    9..=14 => FileType::Directory,
                    15..=16 => FileType::Symlink,
                    17 => FileType::Fifo,
                    18 => {
                        [FileType::CharDevice, FileType::BlockDevice][self.rng.random_range(0..2)]
                    }
                    _ => FileType::Socket,
                };
                let ino = match self.rng.random_range(0..100) {
                    0..=94 => self.fresh_ino(),
                    // An inode number in use (EEXIST); never an unreserved one, which would
                    // create an inode above the nextInode counter.
                    95..=97 => self.pick(&view.live).map(|(i, _)| i).unwrap_or(ROOT),
                    _ => Ino::ZERO,
                };
                let target = match (typ, self.rng.random_range(0..100)) {
                    (FileType::Symlink, 0..=89) => {
                        let n = self.rng.random_range(1..20);
                        (0..n).map(|_| self.rng.random_range(1..=255u8)).collect()
                    }
                    (FileType::Symlink, 90..=94) => Vec::new(),
                    (FileType::Symlink, _) => vec![b'x'; 4097],
                    (_, 0..=97) => Vec::new(),
                    _ => b"bogus".to_vec(),
                };
                let mode = match self.rng.random_range(0..10) {
                    0 => 0o2775,
                    1 => 0o1777,
                    2 => self.rng.random_range(0..0o10000),
                    _ => 0o755,
                };
                Op::Mknod {
                    caller: self.caller(),
                    parent: self.dir(view),
                    name: self.name(view),
                    ino,
                    typ,
                    mode,
                    uid: self.owner(),
                    gid: self.owner(),
                    rdev: if matches!(typ, FileType::CharDevice | FileType::BlockDevice) {
                        self.rng.random_range(0..0xffff)
                    } else {
                        0
                    },
                    target,
                    time,
                    opened_by: if typ == FileType::Regular && self.pct(20) {
                        Some(self.sid(view))
                    } else {
                        None
                    },
                    imported: self.pct(15).then(|| Box::new(self.imported(typ))),
                }
            }
            25..=31 => Op::Link {
                caller: self.caller(),
                ino: self.inode(view),
                parent: self.dir(view),
                name: self.name(view),
                time,
            },
            32..=41 => {
                let (parent, name) = self.entry_of(view, false);
                Op::Unlink {
                    parent,
                    name,
                    caller: self.caller(),
                    time,
                }
            }
            42..=47 => {
                let (parent, name) = self.entry_of(view, true);
                Op::Rmdir {
                    parent,
                    name,
                    caller: self.caller(),
                    time,
                }
            }
            48..=61 => {
                let (parent, name) = self.entry(view);
                let (new_parent, new_name) = if self.pct(40) {
                    self.entry(view)
                } else {
                    (self.dir(view), self.name(view))
                };
                let flags = match self.rng.random_range(0..100) {
                    0..=74 => RenameFlags::NONE,
                    75..=84 => RenameFlags::NOREPLACE,
                    85..=96 => RenameFlags::EXCHANGE,
                    _ => RenameFlags(3),
                };
                Op::Rename {
                    parent,
                    name,
                    new_parent,
                    new_name,
                    flags,
                    caller: self.caller(),
                    time,
                }
            }
            62..=69 => {
                let mut mask = self.rng.random_range(0..256u32);
                if self.pct(3) {
                    mask |= 0x100;
                }
                let values = SetAttrValues {
                    mode: self.rng.random_range(0..=u16::MAX),
                    uid: self.owner(),
                    gid: self.owner(),
                    atime: t(
                        self.rng.random_range(-100..100),
                        self.rng.random_range(0..1_000_000_000),
                    ),
                    mtime: t(self.rng.random_range(-100..100), 7),
                    size: SIZES[self.rng.random_range(0..SIZES.len())],
                };
                let ino = if mask & SetAttrMask::SIZE.0 != 0 {
                    self.file(view)
                } else {
                    self.inode(view)
                };
                Op::SetAttr {
                    caller: self.caller(),
                    ino,
                    mask: SetAttrMask(mask),
                    values,
                    time,
                }
            }
            77..=79 => self.compact(view),
            70..=76 => Op::Write {
                caller: self.caller(),
                ino: self.file(view),
                indx: self.rng.random_range(0..4),
                slice: self.slice(),
                time,
            },
            80..=83 => Op::Truncate {
                caller: self.caller(),
                ino: self.file(view),
                length: if self.pct(3) {
                    u64::MAX
                } else {
                    SIZES[self.rng.random_range(0..SIZES.len())]
                },
                time,
            },
            84..=90 => {
                let name = if self.pct(4) {
                    Vec::new()
                } else {
                    XNAMES[self.rng.random_range(0..3)].to_vec()
                };
                let value = if self.pct(2) {
                    vec![1; 65_537]
                } else {
                    let n = self.rng.random_range(0..20);
                    (0..n).map(|_| self.rng.random_range(0..=255u8)).collect()
                };
                let flags = XattrFlags([0, 0, 1, 2, 3][self.rng.random_range(0..5)]);
                Op::SetXattr {
                    caller: self.caller(),
                    ino: self.inode(view),
                    name,
                    value,
                    flags,
                }
            }
            91..=94 => Op::RemoveXattr {
                caller: self.caller(),
                ino: self.inode(view),
                name: XNAMES[self.rng.random_range(0..3)].to_vec(),
            },
            _ => match self.pick(&view.pending) {
                Some(Pending::File { ino, .. }) => Op::ClearPendingFile { ino },
                Some(Pending::Slice { id, .. }) => Op::ClearPendingSlice { id },
                None if self.pct(50) => Op::ClearPendingFile {
                    ino: self.inode(view),
                },
                None => Op::ClearPendingSlice {
                    id: self.rng.random_range(0..self.next_slice + 2),
                },
            },
        }
    }
}

/// Equal outputs, or errors of the same kind.
fn same_result(a: &meta_core::Result<OpOutput>, b: &meta_core::Result<OpOutput>) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(x), Err(y)) => x.kind() == y.kind(),
        _ => false,
    }
}

async fn compare_state(tested: &dyn Backend, reference: &dyn Backend, when: &str) -> Result<()> {
    let (dt, dr) = (dump_text(tested).await?, dump_text(reference).await?);
    same_text(
        &dr,
        &dt,
        &format!("{when}: dump of the reference (left) vs the backend (right)"),
    )?;
    let (pt, pr) = (
        pending_sorted(tested).await?,
        pending_sorted(reference).await?,
    );
    ensure!(
        pt == pr,
        "{when}: pending records differ:\n  reference {pr:?}\n  backend   {pt:?}"
    );
    let (st, sr) = (tested.statfs().await?, reference.statfs().await?);
    ensure!(
        st == sr,
        "{when}: statfs differs: reference {sr:?}, backend {st:?}"
    );
    for c in meta_core::Counter::ALL {
        let (a, b) = (
            tested.get_counter(c).await?,
            reference.get_counter(c).await?,
        );
        ensure!(
            a == b,
            "{when}: counter {} is {a} here, {b} on the reference",
            c.name()
        );
    }
    let (qt, qr) = (tested.quotas().await?, reference.quotas().await?);
    ensure!(
        qt == qr,
        "{when}: quotas differ:\n  reference {qr:?}\n  backend   {qt:?}"
    );
    let (st, sr) = (
        model_sessions(tested).await?,
        model_sessions(reference).await?,
    );
    ensure!(
        st == sr,
        "{when}: sessions differ:\n  reference {sr:?}\n  backend   {st:?}"
    );
    for (ino, _) in all_inodes(reference).await? {
        let (lt, lr) = (
            tested.list_locks(ino).await?,
            reference.list_locks(ino).await?,
        );
        ensure!(
            lt == lr,
            "{when}: locks of inode {ino} differ:\n  reference {lr:?}\n  backend   {lt:?}"
        );
    }
    Ok(())
}

async fn run_model(ctx: &TestCtx, seed: u64, batches: usize) -> Result<()> {
    let reference: Arc<dyn Backend> = Arc::new(memory_backend());
    Meta::format(&*reference, ctx.setting(), false).await?;
    let mut tested = ctx.backend();
    // Bring both ID counters to the same value, then reserve one range each.
    for (kind, c) in [
        (IdKind::Inode, meta_core::Counter::NextInode),
        (IdKind::Chunk, meta_core::Counter::NextChunk),
    ] {
        let want = tested.get_counter(c).await?;
        let have = reference.get_counter(c).await?;
        if want > have {
            reference.reserve_ids(kind, (want - have) as u64).await?;
        } else if have > want {
            tested.reserve_ids(kind, (have - want) as u64).await?;
        }
    }
    let ri = tested.reserve_ids(IdKind::Inode, 1_000_000).await?;
    let rc = tested.reserve_ids(IdKind::Chunk, 1_000_000).await?;
    let (ri2, rc2) = (
        reference.reserve_ids(IdKind::Inode, 1_000_000).await?,
        reference.reserve_ids(IdKind::Chunk, 1_000_000).await?,
    );
    ensure!(
        ri == ri2 && rc == rc2,
        "reservations differ: {ri:?} {rc:?} vs {ri2:?} {rc2:?}"
    );
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        next_ino: ri.start,
        ino_end: ri.end,
        next_slice: rc.start,
        dead: Vec::new(),
        clock: 0,
        next_sid: MODEL_SID,
    };
    let root_times = Op::SetAttr {
        caller: Caller::ROOT,
        ino: ROOT,
        mask: SetAttrMask::ATIME | SetAttrMask::MTIME,
        values: SetAttrValues {
            atime: t(0, 0),
            mtime: t(0, 0),
            ..Default::default()
        },
        time: t(0, 0),
    };
    let mut history: Vec<Vec<Op>> = Vec::new();
    let mut tally: std::collections::BTreeMap<(&'static str, String), usize> = Default::default();
    for n in 0..=batches {
        let ops = if n == 0 {
            vec![root_times.clone()]
        } else {
            let view = view_of(&*reference).await?;
            let len = g.rng.random_range(1..=12);
            (0..len).map(|_| g.op(&view)).collect()
        };
        let rr = reference
            .apply(&ops)
            .await
            .with_context(|| format!("batch {n}: the reference failed"))?;
        let rt = tested
            .apply(&ops)
            .await
            .with_context(|| format!("batch {n}: the whole batch failed"))?;
        ensure!(
            rt.len() == ops.len(),
            "batch {n}: {} results for {} ops",
            rt.len(),
            ops.len()
        );
        for (i, op) in ops.iter().enumerate() {
            if !same_result(&rr[i], &rt[i]) {
                bail!(
                    "batch {n}, op {i} of {}: {op:?}\n  reference: {:?}\n  backend:   {:?}\n  earlier ops of the batch: {:?}",
                    ops.len(),
                    rr[i],
                    rt[i],
                    &ops[..i]
                );
            }
            let outcome = match &rr[i] {
                Ok(_) => "ok".to_string(),
                Err(e) => e.kind().errno_name().to_string(),
            };
            *tally.entry((op.name(), outcome)).or_default() += 1;
            if let (Op::Mknod { ino, .. }, Err(_)) = (op, &rr[i]) {
                g.dead.push(*ino);
            }
        }
        for r in rr.iter().flatten() {
            if let OpOutput::Removed {
                ino, attr: None, ..
            } = r
            {
                g.dead.push(*ino);
            }
        }
        history.push(ops);
        if n % CHECK_EVERY == 0 || n == batches {
            compare_state(&*tested, &*reference, &format!("after batch {n}")).await?;
        }
        if n > 0 && n % REOPEN_EVERY == 0 {
            drop(tested);
            ctx.reopen()
                .await
                .with_context(|| format!("reopen after batch {n}"))?;
            tested = ctx.backend();
            compare_state(&*tested, &*reference, &format!("after reopen at batch {n}")).await?;
        }
    }
    fsck_clean(&*reference, "the reference after the model run").await?;
    fsck_clean(&*tested, "the backend after the model run").await?;
    let ops: usize = history.iter().map(Vec::len).sum();
    let live = all_inodes(&*reference).await?.len();
    ensure!(
        live > 5,
        "the run left only {live} inodes: the generator is too destructive ({ops} ops)"
    );
    let ok: usize = tally
        .iter()
        .filter(|((_, o), _)| o == "ok")
        .map(|(_, n)| n)
        .sum();
    ensure!(
        ok * 4 > ops,
        "only {ok} of {ops} ops succeeded: the generator is too random"
    );
    eprintln!(
        "model test on {} (seed {seed}): {ops} ops in {} batches, {ok} succeeded, {live} inodes left; outcomes: {tally:?}",
        ctx.backend_name(),
        history.len()
    );
    Ok(())
}
