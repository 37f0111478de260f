//! POSIX rules of every operation on the in-memory backend: the errno matrix, nlink and counter
//! bookkeeping, rename cases, readdir pagination. (dump, load, fsck and quota repair on
//! damaged volumes: `damage.rs`.)

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{ME, OTHER, assert_fsck_clean, counter, kind, slice, volume, volume_with};
use meta_core::memory::memory_backend;
use meta_core::{
    CHUNK_SIZE, Caller, Counter, ErrorKind, FileType, Ino, Meta, MetaOptions, Pending, RenameFlags,
    SetAttrMask, SetAttrValues, Setting, Slice, XattrFlags,
};

#[tokio::test]
async fn mknod_errno_matrix() {
    let m = volume().await;
    let (f, _) = m.create(ME, Ino::ROOT, b"f", 0o644).await.unwrap();
    // EEXIST
    assert_eq!(
        kind(m.create(ME, Ino::ROOT, b"f", 0o644).await),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(m.mkdir(ME, Ino::ROOT, b"f", 0o755).await),
        ErrorKind::AlreadyExists
    );
    // ENOENT parent, ENOTDIR parent
    assert_eq!(
        kind(m.create(ME, Ino(999_999), b"x", 0o644).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(m.create(ME, f, b"x", 0o644).await),
        ErrorKind::NotADirectory
    );
    // Names
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert_eq!(
            kind(m.create(ME, Ino::ROOT, bad, 0o644).await),
            ErrorKind::InvalidArgument,
            "{bad:?}"
        );
    }
    assert_eq!(
        kind(m.create(ME, Ino::ROOT, &[b'n'; 256], 0o644).await),
        ErrorKind::NameTooLong
    );
    m.create(ME, Ino::ROOT, &[b'n'; 255], 0o644).await.unwrap();
    // Non-UTF-8 names are fine
    m.create(ME, Ino::ROOT, &[0xff, 0xfe, b'z'], 0o644)
        .await
        .unwrap();
    // Symlink targets
    assert_eq!(
        kind(m.symlink(ME, Ino::ROOT, b"s", b"").await),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(m.symlink(ME, Ino::ROOT, b"s", &[b't'; 4097]).await),
        ErrorKind::NameTooLong
    );
    let (s, sattr) = m.symlink(ME, Ino::ROOT, b"s", &[b't'; 4096]).await.unwrap();
    assert_eq!(sattr.length, 4096);
    assert_eq!(m.readlink(s).await.unwrap().len(), 4096);
    assert_eq!(kind(m.readlink(f).await), ErrorKind::InvalidArgument);
    // Other types
    let (_, fifo) = m
        .mknod(ME, Ino::ROOT, b"p", FileType::Fifo, 0o600, 0)
        .await
        .unwrap();
    assert_eq!(fifo.typ, FileType::Fifo);
    let (_, dev) = m
        .mknod(ME, Ino::ROOT, b"c", FileType::CharDevice, 0o600, 0x0103)
        .await
        .unwrap();
    assert_eq!(dev.rdev, 0x0103);
    m.mknod(ME, Ino::ROOT, b"b", FileType::BlockDevice, 0o600, 7)
        .await
        .unwrap();
    m.mknod(ME, Ino::ROOT, b"sock", FileType::Socket, 0o600, 0)
        .await
        .unwrap();
    assert_fsck_clean(&m).await;
}

#[tokio::test]
async fn mkdir_rmdir_nlink_and_parent_times() {
    let m = volume().await;
    let root0 = m.getattr(Ino::ROOT).await.unwrap();
    assert_eq!(root0.nlink, 2);
    let (d, dattr) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await.unwrap();
    assert_eq!(
        (dattr.nlink, dattr.uid, dattr.gid, dattr.parent),
        (2, 1000, 1000, Ino::ROOT)
    );
    let root1 = m.getattr(Ino::ROOT).await.unwrap();
    assert_eq!(root1.nlink, 3);
    assert!(root1.mtime >= root0.mtime && root1.ctime >= root0.ctime);
    m.mkdir(ME, d, b"sub", 0o755).await.unwrap();
    m.create(ME, d, b"file", 0o644).await.unwrap();
    assert_eq!(
        m.getattr(d).await.unwrap().nlink,
        3,
        "files do not count in dir nlink"
    );
    // ENOTEMPTY, ENOTDIR, EISDIR, ENOENT
    assert_eq!(
        kind(m.rmdir(ME, Ino::ROOT, b"d").await),
        ErrorKind::NotEmpty
    );
    assert_eq!(
        kind(m.rmdir(ME, d, b"file").await),
        ErrorKind::NotADirectory
    );
    assert_eq!(kind(m.unlink(ME, d, b"sub").await), ErrorKind::IsADirectory);
    assert_eq!(kind(m.unlink(ME, d, b"nope").await), ErrorKind::NotFound);
    assert_eq!(kind(m.rmdir(ME, d, b"nope").await), ErrorKind::NotFound);
    m.rmdir(ME, d, b"sub").await.unwrap();
    m.unlink(ME, d, b"file").await.unwrap();
    assert_eq!(m.getattr(d).await.unwrap().nlink, 2);
    m.rmdir(ME, Ino::ROOT, b"d").await.unwrap();
    assert_eq!(m.getattr(Ino::ROOT).await.unwrap().nlink, 2);
    assert_eq!(kind(m.getattr(d).await), ErrorKind::NotFound);
    assert_eq!(counter(&m, Counter::TotalInodes).await, 1);
    assert_eq!(counter(&m, Counter::UsedSpace).await, 4096);
    assert_fsck_clean(&m).await;
}

#[tokio::test]
async fn hard_links_and_nlink() {
    let m = volume().await;
    let (d1, _) = m.mkdir(ME, Ino::ROOT, b"d1", 0o755).await.unwrap();
    let (d2, _) = m.mkdir(ME, Ino::ROOT, b"d2", 0o755).await.unwrap();
    let (f, _) = m.create(ME, d1, b"f", 0o644).await.unwrap();
    let a = m.link(Caller::ROOT, f, d1, b"g").await.unwrap();
    assert_eq!(
        (a.nlink, a.parent),
        (2, d1),
        "same-dir link keeps the parent"
    );
    let a = m.link(Caller::ROOT, f, d2, b"h").await.unwrap();
    assert_eq!(
        (a.nlink, a.parent),
        (3, Ino::ZERO),
        "multi-dir link clears the parent"
    );
    // EPERM on directories, EEXIST, ENOENT
    assert_eq!(
        kind(m.link(Caller::ROOT, d1, d2, b"x").await),
        ErrorKind::NotPermitted
    );
    assert_eq!(
        kind(m.link(Caller::ROOT, f, d2, b"h").await),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(m.link(Caller::ROOT, Ino(424242), d2, b"y").await),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(m.link(Caller::ROOT, f, f, b"y").await),
        ErrorKind::NotADirectory
    );
    // Two links in one directory, one renamed away: now in two directories → parent 0.
    let (k, _) = m.create(ME, d1, b"k", 0o644).await.unwrap();
    assert_eq!(m.link(Caller::ROOT, k, d1, b"k2").await.unwrap().parent, d1);
    let (_, ka) = m
        .rename(ME, d1, b"k2", d2, b"k2", RenameFlags::NONE)
        .await
        .unwrap();
    assert_eq!(ka.parent, Ino::ZERO);
    m.unlink(ME, d1, b"k").await.unwrap();
    m.unlink(ME, d2, b"k2").await.unwrap();
    assert_eq!(
        m.getattr(d1).await.unwrap().nlink,
        2,
        "links do not change dir nlink"
    );
    let inodes = counter(&m, Counter::TotalInodes).await;
    m.unlink(ME, d1, b"f").await.unwrap();
    m.unlink(ME, d1, b"g").await.unwrap();
    assert_eq!(m.getattr(f).await.unwrap().nlink, 1);
    assert_eq!(
        counter(&m, Counter::TotalInodes).await,
        inodes,
        "inode lives on"
    );
    m.unlink(ME, d2, b"h").await.unwrap();
    assert_eq!(kind(m.getattr(f).await), ErrorKind::NotFound);
    assert_eq!(counter(&m, Counter::TotalInodes).await, inodes - 1);
    assert_fsck_clean(&m).await;
}

#[tokio::test]
async fn sticky_directory_rules() {
    let m = volume().await;
    let (tmp, _) = m
        .mkdir(Caller::ROOT, Ino::ROOT, b"tmp", 0o1777)
        .await
        .unwrap();
    m.create(ME, tmp, b"mine", 0o644).await.unwrap();
    m.mkdir(ME, tmp, b"mydir", 0o755).await.unwrap();
    assert_eq!(
        kind(m.unlink(OTHER, tmp, b"mine").await),
        ErrorKind::NotPermitted
    );
    assert_eq!(
        kind(m.rmdir(OTHER, tmp, b"mydir").await),
        ErrorKind::NotPermitted
    );
    assert_eq!(
        kind(
            m.rename(OTHER, tmp, b"mine", tmp, b"theirs", RenameFlags::NONE)
                .await
        ),
        ErrorKind::NotPermitted
    );
    m.rename(ME, tmp, b"mine", tmp, b"mine2", RenameFlags::NONE)
        .await
        .unwrap();
    m.unlink(Caller::ROOT, tmp, b"mine2").await.unwrap();
    m.rmdir(ME, tmp, b"mydir").await.unwrap();
}

#[tokio::test]
async fn rename_rules() {
    let m = volume().await;
    let (a, _) = m.mkdir(ME, Ino::ROOT, b"a", 0o755).await.unwrap();
    let (b, _) = m.mkdir(ME, Ino::ROOT, b"b", 0o755).await.unwrap();
    let (sub, _) = m.mkdir(ME, a, b"sub", 0o755).await.unwrap();
    let (deep, _) = m.mkdir(ME, sub, b"deep", 0o755).await.unwrap();
    let (f, _) = m.create(ME, a, b"f", 0o644).await.unwrap();
    let (g, _) = m.create(ME, b, b"g", 0o644).await.unwrap();
    let n = RenameFlags::NONE;

    // Into own subtree → EINVAL; onto itself → no-op.
    assert_eq!(
        kind(m.rename(ME, Ino::ROOT, b"a", sub, b"x", n).await),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(m.rename(ME, Ino::ROOT, b"a", deep, b"x", n).await),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(m.rename(ME, Ino::ROOT, b"a", a, b"x", n).await),
        ErrorKind::InvalidArgument
    );
    assert_eq!(m.rename(ME, a, b"f", a, b"f", n).await.unwrap().0, f);
    assert_eq!(
        kind(m.rename(ME, a, b"f", a, b"f", RenameFlags::NOREPLACE).await),
        ErrorKind::AlreadyExists
    );
    // Missing source, bad flags.
    assert_eq!(
        kind(m.rename(ME, a, b"zz", b, b"y", n).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(m.rename(ME, a, b"f", b, b"y", RenameFlags(3)).await),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(m.rename(ME, a, b"f", b, b"y", RenameFlags(8)).await),
        ErrorKind::InvalidArgument
    );
    // Type rules on overwrite.
    assert_eq!(
        kind(m.rename(ME, a, b"sub", b, b"g", n).await),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(m.rename(ME, a, b"f", Ino::ROOT, b"b", n).await),
        ErrorKind::IsADirectory
    );
    assert_eq!(
        kind(m.rename(ME, Ino::ROOT, b"b", a, b"sub", n).await),
        ErrorKind::NotEmpty
    );
    // NOREPLACE, EXCHANGE needs a destination.
    assert_eq!(
        kind(m.rename(ME, a, b"f", b, b"g", RenameFlags::NOREPLACE).await),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(
            m.rename(ME, a, b"f", b, b"none", RenameFlags::EXCHANGE)
                .await
        ),
        ErrorKind::NotFound
    );

    // Overwrite a file: g's inode goes away.
    let before = counter(&m, Counter::TotalInodes).await;
    m.rename(ME, a, b"f", b, b"g", n).await.unwrap();
    assert_eq!(m.lookup(b, b"g").await.unwrap().0, f);
    assert_eq!(kind(m.getattr(g).await), ErrorKind::NotFound);
    assert_eq!(counter(&m, Counter::TotalInodes).await, before - 1);
    assert_eq!(m.getattr(f).await.unwrap().parent, b);

    // Move a dir across: nlink of both parents.
    m.rename(ME, a, b"sub", b, b"sub2", n).await.unwrap();
    assert_eq!(m.getattr(a).await.unwrap().nlink, 2);
    assert_eq!(m.getattr(b).await.unwrap().nlink, 3);
    assert_eq!(m.getattr(sub).await.unwrap().parent, b);
    // Overwrite an empty dir with a dir.
    let (empty, _) = m.mkdir(ME, a, b"empty", 0o755).await.unwrap();
    m.rename(ME, b, b"sub2", a, b"empty", n).await.unwrap();
    assert_eq!(kind(m.getattr(empty).await), ErrorKind::NotFound);
    assert_eq!(m.getattr(a).await.unwrap().nlink, 3);
    assert_eq!(m.getattr(b).await.unwrap().nlink, 2);

    // Exchange a dir and a file across directories.
    m.rename(ME, a, b"empty", b, b"g", RenameFlags::EXCHANGE)
        .await
        .unwrap();
    assert_eq!(m.lookup(a, b"empty").await.unwrap().0, f);
    assert_eq!(m.lookup(b, b"g").await.unwrap().0, sub);
    assert_eq!(m.getattr(a).await.unwrap().nlink, 2);
    assert_eq!(m.getattr(b).await.unwrap().nlink, 3);
    assert_eq!(m.getattr(sub).await.unwrap().parent, b);
    assert_eq!(m.getattr(f).await.unwrap().parent, a);
    // Exchange that would put a dir below itself.
    assert_eq!(
        kind(
            m.rename(ME, sub, b"deep", Ino::ROOT, b"b", RenameFlags::EXCHANGE)
                .await
        ),
        ErrorKind::InvalidArgument
    );
    // Two names of one inode: nothing happens.
    m.link(Caller::ROOT, f, a, b"f2").await.unwrap();
    m.rename(ME, a, b"empty", a, b"f2", n).await.unwrap();
    assert_eq!(m.lookup(a, b"empty").await.unwrap().0, f);
    assert_eq!(m.getattr(f).await.unwrap().nlink, 2);
    assert_fsck_clean(&m).await;
}

#[tokio::test]
async fn setattr_and_times() {
    let m = volume().await;
    let (f, a0) = m.create(ME, Ino::ROOT, b"f", 0o644).await.unwrap();
    let t = meta_core::Timespec {
        sec: 1_000,
        nsec: 5,
    };
    let a = m
        .setattr(
            Caller::ROOT,
            f,
            SetAttrMask::MODE
                | SetAttrMask::UID
                | SetAttrMask::GID
                | SetAttrMask::MTIME
                | SetAttrMask::ATIME,
            SetAttrValues {
                mode: 0o4711,
                uid: 7,
                gid: 8,
                atime: t,
                mtime: t,
                size: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (a.mode, a.uid, a.gid, a.mtime, a.atime),
        (0o4711, 7, 8, t, t)
    );
    assert!(a.ctime >= a0.ctime);
    assert_eq!(m.getattr(f).await.unwrap(), a);
    assert_eq!(
        kind(
            m.setattr(
                Caller::ROOT,
                Ino(77777),
                SetAttrMask::MODE,
                SetAttrValues::default()
            )
            .await
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(
            m.setattr(
                Caller::ROOT,
                f,
                SetAttrMask(1 << 20),
                SetAttrValues::default()
            )
            .await
        ),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(m.truncate(Caller::ROOT, Ino::ROOT, 0).await),
        ErrorKind::IsADirectory
    );
    let (s, _) = m.symlink(ME, Ino::ROOT, b"s", b"f").await.unwrap();
    assert_eq!(
        kind(m.truncate(Caller::ROOT, s, 0).await),
        ErrorKind::InvalidArgument
    );
    let a = m
        .setattr(
            Caller::ROOT,
            f,
            SetAttrMask::SIZE,
            SetAttrValues {
                size: 10_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.length, 10_000);
}

#[tokio::test]
async fn write_read_truncate_and_pending() {
    let m = volume().await;
    let (f, _) = m.create(ME, Ino::ROOT, b"f", 0o644).await.unwrap();
    let base = counter(&m, Counter::UsedSpace).await;
    // Two chunks: 64 MiB + 100 bytes.
    let s1 = m.new_slice_id().await.unwrap();
    let s2 = m.new_slice_id().await.unwrap();
    let s3 = m.new_slice_id().await.unwrap();
    m.write(Caller::ROOT, f, 0, slice(s1, 0, CHUNK_SIZE as u32))
        .await
        .unwrap();
    m.write(Caller::ROOT, f, 0, slice(s2, 100, 50))
        .await
        .unwrap();
    let a = m
        .write(Caller::ROOT, f, 1, slice(s3, 0, 100))
        .await
        .unwrap();
    assert_eq!(a.length, CHUNK_SIZE + 100);
    assert_eq!(
        m.read(f, 0).await.unwrap(),
        vec![slice(s1, 0, CHUNK_SIZE as u32), slice(s2, 100, 50)]
    );
    assert_eq!(
        counter(&m, Counter::UsedSpace).await,
        base - 4096 + (CHUNK_SIZE + 4096) as i64
    );
    // A slice passing the chunk end, a write to a dir.
    assert_eq!(
        kind(
            m.write(Caller::ROOT, f, 0, slice(9, CHUNK_SIZE as u32 - 1, 2))
                .await
        ),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(m.write(Caller::ROOT, Ino::ROOT, 0, slice(9, 0, 1)).await),
        ErrorKind::IsADirectory
    );
    // Truncate into chunk 0 at 120: s3's chunk goes, s1 is trimmed, s2 trimmed to 20.
    let a = m.truncate(Caller::ROOT, f, 120).await.unwrap();
    assert_eq!(a.length, 120);
    assert_eq!(m.read(f, 1).await.unwrap(), vec![]);
    let c0 = m.read(f, 0).await.unwrap();
    assert_eq!(
        c0,
        vec![
            Slice {
                pos: 0,
                id: s1,
                size: CHUNK_SIZE as u32,
                off: 0,
                len: 120
            },
            Slice {
                pos: 100,
                id: s2,
                size: 50,
                off: 0,
                len: 20
            }
        ]
    );
    let pending = m.list_pending(100).await.unwrap();
    assert_eq!(pending, vec![Pending::Slice { id: s3, size: 100 }]);
    m.clear_pending_slice(s3).await.unwrap();
    assert_eq!(kind(m.clear_pending_slice(s3).await), ErrorKind::NotFound);
    // Unlink with data → pending file, chunks still readable until cleared.
    m.unlink(ME, Ino::ROOT, b"f").await.unwrap();
    assert_eq!(
        m.list_pending(100).await.unwrap(),
        vec![Pending::File {
            ino: f,
            length: 120
        }]
    );
    assert_eq!(m.read(f, 0).await.unwrap().len(), 2);
    m.clear_pending_file(f).await.unwrap();
    assert_eq!(m.read(f, 0).await.unwrap(), vec![]);
    assert!(m.list_pending(100).await.unwrap().is_empty());
    assert_eq!(counter(&m, Counter::UsedSpace).await, 4096);
    assert_fsck_clean(&m).await;
}

#[tokio::test]
async fn xattrs() {
    let m = volume().await;
    let (f, _) = m.create(ME, Ino::ROOT, b"f", 0o644).await.unwrap();
    assert_eq!(kind(m.getxattr(f, b"user.a").await), ErrorKind::NoData);
    assert_eq!(
        kind(
            m.setxattr(Caller::ROOT, f, b"user.a", b"1", XattrFlags::REPLACE)
                .await
        ),
        ErrorKind::NoData
    );
    m.setxattr(Caller::ROOT, f, b"user.a", b"1", XattrFlags::CREATE)
        .await
        .unwrap();
    assert_eq!(
        kind(
            m.setxattr(Caller::ROOT, f, b"user.a", b"2", XattrFlags::CREATE)
                .await
        ),
        ErrorKind::AlreadyExists
    );
    m.setxattr(Caller::ROOT, f, b"user.a", b"2", XattrFlags::REPLACE)
        .await
        .unwrap();
    m.setxattr(Caller::ROOT, f, b"user.b", &[0u8; 65536], XattrFlags::NONE)
        .await
        .unwrap();
    assert_eq!(
        kind(
            m.setxattr(Caller::ROOT, f, b"user.c", &[0u8; 65537], XattrFlags::NONE)
                .await
        ),
        ErrorKind::TooBig
    );
    assert_eq!(
        kind(
            m.setxattr(Caller::ROOT, f, &[b'x'; 256], b"", XattrFlags::NONE)
                .await
        ),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        kind(
            m.setxattr(Caller::ROOT, f, b"", b"", XattrFlags::NONE)
                .await
        ),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        kind(
            m.setxattr(Caller::ROOT, Ino(5555), b"user.a", b"", XattrFlags::NONE)
                .await
        ),
        ErrorKind::NotFound
    );
    assert_eq!(m.getxattr(f, b"user.a").await.unwrap(), b"2");
    assert_eq!(
        m.listxattr(f).await.unwrap(),
        vec![b"user.a".to_vec(), b"user.b".to_vec()]
    );
    m.removexattr(Caller::ROOT, f, b"user.a").await.unwrap();
    assert_eq!(
        kind(m.removexattr(Caller::ROOT, f, b"user.a").await),
        ErrorKind::NoData
    );
    // Xattrs go with the inode.
    m.unlink(ME, Ino::ROOT, b"f").await.unwrap();
    assert_eq!(kind(m.listxattr(f).await), ErrorKind::NotFound);
}

#[tokio::test]
async fn limits_give_enospc_and_statfs_counts() {
    let mut s = Setting::new("small");
    s.inodes = 3;
    s.capacity = 5 * 4096;
    let m = volume_with(s).await;
    let (f, _) = m.create(ME, Ino::ROOT, b"a", 0o644).await.unwrap();
    m.create(ME, Ino::ROOT, b"b", 0o644).await.unwrap();
    assert_eq!(
        kind(m.create(ME, Ino::ROOT, b"c", 0o644).await),
        ErrorKind::NoSpace
    );
    let st = m.statfs().await.unwrap();
    assert_eq!(
        (st.used_inodes, st.avail_inodes, st.used_space),
        (3, 0, 3 * 4096)
    );
    assert_eq!(
        kind(m.truncate(Caller::ROOT, f, 4 * 4096).await),
        ErrorKind::NoSpace,
        "1 + 3 more blocks pass 5"
    );
    m.truncate(Caller::ROOT, f, 2 * 4096).await.unwrap();
    let st = m.statfs().await.unwrap();
    assert_eq!(
        (st.used_space, st.avail_space, st.total_space),
        (4 * 4096, 4096, 5 * 4096)
    );
    assert_eq!(ErrorKind::NoSpace.errno(), 28);
}

/// The single writer keeps the format record's limits from one batch to the next; a new
/// format record (here, `format --force` with room for one more inode) is in force from the
/// next batch on.
#[tokio::test]
async fn a_new_format_sets_the_limits_of_the_next_batch() {
    let b = Arc::new(memory_backend());
    let mut s = Setting::new("limits");
    s.inodes = 2;
    Meta::format(&*b, &s, false).await.unwrap();
    let m = Meta::open(b.clone(), MetaOptions::default(), None)
        .await
        .unwrap();
    m.create(ME, Ino::ROOT, b"a", 0o644).await.unwrap();
    assert_eq!(
        kind(m.create(ME, Ino::ROOT, b"b", 0o644).await),
        ErrorKind::NoSpace
    );
    m.close().await.unwrap();
    s.inodes = 3;
    Meta::format(&*b, &s, true).await.unwrap();
    let m = Meta::open(b, MetaOptions::default(), None).await.unwrap();
    m.create(ME, Ino::ROOT, b"a", 0o644).await.unwrap();
    m.create(ME, Ino::ROOT, b"b", 0o644)
        .await
        .expect("the new record allows 3 inodes");
    assert_eq!(
        kind(m.create(ME, Ino::ROOT, b"c", 0o644).await),
        ErrorKind::NoSpace
    );
}

#[tokio::test]
async fn readdir_pagination_over_10k_entries() {
    let m = volume().await;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"big", 0o755).await.unwrap();
    let mut ops = Vec::new();
    let mut want = BTreeSet::new();
    for i in 0..10_000u32 {
        let name = format!("f{i:05}").into_bytes();
        want.insert(name.clone());
        ops.push(meta_core::Op::Mknod {
            caller: Caller::ROOT,
            parent: d,
            name,
            ino: m.new_ino().await.unwrap(),
            typ: FileType::Regular,
            mode: 0o644,
            uid: 1,
            gid: 1,
            rdev: 0,
            target: vec![],
            time: meta_core::Timespec::now(),
            opened_by: None,
            imported: None,
        });
    }
    for r in m.apply_batch(ops).await {
        r.unwrap();
    }
    for plus in [false, true] {
        let mut got = Vec::new();
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let page = m.readdir(d, cursor.as_deref(), 777, plus).await.unwrap();
            assert!(page.len() <= 777);
            if page.is_empty() {
                break;
            }
            for e in &page {
                assert_eq!(e.attr.is_some(), plus);
                if let Some(a) = e.attr {
                    assert_eq!((a.typ, a.uid), (FileType::Regular, 1));
                }
            }
            cursor = page.last().map(|e| e.name.clone());
            got.extend(page.into_iter().map(|e| e.name));
        }
        assert_eq!(got.len(), 10_000);
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "byte order, no repeats"
        );
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    }
    assert_eq!(
        kind(m.readdir(Ino(99_999_999), None, 10, false).await),
        ErrorKind::NotFound
    );
    let (f, _) = m.lookup(d, b"f00000").await.unwrap();
    assert_eq!(
        kind(m.readdir(f, None, 10, false).await),
        ErrorKind::NotADirectory
    );
}

#[tokio::test]
async fn lookup_dot_and_dotdot_and_resolve() {
    let m = volume().await;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await.unwrap();
    let (e, _) = m.mkdir(ME, d, b"e", 0o755).await.unwrap();
    assert_eq!(m.lookup(e, b".").await.unwrap().0, e);
    assert_eq!(m.lookup(e, b"..").await.unwrap().0, d);
    assert_eq!(m.lookup(Ino::ROOT, b"..").await.unwrap().0, Ino::ROOT);
    assert_eq!(m.resolve(b"/d/e").await.unwrap().0, e);
    assert_eq!(kind(m.resolve(b"/d/zz").await), ErrorKind::NotFound);
}

#[tokio::test]
async fn corrupted_record_is_an_error_not_a_panic() {
    let store = meta_core::memory::MemStore::new();
    let b = Arc::new(meta_core::kv::KvBackend::new(store.clone()));
    Meta::format(&*b, &Setting::new("c"), false).await.unwrap();
    let m = Meta::open(b, MetaOptions::default(), None).await.unwrap();
    let (f, _) = m.create(ME, Ino::ROOT, b"f", 0o644).await.unwrap();
    store.put_raw(&meta_core::kv::attr_key(f), b"\x01garbage");
    assert_eq!(kind(m.getattr(f).await), ErrorKind::Corrupted);
    assert_eq!(kind(m.lookup(Ino::ROOT, b"f").await), ErrorKind::Corrupted);
    assert_eq!(
        kind(m.unlink(ME, Ino::ROOT, b"f").await),
        ErrorKind::Corrupted
    );
    // The volume still works for other names.
    m.create(ME, Ino::ROOT, b"g", 0o644).await.unwrap();
    store.put_raw(meta_core::kv::SETTING_KEY, b"\x01{\"version\": 99");
    let b2 = Arc::new(meta_core::kv::KvBackend::new(store.clone()));
    assert_eq!(
        kind(Meta::open(b2, MetaOptions::default(), None).await),
        ErrorKind::Corrupted
    );
}

#[tokio::test]
async fn format_is_idempotent_and_guards_other_volumes() {
    let b = Arc::new(memory_backend());
    let s = Setting::new("one");
    Meta::format(&*b, &s, false).await.unwrap();
    let m = Meta::open(b.clone(), MetaOptions::default(), None)
        .await
        .unwrap();
    m.create(ME, Ino::ROOT, b"keep", 0o644).await.unwrap();
    Meta::format(&*b, &Setting::new("one"), false)
        .await
        .unwrap();
    assert!(
        m.lookup(Ino::ROOT, b"keep").await.is_ok(),
        "re-format with the same name keeps data"
    );
    assert_eq!(
        kind(Meta::format(&*b, &Setting::new("two"), false).await),
        ErrorKind::AlreadyExists
    );
    Meta::format(&*b, &Setting::new("two"), true).await.unwrap();
    assert_eq!(
        kind(m.lookup(Ino::ROOT, b"keep").await),
        ErrorKind::NotFound
    );
    let unformatted = Arc::new(memory_backend());
    assert_eq!(
        kind(Meta::open(unformatted, MetaOptions::default(), None).await),
        ErrorKind::NotFound
    );
}
