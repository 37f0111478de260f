//! File data as slices: write, read, truncate across 64 MiB chunk boundaries, and the
//! pending-deletion records that keep freed data tracked.

use meta_core::CHUNK_SIZE;

use super::prelude::*;

const CS: u32 = CHUNK_SIZE as u32;

async fn write_at(m: &Meta, ino: Ino, indx: u32, s: Slice, time: Timespec) -> Result<Attr> {
    match m
        .submit(Op::Write {
            caller: Caller::ROOT,
            ino,
            indx,
            slice: s,
            time,
        })
        .await?
    {
        OpOutput::Attr { attr, .. } => Ok(attr),
        other => bail!("write returned {other:?}"),
    }
}

/// write: slices of a chunk come back in write order (later ones shadow earlier ones, the
/// engine keeps both), the length grows to the furthest end and never shrinks, mtime/ctime
/// become the op's time, used_space follows the 4 KiB-aligned length.
pub async fn write_read_order(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let base = m.statfs().await?.used_space;
    let s1 = slice(m.new_slice_id().await?, 0, 4096);
    let s2 = Slice {
        pos: 1000,
        id: m.new_slice_id().await?,
        size: 1000,
        off: 200,
        len: 500,
    };
    let s3 = slice(m.new_slice_id().await?, 10_000, 10);
    let a = write_at(&m, f, 0, s1, t(1, 0)).await?;
    ensure!(
        a.length == 4096 && a.mtime == t(1, 0) && a.ctime == t(1, 0),
        "after s1: {a:?}"
    );
    let a = write_at(&m, f, 0, s2, t(2, 0)).await?;
    ensure!(
        a.length == 4096,
        "an inner write changed the length to {}",
        a.length
    );
    let a = write_at(&m, f, 0, s3, t(3, 0)).await?;
    ensure!(a.length == 10_010, "length after s3: {}", a.length);
    ensure!(
        m.read(f, 0).await? == vec![s1, s2, s3],
        "slices in write order"
    );
    ensure!(
        m.statfs().await?.used_space == base - 4096 + 12_288,
        "used_space at 10010 bytes"
    );
    ensure!(m.getattr(f).await? == a, "getattr after writes");
    // Writing the same range again appends another slice.
    let s4 = slice(m.new_slice_id().await?, 0, 4096);
    write_at(&m, f, 0, s4, t(4, 0)).await?;
    ensure!(
        m.read(f, 0).await? == vec![s1, s2, s3, s4],
        "a rewrite appends"
    );
    ensure!(
        m.read(f, 1).await?.is_empty(),
        "an unwritten chunk is empty"
    );
    counters_exact(&*ctx.backend(), "writes").await
}

/// Chunks are 64 MiB (`indx = offset >> 26`): a slice may end exactly at the chunk end but
/// not pass it (EINVAL); writes in chunks 1 and 2 set the length from `indx * 64 MiB + end`;
/// `list_chunks` returns every written chunk by index.
pub async fn chunk_boundaries(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let end0 = slice(m.new_slice_id().await?, CS - 4096, 4096);
    let a = m.write(Caller::ROOT, f, 0, end0).await?;
    ensure!(
        a.length == CHUNK_SIZE,
        "length after a slice ending at 64 MiB: {}",
        a.length
    );
    let over = slice(m.new_slice_id().await?, CS - 100, 200);
    expect_err(
        m.write(Caller::ROOT, f, 0, over).await,
        InvalidArgument,
        "a slice passing 64 MiB",
    )?;
    let first1 = slice(m.new_slice_id().await?, 0, 1);
    ensure!(
        m.write(Caller::ROOT, f, 1, first1).await?.length == CHUNK_SIZE + 1,
        "length after chunk 1"
    );
    let in3 = slice(m.new_slice_id().await?, 5, 10);
    ensure!(
        m.write(Caller::ROOT, f, 3, in3).await?.length == 3 * CHUNK_SIZE + 15,
        "length after chunk 3"
    );
    let chunks = ctx.backend().list_chunks(f).await?;
    ensure!(
        chunks == vec![(0, vec![end0]), (1, vec![first1]), (3, vec![in3])],
        "list_chunks: {chunks:?}"
    );
    ensure!(m.read(f, 2).await?.is_empty(), "the hole chunk 2");
    let st = m.statfs().await?;
    ensure!(
        st.used_space == 4096 + (3 * CHUNK_SIZE + 15).div_ceil(4096) * 4096,
        "used_space {}",
        st.used_space
    );
    counters_exact(&*ctx.backend(), "chunk boundaries").await
}

/// truncate(2) shrinking: chunks past the new end vanish, slices starting at or after the
/// end are dropped and recorded as pending deletion (Pending::Slice with id and size),
/// a slice crossing the end is trimmed and not pending; clear_pending_slice forgets a
/// record (ENOENT the second time); growing adds no slice.
pub async fn truncate_drops_slices(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let sa = slice(m.new_slice_id().await?, 0, 1 << 20);
    let sb = slice(m.new_slice_id().await?, 0, 1000);
    let sc = slice(m.new_slice_id().await?, 2000, 1000);
    let sd = slice(m.new_slice_id().await?, 100, 50);
    m.write(Caller::ROOT, f, 0, sa).await?;
    m.write(Caller::ROOT, f, 1, sb).await?;
    m.write(Caller::ROOT, f, 1, sc).await?;
    m.write(Caller::ROOT, f, 2, sd).await?;
    ensure!(
        pending_sorted(&*b).await?.is_empty(),
        "writes made pending records"
    );
    let a = m.truncate(Caller::ROOT, f, CHUNK_SIZE + 1500).await?;
    ensure!(a.length == CHUNK_SIZE + 1500, "length {}", a.length);
    let chunks = b.list_chunks(f).await?;
    ensure!(
        chunks == vec![(0, vec![sa]), (1, vec![sb])],
        "chunks after truncate: {chunks:?}"
    );
    let want = vec![
        Pending::Slice {
            id: sc.id,
            size: sc.size,
        },
        Pending::Slice {
            id: sd.id,
            size: sd.size,
        },
    ];
    ensure!(
        pending_sorted(&*b).await? == want,
        "pending after truncate: {:?}",
        pending_sorted(&*b).await?
    );
    // Cut through sb: trimmed, not pending.
    m.truncate(Caller::ROOT, f, CHUNK_SIZE + 500).await?;
    let trimmed = Slice { len: 500, ..sb };
    ensure!(
        m.read(f, 1).await? == vec![trimmed],
        "sb trimmed: {:?}",
        m.read(f, 1).await?
    );
    ensure!(
        pending_sorted(&*b).await? == want,
        "a trimmed slice became pending"
    );
    // Grow again: no slice appears.
    m.truncate(Caller::ROOT, f, 3 * CHUNK_SIZE).await?;
    ensure!(b.list_chunks(f).await?.len() == 2, "growing added chunks");
    counters_exact(&*b, "after truncates").await?;
    m.clear_pending_slice(sc.id).await?;
    m.clear_pending_slice(sd.id).await?;
    expect_err(
        m.clear_pending_slice(sd.id).await,
        NotFound,
        "clearing a slice twice",
    )?;
    ensure!(
        pending_sorted(&*b).await?.is_empty(),
        "pending after clearing"
    );
    // Down to zero: everything goes pending.
    m.truncate(Caller::ROOT, f, 0).await?;
    ensure!(
        b.list_chunks(f).await?.is_empty(),
        "chunks after truncate to 0"
    );
    let p = pending_sorted(&*b).await?;
    ensure!(
        p == vec![
            Pending::Slice {
                id: sa.id,
                size: sa.size
            },
            Pending::Slice {
                id: sb.id,
                size: sb.size
            }
        ],
        "pending after truncate to 0: {p:?}"
    );
    ensure!(m.getattr(f).await?.length == 0, "length 0");
    counters_exact(&*b, "after truncate to 0").await?;
    fsck_clean(&*b, "after truncates").await
}

/// unlink(2) of a file's last link while it has data: the inode goes, a Pending::File
/// record keeps its chunks readable until clear_pending_file, which then removes them
/// (ENOENT the second time); an empty file leaves no record.
pub async fn unlink_pending_file(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let s = slice(m.new_slice_id().await?, 0, 777);
    let s2 = slice(m.new_slice_id().await?, 0, 10);
    m.write(Caller::ROOT, f, 0, s).await?;
    m.write(Caller::ROOT, f, 1, s2).await?;
    let (e, _) = m.create(ME, ROOT, b"empty", 0o644).await?;
    m.link(Caller::ROOT, f, ROOT, b"f2").await?;
    m.unlink(ME, ROOT, b"f").await?;
    ensure!(
        pending_sorted(&*b).await?.is_empty(),
        "an unlink with a link left made a record"
    );
    m.unlink(ME, ROOT, b"f2").await?;
    m.unlink(ME, ROOT, b"empty").await?;
    expect_err(m.getattr(f).await, NotFound, "the unlinked file")?;
    expect_err(m.getattr(e).await, NotFound, "the unlinked empty file")?;
    let p = pending_sorted(&*b).await?;
    let length = CHUNK_SIZE + 10;
    ensure!(
        p == vec![Pending::File { ino: f, length }],
        "pending: {p:?}"
    );
    ensure!(
        m.read(f, 0).await? == vec![s],
        "chunks of a pending file stay readable"
    );
    ensure!(m.read(f, 1).await? == vec![s2], "chunk 1 of a pending file");
    counters_exact(&*b, "with a pending file").await?;
    fsck_clean(&*b, "with a pending file").await?;
    m.clear_pending_file(f).await?;
    ensure!(
        m.read(f, 0).await?.is_empty(),
        "chunks after clear_pending_file"
    );
    ensure!(
        b.list_chunks(f).await?.is_empty(),
        "list_chunks after clear_pending_file"
    );
    ensure!(
        pending_sorted(&*b).await?.is_empty(),
        "pending after clearing"
    );
    expect_err(
        m.clear_pending_file(f).await,
        NotFound,
        "clearing a file twice",
    )?;
    Ok(())
}

/// rename(2) over a file with data deletes it like unlink: a Pending::File record.
pub async fn rename_over_pending_file(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (old, _) = m.create(ME, ROOT, b"old", 0o644).await?;
    m.write(Caller::ROOT, old, 0, slice(m.new_slice_id().await?, 0, 4))
        .await?;
    m.create(ME, ROOT, b"new", 0o644).await?;
    m.rename(ME, ROOT, b"new", ROOT, b"old", RenameFlags::NONE)
        .await?;
    let p = pending_sorted(&*ctx.backend()).await?;
    ensure!(
        p == vec![Pending::File {
            ino: old,
            length: 4
        }],
        "pending: {p:?}"
    );
    m.clear_pending_file(old).await?;
    ensure!(m.read(old, 0).await?.is_empty(), "chunks after clearing");
    Ok(())
}

/// Holes and edge slices: a slice with id 0 is a hole (no object, no size check); a real
/// slice must fit its object (`off + len <= size`, else EINVAL) and a refused one leaves
/// nothing.
pub async fn holes(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let hole = Slice {
        pos: 4096,
        id: 0,
        size: 0,
        off: 0,
        len: 8192,
    };
    ensure!(
        m.write(Caller::ROOT, f, 0, hole).await?.length == 12_288,
        "length after a hole"
    );
    let bad = Slice {
        pos: 0,
        id: m.new_slice_id().await?,
        size: 100,
        off: 50,
        len: 51,
    };
    expect_err(
        m.write(Caller::ROOT, f, 0, bad).await,
        InvalidArgument,
        "a slice larger than its object",
    )?;
    ensure!(
        m.read(f, 0).await? == vec![hole],
        "slices: {:?}",
        m.read(f, 0).await?
    );
    counters_exact(&*ctx.backend(), "holes").await
}
