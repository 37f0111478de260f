//! The wire layout of every op in a batch call, written once.
//!
//! An op travels as its code (in the batch header), its keys and its arguments. The first
//! argument is a fixed record packed with the format [`OpLayout::fixed`] (Redis's Lua
//! `struct` syntax: `>` big-endian, `B` u8, `H` u16, `I4` u32, `cN` N raw bytes), which the op
//! body unpacks with one `struct.unpack`; the others are variable-length strings. The Lua
//! side repeats this layout in each `lua/ops/<name>.lua` header (`-- KEYS:`, `-- FIXED:`,
//! `-- ARGS:`) and a test checks the two agree, including the format string the body
//! unpacks with. `...` marks a list, `[...]` an optional group: the keys an op can only know
//! from what it reads are declared (and their lists passed) only with `strict_keys`; by
//! default the body derives them (see `lua/lib.lua`).
//!
//! An op with a caller (`meta_core::Caller`, whose permissions the body checks as
//! `meta_core::perm` does) ends its fixed record with `caller_uid caller_gid` (4 bytes each,
//! big-endian, compared bytewise with the attributes' uid and gid) and passes the caller's
//! supplementary groups as the `groups` argument (4 bytes each, big-endian; empty when it has
//! none), before any optional argument.

use meta_core::{Caller, Error, ErrorKind, Result};

/// One op's layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpLayout {
    /// The code in the batch header (`OP_BY_CODE` in Lua).
    pub code: u8,
    /// The op's name (`OPS.<name>` in Lua, `lua/ops/<name>.lua`).
    pub name: &'static str,
    /// Its keys, after the batch's shared keys.
    #[cfg_attr(not(test), allow(dead_code))] // read by the layout test
    pub keys: &'static str,
    /// Its fixed record: the format, then the field names; empty when it has none.
    pub fixed: &'static str,
    /// Its other arguments.
    #[cfg_attr(not(test), allow(dead_code))] // read by the layout test
    pub args: &'static str,
}

impl OpLayout {
    /// The `struct` format of the fixed record ("" when there is none).
    pub(crate) fn format(&self) -> &'static str {
        self.fixed.split(' ').next().unwrap_or("")
    }
}

macro_rules! layouts {
    ($($code:literal $name:literal keys $keys:literal fixed $fixed:literal args $args:literal;)*) => {
        /// Every op with a body in the library, by code.
        pub(crate) const OPS: [OpLayout; 24] = [
            $(OpLayout { code: $code, name: $name, keys: $keys, fixed: $fixed, args: $args },)*
        ];
    };
}

layouts! {
    1 "mknod"
        keys "parent_attr parent_entries attr [symlink] [openers session_opens] [chunk]"
        fixed ">c8c8BHc4c4c4c12c8c4c4 parent ino type mode uid gid rdev time opener caller_uid caller_gid"
        args "name target groups [imported]";
    2 "link"
        keys "attr parent_attr parent_entries"
        fixed ">c8c8c12c4c4 ino parent time caller_uid caller_gid"
        args "name groups";
    3 "unlink"
        keys "parent_attr parent_entries [attr symlink xattrs openers kept_openers]"
        fixed ">c8c12c8c4c4 parent time expected caller_uid caller_gid"
        args "name groups";
    4 "rmdir"
        keys "parent_attr parent_entries [attr entries symlink xattrs openers kept_openers]"
        fixed ">c8c12c8c4c4 parent time expected caller_uid caller_gid"
        args "name groups";
    5 "rename"
        keys "parent_attr parent_entries new_parent_attr new_parent_entries [attr replaced_attr replaced_entries replaced_symlink replaced_xattrs replaced_openers replaced_kept_openers chain_attr...]"
        fixed ">c8c8Bc12c8c8c4c4 parent new_parent flags time expected expected_replaced caller_uid caller_gid"
        args "name new_name groups [chain]";
    6 "setattr"
        keys "attr chunk_index [chunk...]"
        fixed ">c8BHc4c4c12c12c8c12I4I4c4c4 ino mask mode uid gid atime mtime size time cut_index cut_offset caller_uid caller_gid"
        args "error groups [chunks]";
    7 "write"
        keys "attr chunk chunk_index"
        fixed ">c8I4c24c8c12c4c4 ino index slice end time caller_uid caller_gid"
        args "error groups";
    8 "truncate"
        keys "attr chunk_index [chunk...]"
        fixed ">c8c8c12I4I4c4c4 ino length time cut_index cut_offset caller_uid caller_gid"
        args "error groups [chunks]";
    9 "setxattr"
        keys "attr xattrs"
        fixed ">c8Bc4c4 ino flags caller_uid caller_gid"
        args "name value groups";
    10 "removexattr"
        keys "attr xattrs"
        fixed ">c8c4c4 ino caller_uid caller_gid"
        args "name groups";
    11 "clear_pending_file"
        keys "attr chunk_index [chunk...]"
        fixed ">c8 ino"
        args "[chunks]";
    12 "clear_pending_slice"
        keys ""
        fixed ">c8 id"
        args "";
    13 "restore"
        keys "attr symlink xattrs chunk_index (parent_attr parent_entries)... chunk..."
        fixed ">c8c73I4I4I4 ino attr links xattrs chunks"
        args "target link... xattr_name... xattr_value... chunk...";
    14 "restore_pending"
        keys "attr chunk_index chunk..."
        fixed ">Bc8 file id"
        args "value chunk...";
    15 "open_session"
        keys ""
        fixed ">c8 sid"
        args "record";
    16 "heartbeat"
        keys ""
        fixed ">c8c12 sid expire"
        args "";
    17 "close_session"
        keys "session_opens session_locks [(attr openers symlink xattrs kept_openers)... lock_hash...]"
        fixed ">c8Bc12 sid has_before before"
        args "[inodes places]";
    18 "claim_cleanup"
        keys "lease"
        fixed ""
        args "now every";
    19 "open"
        keys "attr openers kept_openers session_opens"
        fixed ">c8c8 ino sid"
        args "";
    20 "release"
        keys "session_opens session_locks (openers [kept_openers attr flocks plocks symlink xattrs])..."
        fixed ">c8 sid"
        args "inodes";
    21 "lock"
        keys "attr locks session_locks"
        fixed ">c8c8c16c1B ino sid field tag check"
        args "decision payload fields...";
    22 "compact_chunk"
        keys "attr chunk chunk_index"
        fixed ">c8I4 ino index"
        args "error expect slices";
    23 "set_quota"
        keys "attr [subtree_attr...]"
        fixed ">c8c8c8 dir max_space max_inodes"
        args "subtree";
    24 "remove_quota"
        keys ""
        fixed ">c8 dir"
        args "";
}

/// The layout of the op called `name`.
pub(crate) fn layout(name: &str) -> Option<&'static OpLayout> {
    OPS.iter().find(|o| o.name == name)
}

/// The `groups` argument of an op with a caller: its supplementary group IDs, 4 bytes each,
/// big-endian (empty when it has none).
pub(crate) fn groups_arg(c: &Caller) -> Vec<u8> {
    c.groups.iter().flat_map(|g| g.to_be_bytes()).collect()
}

/// One item of a fixed-record format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    U8,
    U16,
    U32,
    Bytes(usize),
}

fn items(format: &str) -> Vec<Item> {
    let mut out = Vec::new();
    let b = format.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'>'));
    while i < b.len() {
        let c = b[i];
        i += 1;
        let mut n = 0usize;
        while i < b.len() && b[i].is_ascii_digit() {
            n = n * 10 + usize::from(b[i] - b'0');
            i += 1;
        }
        out.push(match (c, n) {
            (b'B', 0) => Item::U8,
            (b'H', 0) => Item::U16,
            (b'I', 4) => Item::U32,
            (b'c', n) => Item::Bytes(n),
            _ => Item::Bytes(usize::MAX),
        });
    }
    out
}

/// Builds a fixed record field by field, checking each against the op's format, so the
/// Rust encoding cannot drift from the layout the Lua body unpacks.
pub(crate) struct Record {
    op: &'static str,
    items: std::vec::IntoIter<Item>,
    buf: Vec<u8>,
    bad: bool,
}

impl Record {
    /// An empty record of the op called `op`.
    pub(crate) fn new(op: &'static str) -> Record {
        let format = layout(op).map(|l| l.format()).unwrap_or("?");
        Record {
            op,
            items: items(format).into_iter(),
            buf: Vec::with_capacity(64),
            bad: layout(op).is_none(),
        }
    }

    fn expect(&mut self, item: Item) {
        if self.items.next() != Some(item) {
            self.bad = true;
        }
    }

    /// A `B` field.
    pub(crate) fn u8(mut self, v: u8) -> Record {
        self.expect(Item::U8);
        self.buf.push(v);
        self
    }

    /// An `H` field.
    pub(crate) fn u16(mut self, v: u16) -> Record {
        self.expect(Item::U16);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// An `I4` field.
    pub(crate) fn u32(mut self, v: u32) -> Record {
        self.expect(Item::U32);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A `cN` field of exactly N bytes.
    pub(crate) fn bytes(mut self, v: &[u8]) -> Record {
        self.expect(Item::Bytes(v.len()));
        self.buf.extend_from_slice(v);
        self
    }

    /// The `caller_uid caller_gid` fields (`c4c4`) that end the record of an op with a
    /// caller; its supplementary groups go in the `groups` argument ([`groups_arg`]).
    pub(crate) fn caller(self, c: &Caller) -> Record {
        self.bytes(&c.uid.to_be_bytes()).bytes(&c.gid.to_be_bytes())
    }

    /// The packed record. Errors: `Internal` when the fields did not follow the format (a
    /// bug in this crate, caught by every test that sends the op).
    pub(crate) fn finish(mut self) -> Result<Vec<u8>> {
        if self.bad || self.items.next().is_some() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "meta-redis: the fixed record of {} does not follow its layout",
                    self.op
                ),
            ));
        }
        Ok(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::OP_SOURCES;

    /// The value of the `-- <tag>:` header line of a Lua op file.
    fn header<'a>(src: &'a str, tag: &str) -> Option<&'a str> {
        let prefix = format!("-- {tag}:");
        src.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(str::trim)
    }

    #[test]
    fn lua_op_headers_follow_the_layouts() {
        assert_eq!(OPS.len(), OP_SOURCES.len());
        for (i, (o, (name, src))) in OPS.iter().zip(OP_SOURCES).enumerate() {
            assert_eq!(usize::from(o.code), i + 1, "codes are 1, 2, ... in order");
            assert_eq!(o.name, name, "OP_SOURCES follows OPS");
            assert_eq!(header(src, "KEYS"), Some(o.keys), "{name}: KEYS");
            assert_eq!(header(src, "FIXED"), Some(o.fixed), "{name}: FIXED");
            assert_eq!(header(src, "ARGS"), Some(o.args), "{name}: ARGS");
            assert!(
                src.contains(&format!("OPS.{name} = function(K, A)")),
                "{name}: defines OPS.{name}"
            );
            if o.format().is_empty() {
                assert!(
                    !src.contains("struct.unpack("),
                    "{name}: no fixed record to unpack"
                );
            } else {
                let unpack = format!("struct.unpack('{}', A[1])", o.format());
                assert!(src.contains(&unpack), "{name}: body unpacks with {unpack}");
                let fields = o.fixed.split(' ').count() - 1;
                assert_eq!(
                    items(o.format()).len(),
                    fields,
                    "{name}: one name per field"
                );
            }
        }
    }

    #[test]
    fn records_check_their_fields() {
        let ok = Record::new("link")
            .bytes(&[0; 8])
            .bytes(&[0; 8])
            .bytes(&[0; 12])
            .caller(&Caller::new(1000, 100))
            .finish();
        let mut want = vec![0u8; 28];
        want.extend_from_slice(&[0, 0, 3, 0xe8, 0, 0, 0, 100]);
        assert_eq!(ok.ok(), Some(want));
        // A missing field, a wrong width, a wrong kind, an unknown op.
        assert!(Record::new("link").bytes(&[0; 8]).finish().is_err());
        assert!(
            Record::new("link")
                .bytes(&[0; 8])
                .bytes(&[0; 4])
                .bytes(&[0; 12])
                .finish()
                .is_err()
        );
        assert!(
            Record::new("setxattr")
                .bytes(&[0; 8])
                .u16(1)
                .finish()
                .is_err()
        );
        assert!(Record::new("nope").finish().is_err());
    }
}
