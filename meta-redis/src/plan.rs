//! Each op as its part of a batch call: code, keys and arguments, following its layout in
//! [`crate::spec`] (and `lua/ops/<name>.lua`).

use meta_core::kv::{encode_attr, encode_session, encode_slice};
use meta_core::logic::{check_length, check_slices, check_write};
use meta_core::session::{
    decode_flock, decode_plocks, encode_plocks, flock_decision, setlk_decision,
};
use meta_core::types::{CHUNK_BITS, CHUNK_SIZE};
use meta_core::{
    Counter, Entry, Error, ErrorKind, FileType, Ino, LockKind, LockOwner, LockType, Op, Pending,
    Result, SetAttrMask, Slice, Timespec,
};

use crate::layout::Layout;
use crate::spec::{Record, groups_arg, layout};

/// What the reads before a call found for one op.
#[derive(Debug, Default, Clone)]
pub(crate) struct Known {
    /// The entry the op's (source) name points to.
    pub src: Option<Entry>,
    /// The entry a rename's destination name points to.
    pub dst: Option<Entry>,
    /// Chunk indexes of the op's inode (from the cut on, for truncate).
    pub chunks: Vec<u32>,
    /// Ancestor directories (rename across directories).
    pub chain: Vec<Ino>,
    /// The inodes a closing session holds open.
    pub opens: Vec<Ino>,
    /// Where a closing session holds locks: `F`/`P` + 8-byte inode.
    pub places: Vec<Vec<u8>>,
    /// The lock hash of the inode a lock op works on: `(field, value)` pairs.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// The op is the first of its round: nothing of this client runs between the round's
    /// reads and it (see [`LockCheck::WritesOnly`]).
    pub first: bool,
}

/// One op's part of a batch call.
#[derive(Debug)]
pub(crate) struct Call {
    /// The op's code.
    pub code: u8,
    /// Its keys.
    pub keys: Vec<String>,
    /// Its arguments (the fixed record first, when it has one).
    pub args: Vec<Vec<u8>>,
}

impl Call {
    /// Bytes this op adds to the call (keys and arguments).
    pub(crate) fn size(&self) -> usize {
        self.keys.iter().map(String::len).sum::<usize>()
            + self.args.iter().map(Vec::len).sum::<usize>()
    }
}

/// The batch's shared keys, in the order `lua/batch.lua` takes them.
pub(crate) fn shared_keys(l: &Layout) -> [String; 9] {
    [
        l.limits(),
        l.counter(Counter::UsedSpace),
        l.counter(Counter::TotalInodes),
        l.sessions(),
        l.pending_files(),
        l.pending_slices(),
        l.dir_stats(),
        l.quotas(),
        l.stats_owner(),
    ]
}

pub(crate) fn ino8(ino: Ino) -> [u8; 8] {
    ino.0.to_be_bytes()
}

pub(crate) fn time12(t: Timespec) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&t.sec.to_be_bytes());
    v[8..].copy_from_slice(&t.nsec.to_be_bytes());
    v
}

/// An error the body raises at the point `meta_core::logic` checks it: `Kind \0 message`,
/// empty when there is none.
fn error_arg(e: Result<()>) -> Vec<u8> {
    match e {
        Ok(()) => Vec::new(),
        Err(e) => {
            let mut v = format!("{:?}", e.kind()).into_bytes();
            v.push(0);
            v.extend_from_slice(e.context().as_bytes());
            v
        }
    }
}

/// The error kinds a body may raise, by the name it uses (their `Debug` form).
pub(crate) fn kind_from_name(s: &str) -> Option<ErrorKind> {
    use ErrorKind::*;
    Some(match s {
        "NotFound" => NotFound,
        "AlreadyExists" => AlreadyExists,
        "NotADirectory" => NotADirectory,
        "IsADirectory" => IsADirectory,
        "NotEmpty" => NotEmpty,
        "InvalidArgument" => InvalidArgument,
        "NameTooLong" => NameTooLong,
        "PermissionDenied" => PermissionDenied,
        "NotPermitted" => NotPermitted,
        "NoSpace" => NoSpace,
        "QuotaExceeded" => QuotaExceeded,
        "CrossDevice" => CrossDevice,
        "Unsupported" => Unsupported,
        "NoData" => NoData,
        "OutOfRange" => OutOfRange,
        "TooBig" => TooBig,
        "WouldBlock" => WouldBlock,
        "Corrupted" => Corrupted,
        _ => return None,
    })
}

fn code(name: &str) -> u8 {
    layout(name).map_or(0, |l| l.code)
}

/// u32 chunk indexes, packed.
fn packed_chunks(chunks: &[u32]) -> Vec<u8> {
    chunks.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// Slices, 24 bytes each (compact_chunk's `expect` and `slices`).
fn packed_slices(slices: &[Slice]) -> Vec<u8> {
    let mut v = Vec::with_capacity(24 * slices.len());
    for s in slices {
        encode_slice(&mut v, s);
    }
    v
}

/// A chunk argument of restore / restore_pending: u32 index + slices (none: delete it).
fn chunk_arg(indx: u32, slices: &[Slice]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + 24 * slices.len());
    v.extend_from_slice(&indx.to_be_bytes());
    for s in slices {
        encode_slice(&mut v, s);
    }
    v
}

/// The call of `op`. `declared`: with the keys `k` read beforehand (strict_keys), which the
/// body re-checks; else the body derives them. Errors: `Unsupported` for an op the library
/// has no body for (an op added to meta-core since), `Internal` for a record that does not
/// follow its layout (a bug).
pub(crate) fn plan(l: &Layout, op: &Op, k: &Known, declared: bool) -> Result<Call> {
    let name = op.name();
    let call = |keys: Vec<String>, args: Vec<Vec<u8>>| Call {
        code: code(name),
        keys,
        args,
    };
    Ok(match op {
        Op::Mknod {
            parent,
            name,
            ino,
            typ,
            mode,
            uid,
            gid,
            caller,
            rdev,
            target,
            time,
            opened_by,
            imported,
        } => {
            let opener = opened_by.unwrap_or(0);
            let fixed = Record::new("mknod")
                .bytes(&ino8(*parent))
                .bytes(&ino8(*ino))
                .u8(typ.code())
                .u16(*mode)
                .bytes(&uid.to_be_bytes())
                .bytes(&gid.to_be_bytes())
                .bytes(&rdev.to_be_bytes())
                .bytes(&time12(*time))
                .bytes(&opener.to_be_bytes())
                .caller(caller)
                .finish()?;
            let mut keys = vec![l.attr(*parent), l.entries(*parent), l.attr(*ino)];
            if *typ == FileType::Symlink {
                keys.push(l.symlink(*ino));
            }
            if let Some(sid) = opened_by {
                keys.extend([l.openers(*ino), l.session_opens(*sid)]);
            }
            let mut args = vec![fixed, name.clone(), target.clone(), groups_arg(caller)];
            if let Some(i) = imported {
                let mut v = Vec::with_capacity(68);
                v.extend_from_slice(&time12(i.atime));
                v.extend_from_slice(&time12(i.mtime));
                v.extend_from_slice(&time12(i.ctime));
                v.extend_from_slice(&i.length.to_be_bytes());
                if let Some(s) = &i.slice {
                    encode_slice(&mut v, s);
                    keys.push(l.chunk(*ino, 0));
                }
                args.push(v);
            }
            call(keys, args)
        }
        Op::Link {
            ino,
            parent,
            name,
            caller,
            time,
        } => {
            let fixed = Record::new("link")
                .bytes(&ino8(*ino))
                .bytes(&ino8(*parent))
                .bytes(&time12(*time))
                .caller(caller)
                .finish()?;
            call(
                vec![l.attr(*ino), l.attr(*parent), l.entries(*parent)],
                vec![fixed, name.clone(), groups_arg(caller)],
            )
        }
        Op::Unlink {
            parent,
            name,
            caller,
            time,
        }
        | Op::Rmdir {
            parent,
            name,
            caller,
            time,
        } => {
            let t = k.src.map(|e| e.ino).unwrap_or(Ino::ZERO);
            let rmdir = matches!(op, Op::Rmdir { .. });
            let fixed = Record::new(if rmdir { "rmdir" } else { "unlink" })
                .bytes(&ino8(*parent))
                .bytes(&time12(*time))
                .bytes(&ino8(t))
                .caller(caller)
                .finish()?;
            let mut keys = vec![l.attr(*parent), l.entries(*parent)];
            if declared {
                keys.push(l.attr(t));
                if rmdir {
                    // The directory's own entries: rmdir checks them empty and deletes them.
                    keys.push(l.entries(t));
                }
                keys.extend([l.symlink(t), l.xattrs(t), l.openers(t), l.kept_openers(t)]);
            }
            call(keys, vec![fixed, name.clone(), groups_arg(caller)])
        }
        Op::Rename {
            parent,
            name,
            new_parent,
            new_name,
            flags,
            caller,
            time,
        } => {
            let si = k.src.map(|e| e.ino).unwrap_or(Ino::ZERO);
            let di = k.dst.map(|e| e.ino).unwrap_or(Ino::ZERO);
            let fixed = Record::new("rename")
                .bytes(&ino8(*parent))
                .bytes(&ino8(*new_parent))
                .u8(flags.0 as u8)
                .bytes(&time12(*time))
                .bytes(&ino8(si))
                .bytes(&ino8(di))
                .caller(caller)
                .finish()?;
            let mut keys = vec![
                l.attr(*parent),
                l.entries(*parent),
                l.attr(*new_parent),
                l.entries(*new_parent),
            ];
            let mut args = vec![fixed, name.clone(), new_name.clone(), groups_arg(caller)];
            if declared {
                keys.extend([
                    l.attr(si),
                    l.attr(di),
                    l.entries(di),
                    l.symlink(di),
                    l.xattrs(di),
                    l.openers(di),
                    l.kept_openers(di),
                ]);
                let mut chain = Vec::with_capacity(8 * k.chain.len());
                for &c in &k.chain {
                    keys.push(l.attr(c));
                    chain.extend_from_slice(&ino8(c));
                }
                args.push(chain);
            }
            call(keys, args)
        }
        Op::SetAttr {
            ino,
            mask,
            values,
            caller,
            time,
        } => {
            let sized = mask.contains(SetAttrMask::SIZE);
            let fixed = Record::new("setattr")
                .bytes(&ino8(*ino))
                .u8(mask.0 as u8)
                .u16(values.mode)
                .bytes(&values.uid.to_be_bytes())
                .bytes(&values.gid.to_be_bytes())
                .bytes(&time12(values.atime))
                .bytes(&time12(values.mtime))
                .bytes(&values.size.to_be_bytes())
                .bytes(&time12(*time))
                .u32(u32::try_from(values.size >> CHUNK_BITS).unwrap_or(u32::MAX))
                .u32((values.size & (CHUNK_SIZE - 1)) as u32)
                .caller(caller)
                .finish()?;
            let mut keys = vec![l.attr(*ino), l.chunk_index(*ino)];
            let error = if sized {
                error_arg(check_length(values.size))
            } else {
                Vec::new()
            };
            let mut args = vec![fixed, error, groups_arg(caller)];
            if sized && declared {
                keys.extend(k.chunks.iter().map(|&c| l.chunk(*ino, c)));
                args.push(packed_chunks(&k.chunks));
            }
            call(keys, args)
        }
        Op::Truncate {
            ino,
            length,
            caller,
            time,
        } => {
            let fixed = Record::new("truncate")
                .bytes(&ino8(*ino))
                .bytes(&length.to_be_bytes())
                .bytes(&time12(*time))
                .u32(u32::try_from(length >> CHUNK_BITS).unwrap_or(u32::MAX))
                .u32((length & (CHUNK_SIZE - 1)) as u32)
                .caller(caller)
                .finish()?;
            let mut keys = vec![l.attr(*ino), l.chunk_index(*ino)];
            let mut args = vec![fixed, error_arg(check_length(*length)), groups_arg(caller)];
            if declared {
                keys.extend(k.chunks.iter().map(|&c| l.chunk(*ino, c)));
                args.push(packed_chunks(&k.chunks));
            }
            call(keys, args)
        }
        Op::Write {
            ino,
            indx,
            slice,
            caller,
            time,
        } => {
            let mut sv = Vec::with_capacity(24);
            encode_slice(&mut sv, slice);
            let end = (u64::from(*indx) << CHUNK_BITS).saturating_add(slice.end());
            let fixed = Record::new("write")
                .bytes(&ino8(*ino))
                .u32(*indx)
                .bytes(&sv)
                .bytes(&end.to_be_bytes())
                .bytes(&time12(*time))
                .caller(caller)
                .finish()?;
            call(
                vec![l.attr(*ino), l.chunk(*ino, *indx), l.chunk_index(*ino)],
                vec![
                    fixed,
                    error_arg(check_write(*indx, slice)),
                    groups_arg(caller),
                ],
            )
        }
        Op::CompactChunk {
            ino,
            indx,
            expect,
            slices,
        } => {
            let fixed = Record::new("compact_chunk")
                .bytes(&ino8(*ino))
                .u32(*indx)
                .finish()?;
            call(
                vec![l.attr(*ino), l.chunk(*ino, *indx), l.chunk_index(*ino)],
                vec![
                    fixed,
                    error_arg(check_slices(*indx, slices)),
                    packed_slices(expect),
                    packed_slices(slices),
                ],
            )
        }
        Op::SetXattr {
            ino,
            name,
            value,
            flags,
            caller,
        } => {
            let fixed = Record::new("setxattr")
                .bytes(&ino8(*ino))
                .u8(flags.0 as u8)
                .caller(caller)
                .finish()?;
            call(
                vec![l.attr(*ino), l.xattrs(*ino)],
                vec![fixed, name.clone(), value.clone(), groups_arg(caller)],
            )
        }
        Op::RemoveXattr { ino, name, caller } => {
            let fixed = Record::new("removexattr")
                .bytes(&ino8(*ino))
                .caller(caller)
                .finish()?;
            call(
                vec![l.attr(*ino), l.xattrs(*ino)],
                vec![fixed, name.clone(), groups_arg(caller)],
            )
        }
        Op::ClearPendingFile { ino } => {
            let fixed = Record::new("clear_pending_file")
                .bytes(&ino8(*ino))
                .finish()?;
            let mut keys = vec![l.attr(*ino), l.chunk_index(*ino)];
            let mut args = vec![fixed];
            if declared {
                keys.extend(k.chunks.iter().map(|&c| l.chunk(*ino, c)));
                args.push(packed_chunks(&k.chunks));
            }
            call(keys, args)
        }
        Op::ClearPendingSlice { id } => {
            let fixed = Record::new("clear_pending_slice")
                .bytes(&id.to_be_bytes())
                .finish()?;
            call(Vec::new(), vec![fixed])
        }
        Op::Restore(rec) => {
            let ino = rec.ino;
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            let fixed = Record::new("restore")
                .bytes(&ino8(ino))
                .bytes(&encode_attr(&rec.attr))
                .u32(count(rec.links.len()))
                .u32(count(rec.xattrs.len()))
                .u32(count(rec.chunks.len()))
                .finish()?;
            let mut keys = vec![
                l.attr(ino),
                l.symlink(ino),
                l.xattrs(ino),
                l.chunk_index(ino),
            ];
            let mut args = vec![fixed, rec.target.clone()];
            for (parent, name) in &rec.links {
                keys.push(l.attr(*parent));
                keys.push(l.entries(*parent));
                let mut a = ino8(*parent).to_vec();
                a.extend_from_slice(name);
                args.push(a);
            }
            for (name, value) in &rec.xattrs {
                args.push(name.clone());
                args.push(value.clone());
            }
            for (indx, slices) in &rec.chunks {
                keys.push(l.chunk(ino, *indx));
                args.push(chunk_arg(*indx, slices));
            }
            call(keys, args)
        }
        Op::RestorePending { pending, chunks } => {
            let (file, ino, value) = match *pending {
                Pending::File { ino, length } => (1, ino, length.to_be_bytes().to_vec()),
                Pending::Slice { id, size } => (0, Ino(id), size.to_be_bytes().to_vec()),
            };
            let fixed = Record::new("restore_pending")
                .u8(file)
                .bytes(&ino8(ino))
                .finish()?;
            let mut keys = vec![l.attr(ino), l.chunk_index(ino)];
            let mut args = vec![fixed, value];
            for (indx, slices) in chunks {
                keys.push(l.chunk(ino, *indx));
                args.push(chunk_arg(*indx, slices));
            }
            call(keys, args)
        }
        Op::OpenSession { info, expire } => {
            let fixed = Record::new("open_session")
                .bytes(&info.sid.to_be_bytes())
                .finish()?;
            let record = encode_session(&meta_core::Session {
                info: (**info).clone(),
                expire: *expire,
            });
            call(Vec::new(), vec![fixed, record])
        }
        Op::Heartbeat { sid, expire } => {
            let fixed = Record::new("heartbeat")
                .bytes(&sid.to_be_bytes())
                .bytes(&time12(*expire))
                .finish()?;
            call(Vec::new(), vec![fixed])
        }
        Op::ClaimCleanup { now_ms, every_ms } => call(
            vec![l.counter(Counter::CleanupLease)],
            vec![
                now_ms.to_string().into_bytes(),
                every_ms.to_string().into_bytes(),
            ],
        ),
        Op::Open { sid, ino } => {
            let fixed = Record::new("open")
                .bytes(&ino8(*ino))
                .bytes(&sid.to_be_bytes())
                .finish()?;
            call(
                vec![
                    l.attr(*ino),
                    l.openers(*ino),
                    l.kept_openers(*ino),
                    l.session_opens(*sid),
                ],
                vec![fixed],
            )
        }
        Op::Release { sid, inos } => {
            let fixed = Record::new("release").bytes(&sid.to_be_bytes()).finish()?;
            let per_inode = if declared { 7 } else { 1 };
            let mut keys = Vec::with_capacity(2 + per_inode * inos.len());
            keys.extend([l.session_opens(*sid), l.session_locks(*sid)]);
            let mut list = Vec::with_capacity(9 * inos.len());
            for &(ino, drop_locks) in inos {
                keys.push(l.openers(ino));
                // The keys only a sustained inode, a lock drop or a deletion touches, which
                // the body derives unless keys are strict.
                if declared {
                    keys.extend([
                        l.kept_openers(ino),
                        l.attr(ino),
                        l.locks(LockKind::Flock, ino),
                        l.locks(LockKind::Plock, ino),
                        l.symlink(ino),
                        l.xattrs(ino),
                    ]);
                }
                list.extend_from_slice(&ino8(ino));
                list.push(u8::from(drop_locks));
            }
            call(keys, vec![fixed, list])
        }
        // A part of a close (`at_most`) closes the whole session here: one script has no
        // limit on the records it writes, so a part is never needed, and doing it all in the
        // first part is what the op allows.
        Op::CloseSession {
            sid,
            expired_before,
            at_most: _,
        } => {
            let fixed = Record::new("close_session")
                .bytes(&sid.to_be_bytes())
                .u8(u8::from(expired_before.is_some()))
                .bytes(&time12(
                    expired_before.unwrap_or(Timespec { sec: 0, nsec: 0 }),
                ))
                .finish()?;
            let mut keys = vec![l.session_opens(*sid), l.session_locks(*sid)];
            if !declared {
                return Ok(call(keys, vec![fixed]));
            }
            let mut inos = Vec::with_capacity(8 * k.opens.len());
            for &ino in &k.opens {
                keys.extend([
                    l.attr(ino),
                    l.openers(ino),
                    l.symlink(ino),
                    l.xattrs(ino),
                    l.kept_openers(ino),
                ]);
                inos.extend_from_slice(&ino8(ino));
            }
            let mut places = Vec::with_capacity(9 * k.places.len());
            for place in &k.places {
                let kind = match place.first() {
                    Some(b'P') => LockKind::Plock,
                    _ => LockKind::Flock,
                };
                let ino = place
                    .get(1..9)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(|b| Ino(u64::from_be_bytes(b)))
                    .unwrap_or(Ino::ZERO);
                keys.push(l.locks(kind, ino));
                // Places are 9 bytes; anything else was never written by this crate and
                // makes the body's comparison fail (a retry, then Conflict).
                let mut p = place.clone();
                p.resize(9, 0);
                places.extend_from_slice(&p);
            }
            call(keys, vec![fixed, inos, places])
        }
        Op::SetQuota {
            dir,
            max_space,
            max_inodes,
            subtree,
        } => {
            let fixed = Record::new("set_quota")
                .bytes(&ino8(*dir))
                .bytes(&max_space.to_be_bytes())
                .bytes(&max_inodes.to_be_bytes())
                .finish()?;
            // The subtree's attribute keys are declared with strict_keys only (at most
            // 65,534 directories then), else derived by the body.
            let mut keys = vec![l.attr(*dir)];
            let mut list = Vec::with_capacity(8 * subtree.len());
            for &d in subtree {
                if declared {
                    keys.push(l.attr(d));
                }
                list.extend_from_slice(&ino8(d));
            }
            call(keys, vec![fixed, list])
        }
        Op::RemoveQuota { dir } => {
            let fixed = Record::new("remove_quota").bytes(&ino8(*dir)).finish()?;
            call(Vec::new(), vec![fixed])
        }
        Op::Flock { ino, owner, typ } => {
            let decision = decode_fields(&k.fields, decode_flock).and_then(|held| {
                flock_decision(&held, *ino, *owner, *typ)
                    .map(|d| d.map(|t| (t != LockType::Unlock).then(|| vec![t.code()])))
            });
            lock_call(l, *ino, *owner, LockKind::Flock, *typ, k, decision)?
        }
        Op::Setlk {
            ino,
            owner,
            typ,
            start,
            end,
            pid,
        } => {
            let decision = decode_fields(&k.fields, decode_plocks).and_then(|held| {
                setlk_decision(&held, *ino, *owner, *typ, (*start, *end), *pid)
                    .map(|d| d.map(|r| (!r.is_empty()).then(|| encode_plocks(&r))))
            });
            lock_call(l, *ino, *owner, LockKind::Plock, *typ, k, decision)?
        }
        other => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("meta-redis has no body for op {}", other.name()),
            ));
        }
    })
}

/// Decodes a lock hash read before the call: 16-byte fields (session ID + owner) and the
/// values `decode` reads. Errors: `Corrupted`.
fn decode_fields<T>(
    fields: &[(Vec<u8>, Vec<u8>)],
    decode: impl Fn(&[u8]) -> Result<T>,
) -> Result<Vec<(LockOwner, T)>> {
    fields
        .iter()
        .map(|(f, v)| {
            let o = <[u8; 16]>::try_from(f.as_slice())
                .map_err(|_| Error::new(ErrorKind::Corrupted, "lock record: bad owner field"))?;
            let mut sid = [0u8; 8];
            let mut owner = [0u8; 8];
            sid.copy_from_slice(&o[..8]);
            owner.copy_from_slice(&o[8..]);
            let owner = LockOwner {
                sid: u64::from_be_bytes(sid),
                owner: u64::from_be_bytes(owner),
            };
            Ok((owner, decode(v)?))
        })
        .collect()
}

/// What the lock body compares before it applies the decision (the `check` byte of its
/// fixed record). The decision was made from the lock hash read before the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum LockCheck {
    /// The whole hash must still hold what was read: the decision then holds now.
    All = 0,
    /// As `All`, except that a decision writing nothing (a conflict, or nothing to change)
    /// stands as of the read, without comparing. Only for the first op of a round: nothing
    /// of this client ran between the read and it, and every later op of the batch runs
    /// after it, so taking effect at the read keeps the batch's order. (A later op of the
    /// round may not: the ops before it may have seen another client's changes made after
    /// the read.) Two clients contending for one lock then no longer make each other retry
    /// round after round until the retry budget runs out.
    WritesOnly = 1,
    /// Only the owner's own field must be unchanged: an unlock, whose outcome depends on the
    /// owner's own locks alone (flock(2), fcntl(2): unlocking never conflicts), so it holds
    /// now whatever other owners did since the read.
    Own = 2,
}

impl LockCheck {
    /// The check for a request of `typ`; `first`: the op is the first of its round;
    /// `failed`: the decision is an error (which, for an unlock, came from another owner's
    /// undecodable record, so it depends on more than the owner's own field).
    fn of(typ: LockType, first: bool, failed: bool) -> LockCheck {
        match (typ, first, failed) {
            (LockType::Unlock, _, false) => LockCheck::Own,
            (_, true, _) => LockCheck::WritesOnly,
            (_, false, _) => LockCheck::All,
        }
    }
}

/// The lock op's call applying `decision` (`Ok(None)`: nothing changes, `Ok(Some(None))`:
/// remove the owner's record, `Ok(Some(Some(v)))`: store `v`, `Err`: the op's error) on the
/// lock hash of `kind` on `ino` (a request of `typ`) if the hash still holds what `k` read,
/// as far as [`LockCheck::of`] asks.
fn lock_call(
    l: &Layout,
    ino: Ino,
    owner: LockOwner,
    kind: LockKind,
    typ: LockType,
    k: &Known,
    decision: Result<Option<Option<Vec<u8>>>>,
) -> Result<Call> {
    let check = LockCheck::of(typ, k.first, decision.is_err());
    let mut field = owner.sid.to_be_bytes().to_vec();
    field.extend_from_slice(&owner.owner.to_be_bytes());
    let fixed = Record::new("lock")
        .bytes(&ino8(ino))
        .bytes(&owner.sid.to_be_bytes())
        .bytes(&field)
        .bytes(&[kind.tag()])
        .u8(check as u8)
        .finish()?;
    let (what, payload): (&[u8], Vec<u8>) = match decision {
        Ok(None) => (b"keep", Vec::new()),
        Ok(Some(None)) => (b"del", Vec::new()),
        Ok(Some(Some(v))) => (b"set", v),
        Err(e) => (b"err", error_arg(Err(e))),
    };
    let mut args = vec![fixed, what.to_vec(), payload];
    for (f, v) in &k.fields {
        args.push(f.clone());
        args.push(v.clone());
    }
    Ok(Call {
        code: code("lock"),
        keys: vec![l.attr(ino), l.locks(kind, ino), l.session_locks(owner.sid)],
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_decision_is_checked_as_far_as_it_depends_on_the_hash() {
        use LockType::{Read, Unlock, Write};
        for (typ, first, failed, want) in [
            (Unlock, false, false, LockCheck::Own),
            (Unlock, true, false, LockCheck::Own),
            // An unlock refused over another owner's undecodable record.
            (Unlock, false, true, LockCheck::All),
            (Unlock, true, true, LockCheck::WritesOnly),
            (Write, true, false, LockCheck::WritesOnly),
            (Write, true, true, LockCheck::WritesOnly),
            (Read, false, false, LockCheck::All),
            (Write, false, true, LockCheck::All),
        ] {
            assert_eq!(
                LockCheck::of(typ, first, failed),
                want,
                "{typ:?} first={first} failed={failed}"
            );
        }
    }

    #[test]
    fn every_body_error_kind_round_trips() {
        for k in [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::NotADirectory,
            ErrorKind::IsADirectory,
            ErrorKind::NotEmpty,
            ErrorKind::InvalidArgument,
            ErrorKind::NameTooLong,
            ErrorKind::PermissionDenied,
            ErrorKind::NotPermitted,
            ErrorKind::NoSpace,
            ErrorKind::QuotaExceeded,
            ErrorKind::CrossDevice,
            ErrorKind::Unsupported,
            ErrorKind::NoData,
            ErrorKind::OutOfRange,
            ErrorKind::TooBig,
            ErrorKind::WouldBlock,
            ErrorKind::Corrupted,
        ] {
            assert_eq!(kind_from_name(&format!("{k:?}")), Some(k));
        }
    }
}
