//! The key layout of a volume (documented in the crate README, "Data layout").
//!
//! Every key starts with `{prefix}`: the braces make `prefix` the Redis Cluster hash tag, so
//! all keys of a volume live in one slot and a script may declare any of them in `KEYS`.
//! Inode numbers and chunk indexes are written in decimal.

use meta_core::{Counter, Ino, LockKind, Sid};

/// Longest volume prefix accepted, in bytes.
pub const MAX_PREFIX_LEN: usize = 64;

/// Builds the keys of one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `{prefix}`, braces included.
    tag: String,
}

/// True when `prefix` is a valid volume prefix: 1 to 64 characters of `A-Z a-z 0-9 _ . : -`
/// (no braces, which would change the hash tag, and no glob characters, so that a `SCAN
/// MATCH {prefix}*` finds exactly the volume's keys).
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl Layout {
    /// The layout of the volume with key prefix `prefix` (checked by the caller with
    /// [`valid_prefix`]).
    pub fn new(prefix: &str) -> Layout {
        Layout {
            tag: format!("{{{prefix}}}"),
        }
    }

    /// `{prefix}`: the hash tag every key starts with.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The `SCAN MATCH` pattern of every key of the volume: `{prefix}*`.
    pub fn pattern(&self) -> String {
        format!("{}*", self.tag)
    }

    /// `{prefix}{name}{n}`, built without `format!`: a batch plan builds several keys per op,
    /// and `format!`'s machinery cost ≈ 1,000 instructions a key where this costs a few
    /// hundred (callgrind on the `meta bench-sessions` client, docs/benchmarks.md).
    fn numbered(&self, name: &str, n: u64) -> String {
        let mut digits = itoa::Buffer::new();
        let n = digits.format(n);
        let mut k = String::with_capacity(self.tag.len() + name.len() + n.len());
        k.push_str(&self.tag);
        k.push_str(name);
        k.push_str(n);
        k
    }

    /// `{prefix}{name}`.
    fn named(&self, name: &str) -> String {
        let mut k = String::with_capacity(self.tag.len() + name.len());
        k.push_str(&self.tag);
        k.push_str(name);
        k
    }

    fn ino_key(&self, tag: &str, ino: Ino) -> String {
        self.numbered(tag, ino.0)
    }

    /// `{prefix}i{ino}`: attributes (38 to 74 bytes, `meta_core::kv::encode_attr_compact`; the
    /// 73-byte `encode_attr` form of older volumes is read too).
    pub fn attr(&self, ino: Ino) -> String {
        self.ino_key("i", ino)
    }

    /// The prefix of attribute keys, `{prefix}i` (read scripts append the inode number).
    pub fn attr_prefix(&self) -> String {
        self.named("i")
    }

    /// `{prefix}d{ino}`: the entries of a directory, a ZSET of `name \0 entry` members with
    /// score 0 (entry = 10 bytes, `meta_core::kv::encode_entry`).
    pub fn entries(&self, ino: Ino) -> String {
        self.ino_key("d", ino)
    }

    /// `{prefix}s{ino}`: symlink target (version byte + target).
    pub fn symlink(&self, ino: Ino) -> String {
        self.ino_key("s", ino)
    }

    /// `{prefix}x{ino}`: xattrs, a hash name → version byte + value.
    pub fn xattrs(&self, ino: Ino) -> String {
        self.ino_key("x", ino)
    }

    /// `{prefix}c{ino}_{indx}`: slices of a chunk (version byte + 24 bytes per slice).
    pub fn chunk(&self, ino: Ino, indx: u32) -> String {
        let mut k = self.numbered("c", ino.0);
        k.push('_');
        k.push_str(itoa::Buffer::new().format(indx));
        k
    }

    /// `{prefix}k{ino}`: the indexes of an inode's chunks other than chunk 0 (which is found
    /// by its key: most files have no other), a ZSET (member = decimal index, score = index).
    pub fn chunk_index(&self, ino: Ino) -> String {
        self.ino_key("k", ino)
    }

    /// `{prefix}pendingFiles`: deleted files whose data awaits deletion, a hash 8-byte inode →
    /// 8-byte length.
    pub fn pending_files(&self) -> String {
        self.named("pendingFiles")
    }

    /// `{prefix}pendingSlices`: slices dropped by truncate, a hash 8-byte ID → 4-byte size.
    pub fn pending_slices(&self) -> String {
        self.named("pendingSlices")
    }

    /// `{prefix}setting`: the format record (version byte + JSON).
    pub fn setting(&self) -> String {
        self.named("setting")
    }

    /// `{prefix}q{token}`: the sequence token of a round of several pipelined calls (the
    /// position of the next call allowed to run, in decimal); deleted by the round's last
    /// call, else it expires after 60 s (see `crate::apply`).
    pub fn sequence(&self, token: u64) -> String {
        self.numbered("q", token)
    }

    /// `{prefix}limits`: `"{capacity} {inodes} {dir_stats}"` from the format record (dir_stats
    /// `1` when the volume keeps directory statistics, else `0`), read by scripts. A record of
    /// a volume formatted before directory statistics existed has the first two fields only
    /// (no statistics). A fourth field `1` says the statistics and quotas are written under
    /// [`Layout::stats_owner`]: `format` writes it with statistics, and a library that
    /// becomes the owner adds it, so that libraries from before the owner key existed, which
    /// refuse four fields, cannot write the hashes behind the owner's back.
    pub fn limits(&self) -> String {
        self.named("limits")
    }

    /// `{prefix}dirstats`: the directory statistics of the volume (`meta_core::stats`), one
    /// hash: field 8-byte big-endian inode → 32-byte record, three big-endian i64 (the inodes
    /// charged to the directory, their lengths, their space) and the directory's parent
    /// (8-byte inode; a 24-byte record, written before directory quotas, has none); a missing
    /// field is all zeros. Written only when the limits record says the volume keeps
    /// statistics.
    pub fn dir_stats(&self) -> String {
        self.named("dirstats")
    }

    /// `{prefix}quotas`: the directory quotas of the volume (`meta_core::quota`), one hash:
    /// field 8-byte big-endian directory inode → 40-byte record, big-endian: `max_space`,
    /// `max_inodes` (u64, 0 = no limit), then the usage: inodes, length, space (i64).
    pub fn quotas(&self) -> String {
        self.named("quotas")
    }

    /// `{prefix}statsOwner`: which Lua library last wrote the volume's directory statistics or
    /// quotas (a name it makes up: unique per library and server process; `script` for the
    /// scripts way). The owner keeps the records it read and wrote from call to call and reads
    /// them again only when another library took over, so anything else that writes the
    /// statistics or quotas hashes must delete this key.
    pub fn stats_owner(&self) -> String {
        self.named("statsOwner")
    }

    /// `{prefix}{name}`: a counter (decimal integer): `nextInode`, `nextChunk`, `usedSpace`,
    /// `totalInodes`, `nextSession`, `cleanupLease`.
    pub fn counter(&self, c: Counter) -> String {
        self.named(c.name())
    }

    /// `{prefix}sessions`: the sessions, a hash 8-byte session ID → version byte + expiry
    /// (12 bytes) + description (JSON), i.e. `meta_core::kv::encode_session`.
    pub fn sessions(&self) -> String {
        self.named("sessions")
    }

    /// `{prefix}o{ino}`: the sessions holding an inode open, a set of 8-byte session IDs.
    pub fn openers(&self, ino: Ino) -> String {
        self.ino_key("o", ino)
    }

    /// `{prefix}u{ino}`: the sessions holding a sustained inode (nlink 0) open, a set of
    /// 8-byte session IDs: the op that removes the last name of an open inode renames its
    /// [`Layout::openers`] set to this one, so a release finds a live inode's session in the
    /// first set with one command and never reads the attributes.
    pub fn kept_openers(&self, ino: Ino) -> String {
        self.ino_key("u", ino)
    }

    /// `{prefix}so{sid}`: the inodes a session holds open, a set of 8-byte inode numbers.
    pub fn session_opens(&self, sid: Sid) -> String {
        self.numbered("so", sid)
    }

    /// `{prefix}lf{ino}` (flocks) or `{prefix}lp{ino}` (byte-range locks): the locks on an
    /// inode, a hash 16-byte owner (session ID + owner, big-endian) → lock type byte
    /// (flock) or encoded ranges (`meta_core::session::encode_plocks`).
    pub fn locks(&self, kind: LockKind, ino: Ino) -> String {
        let name = match kind {
            LockKind::Flock => "lf",
            LockKind::Plock => "lp",
        };
        self.numbered(name, ino.0)
    }

    /// `{prefix}sl{sid}`: where a session holds locks, a set of `F`/`P` + 8-byte inode.
    pub fn session_locks(&self, sid: Sid) -> String {
        self.numbered("sl", sid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let l = Layout::new("vol1");
        assert_eq!(l.attr(Ino(42)), "{vol1}i42");
        assert_eq!(l.chunk(Ino(7), 3), "{vol1}c7_3");
        assert_eq!(l.counter(Counter::NextInode), "{vol1}nextInode");
        assert_eq!(l.dir_stats(), "{vol1}dirstats");
        assert_eq!(l.quotas(), "{vol1}quotas");
        assert_eq!(l.stats_owner(), "{vol1}statsOwner");
        assert_eq!(l.pattern(), "{vol1}*");
        assert!(valid_prefix("a-b_c.d:e9"));
        for bad in ["", "a{b", "a}b", "a*", "a?", "a[b]", "a b", &"x".repeat(65)] {
            assert!(!valid_prefix(bad), "{bad:?}");
        }
    }

    /// Every key as the crate README's "Data layout" writes it (the keys are built by hand,
    /// not with `format!`): each numbered key at 0 and at the largest number.
    #[test]
    fn every_key_is_spelled_as_documented() {
        let l = Layout::new("v");
        for (n, d) in [(0u64, "0"), (u64::MAX, "18446744073709551615")] {
            let ino = Ino(n);
            assert_eq!(l.attr(ino), format!("{{v}}i{d}"));
            assert_eq!(l.entries(ino), format!("{{v}}d{d}"));
            assert_eq!(l.symlink(ino), format!("{{v}}s{d}"));
            assert_eq!(l.xattrs(ino), format!("{{v}}x{d}"));
            assert_eq!(l.chunk_index(ino), format!("{{v}}k{d}"));
            assert_eq!(l.openers(ino), format!("{{v}}o{d}"));
            assert_eq!(l.kept_openers(ino), format!("{{v}}u{d}"));
            assert_eq!(l.chunk(ino, u32::MAX), format!("{{v}}c{d}_4294967295"));
            assert_eq!(l.locks(LockKind::Flock, ino), format!("{{v}}lf{d}"));
            assert_eq!(l.locks(LockKind::Plock, ino), format!("{{v}}lp{d}"));
            assert_eq!(l.session_opens(n), format!("{{v}}so{d}"));
            assert_eq!(l.session_locks(n), format!("{{v}}sl{d}"));
            assert_eq!(l.sequence(n), format!("{{v}}q{d}"));
        }
        assert_eq!(l.attr_prefix(), "{v}i");
        assert_eq!(l.pending_files(), "{v}pendingFiles");
        assert_eq!(l.pending_slices(), "{v}pendingSlices");
        assert_eq!(l.setting(), "{v}setting");
        assert_eq!(l.limits(), "{v}limits");
        assert_eq!(l.sessions(), "{v}sessions");
        assert_eq!(l.counter(Counter::UsedSpace), "{v}usedSpace");
    }
}
