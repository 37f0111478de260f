//! The data and attribute ops: setattr, truncate, write, compaction (truncate(2), utimensat(2),
//! chmod(2), chown(2), the slice model of DESIGN.md), setxattr (setxattr(2)) and restore (the
//! loading of a dump).

use crate::error::{Result, err};
use crate::op::{Caller, OpOutput, RestoreRecord, SetAttrMask, SetAttrValues, XattrFlags};
use crate::perm;
use crate::types::{
    Attr, CHUNK_BITS, CHUNK_SIZE, Counter, Entry, FileType, Ino, Pending, Slice, Timespec,
    align_space, show_name,
};

use super::checks::{
    check_length, check_quota, check_slices, check_write, dir_attr, dropped_slices, existing_attr,
    regular_file, restat,
};
use super::{Limits, TxnView};

pub(super) async fn setattr<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    mask: SetAttrMask,
    values: &SetAttrValues,
    caller: &Caller,
    time: Timespec,
    limits: &Limits,
) -> Result<OpOutput> {
    let mut attr = existing_attr(v, ino).await?;
    if mask.contains(SetAttrMask::SIZE) {
        match attr.typ {
            FileType::Regular => {}
            FileType::Directory => return Err(err::is_dir(format!("truncate of directory {ino}"))),
            other => return Err(err::invalid(format!("truncate of {} {ino}", other.name()))),
        }
    }
    let mode = perm::check_setattr(&attr, ino, caller, mask, values)?;
    if mask.contains(SetAttrMask::SIZE) {
        truncate_to(v, ino, &mut attr, values.size, time, limits).await?;
    }
    attr.mode = mode;
    if mask.contains(SetAttrMask::UID) {
        attr.uid = values.uid;
    }
    if mask.contains(SetAttrMask::GID) {
        attr.gid = values.gid;
    }
    if mask.contains(SetAttrMask::ATIME) {
        attr.atime = values.atime;
    }
    if mask.contains(SetAttrMask::ATIME_NOW) {
        attr.atime = time;
    }
    if mask.contains(SetAttrMask::MTIME) {
        attr.mtime = values.mtime;
    }
    if mask.contains(SetAttrMask::MTIME_NOW) {
        attr.mtime = time;
    }
    attr.ctime = time;
    v.put_attr(ino, &attr).await?;
    Ok(OpOutput::Attr { ino, attr })
}

/// Sets a regular file's length to `length` (truncate(2)): chunks past the end are removed,
/// the chunk holding the new end has its slices trimmed; whole slices dropped become pending
/// deletion. mtime/ctime become `time`; `used_space` follows the 4 KiB-aligned length.
pub(super) async fn truncate_to<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    attr: &mut Attr,
    length: u64,
    time: Timespec,
    limits: &Limits,
) -> Result<()> {
    check_length(length)?;
    let delta = align_space(length) as i64 - align_space(attr.length) as i64;
    check_quota(v, limits, delta, 0).await?;
    let before = *attr;
    if length < attr.length {
        let cut_indx = length >> CHUNK_BITS;
        let cut = (length & (CHUNK_SIZE - 1)) as u32;
        for indx in v.chunk_indexes(ino).await? {
            let indx64 = u64::from(indx);
            if indx64 < cut_indx {
                continue;
            }
            let slices = v.get_chunk(ino, indx).await?;
            let keep_before = if indx64 == cut_indx { cut } else { 0 };
            let mut kept = Vec::with_capacity(slices.len());
            for mut s in slices {
                if u64::from(s.pos) >= u64::from(keep_before) {
                    if s.id != 0 {
                        v.put_pending(Pending::Slice {
                            id: s.id,
                            size: s.size,
                        })
                        .await?;
                    }
                } else {
                    if s.end() > u64::from(keep_before) {
                        s.len = keep_before - s.pos;
                    }
                    kept.push(s);
                }
            }
            v.put_chunk(ino, indx, &kept).await?;
        }
    }
    attr.length = length;
    attr.mtime = time;
    attr.ctime = time;
    if delta != 0 {
        v.add_counter(Counter::UsedSpace, delta).await?;
    }
    restat(v, limits, ino, Some(&before), Some(attr)).await?;
    Ok(())
}

pub(super) async fn write<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    indx: u32,
    slice: Slice,
    caller: &Caller,
    time: Timespec,
    limits: &Limits,
) -> Result<OpOutput> {
    let mut attr = regular_file(v, ino, "write").await?;
    attr.mode = perm::mode_after_write(&attr, caller);
    check_write(indx, &slice)?;
    let end = (u64::from(indx) << CHUNK_BITS) + slice.end();
    let new_len = attr.length.max(end);
    let delta = align_space(new_len) as i64 - align_space(attr.length) as i64;
    check_quota(v, limits, delta, 0).await?;
    v.append_slice(ino, indx, slice).await?;
    let before = attr;
    attr.length = new_len;
    attr.mtime = time;
    attr.ctime = time;
    v.put_attr(ino, &attr).await?;
    if delta != 0 {
        v.add_counter(Counter::UsedSpace, delta).await?;
    }
    restat(v, limits, ino, Some(&before), Some(&attr)).await?;
    Ok(OpOutput::Attr { ino, attr })
}

/// Compaction (`Op::CompactChunk`): the chunk's list is replaced by `slices` only when it is
/// exactly `expect`; the slices dropped become pending deletion.
pub(super) async fn compact_chunk<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    indx: u32,
    expect: &[Slice],
    slices: &[Slice],
) -> Result<OpOutput> {
    regular_file(v, ino, "compact_chunk").await?;
    check_slices(indx, slices)?;
    let current = v.get_chunk(ino, indx).await?;
    if current != expect {
        return Err(err::would_block(format!(
            "chunk {indx} of inode {ino} changed since it was read ({} slices, {} expected)",
            current.len(),
            expect.len()
        )));
    }
    v.put_chunk(ino, indx, slices).await?;
    for (id, size) in dropped_slices(expect, slices) {
        v.put_pending(Pending::Slice { id, size }).await?;
    }
    Ok(OpOutput::Done)
}

pub(super) async fn setxattr<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    name: &[u8],
    value: &[u8],
    flags: XattrFlags,
    caller: &Caller,
) -> Result<OpOutput> {
    let attr = existing_attr(v, ino).await?;
    perm::check_xattr_write(&attr, ino, caller, name)?;
    let exists = v.get_xattr(ino, name).await?.is_some();
    if flags == XattrFlags::CREATE && exists {
        return Err(err::exists(format!("xattr {} of {ino}", show_name(name))));
    }
    if flags == XattrFlags::REPLACE && !exists {
        return Err(err::no_data(format!("xattr {} of {ino}", show_name(name))));
    }
    v.put_xattr(ino, name, value).await?;
    Ok(OpOutput::Done)
}

pub(super) async fn restore<V: TxnView + ?Sized>(
    v: &mut V,
    rec: &RestoreRecord,
    limits: &Limits,
) -> Result<OpOutput> {
    let ino = rec.ino;
    let old = v.get_attr(ino).await?;
    for (parent, name) in &rec.links {
        dir_attr(v, *parent).await?;
        if v.get_entry(*parent, name).await?.is_some() {
            return Err(err::exists(format!("{parent}/{}", show_name(name))));
        }
        v.put_entry(
            *parent,
            name,
            Entry {
                ino,
                typ: rec.attr.typ,
            },
        )
        .await?;
    }
    v.put_attr(ino, &rec.attr).await?;
    if rec.attr.typ == FileType::Symlink {
        v.put_symlink(ino, &rec.target).await?;
    }
    for (name, value) in &rec.xattrs {
        v.put_xattr(ino, name, value).await?;
    }
    for (indx, slices) in &rec.chunks {
        v.put_chunk(ino, *indx, slices).await?;
    }
    let old_space = old.map(|a| a.space() as i64).unwrap_or(0);
    v.add_counter(Counter::UsedSpace, rec.attr.space() as i64 - old_space)
        .await?;
    if old.is_none() {
        v.add_counter(Counter::TotalInodes, 1).await?;
    }
    restat(v, limits, ino, old.as_ref(), Some(&rec.attr)).await?;
    Ok(OpOutput::Attr {
        ino,
        attr: rec.attr,
    })
}
