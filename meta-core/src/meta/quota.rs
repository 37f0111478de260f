//! Directory quotas through [`Meta`] ([`crate::quota`]): set, remove, list, check.

use super::{Meta, unexpected};
use crate::error::{ErrorKind, Result, err};
use crate::op::{Op, OpOutput};
use crate::quota::Quota;
use crate::stats::DirStat;
use crate::types::Ino;

/// How many times [`Meta::set_quota`] lists a subtree that keeps changing before it gives up.
const SET_ATTEMPTS: usize = 5;
/// Directories whose statistics one [`crate::Backend::dir_stats`] call reads.
const STATS_PER_READ: usize = 1024;

impl Meta {
    /// Sets directory `dir`'s quota to `max_space` bytes of 4 KiB-aligned space and
    /// `max_inodes` inodes in its subtree (0: no limit on that one), creating it when the
    /// directory has none. A new quota starts with the subtree's current usage: this lists
    /// every directory of the subtree (one readdir per directory, no file attributes), and the
    /// op checks the list is still exact, listing again up to 5 times when directories are
    /// created, removed or moved meanwhile. Returns the quota after the op.
    ///
    /// Errors: `NotFound`, `NotADirectory`, `Unsupported` (no directory statistics on this
    /// volume or backend), `WouldBlock` (EAGAIN) when the subtree kept changing, those of the
    /// reads.
    pub async fn set_quota(&self, dir: Ino, max_space: u64, max_inodes: u64) -> Result<Quota> {
        self.require_dir_stats()?;
        let exists = self.quota(dir).await?.is_some();
        let mut last = None;
        for attempt in 0..SET_ATTEMPTS {
            let subtree = if exists && attempt == 0 {
                Vec::new()
            } else {
                self.subtree_dirs(dir).await?
            };
            let op = Op::SetQuota {
                dir,
                max_space,
                max_inodes,
                subtree,
            };
            match self.submit(op).await {
                Ok(OpOutput::Quota { quota, .. }) => return Ok(quota),
                Ok(other) => return Err(unexpected("set_quota", &other)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| err::would_block(format!("the subtree of {dir} changed"))))
    }

    /// Removes directory `dir`'s quota. Errors: `NotFound` when it has none.
    pub async fn remove_quota(&self, dir: Ino) -> Result<()> {
        match self.submit(Op::RemoveQuota { dir }).await? {
            OpOutput::Done => Ok(()),
            other => Err(unexpected("remove_quota", &other)),
        }
    }

    /// Every directory quota, by directory inode. Errors: `Unsupported` on a backend without
    /// quotas, those of the read.
    pub async fn quotas(&self) -> Result<Vec<(Ino, Quota)>> {
        self.check_open()?;
        self.inner.backend.quotas().await
    }

    /// Directory `dir`'s quota, `None` when it has none.
    pub async fn quota(&self, dir: Ino) -> Result<Option<Quota>> {
        Ok(self
            .quotas()
            .await?
            .into_iter()
            .find(|(d, _)| *d == dir)
            .map(|(_, q)| q))
    }

    /// Directory `dir`'s quota and the usage recomputed now from the statistics of every
    /// directory in its subtree (what the quota's [`Quota::used`] must equal when nothing
    /// changes the subtree meanwhile). Errors: `NotFound` when `dir` has no quota or is gone,
    /// those of [`Meta::summary`]'s reads.
    pub async fn check_quota(&self, dir: Ino) -> Result<(Quota, DirStat)> {
        let quota = self
            .quota(dir)
            .await?
            .ok_or_else(|| err::not_found(format!("directory {dir} has no quota")))?;
        let dirs = self.subtree_dirs(dir).await?;
        let mut used = DirStat::default();
        for page in dirs.chunks(STATS_PER_READ) {
            for s in self.inner.backend.dir_stats(page).await? {
                used = used + s;
            }
        }
        Ok((quota, used))
    }

    /// Sets directory `dir`'s quota usage to the sum recomputed from its subtree's statistics
    /// (removing and setting it again with the same limits in one batch), for a usage found
    /// wrong by [`Meta::check_quota`]. Returns the repaired quota.
    ///
    /// The two ops are not one atomic op: when the removal applied and the new quota was
    /// refused (its subtree changed meanwhile, or is inconsistent), the quota is set again
    /// with the same limits as [`Meta::set_quota`] does (listing the subtree again). Errors:
    /// `NotFound` when `dir` has no quota; if the quota cannot be set again either, that
    /// error, saying the quota is gone and its limits, so that it can be set by hand.
    pub async fn repair_quota(&self, dir: Ino) -> Result<Quota> {
        let quota = self
            .quota(dir)
            .await?
            .ok_or_else(|| err::not_found(format!("directory {dir} has no quota")))?;
        match self.repair_once(dir, &quota).await {
            Ok(q) => Ok(q),
            Err((false, e)) => Err(e),
            Err((true, first)) => self
                .set_quota(dir, quota.max_space, quota.max_inodes)
                .await
                .map_err(|e| {
                    e.context_prefix(format!(
                        "the quota of directory {dir} (max_space {}, max_inodes {}) was \
                         removed for its repair and could not be set again ({first}); set \
                         it by hand",
                        quota.max_space, quota.max_inodes
                    ))
                }),
        }
    }

    /// One remove-and-set batch of [`Meta::repair_quota`]; on failure, whether the removal
    /// applied (the quota is gone) with the error.
    async fn repair_once(
        &self,
        dir: Ino,
        quota: &Quota,
    ) -> std::result::Result<Quota, (bool, crate::Error)> {
        let subtree = self.subtree_dirs(dir).await.map_err(|e| (false, e))?;
        let mut out = self
            .apply_batch(vec![
                Op::RemoveQuota { dir },
                Op::SetQuota {
                    dir,
                    max_space: quota.max_space,
                    max_inodes: quota.max_inodes,
                    subtree,
                },
            ])
            .await;
        // (Popped last first: the SetQuota's result, then the RemoveQuota's.)
        match (out.pop(), out.pop()) {
            (Some(Ok(OpOutput::Quota { quota, .. })), Some(Ok(_))) => Ok(quota),
            (Some(Err(e)), Some(Ok(_))) => Err((true, e)),
            // (A batch whose outcome is unknown may have removed the quota.)
            (_, Some(Err(e))) => Err((e.kind() == ErrorKind::Indeterminate, e)),
            (Some(Ok(other)), _) => Err((true, unexpected("repair_quota", &other))),
            _ => Err((true, err::corrupted("repair_quota: missing results"))),
        }
    }

    /// Every directory of `dir`'s subtree, `dir` first ([`crate::quota::subtree_dirs`]).
    async fn subtree_dirs(&self, dir: Ino) -> Result<Vec<Ino>> {
        self.check_open()?;
        crate::quota::subtree_dirs(&*self.inner.backend, dir).await
    }
}
