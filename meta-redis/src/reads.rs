//! The reads of `Backend` (lookups, listings, chunks, xattrs, counters, scans): plain
//! commands in one pipeline where possible, the library's read-only entry points where one
//! atomic view needs keys found on the way (lookup, readdir with attributes).

use meta_core::kv::{decode_attr, decode_bytes, decode_chunk, decode_setting};
use meta_core::types::{validate_name, validate_xattr};
use meta_core::{
    Attr, Counter, DirEntry, DirStat, Error, ErrorKind, FileType, Ino, InodePage, Pending, Result,
    Setting, Slice, Statfs, logic,
};
use redis::{Value, cmd, pipe};

use crate::Inner;
use crate::error::{Stage, classify};
use crate::reply::{
    attr_of, bytes, counter_of, dir_stat_of, internal, list, not_found, parse_scan, quota_of,
    split_member, take, zero_inode,
};
use crate::scripts::Entry;

/// How many times a plain readdir-plus reads a page again when entries vanish between its two
/// round trips (declared keys only) before it fails with `Conflict`.
const PLAIN_READDIR_TRIES: usize = 8;

/// Entries one `readdir_plus` call returns at most (bounds the time one call blocks the
/// server).
const READDIR_PLUS_PAGE: usize = 1024;

/// Keys one `MGET` or `SCAN` page handles.
pub(crate) const PAGE: usize = 1000;

impl Inner {
    pub(crate) async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)> {
        if parent == Ino::ZERO {
            return Err(zero_inode());
        }
        let inner = self;
        let mode: &[u8] = match name {
            b"." => b"dot",
            b".." if parent == Ino::ROOT => b"dot",
            b".." => b"dotdot",
            _ => b"name",
        };
        let prefix = inner.layout.attr_prefix();
        let (dk, ek) = (inner.layout.attr(parent), inner.layout.entries(parent));
        let scripted = inner
            .read_call(
                Entry::Lookup,
                &[dk.as_bytes(), ek.as_bytes()],
                &[name, prefix.as_bytes(), mode],
            )
            .await?;
        let mut items = match scripted {
            Some(v) => list(v, "lookup")?,
            None => self.lookup_plain(parent, name, mode).await?,
        };
        let pattr = attr_of(take(&mut items), parent)?
            .ok_or_else(|| not_found(format!("inode {parent}")))?;
        if pattr.typ != FileType::Directory {
            return Err(Error::new(
                ErrorKind::NotADirectory,
                format!("inode {parent}"),
            ));
        }
        let member = bytes(take(&mut items), "lookup")?;
        let child = take(&mut items);
        let shown = || format!("{parent}/{}", meta_core::types::show_name(name));
        let ino = match name {
            b"." => return Ok((parent, pattr)),
            b".." => {
                if parent == Ino::ROOT || pattr.parent == Ino::ZERO {
                    Ino::ROOT
                } else {
                    pattr.parent
                }
            }
            _ => {
                validate_name(name)?;
                let m = member.ok_or_else(|| not_found(shown()))?;
                split_member(&m)?.1.ino
            }
        };
        let attr = attr_of(child, ino)?
            .ok_or_else(|| not_found(format!("inode {ino} named by {}", shown())))?;
        Ok((ino, attr))
    }

    pub(crate) async fn get_attr(&self, ino: Ino) -> Result<Attr> {
        if ino == Ino::ZERO {
            return Err(zero_inode());
        }
        let inner = self;
        let v = inner
            .conn
            .cmd(cmd("GET").arg(inner.layout.attr(ino)))
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        attr_of(v, ino)?.ok_or_else(|| not_found(format!("inode {ino}")))
    }

    pub(crate) async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        if ino == Ino::ZERO {
            return Err(zero_inode());
        }
        let inner = self;
        let l = &inner.layout;
        let check_dir = |v: Value| -> Result<()> {
            let a = attr_of(v, ino)?.ok_or_else(|| not_found(format!("inode {ino}")))?;
            if a.typ != FileType::Directory {
                return Err(Error::new(ErrorKind::NotADirectory, format!("inode {ino}")));
            }
            Ok(())
        };
        let min_after = |a: &[u8]| -> Vec<u8> {
            let mut m = Vec::with_capacity(a.len() + 2);
            m.push(b'[');
            m.extend_from_slice(a);
            m.push(1);
            m
        };
        let mut min = after.map(min_after).unwrap_or_else(|| b"-".to_vec());
        if !plus || inner.strict() {
            // Plain commands; with `plus` (declared keys only) the attributes follow in a
            // second round trip, and the page is read again if an inode vanished in between.
            for _ in 0..PLAIN_READDIR_TRIES {
                let mut p = pipe();
                p.ignore_errors();
                p.cmd("GET").arg(l.attr(ino));
                if limit > 0 {
                    p.cmd("ZRANGEBYLEX")
                        .arg(l.entries(ino))
                        .arg(&min)
                        .arg("+")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(i64::try_from(limit).unwrap_or(i64::MAX));
                }
                let mut v = inner.read_pipe(&p).await?;
                check_dir(take(&mut v))?;
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let mut out = Vec::new();
                let mut members = Vec::new();
                for m in list(take(&mut v), "readdir")? {
                    let m = bytes(m, "readdir")?.unwrap_or_default();
                    let (name, e) = split_member(&m)?;
                    out.push(DirEntry {
                        name,
                        ino: e.ino,
                        typ: e.typ,
                        attr: None,
                    });
                    members.push(m);
                }
                if !plus || self.attach_attrs(ino, &mut out, &members).await? {
                    return Ok(out);
                }
            }
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "directory {ino}: entries kept disappearing while their attributes were \
                     read ({PLAIN_READDIR_TRIES} tries)"
                ),
            ));
        }
        let prefix = l.attr_prefix();
        let mut out: Vec<DirEntry> = Vec::new();
        loop {
            let want = (limit - out.len()).min(READDIR_PLUS_PAGE);
            let want_s = want.to_string();
            let (dk, ek) = (l.attr(ino), l.entries(ino));
            let scripted = inner
                .read_call(
                    Entry::ReaddirPlus,
                    &[dk.as_bytes(), ek.as_bytes()],
                    &[&min, want_s.as_bytes(), prefix.as_bytes()],
                )
                .await?;
            let Some(v) = scripted else {
                // Refused for undeclared keys: the rest with plain commands.
                let after = out
                    .last()
                    .map(|e| e.name.clone())
                    .or_else(|| after.map(<[u8]>::to_vec));
                let rest =
                    Box::pin(self.read_dir(ino, after.as_deref(), limit - out.len(), true)).await?;
                out.extend(rest);
                return Ok(out);
            };
            let mut items = list(v, "readdir")?.into_iter();
            check_dir(items.next().unwrap_or(Value::Nil))?;
            if want == 0 {
                return Ok(out);
            }
            let mut got = 0;
            while let Some(m) = items.next() {
                let a = items.next().unwrap_or(Value::Nil);
                let m = bytes(m, "readdir")?.unwrap_or_default();
                let (name, e) = split_member(&m)?;
                let attr = attr_of(a, e.ino)?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Corrupted,
                        format!(
                            "entry {ino}/{} points to missing inode {}",
                            meta_core::types::show_name(&name),
                            e.ino
                        ),
                    )
                })?;
                min = min_after(&name);
                out.push(DirEntry {
                    name,
                    ino: e.ino,
                    typ: e.typ,
                    attr: Some(attr),
                });
                got += 1;
            }
            if got < want || out.len() >= limit {
                return Ok(out);
            }
        }
    }

    pub(crate) async fn read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        let inner = self;
        let v = inner
            .conn
            .cmd(cmd("GET").arg(inner.layout.chunk(ino, indx)))
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        match bytes(v, "chunk")? {
            None => Ok(Vec::new()),
            Some(b) => decode_chunk(&b)
                .map_err(|e| e.context_prefix(format!("chunk {indx} of inode {ino}"))),
        }
    }

    pub(crate) async fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        let inner = self;
        let mut c = cmd("GET");
        c.arg(inner.layout.symlink(ino));
        let (a, t) = inner.attr_and(ino, c).await?;
        if a.typ != FileType::Symlink {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("inode {ino} is not a symlink"),
            ));
        }
        let t = bytes(t, "symlink")?.ok_or_else(|| {
            Error::new(ErrorKind::Corrupted, format!("symlink {ino} has no target"))
        })?;
        decode_bytes(&t, "symlink").map_err(|e| e.context_prefix(format!("inode {ino}")))
    }

    pub(crate) async fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        validate_xattr(name, None)?;
        let inner = self;
        let mut c = cmd("HGET");
        c.arg(inner.layout.xattrs(ino)).arg(name);
        let (_, x) = inner.attr_and(ino, c).await?;
        let x = bytes(x, "xattr")?.ok_or_else(|| {
            Error::new(
                ErrorKind::NoData,
                format!("xattr {} of {ino}", meta_core::types::show_name(name)),
            )
        })?;
        decode_bytes(&x, "xattr")
    }

    pub(crate) async fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let inner = self;
        let mut c = cmd("HKEYS");
        c.arg(inner.layout.xattrs(ino));
        let (_, v) = inner.attr_and(ino, c).await?;
        let mut names = Vec::new();
        for n in list(v, "listxattr")? {
            names.push(bytes(n, "listxattr")?.unwrap_or_default());
        }
        names.sort();
        Ok(names)
    }

    pub(crate) async fn statfs(&self) -> Result<Statfs> {
        let inner = self;
        let l = &inner.layout;
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("GET").arg(l.setting());
        p.cmd("GET").arg(l.counter(Counter::UsedSpace));
        p.cmd("GET").arg(l.counter(Counter::TotalInodes));
        let mut v = inner.read_pipe(&p).await?;
        let setting = bytes(take(&mut v), "format record")?
            .ok_or_else(|| not_found(format!("volume {} is not formatted", l.tag())))?;
        let setting = decode_setting(&setting)?;
        let used = counter_of(take(&mut v), Counter::UsedSpace)?;
        let total = counter_of(take(&mut v), Counter::TotalInodes)?;
        Ok(logic::statfs_from(
            used,
            total,
            &logic::Limits::from(&setting),
        ))
    }

    /// `Backend::dir_stats`: one `HMGET` of the directories' records in the statistics hash
    /// (see `Layout::dir_stats`); zeros for a missing one. Errors: `Corrupted` for a record
    /// that does not decode (naming the directory) or a statistics key of another Redis type.
    pub(crate) async fn dir_stats(&self, dirs: &[Ino]) -> Result<Vec<DirStat>> {
        if dirs.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = pipe();
        // A server error (WRONGTYPE) comes back as the reply, for `list` to classify.
        p.ignore_errors();
        let c = p.cmd("HMGET").arg(self.layout.dir_stats());
        for d in dirs {
            c.arg(&d.0.to_be_bytes()[..]);
        }
        let mut v = self.read_pipe(&p).await?;
        let vals = list(take(&mut v), "directory statistics")?;
        if vals.len() != dirs.len() {
            return Err(internal(
                "redis: HMGET of directory statistics returned a wrong number of values",
            ));
        }
        vals.into_iter()
            .zip(dirs)
            .map(|(v, &d)| dir_stat_of(v, d))
            .collect()
    }

    /// `Backend::quotas`: one `HGETALL` of the quotas hash (see `Layout::quotas`), sorted by
    /// directory. Errors: `Corrupted` for a field that is not an 8-byte inode or a record that
    /// does not decode (naming the field), or a quotas key of another Redis type.
    pub(crate) async fn quotas(&self) -> Result<Vec<(Ino, meta_core::Quota)>> {
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("HGETALL").arg(self.layout.quotas());
        let mut v = self.read_pipe(&p).await?;
        let mut it = list(take(&mut v), "directory quotas")?.into_iter();
        let mut out = Vec::new();
        while let Some(f) = it.next() {
            let f = bytes(f, "directory quotas")?.unwrap_or_default();
            let rec = bytes(it.next().unwrap_or(Value::Nil), "directory quotas")?;
            let dir = <[u8; 8]>::try_from(f.as_slice())
                .map(|b| Ino(u64::from_be_bytes(b)))
                .map_err(|_| {
                    Error::new(
                        ErrorKind::Corrupted,
                        format!(
                            "directory quotas: undecodable field {:?} (not an 8-byte inode)",
                            String::from_utf8_lossy(&f)
                        ),
                    )
                })?;
            let rec = rec.ok_or_else(|| {
                Error::new(
                    ErrorKind::Corrupted,
                    format!("quota of directory {dir}: no record"),
                )
            })?;
            out.push((dir, quota_of(&rec, dir)?));
        }
        out.sort_unstable_by_key(|(d, _)| *d);
        Ok(out)
    }

    pub(crate) async fn get_counter(&self, counter: Counter) -> Result<i64> {
        let inner = self;
        let v = inner
            .conn
            .cmd(cmd("GET").arg(inner.layout.counter(counter)))
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        counter_of(v, counter)
    }

    pub(crate) async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        let inner = self;
        let v = inner
            .conn
            .cmd(
                cmd("ZRANGEBYSCORE")
                    .arg(inner.layout.chunk_index(ino))
                    .arg(1)
                    .arg("+inf"),
            )
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        // Chunk 0 is not indexed: always looked up (a missing chunk is skipped below).
        let mut idxs = vec![0];
        for m in list(v, "chunk index")? {
            let m = bytes(m, "chunk index")?.unwrap_or_default();
            let i = std::str::from_utf8(&m)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Corrupted,
                        format!("chunk index of inode {ino}: bad member"),
                    )
                })?;
            idxs.push(i);
        }
        let mut out = Vec::new();
        for part in idxs.chunks(PAGE) {
            let mut c = cmd("MGET");
            for &i in part {
                c.arg(inner.layout.chunk(ino, i));
            }
            let v = inner
                .conn
                .cmd(&c)
                .await
                .map_err(|e| classify(e, Stage::Read, &inner.target))?;
            for (&i, v) in part.iter().zip(list(v, "MGET")?) {
                if let Some(b) = bytes(v, "chunk")? {
                    let s = decode_chunk(&b)
                        .map_err(|e| e.context_prefix(format!("chunk {i} of inode {ino}")))?;
                    out.push((i, s));
                }
            }
        }
        Ok(out)
    }

    pub(crate) async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        let inner = self;
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("HGETALL").arg(inner.layout.pending_files());
        p.cmd("HGETALL").arg(inner.layout.pending_slices());
        let mut v = inner.read_pipe(&p).await?;
        let bad = || Error::new(ErrorKind::Corrupted, "undecodable pending-deletion record");
        let pairs = |v: Value| -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            let mut it = list(v, "pending")?.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((
                    bytes(k, "pending")?.unwrap_or_default(),
                    bytes(v, "pending")?.unwrap_or_default(),
                ));
            }
            Ok(out)
        };
        let mut files = Vec::new();
        for (k, v) in pairs(take(&mut v))? {
            let ino = u64::from_be_bytes(k.as_slice().try_into().map_err(|_| bad())?);
            let length = u64::from_be_bytes(v.as_slice().try_into().map_err(|_| bad())?);
            files.push((ino, length));
        }
        let mut slices = Vec::new();
        for (k, v) in pairs(take(&mut v))? {
            let id = u64::from_be_bytes(k.as_slice().try_into().map_err(|_| bad())?);
            let size = u32::from_be_bytes(v.as_slice().try_into().map_err(|_| bad())?);
            slices.push((id, size));
        }
        files.sort_unstable();
        slices.sort_unstable();
        Ok(files
            .into_iter()
            .map(|(ino, length)| Pending::File {
                ino: Ino(ino),
                length,
            })
            .chain(
                slices
                    .into_iter()
                    .map(|(id, size)| Pending::Slice { id, size }),
            )
            .take(limit)
            .collect())
    }

    /// What `lookup.lua` answers (`[dir attr, entry member, child attr]`, nil where absent)
    /// with plain commands, for servers that forbid undeclared keys: the directory's
    /// attributes and the entry in one round trip, then the attributes of the inode found.
    async fn lookup_plain(&self, parent: Ino, name: &[u8], mode: &[u8]) -> Result<Vec<Value>> {
        let inner = self;
        let l = &inner.layout;
        let by_name = mode == b"name";
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("GET").arg(l.attr(parent));
        if by_name {
            crate::apply::entry_read(&mut p, l.entries(parent), name);
        }
        let mut v = inner.read_pipe(&p).await?;
        let pa = take(&mut v);
        let member = if by_name {
            list(take(&mut v), "lookup")?
                .into_iter()
                .next()
                .unwrap_or(Value::Nil)
        } else {
            Value::Nil
        };
        let child = match mode {
            b"dot" => return Ok(vec![pa.clone(), Value::Nil, pa]),
            b"dotdot" => bytes(pa.clone(), "lookup")?
                .and_then(|b| decode_attr(&b).ok())
                .map(|a| {
                    if a.parent == Ino::ZERO {
                        Ino::ROOT
                    } else {
                        a.parent
                    }
                }),
            _ => bytes(member.clone(), "lookup")?
                .and_then(|m| split_member(&m).ok())
                .map(|(_, e)| e.ino),
        };
        let attr = match child {
            Some(c) => inner
                .conn
                .cmd(cmd("GET").arg(l.attr(c)))
                .await
                .map_err(|e| classify(e, Stage::Read, &inner.target))?,
            None => Value::Nil,
        };
        Ok(vec![pa, member, attr])
    }

    /// Fills in the attributes of `entries` (listed from directory `dir`; `members` are their
    /// ZSET members) with MGETs in one round trip, for servers that forbid undeclared keys.
    /// Returns false when an inode had no attributes and its entry is gone by now (unlinked
    /// meanwhile: the caller reads the page again). Errors: `Corrupted` when the entry is
    /// still there.
    async fn attach_attrs(
        &self,
        dir: Ino,
        entries: &mut [DirEntry],
        members: &[Vec<u8>],
    ) -> Result<bool> {
        if entries.is_empty() {
            return Ok(true);
        }
        let inner = self;
        let l = &inner.layout;
        let mut p = pipe();
        p.ignore_errors();
        for part in entries.chunks(READDIR_PLUS_PAGE) {
            let mut c = cmd("MGET");
            for e in part {
                c.arg(l.attr(e.ino));
            }
            p.add_command(c);
        }
        let mut attrs = Vec::with_capacity(entries.len());
        for r in inner.read_pipe(&p).await? {
            attrs.extend(list(r, "readdir")?);
        }
        if attrs.len() != entries.len() {
            return Err(internal(format!(
                "redis: MGET gave {} attributes for {} entries",
                attrs.len(),
                entries.len()
            )));
        }
        let mut missing = Vec::new();
        for (i, (e, a)) in entries.iter_mut().zip(attrs).enumerate() {
            match attr_of(a, e.ino)? {
                Some(a) => e.attr = Some(a),
                None => missing.push(i),
            }
        }
        if missing.is_empty() {
            return Ok(true);
        }
        let mut p = pipe();
        p.ignore_errors();
        for &i in &missing {
            p.cmd("ZSCORE").arg(l.entries(dir)).arg(&members[i]);
        }
        let still = inner.read_pipe(&p).await?;
        for (&i, v) in missing.iter().zip(still) {
            if !matches!(v, Value::Nil) {
                let e = &entries[i];
                return Err(Error::new(
                    ErrorKind::Corrupted,
                    format!(
                        "entry {dir}/{} points to missing inode {}",
                        meta_core::types::show_name(&e.name),
                        e.ino
                    ),
                ));
            }
        }
        Ok(false)
    }

    /// The attributes of `ino` and the reply to `c`, in one pipeline (one round trip).
    /// Errors: `InvalidArgument` for inode 0, `NotFound` when the inode does not exist,
    /// `Corrupted` for undecodable attributes.
    pub(crate) async fn attr_and(&self, ino: Ino, c: redis::Cmd) -> Result<(Attr, Value)> {
        if ino == Ino::ZERO {
            return Err(zero_inode());
        }
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("GET").arg(self.layout.attr(ino));
        p.add_command(c);
        let mut v = self.read_pipe(&p).await?;
        let a = attr_of(take(&mut v), ino)?.ok_or_else(|| not_found(format!("inode {ino}")))?;
        Ok((a, take(&mut v)))
    }

    pub(crate) async fn get_setting(&self) -> Result<Option<Setting>> {
        let v = self
            .conn
            .cmd(cmd("GET").arg(self.layout.setting()))
            .await
            .map_err(|e| classify(e, Stage::Read, &self.target))?;
        bytes(v, "format record")?
            .map(|b| decode_setting(&b))
            .transpose()
    }

    pub(crate) async fn mget_attrs(&self, inos: &[Ino]) -> Result<Vec<Option<Attr>>> {
        let mut out = Vec::with_capacity(inos.len());
        for part in inos.chunks(PAGE) {
            let mut c = cmd("MGET");
            for &i in part {
                c.arg(self.layout.attr(i));
            }
            let v = self
                .conn
                .cmd(&c)
                .await
                .map_err(|e| classify(e, Stage::Read, &self.target))?;
            let vals = list(v, "MGET")?;
            if vals.len() != part.len() {
                return Err(internal("redis: MGET returned a wrong number of values"));
            }
            for (&i, v) in part.iter().zip(vals) {
                out.push(attr_of(v, i)?);
            }
        }
        Ok(out)
    }

    /// `Backend::scan_inodes`: `SCAN MATCH {prefix}i*` on the node serving the volume's slot
    /// (the cursor is SCAN's), then the attributes of the inodes found with `MGET`. An inode
    /// deleted between the two reads is not listed; SCAN may list a key twice while the
    /// server resizes its hash table.
    pub(crate) async fn scan_inodes(
        &self,
        cursor: Option<&[u8]>,
        limit: usize,
    ) -> Result<InodePage> {
        let mut cur: u64 = match cursor {
            None => 0,
            Some(c) => std::str::from_utf8(c)
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|&c| c != 0)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        "scan_inodes: not a cursor of this backend",
                    )
                })?,
        };
        let prefix = self.layout.attr_prefix();
        let pattern = format!("{prefix}*");
        let route_key = self.layout.setting();
        let mut inos = Vec::new();
        loop {
            let mut c = cmd("SCAN");
            c.arg(cur)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(limit.clamp(10, PAGE));
            let v = self
                .conn
                .cmd_at(&c, &route_key)
                .await
                .map_err(|e| classify(e, Stage::Read, &self.target))?;
            let (next, keys) = parse_scan(v)?;
            for k in keys {
                // Attribute keys are the prefix and a decimal inode number; nothing else of
                // the volume starts with it.
                let n = k
                    .strip_prefix(prefix.as_bytes())
                    .and_then(|d| std::str::from_utf8(d).ok())
                    .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|d| d.parse::<u64>().ok());
                if let Some(n) = n {
                    inos.push(Ino(n));
                }
            }
            cur = next;
            if cur == 0 || inos.len() >= limit {
                break;
            }
        }
        let mut out = Vec::with_capacity(inos.len());
        for (i, a) in inos.iter().zip(self.mget_attrs(&inos).await?) {
            if let Some(a) = a {
                out.push((*i, a));
            }
        }
        Ok(InodePage {
            inodes: out,
            next: (cur != 0).then(|| cur.to_string().into_bytes()),
        })
    }
}
