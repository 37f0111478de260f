//! Directory statistics through [`Meta`]: one directory's ([`Meta::dir_stat`]) and a
//! subtree's summary built from them ([`Meta::summary`]); see [`crate::stats`].

use futures::{StreamExt, TryStreamExt};

use super::Meta;
use crate::error::{Error, ErrorKind, Result, err};
use crate::stats::{DirStat, Summary};
use crate::types::{FileType, Ino};

/// Directories whose statistics one [`crate::Backend::dir_stats`] call reads.
const STATS_PER_READ: usize = 1024;
/// Directories listed at the same time.
const LISTINGS_IN_FLIGHT: usize = 16;

impl Meta {
    pub(super) fn require_dir_stats(&self) -> Result<()> {
        if self.inner.setting.dir_stats {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "volume {} was formatted without directory statistics (dir_stats is off in its \
                 format record)",
                self.inner.setting.name
            ),
        ))
    }

    /// Statistics of directory `dir`'s direct children: the inodes charged to it, their
    /// lengths and their 4 KiB-aligned space, in bytes ([`crate::stats`] says which inodes
    /// count). The attributes and the statistics are read concurrently (one round trip).
    /// Errors: `NotFound` (no such inode), `NotADirectory`, `Unsupported` when the volume
    /// was formatted without statistics ([`crate::Setting::dir_stats`]).
    pub async fn dir_stat(&self, dir: Ino) -> Result<DirStat> {
        self.require_dir_stats()?;
        let b = &self.inner.backend;
        let dirs = [dir];
        let (attr, stats) = tokio::join!(b.get_attr(dir), b.dir_stats(&dirs));
        if attr?.typ != FileType::Directory {
            return Err(err::not_dir(format!("inode {dir}")));
        }
        stats?
            .pop()
            .ok_or_else(|| err::corrupted(format!("no statistics returned for directory {dir}")))
    }

    /// What the subtree under `ino` holds: directories (`ino` included), other inodes, bytes
    /// of length and of space. It lists each directory's entries to find its subdirectories
    /// and reads the statistics of every directory (1,024 per request), never
    /// the attributes of the files. A non-directory gives its own numbers. Inodes charged to
    /// no directory (named in several directories, or sustained) are not in it. Under
    /// concurrent changes each directory's numbers are exact as read, the sum is not a
    /// snapshot. Errors: `NotFound`, `Unsupported` (as [`Meta::dir_stat`]), `Corrupted`
    /// when a directory is reached twice (a cycle), those of the reads.
    pub async fn summary(&self, ino: Ino) -> Result<Summary> {
        let top = self.getattr(ino).await?;
        let mut sum = Summary::of_inode(&top);
        if top.typ != FileType::Directory {
            return Ok(sum);
        }
        self.require_dir_stats()?;
        // Every directory is visited once: one reached again means a corrupted volume (a
        // cycle or a second link to a directory), reported rather than followed.
        let mut seen = std::collections::HashSet::from([ino]);
        let mut level = vec![ino];
        while !level.is_empty() {
            let subdirs: Vec<Vec<(Vec<u8>, Ino)>> = futures::stream::iter(level.iter().copied())
                .map(|d| crate::stats::subdirectories(&*self.inner.backend, d))
                .buffered(LISTINGS_IN_FLIGHT)
                .try_collect()
                .await?;
            let mut next = Vec::new();
            for (dirs, subs) in level
                .chunks(STATS_PER_READ)
                .zip(subdirs.chunks(STATS_PER_READ))
            {
                let stats = self.inner.backend.dir_stats(dirs).await?;
                if stats.len() != dirs.len() {
                    return Err(err::corrupted(format!(
                        "{} directory statistics returned for {} directories",
                        stats.len(),
                        dirs.len()
                    )));
                }
                for (stat, sub) in stats.iter().zip(subs) {
                    sum.add_dir(stat, sub.len() as u64);
                    sum.dirs += sub.len() as u64;
                }
            }
            for (parent, sub) in level.iter().zip(subdirs) {
                for (name, d) in sub {
                    if !seen.insert(d) {
                        return Err(crate::dump::second_link(*parent, &name, d));
                    }
                    next.push(d);
                }
            }
            level = next;
        }
        Ok(sum)
    }
}
