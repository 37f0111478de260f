//! The data model: inodes, attributes, entries, slices, the format record and statfs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// Size of a chunk in bytes: 64 MiB. The chunk index of a byte offset is `offset >> CHUNK_BITS`.
pub const CHUNK_SIZE: u64 = 1 << CHUNK_BITS;
/// log2 of [`CHUNK_SIZE`].
pub const CHUNK_BITS: u32 = 26;
/// Longest name of a directory entry, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;
/// Longest symlink target, in bytes (Linux `PATH_MAX`).
pub const MAX_SYMLINK_LEN: usize = 4096;
/// Longest xattr name, in bytes (Linux `XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME_LEN: usize = 255;
/// Largest xattr value, in bytes: 64 KiB (Linux `XATTR_SIZE_MAX`).
pub const MAX_XATTR_VALUE_LEN: usize = 65536;
/// Space accounting granularity in bytes: every inode uses a multiple of 4 KiB, at least 4 KiB.
pub const SPACE_UNIT: u64 = 4096;
/// Longest file length this engine accepts, in bytes (2^54: chunk indexes fit comfortably in u32).
pub const MAX_FILE_LEN: u64 = 1 << 54;

/// An inode number. The root directory is [`Ino::ROOT`] (1); 0 is never a valid inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ino(pub u64);

impl Ino {
    /// The root directory.
    pub const ROOT: Ino = Ino(1);
    /// "No inode": used as the `parent` of an inode linked into several directories.
    pub const ZERO: Ino = Ino(0);
}

impl fmt::Display for Ino {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The type of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A Unix domain socket.
    Socket,
}

impl FileType {
    /// Stable one-byte code used by the stored encodings (1..=7).
    pub fn code(self) -> u8 {
        match self {
            FileType::Regular => 1,
            FileType::Directory => 2,
            FileType::Symlink => 3,
            FileType::Fifo => 4,
            FileType::CharDevice => 5,
            FileType::BlockDevice => 6,
            FileType::Socket => 7,
        }
    }

    /// Inverse of [`FileType::code`]; `Corrupted` for an unknown code.
    pub fn from_code(code: u8) -> Result<FileType> {
        Ok(match code {
            1 => FileType::Regular,
            2 => FileType::Directory,
            3 => FileType::Symlink,
            4 => FileType::Fifo,
            5 => FileType::CharDevice,
            6 => FileType::BlockDevice,
            7 => FileType::Socket,
            other => {
                return Err(Error::new(
                    ErrorKind::Corrupted,
                    format!("unknown file type code {other}"),
                ));
            }
        })
    }

    /// The `S_IFMT` bits of `st_mode` for this type (e.g. `0o040000` for a directory).
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => 0o100000,
            FileType::Directory => 0o040000,
            FileType::Symlink => 0o120000,
            FileType::Fifo => 0o010000,
            FileType::CharDevice => 0o020000,
            FileType::BlockDevice => 0o060000,
            FileType::Socket => 0o140000,
        }
    }

    /// Lower-case name, e.g. `"directory"`.
    pub fn name(self) -> &'static str {
        match self {
            FileType::Regular => "regular",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            FileType::Fifo => "fifo",
            FileType::CharDevice => "chardevice",
            FileType::BlockDevice => "blockdevice",
            FileType::Socket => "socket",
        }
    }
}

/// A point in time: seconds since the Unix epoch and nanoseconds (0..1e9).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timespec {
    /// Seconds since 1970-01-01T00:00:00Z (may be negative).
    pub sec: i64,
    /// Nanoseconds within the second, 0..=999_999_999.
    pub nsec: u32,
}

impl Timespec {
    /// The current wall-clock time.
    pub fn now() -> Timespec {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timespec {
                sec: d.as_secs() as i64,
                nsec: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                Timespec {
                    sec: -(d.as_secs() as i64) - 1,
                    nsec: 1_000_000_000 - d.subsec_nanos().max(1),
                }
            }
        }
    }

    /// A time from seconds and nanoseconds; `InvalidArgument` when `nsec >= 1e9`.
    pub fn new(sec: i64, nsec: u32) -> Result<Timespec> {
        if nsec >= 1_000_000_000 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("nanoseconds {nsec} out of range 0..1e9"),
            ));
        }
        Ok(Timespec { sec, nsec })
    }
}

/// Attributes of an inode (what `stat(2)` shows, plus `parent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    /// The inode type.
    pub typ: FileType,
    /// Permission bits, 12 bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000).
    pub mode: u16,
    /// Owner user ID.
    pub uid: u32,
    /// Owner group ID.
    pub gid: u32,
    /// Device number for character and block devices, else 0.
    pub rdev: u32,
    /// Last access time.
    pub atime: Timespec,
    /// Last modification time of the content (for a directory: of its entries).
    pub mtime: Timespec,
    /// Last change time of the inode's attributes.
    pub ctime: Timespec,
    /// Number of hard links. Directories: 2 + number of subdirectories.
    pub nlink: u32,
    /// Length in bytes. Symlinks: the target's length. Directories: 4096.
    pub length: u64,
    /// The directory holding this inode, or `Ino(0)` when it is hard-linked into several.
    pub parent: Ino,
    /// Inode flags (reserved for immutable/append-only; 0 today).
    pub flags: u8,
}

impl Attr {
    /// The full `st_mode`: type bits | permission bits.
    pub fn st_mode(&self) -> u32 {
        self.typ.mode_bits() | u32::from(self.mode)
    }

    /// Bytes this inode counts against the volume's `used_space`: its length rounded up to
    /// 4 KiB for regular files, and at least 4 KiB for every inode (as JuiceFS accounts).
    pub fn space(&self) -> u64 {
        match self.typ {
            FileType::Regular => align_space(self.length),
            _ => SPACE_UNIT,
        }
    }
}

/// `len` rounded up to a multiple of 4 KiB, at least 4 KiB.
pub fn align_space(len: u64) -> u64 {
    if len == 0 {
        SPACE_UNIT
    } else {
        len.div_ceil(SPACE_UNIT).saturating_mul(SPACE_UNIT)
    }
}

/// A directory entry: the inode a name points to and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The inode the name refers to.
    pub ino: Ino,
    /// That inode's type (kept in the entry so readdir needs no attr reads).
    pub typ: FileType,
}

/// One row of `readdir`: name, inode, type, and the attributes when asked for ("readdirplus").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Entry name (bytes).
    pub name: Vec<u8>,
    /// Inode the name refers to.
    pub ino: Ino,
    /// The inode type.
    pub typ: FileType,
    /// Attributes, when `readdir` was called with `plus = true`.
    pub attr: Option<Attr>,
}

/// One write into a chunk: bytes `[off, off+len)` of object `id` (whose total size is `size`)
/// appear at `pos` within the chunk. Later slices shadow earlier ones where they overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slice {
    /// Position inside the chunk, in bytes (`pos + len <= CHUNK_SIZE`).
    pub pos: u32,
    /// Slice (object) ID from the chunk ID pool; 0 means a hole (zeros).
    pub id: u64,
    /// Total size of the slice object, in bytes.
    pub size: u32,
    /// Offset of the used part inside the object, in bytes.
    pub off: u32,
    /// Length of the used part, in bytes.
    pub len: u32,
}

impl Slice {
    /// End position of the slice inside the chunk (`pos + len`), in bytes.
    pub fn end(&self) -> u64 {
        u64::from(self.pos) + u64::from(self.len)
    }
}

/// The format record of a volume, stored once as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// Volume name.
    pub name: String,
    /// Unique volume ID (UUID v4, text).
    pub uuid: String,
    /// Metadata format version; a volume with a newer version than [`Setting::FORMAT_VERSION`]
    /// refuses to open.
    pub version: u32,
    /// Data block size in bytes (used by the data layer; 4 MiB by default).
    pub block_size: u32,
    /// Capacity in bytes; 0 = unlimited. Writes beyond it fail with ENOSPC.
    pub capacity: u64,
    /// Inode limit; 0 = unlimited. Creates beyond it fail with ENOSPC.
    pub inodes: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// Whether every op keeps per-directory statistics ([`crate::stats`]). On for volumes
    /// formatted by this version; absent (off) in the records of older volumes, whose
    /// directories have no statistics to start from.
    #[serde(default)]
    pub dir_stats: bool,
}

impl Setting {
    /// The format version this build writes and understands.
    pub const FORMAT_VERSION: u32 = 1;

    /// A new setting named `name` with a fresh UUID, no limits and a 4 MiB block size.
    pub fn new(name: impl Into<String>) -> Setting {
        Setting {
            name: name.into(),
            uuid: uuid::Uuid::new_v4().to_string(),
            version: Self::FORMAT_VERSION,
            block_size: 4 << 20,
            capacity: 0,
            inodes: 0,
            created: Timespec::now().sec,
            dir_stats: true,
        }
    }

    /// Longest volume name [`Setting::validate`] accepts, in bytes.
    pub const MAX_NAME_BYTES: usize = 255;

    /// Checks a new volume's name: at most [`Setting::MAX_NAME_BYTES`] bytes, no control
    /// characters (it is shown by `meta status`, logs and mount tables).
    /// [`crate::Meta::format`] calls it unless the volume is already formatted under that
    /// name; records stored before the rule (and dumps of them) are not checked.
    /// Errors: `ConfigInvalid` naming the problem.
    pub fn validate_name(&self) -> Result<()> {
        if self.name.len() > Self::MAX_NAME_BYTES {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "volume name of {} bytes: at most {} are allowed",
                    self.name.len(),
                    Self::MAX_NAME_BYTES
                ),
            ));
        }
        if self.name.chars().any(char::is_control) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "volume name {:?} has a control character (newline, tab, escape, ...)",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Checks the record (a volume formatted by any version passes): a non-empty name, a
    /// version this build understands, limits within the signed 64-bit counters. Errors:
    /// `ConfigInvalid` for an empty name or a limit past `i64::MAX`, `Unsupported` for a
    /// newer format version.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "volume name must not be empty",
            ));
        }
        if self.version > Self::FORMAT_VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "volume format version {} is newer than this build understands ({}); upgrade meta",
                    self.version,
                    Self::FORMAT_VERSION
                ),
            ));
        }
        // The usage counters they are compared with are signed 64-bit on every backend.
        for (what, v) in [("capacity", self.capacity), ("inode limit", self.inodes)] {
            if v > i64::MAX as u64 {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("{what} {v} is above the largest supported, {}", i64::MAX),
                ));
            }
        }
        Ok(())
    }

    /// Serializes to JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses JSON bytes and validates; `Corrupted` if undecodable, `Unsupported` if newer.
    pub fn from_json(bytes: &[u8]) -> Result<Setting> {
        let s: Setting = serde_json::from_slice(bytes).map_err(|e| {
            Error::new(ErrorKind::Corrupted, "undecodable format record").with_source(e)
        })?;
        s.validate()?;
        Ok(s)
    }
}

/// Volume usage, as `statfs(2)` needs it. All sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statfs {
    /// Capacity in bytes (the format record's, or 1 PiB when unlimited).
    pub total_space: u64,
    /// Free bytes (`total_space - used_space`, never negative).
    pub avail_space: u64,
    /// Bytes used (4 KiB-aligned per inode, see [`Attr::space`]).
    pub used_space: u64,
    /// Number of live inodes (the root included).
    pub used_inodes: u64,
    /// Inodes still available (limit - used, or a large number when unlimited).
    pub avail_inodes: u64,
}

/// The volume counters, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Counter {
    /// The next inode number to reserve.
    NextInode,
    /// The next chunk (slice) ID to reserve.
    NextChunk,
    /// Bytes used, see [`Attr::space`]. Saturates at `i64::MAX` (every backend: 513 sparse
    /// files of [`MAX_FILE_LEN`] pass it), as directory statistics and quota usage do.
    UsedSpace,
    /// Number of live inodes.
    TotalInodes,
    /// The next session ID to reserve (sessions: see [`crate::session`]).
    NextSession,
    /// When (milliseconds since the Unix epoch) a client last claimed the cleanup of expired
    /// sessions ([`crate::Op::ClaimCleanup`]).
    CleanupLease,
}

impl Counter {
    /// The counters that are volume content: what `dump` carries, `fsck` checks and the
    /// conformance suite compares across backends.
    pub const ALL: [Counter; 4] = [
        Counter::NextInode,
        Counter::NextChunk,
        Counter::UsedSpace,
        Counter::TotalInodes,
    ];

    /// The counters of the clients' sessions ([`crate::session`]): not volume content, so
    /// dumps do not carry them (a loaded volume starts without sessions).
    pub const SESSIONS: [Counter; 2] = [Counter::NextSession, Counter::CleanupLease];

    /// The stored name (as in JuiceFS where it has one): `nextInode`, `nextChunk`,
    /// `usedSpace`, `totalInodes`, `nextSession`, `cleanupLease`.
    pub fn name(self) -> &'static str {
        match self {
            Counter::NextInode => "nextInode",
            Counter::NextChunk => "nextChunk",
            Counter::UsedSpace => "usedSpace",
            Counter::TotalInodes => "totalInodes",
            Counter::NextSession => "nextSession",
            Counter::CleanupLease => "cleanupLease",
        }
    }

    /// The value a counter has in a freshly formatted volume (before the root's usage is
    /// added): 2 for `nextInode` (1 is the root), 1 for the other ID counters, 0 otherwise.
    pub fn initial(self) -> i64 {
        match self {
            Counter::NextInode => 2,
            Counter::NextChunk | Counter::NextSession => 1,
            Counter::UsedSpace | Counter::TotalInodes | Counter::CleanupLease => 0,
        }
    }

    /// Inverse of [`Counter::name`].
    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL
            .into_iter()
            .chain(Counter::SESSIONS)
            .find(|c| c.name() == name)
    }
}

/// Which ID space a reservation draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// Inode numbers (counter `nextInode`).
    Inode,
    /// Chunk/slice IDs (counter `nextChunk`).
    Chunk,
    /// Session IDs (counter `nextSession`).
    Session,
}

impl IdKind {
    /// The counter a reservation of this kind advances.
    pub fn counter(self) -> Counter {
        match self {
            IdKind::Inode => Counter::NextInode,
            IdKind::Chunk => Counter::NextChunk,
            IdKind::Session => Counter::NextSession,
        }
    }
}

/// Data waiting for the data layer to delete its objects (JuiceFS's `delfiles`/`delslices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pending {
    /// An inode whose last link went while it had data: its chunk records are kept until the
    /// data layer has deleted the objects and sent [`crate::Op::ClearPendingFile`].
    File {
        /// The deleted inode; its chunks stay readable with `read_chunk`.
        ino: Ino,
        /// Its length in bytes when it was deleted.
        length: u64,
    },
    /// A slice dropped by truncate or compaction; cleared with [`crate::Op::ClearPendingSlice`].
    Slice {
        /// Slice (object) ID.
        id: u64,
        /// Object size in bytes.
        size: u32,
    },
}

/// Checks a directory-entry name: not empty, not `.` or `..`, no `/` or NUL
/// (`InvalidArgument`), at most 255 bytes (`NameTooLong`).
pub fn validate_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(Error::new(ErrorKind::InvalidArgument, "empty name"));
    }
    if name == b"." || name == b".." {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("name {:?} is reserved", String::from_utf8_lossy(name)),
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::new(
            ErrorKind::NameTooLong,
            format!("name of {} bytes exceeds {MAX_NAME_LEN}", name.len()),
        ));
    }
    if let Some(b) = name.iter().find(|&&b| b == b'/' || b == 0) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "name {:?} contains {}",
                String::from_utf8_lossy(name),
                if *b == 0 { "NUL" } else { "'/'" }
            ),
        ));
    }
    Ok(())
}

/// Checks a symlink target: not empty, no NUL (`InvalidArgument`; symlink(2) gives ENOENT for
/// an empty target, we report it as invalid), at most 4096 bytes (`NameTooLong`).
pub fn validate_symlink_target(target: &[u8]) -> Result<()> {
    if target.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "empty symlink target",
        ));
    }
    if target.len() > MAX_SYMLINK_LEN {
        return Err(Error::new(
            ErrorKind::NameTooLong,
            format!(
                "symlink target of {} bytes exceeds {MAX_SYMLINK_LEN}",
                target.len()
            ),
        ));
    }
    if target.contains(&0) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "symlink target contains NUL",
        ));
    }
    Ok(())
}

/// Checks an xattr name and value: name non-empty and ≤ 255 bytes (`OutOfRange`, as
/// setxattr(2) gives ERANGE), no NUL (`InvalidArgument`), value ≤ 64 KiB (`TooBig`, E2BIG).
pub fn validate_xattr(name: &[u8], value: Option<&[u8]>) -> Result<()> {
    if name.is_empty() || name.len() > MAX_XATTR_NAME_LEN {
        return Err(Error::new(
            ErrorKind::OutOfRange,
            format!(
                "xattr name of {} bytes is outside 1..={MAX_XATTR_NAME_LEN}",
                name.len()
            ),
        ));
    }
    if name.contains(&0) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "xattr name contains NUL",
        ));
    }
    if let Some(v) = value
        && v.len() > MAX_XATTR_VALUE_LEN
    {
        return Err(Error::new(
            ErrorKind::TooBig,
            format!(
                "xattr value of {} bytes exceeds {MAX_XATTR_VALUE_LEN}",
                v.len()
            ),
        ));
    }
    Ok(())
}

/// Renders a name for messages: UTF-8 lossily, quoted.
pub fn show_name(name: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_above_i64_are_refused() {
        let mut s = Setting::new("v");
        s.capacity = i64::MAX as u64;
        assert!(s.validate().is_ok());
        s.capacity = 1 << 63;
        assert_eq!(s.validate().unwrap_err().kind(), ErrorKind::ConfigInvalid);
        s.capacity = 0;
        s.inodes = u64::MAX;
        assert_eq!(s.validate().unwrap_err().kind(), ErrorKind::ConfigInvalid);
    }

    #[test]
    fn name_rules() {
        assert!(validate_name(b"a").is_ok());
        assert!(validate_name(&[0xff, 0xfe]).is_ok(), "names are bytes");
        assert_eq!(
            validate_name(b"").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            validate_name(b".").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            validate_name(b"..").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            validate_name(b"a/b").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            validate_name(b"a\0b").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert!(validate_name(&[b'x'; 255]).is_ok());
        assert_eq!(
            validate_name(&[b'x'; 256]).unwrap_err().kind(),
            ErrorKind::NameTooLong
        );
    }

    #[test]
    fn space_is_4k_aligned_and_at_least_4k() {
        assert_eq!(align_space(0), 4096);
        assert_eq!(align_space(1), 4096);
        assert_eq!(align_space(4096), 4096);
        assert_eq!(align_space(4097), 8192);
    }

    #[test]
    fn setting_rejects_newer_version() {
        let mut s = Setting::new("v");
        s.version = Setting::FORMAT_VERSION + 1;
        let e = Setting::from_json(&s.to_json()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("newer"));
        assert_eq!(
            Setting::from_json(b"{nope").unwrap_err().kind(),
            ErrorKind::Corrupted
        );
    }

    #[test]
    fn setting_names_are_checked_when_new_not_when_read() {
        for bad in ["a\nb", "tab\there", "\u{1b}[31mred", &"x".repeat(256)] {
            let s = Setting::new(bad);
            let e = s.validate_name().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{bad:?}");
            assert!(e.to_string().contains("volume name"), "{e}");
            // A volume formatted before the rule still opens.
            assert_eq!(Setting::from_json(&s.to_json()).unwrap().name, bad);
        }
        for good in ["vol1", "données", "a b", &"x".repeat(255)] {
            Setting::new(good).validate_name().unwrap();
        }
    }
}
