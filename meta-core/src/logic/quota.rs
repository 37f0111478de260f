//! Directory quotas inside the ops ([`crate::quota`]): charging the quotas on a directory's
//! way to the root, the EXDEV boundaries, and the ops that set and remove a quota.

use crate::error::{Result, err};
use crate::op::OpOutput;
use crate::quota::{Quota, check_subtree};
use crate::stats::{DirStat, charge};
use crate::types::{Attr, FileType, Ino};

use super::checks::live_dir_attr;
use super::namespace::MAX_DEPTH;
use super::{Limits, TxnView};

/// A memo of where the quotas are: for a directory, the directories on its way to the root
/// (itself included) that have a quota, nearest first. A batch of ops in one directory then
/// walks its chain once instead of once per op, and a walk stops at the first directory whose
/// chain is remembered (a walk reads each level's quota record and attributes). A view keeps
/// one per transaction ([`TxnView::quota_chains`]), or longer when it is the store's only
/// writer (see [`crate::kv::KvBackend`]). The logic keeps it true: it forgets everything when
/// a directory changes parent, when a quota is created and when an op is rolled back, and
/// walks again when a remembered quota is gone. Quota values themselves are always read
/// through the view (they change with every charge). It holds at most [`QuotaChains::MAX`]
/// directories (past that it starts again empty).
#[derive(Debug, Default)]
pub struct QuotaChains(std::collections::HashMap<Ino, Vec<Ino>>);

impl QuotaChains {
    /// Most directories remembered at once.
    pub const MAX: usize = 65_536;

    /// Forgets every chain.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// How many directories' chains are remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no chain is remembered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn remember(&mut self, dir: Ino, chain: Vec<Ino>) {
        if self.0.len() >= Self::MAX && !self.0.contains_key(&dir) {
            self.0.clear();
        }
        self.0.insert(dir, chain);
    }
}

/// Forgets `v`'s remembered quota chains, if it keeps any.
pub(super) fn forget_chains<V: TxnView + ?Sized>(v: &mut V) {
    if let Some(m) = v.quota_chains() {
        m.clear();
    }
}

/// The remembered chain of `dir` with each quota read through the view, or `None` when there
/// is none or one of its quotas is gone (removed with its directory, or by RemoveQuota).
async fn remembered<V: TxnView + ?Sized>(v: &mut V, dir: Ino) -> Result<Option<Vec<(Ino, Quota)>>> {
    let Some(dirs) = v.quota_chains().and_then(|m| m.0.get(&dir).cloned()) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(dirs.len());
    for d in dirs {
        match v.get_quota(d).await? {
            Some(q) => out.push((d, q)),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The quotas on `dir` and on each of its ancestors, nearest first, as this transaction sees
/// them (through [`QuotaChains`] when the view keeps one). Errors: `Corrupted` for a broken or
/// looping parent chain.
pub(super) async fn chain<V: TxnView + ?Sized>(v: &mut V, dir: Ino) -> Result<Vec<(Ino, Quota)>> {
    if let Some(out) = remembered(v, dir).await? {
        return Ok(out);
    }
    walk(v, dir).await
}

/// [`chain`] by reading each level (its quota and its parent) up to the root or to the first
/// ancestor whose chain is remembered; remembers the chain of every level it read.
async fn walk<V: TxnView + ?Sized>(v: &mut V, dir: Ino) -> Result<Vec<(Ino, Quota)>> {
    let mut out = Vec::new();
    // Each level read and how many quotas were found below it.
    let mut levels: Vec<(Ino, usize)> = Vec::new();
    let mut cur = dir;
    let mut done = false;
    for _ in 0..MAX_DEPTH {
        if cur != dir
            && let Some(rest) = remembered(v, cur).await?
        {
            out.extend(rest);
            done = true;
            break;
        }
        levels.push((cur, out.len()));
        if let Some(q) = v.get_quota(cur).await? {
            out.push((cur, q));
        }
        if cur == Ino::ROOT {
            done = true;
            break;
        }
        let parent = v.get_attr(cur).await?.map(|a| a.parent);
        cur = match parent {
            Some(p) if p != Ino::ZERO => p,
            _ => {
                return Err(err::corrupted(format!(
                    "directory {cur} has no parent on the way from {dir} to the root"
                )));
            }
        };
    }
    if !done {
        return Err(err::corrupted(format!(
            "directory {dir} is nested deeper than {MAX_DEPTH} levels (a parent loop?)"
        )));
    }
    if let Some(m) = v.quota_chains() {
        for (level, below) in levels {
            m.remember(level, out[below..].iter().map(|(d, _)| *d).collect());
        }
    }
    Ok(out)
}

/// The quota side of a directory-statistics change of inode `ino` (attributes `before` →
/// `after`, `changes` from [`crate::stats::recharge`]), on a volume that has quotas: the
/// EXDEV boundaries, then each quota on the changed directories' ways to the root gets the
/// net change, checked when it grows (`QuotaExceeded`).
pub(super) async fn on_recharge<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    before: Option<&Attr>,
    after: Option<&Attr>,
    changes: &[(Ino, DirStat)],
) -> Result<()> {
    let old = before.and_then(|a| charge(ino, a));
    if let (Some((from, _)), Some(a)) = (old, after) {
        if a.nlink > 0 && a.parent == Ino::ZERO && !chain(v, from).await?.is_empty() {
            return Err(err::cross_device(format!(
                "inode {ino} would be named in several directories and leave the quota over \
                 directory {from}"
            )));
        }
        if a.typ == FileType::Directory && a.parent != from && a.parent != Ino::ZERO {
            moving_dir(v, ino, a, from).await?;
            // Every chain through it changes.
            forget_chains(v);
        }
    }
    let mut net: Vec<(Ino, Quota, DirStat)> = Vec::new();
    for (dir, delta) in changes {
        for (q_dir, q) in chain(v, *dir).await? {
            match net.iter_mut().find(|(d, _, _)| *d == q_dir) {
                Some((_, _, sum)) => *sum = *sum + *delta,
                None => net.push((q_dir, q, *delta)),
            }
        }
    }
    for (q_dir, mut q, delta) in net {
        if delta.is_zero() {
            continue;
        }
        q.check(q_dir, &delta)?;
        q.used = q.used + delta;
        v.put_quota(q_dir, Some(&q)).await?;
    }
    Ok(())
}

/// EXDEV when directory `ino` (attributes after the move: parent `after.parent`), moving out
/// of directory `from`, is not empty and the quotas above its old and new places differ.
async fn moving_dir<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    after: &Attr,
    from: Ino,
) -> Result<()> {
    if after.nlink <= 2 && v.get_dir_stat(ino).await?.is_zero() {
        return Ok(());
    }
    let old: Vec<Ino> = chain(v, from).await?.into_iter().map(|q| q.0).collect();
    let new: Vec<Ino> = chain(v, after.parent)
        .await?
        .into_iter()
        .map(|q| q.0)
        .collect();
    if old != new {
        return Err(err::cross_device(format!(
            "directory {ino} is not empty and would move across a directory quota's boundary"
        )));
    }
    Ok(())
}

/// EXDEV when a link or rename names `attr` (an inode charged to no directory because it is
/// named in several, parent 0) in directory `dir` under a quota: the quota could not account
/// for it. Does nothing on a volume without statistics or quotas.
pub(super) async fn check_uncharged_entry<V: TxnView + ?Sized>(
    v: &mut V,
    limits: &Limits,
    ino: Ino,
    attr: &Attr,
    dir: Ino,
) -> Result<()> {
    if !limits.dir_stats
        || attr.nlink == 0
        || attr.parent != Ino::ZERO
        || attr.typ == FileType::Directory
        || !v.has_quotas().await?
    {
        return Ok(());
    }
    if let Some((q, _)) = chain(v, dir).await?.first() {
        return Err(err::cross_device(format!(
            "inode {ino} is named in several directories and cannot enter the quota over \
             directory {q}"
        )));
    }
    Ok(())
}

/// [`crate::Op::SetQuota`]: sets the limits of `dir`'s quota; a new quota's usage is the sum
/// of the statistics of `subtree` (the directories of `dir`'s subtree, `dir` first), which
/// [`check_subtree`] verifies against the stored attributes.
pub(super) async fn set_quota<V: TxnView + ?Sized>(
    v: &mut V,
    dir: Ino,
    max_space: u64,
    max_inodes: u64,
    subtree: &[Ino],
    limits: &Limits,
) -> Result<OpOutput> {
    if !limits.dir_stats {
        return Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            "directory quotas need directory statistics (the volume was formatted without them)",
        ));
    }
    live_dir_attr(v, dir).await?;
    let quota = match v.get_quota(dir).await? {
        Some(q) => Quota {
            max_space,
            max_inodes,
            ..q
        },
        None if subtree.is_empty() => {
            return Err(err::would_block(format!(
                "directory {dir} has no quota yet: list its subtree's directories"
            )));
        }
        None => {
            let mut attrs = Vec::with_capacity(subtree.len());
            for d in subtree {
                attrs.push(v.get_attr(*d).await?);
            }
            check_subtree(dir, subtree, &attrs)?;
            let mut used = DirStat::default();
            for d in subtree {
                used = used + v.get_dir_stat(*d).await?;
                // Written back unchanged: a store with snapshot isolation then sees a
                // write-write conflict with any op that charged one of these directories
                // without seeing this quota.
                v.add_dir_stat(*d, DirStat::default()).await?;
            }
            forget_chains(v);
            Quota {
                max_space,
                max_inodes,
                used,
            }
        }
    };
    v.put_quota(dir, Some(&quota)).await?;
    Ok(OpOutput::Quota { dir, quota })
}

/// [`crate::Op::RemoveQuota`]: ENOENT when `dir` has no quota.
pub(super) async fn remove_quota<V: TxnView + ?Sized>(v: &mut V, dir: Ino) -> Result<OpOutput> {
    if v.get_quota(dir).await?.is_none() {
        return Err(err::not_found(format!("directory {dir} has no quota")));
    }
    v.put_quota(dir, None).await?;
    Ok(OpOutput::Done)
}
