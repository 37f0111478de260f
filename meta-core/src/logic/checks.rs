//! Checks shared by every op: those made before anything is read ([`precheck`], also run by
//! the Redis backend before it sends a batch), those made after the inode is read
//! ([`check_write`], [`check_length`]), and the attribute helpers the ops start with.

use crate::error::{Result, err};
use crate::op::{Imported, Op, RenameFlags};
use crate::session::check_range;
use crate::types::{
    Attr, CHUNK_BITS, CHUNK_SIZE, Counter, FileType, Ino, MAX_FILE_LEN, Pending, Slice, Timespec,
    validate_name, validate_symlink_target, validate_xattr,
};

use super::{Limits, TxnView};

/// The checks of `op` that need no data, in the order [`super::apply_op`] makes them (first,
/// before any read): names (`NameTooLong`, `InvalidArgument`), symlink targets, flags and
/// masks, inode numbers that can never be created, byte ranges. Every backend gets the same
/// error for the same bad op; the Redis backend runs this before sending a batch.
pub fn precheck(op: &Op) -> Result<()> {
    match op {
        Op::Mknod {
            name,
            ino,
            typ,
            target,
            imported,
            ..
        } => {
            validate_name(name)?;
            if *typ == FileType::Symlink {
                validate_symlink_target(target)?;
            } else if !target.is_empty() {
                return Err(err::invalid("a target is only allowed for symlinks"));
            }
            if *ino == Ino::ZERO || *ino == Ino::ROOT {
                return Err(err::invalid(format!("inode {ino} cannot be created")));
            }
            match imported {
                Some(i) => check_imported(*typ, i),
                None => Ok(()),
            }
        }
        Op::Link { name, .. } | Op::Unlink { name, .. } | Op::Rmdir { name, .. } => {
            validate_name(name)
        }
        Op::Rename {
            name,
            new_name,
            flags,
            ..
        } => {
            validate_name(name)?;
            validate_name(new_name)?;
            let noreplace = flags.contains(RenameFlags::NOREPLACE);
            let exchange = flags.contains(RenameFlags::EXCHANGE);
            if flags.0 & !3 != 0 || (noreplace && exchange) {
                return Err(err::invalid(format!("rename flags {:#x}", flags.0)));
            }
            Ok(())
        }
        Op::SetAttr { mask, .. } => {
            if mask.0 & !0xff != 0 {
                return Err(err::invalid(format!("setattr mask {:#x}", mask.0)));
            }
            Ok(())
        }
        Op::SetXattr {
            name, value, flags, ..
        } => {
            validate_xattr(name, Some(value))?;
            if flags.0 & !3 != 0 || flags.0 == 3 {
                return Err(err::invalid(format!("setxattr flags {:#x}", flags.0)));
            }
            Ok(())
        }
        Op::RemoveXattr { name, .. } => validate_xattr(name, None),
        Op::Restore(rec) => {
            if rec.ino == Ino::ZERO {
                return Err(err::invalid("inode 0 is never valid"));
            }
            if rec.attr.typ == FileType::Symlink {
                validate_symlink_target(&rec.target)?;
            }
            for (_, name) in &rec.links {
                validate_name(name)?;
            }
            for (name, value) in &rec.xattrs {
                validate_xattr(name, Some(value))?;
            }
            check_record(&rec.attr)?;
            if rec.attr.typ != FileType::Regular && !rec.chunks.is_empty() {
                return Err(err::invalid(format!(
                    "a restored {} has no chunks",
                    rec.attr.typ.name()
                )));
            }
            check_chunks(&rec.chunks)
        }
        Op::RestorePending { pending, chunks } => {
            match pending {
                Pending::Slice { .. } if !chunks.is_empty() => {
                    return Err(err::invalid("a pending slice carries no chunks"));
                }
                Pending::File { length, .. } => check_length(*length)?,
                Pending::Slice { .. } => {}
            }
            check_chunks(chunks)
        }
        Op::OpenSession { info, expire } => {
            if info.sid == 0 {
                return Err(err::invalid("session 0 is never valid"));
            }
            check_expiry(*expire)
        }
        Op::Heartbeat { expire, .. } => check_expiry(*expire),
        Op::ClaimCleanup { every_ms, .. } => {
            if *every_ms <= 0 {
                return Err(err::invalid(format!("cleanup lease of {every_ms} ms")));
            }
            Ok(())
        }
        Op::Setlk { start, end, .. } => check_range(*start, *end),
        Op::SetQuota { dir, .. } | Op::RemoveQuota { dir } => {
            if *dir == Ino::ZERO {
                return Err(err::invalid("inode 0 is never valid"));
            }
            Ok(())
        }
        Op::Write { .. }
        | Op::Truncate { .. }
        | Op::CompactChunk { .. }
        | Op::ClearPendingFile { .. }
        | Op::ClearPendingSlice { .. }
        | Op::CloseSession { .. }
        | Op::Open { .. }
        | Op::Release { .. }
        | Op::Flock { .. } => Ok(()),
    }
}

/// A session's expiry, as registered or refreshed: never the fence of a session whose close
/// in parts has begun ([`crate::session::Session::FENCED`]), which only that close sets.
/// Errors: `InvalidArgument`.
fn check_expiry(expire: crate::types::Timespec) -> Result<()> {
    if expire == crate::session::Session::FENCED {
        return Err(err::invalid(
            "a session's expiry cannot be the epoch: it marks a session whose close has begun",
        ));
    }
    Ok(())
}

/// The rules of [`Imported`]: only a regular file has a length or a slice, the length is at
/// most [`MAX_FILE_LEN`], the slice obeys [`check_write`] in chunk 0 and ends at or before the
/// length. Errors: `InvalidArgument`.
/// The ranges a stored attribute record must respect (what `load` and `Op::Restore` may
/// write): permission bits within 0o7777 (chmod(2)), nanoseconds below 10^9, a regular
/// file's length at most [`MAX_FILE_LEN`], and for a directory at least its two links.
/// Errors: `InvalidArgument` naming the field.
pub fn check_record(a: &Attr) -> Result<()> {
    if a.mode > 0o7777 {
        return Err(err::invalid(format!(
            "mode {:#o} has bits above 0o7777",
            a.mode
        )));
    }
    for (name, t) in [("atime", a.atime), ("mtime", a.mtime), ("ctime", a.ctime)] {
        if t.nsec >= 1_000_000_000 {
            return Err(err::invalid(format!("{name} has {} nanoseconds", t.nsec)));
        }
    }
    check_length(a.length)?;
    Ok(())
}

/// Every slice of restored chunks passes [`check_write`] at its chunk index (inside the
/// chunk, inside its object, below the maximum file length).
fn check_chunks(chunks: &[(u32, Vec<Slice>)]) -> Result<()> {
    for (indx, slices) in chunks {
        check_slices(*indx, slices)?;
    }
    Ok(())
}

fn check_imported(typ: FileType, i: &Imported) -> Result<()> {
    if typ != FileType::Regular && (i.length != 0 || i.slice.is_some()) {
        return Err(err::invalid(format!(
            "an imported {} has no length or data",
            typ.name()
        )));
    }
    check_length(i.length)?;
    if let Some(s) = &i.slice {
        check_write(0, s)?;
        if s.end() > i.length {
            return Err(err::invalid(format!(
                "imported slice ends at {}, past the length {}",
                s.end(),
                i.length
            )));
        }
    }
    Ok(())
}

/// The slice rules of write (checked once the inode is known to be a regular file): the
/// slice stays inside its 64 MiB chunk, uses a valid range of its object, and does not end
/// past [`MAX_FILE_LEN`]. Errors: `InvalidArgument`.
pub fn check_write(indx: u32, slice: &Slice) -> Result<()> {
    if slice.end() > CHUNK_SIZE {
        return Err(err::invalid(format!(
            "slice [{}, {}) passes the end of the 64 MiB chunk",
            slice.pos,
            slice.end()
        )));
    }
    if slice.id != 0 && u64::from(slice.off) + u64::from(slice.len) > u64::from(slice.size) {
        return Err(err::invalid(format!(
            "slice {} uses [{}, {}) of an object of {} bytes",
            slice.id,
            slice.off,
            u64::from(slice.off) + u64::from(slice.len),
            slice.size
        )));
    }
    let end = (u64::from(indx) << CHUNK_BITS) + slice.end();
    if end > MAX_FILE_LEN {
        return Err(err::invalid(format!(
            "write ends at {end}, past the maximum file length {MAX_FILE_LEN}"
        )));
    }
    Ok(())
}

/// The slice rules of a compaction's new list (checked once the inode is known to be a
/// regular file, as [`check_write`] for a write): each slice obeys [`check_write`] at `indx`.
/// Errors: `InvalidArgument`.
pub fn check_slices(indx: u32, slices: &[Slice]) -> Result<()> {
    for s in slices {
        check_write(indx, s)?;
    }
    Ok(())
}

/// The slices a compaction drops: each slice ID of `expect` other than 0 (a hole) that no
/// slice of `slices` has, once, with the object size of its first occurrence.
pub fn dropped_slices(expect: &[Slice], slices: &[Slice]) -> Vec<(u64, u32)> {
    let mut out: Vec<(u64, u32)> = Vec::new();
    for s in expect {
        if s.id != 0 && !slices.iter().any(|n| n.id == s.id) && !out.iter().any(|d| d.0 == s.id) {
            out.push((s.id, s.size));
        }
    }
    out
}

/// The length rule of truncate (checked once the inode is known to be a regular file): at
/// most [`MAX_FILE_LEN`]. Errors: `InvalidArgument`.
pub fn check_length(length: u64) -> Result<()> {
    if length > MAX_FILE_LEN {
        return Err(err::invalid(format!(
            "length {length} exceeds the maximum file length {MAX_FILE_LEN}"
        )));
    }
    Ok(())
}

/// `attr` with nlink changed by `delta` and mtime/ctime raised to `time` (never lowered).
pub fn bump_dir(attr: &Attr, delta: i64, time: Timespec) -> Attr {
    let mut a = *attr;
    a.nlink = (i64::from(a.nlink) + delta).clamp(0, i64::from(u32::MAX)) as u32;
    a.mtime = a.mtime.max(time);
    a.ctime = a.ctime.max(time);
    a
}

pub(super) async fn existing_attr<V: TxnView + ?Sized>(v: &mut V, ino: Ino) -> Result<Attr> {
    if ino == Ino::ZERO {
        return Err(err::invalid("inode 0 is never valid"));
    }
    v.get_attr(ino)
        .await?
        .ok_or_else(|| err::not_found(format!("inode {ino}")))
}

pub(super) async fn dir_attr<V: TxnView + ?Sized>(v: &mut V, ino: Ino) -> Result<Attr> {
    let a = existing_attr(v, ino).await?;
    if a.typ != FileType::Directory {
        return Err(err::not_dir(format!("inode {ino}")));
    }
    Ok(a)
}

/// [`dir_attr`] of a directory that is to receive a new entry: ENOENT when it was removed
/// while open (nlink 0), as Linux answers a create in a deleted working directory.
pub(super) async fn live_dir_attr<V: TxnView + ?Sized>(v: &mut V, ino: Ino) -> Result<Attr> {
    let a = dir_attr(v, ino).await?;
    if a.nlink == 0 {
        return Err(err::not_found(format!("directory {ino} was removed")));
    }
    Ok(a)
}

pub(super) async fn regular_file<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    what: &str,
) -> Result<Attr> {
    let a = existing_attr(v, ino).await?;
    match a.typ {
        FileType::Regular => Ok(a),
        FileType::Directory => Err(err::is_dir(format!("{what} of directory {ino}"))),
        other => Err(err::invalid(format!("{what} of {} {ino}", other.name()))),
    }
}

/// Applies the directory-statistics changes of inode `ino`'s attributes going from `before`
/// to `after` (`None`: absent), when the volume keeps statistics ([`crate::stats::recharge`]),
/// and charges them to the directory quotas above the changed directories
/// ([`crate::quota`]: `QuotaExceeded`, `CrossDevice`).
pub(super) async fn restat<V: TxnView + ?Sized>(
    v: &mut V,
    limits: &Limits,
    ino: Ino,
    before: Option<&Attr>,
    after: Option<&Attr>,
) -> Result<()> {
    if !limits.dir_stats {
        return Ok(());
    }
    let changes = crate::stats::recharge(ino, before, after);
    if changes.is_empty() {
        return Ok(());
    }
    if v.has_quotas().await? {
        super::quota::on_recharge(v, ino, before, after, &changes).await?;
    }
    for (dir, delta) in changes {
        v.add_dir_stat(dir, delta).await?;
    }
    Ok(())
}

/// Fails with NoSpace when adding `space` bytes and `inodes` inodes would pass the limits.
/// Reads the counters only when a limit is set and the delta is positive.
pub(super) async fn check_quota<V: TxnView + ?Sized>(
    v: &mut V,
    limits: &Limits,
    space: i64,
    inodes: i64,
) -> Result<()> {
    if limits.capacity > 0 && space > 0 {
        let used = v.get_counter(Counter::UsedSpace).await?;
        if used.saturating_add(space) > limits.capacity as i64 {
            return Err(err::no_space(format!(
                "capacity {} bytes reached ({used} used)",
                limits.capacity
            )));
        }
    }
    if limits.inodes > 0 && inodes > 0 {
        let used = v.get_counter(Counter::TotalInodes).await?;
        if used.saturating_add(inodes) > limits.inodes as i64 {
            return Err(err::no_space(format!(
                "inode limit {} reached",
                limits.inodes
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: u64, size: u32) -> Slice {
        Slice {
            pos: 0,
            id,
            size,
            off: 0,
            len: size,
        }
    }

    #[test]
    fn dropped_slices_skip_kept_holes_and_repeats() {
        let expect = [s(1, 10), s(0, 5), s(2, 20), s(1, 10), s(3, 30)];
        let slices = [s(3, 30), s(9, 60)];
        assert_eq!(dropped_slices(&expect, &slices), vec![(1, 10), (2, 20)]);
        assert!(dropped_slices(&[], &slices).is_empty());
        assert_eq!(dropped_slices(&expect[..1], &[]), vec![(1, 10)]);
    }

    #[test]
    fn check_slices_applies_the_write_rules() {
        assert!(check_slices(0, &[s(1, 10), s(0, 10)]).is_ok());
        let past_end = Slice {
            pos: (CHUNK_SIZE - 5) as u32,
            ..s(1, 10)
        };
        assert!(check_slices(0, &[s(1, 10), past_end]).is_err());
        let past_object = Slice { off: 5, ..s(1, 10) };
        assert!(check_slices(3, &[past_object]).is_err());
    }
}
