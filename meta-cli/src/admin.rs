//! Volume administration: `format`, `stats`, `fsck`, `dump`, `load`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use meta_core::{Counter, ErrorKind, Meta, PoolStats, Setting, Statfs};
use serde::Serialize;

use crate::util;
use crate::volume::{Opened, require_formatted};

/// Options of `meta format`.
#[derive(Debug, Clone)]
pub struct FormatOpts {
    /// Volume name.
    pub name: String,
    /// Capacity in bytes (0 = unlimited).
    pub capacity: u64,
    /// Inode limit (0 = unlimited).
    pub inodes: u64,
    /// Erase an existing volume.
    pub force: bool,
    /// Keep per-directory statistics ([`Setting::dir_stats`]).
    pub dir_stats: bool,
}

/// `meta format`: writes the format record and the root (idempotent for the same name).
pub async fn format(o: &Opened, f: &FormatOpts, out: &mut dyn Write) -> Result<()> {
    let existing = match o.backend.load().await {
        Ok(s) => Some(s),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) if f.force => {
            tracing::warn!("existing format record unreadable ({e}); --force erases it");
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(s) = &existing
        && !f.force
    {
        if s.name == f.name {
            writeln!(
                out,
                "volume {:?} at {} is already formatted (uuid {}); nothing changed (use --force to erase it)",
                s.name, o.display, s.uuid
            )?;
            return Ok(());
        }
        return Err(meta_core::Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "{} already holds volume {:?}; use --force to erase it",
                o.display, s.name
            ),
        )
        .into());
    }
    let mut setting = Setting::new(f.name.clone());
    setting.capacity = f.capacity;
    setting.inodes = f.inodes;
    setting.dir_stats = f.dir_stats;
    Meta::format(&*o.backend, &setting, f.force).await?;
    let s = o.backend.load().await?;
    writeln!(
        out,
        "formatted volume {:?} at {} (uuid {}, capacity {}, inodes {}, directory statistics {}){}",
        s.name,
        o.display,
        s.uuid,
        if s.capacity == 0 {
            "unlimited".to_string()
        } else {
            util::human_bytes(s.capacity)
        },
        if s.inodes == 0 {
            "unlimited".to_string()
        } else {
            s.inodes.to_string()
        },
        if s.dir_stats { "on" } else { "off" },
        if existing.is_some() {
            "; the old volume was erased"
        } else {
            ""
        }
    )?;
    Ok(())
}

/// What `meta stats` reports.
#[derive(Debug, Serialize)]
struct Stats {
    url: String,
    backend: &'static str,
    durable: bool,
    setting: Setting,
    statfs: Statfs,
    counters: BTreeMap<String, i64>,
    /// Counters of the engine instance of this `meta stats` process.
    process: ProcessStats,
}

#[derive(Debug, Serialize)]
struct ProcessStats {
    note: &'static str,
    inode_pool: PoolStats,
    chunk_pool: PoolStats,
    batches: u64,
    batched_ops: u64,
    ops: u64,
}

/// `meta stats`: format record, statfs, counters, and this process's ID-pool/batch counters.
pub async fn stats(meta: &Meta, o: &Opened, json: bool, out: &mut dyn Write) -> Result<()> {
    let b = meta.backend();
    let mut counters = BTreeMap::new();
    for c in Counter::ALL {
        counters.insert(c.name().to_string(), b.get_counter(c).await?);
    }
    let (inode_pool, chunk_pool) = meta.pool_stats();
    let m = meta.metrics();
    let ops: u64 = meta_core::Op::NAMES
        .iter()
        .map(|op| m.ops_total.with_label_values(&[op, "ok"]).get())
        .sum();
    let s = Stats {
        url: o.display.clone(),
        backend: b.info().scheme,
        durable: b.info().durable,
        setting: meta.setting().clone(),
        statfs: meta.statfs().await?,
        counters,
        process: ProcessStats {
            note: "ID-pool and batch counters live in each process's engine; these are this \
                   `meta stats` run's (a long-running program reports its own via Prometheus)",
            inode_pool,
            chunk_pool,
            batches: m.batch_size.get_sample_count(),
            batched_ops: m.batch_size.get_sample_sum() as u64,
            ops,
        },
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &s)?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    let st = &s.setting;
    writeln!(out, "volume      {} ({})", st.name, s.url)?;
    writeln!(out, "backend     {} (durable: {})", s.backend, s.durable)?;
    writeln!(out, "uuid        {}", st.uuid)?;
    writeln!(out, "version     {}", st.version)?;
    writeln!(
        out,
        "created     {}",
        util::fmt_time(meta_core::Timespec {
            sec: st.created,
            nsec: 0
        })
    )?;
    writeln!(out, "block size  {}", st.block_size)?;
    writeln!(
        out,
        "capacity    {}",
        if st.capacity == 0 {
            "unlimited".into()
        } else {
            format!("{} ({})", st.capacity, util::human_bytes(st.capacity))
        }
    )?;
    writeln!(
        out,
        "inode limit {}",
        if st.inodes == 0 {
            "unlimited".into()
        } else {
            st.inodes.to_string()
        }
    )?;
    let f = &s.statfs;
    writeln!(out, "statfs")?;
    writeln!(
        out,
        "  used space   {:>20}  ({})",
        f.used_space,
        util::human_bytes(f.used_space)
    )?;
    writeln!(out, "  avail space  {:>20}", f.avail_space)?;
    writeln!(out, "  total space  {:>20}", f.total_space)?;
    writeln!(out, "  used inodes  {:>20}", f.used_inodes)?;
    writeln!(out, "  avail inodes {:>20}", f.avail_inodes)?;
    writeln!(out, "counters")?;
    for (k, v) in &s.counters {
        writeln!(out, "  {k:<12} {v:>20}")?;
    }
    let p = &s.process;
    writeln!(
        out,
        "this process (ID pools and batches are per engine instance)"
    )?;
    for (name, ps) in [("inode pool", &p.inode_pool), ("chunk pool", &p.chunk_pool)] {
        writeln!(
            out,
            "  {name}: served {}, reserve calls {}, async prefetches {}, sync refills {}",
            ps.served, ps.reserve_calls, ps.prefetches, ps.sync_refills
        )?;
    }
    writeln!(
        out,
        "  batches {}, batched ops {}, ops ok {}",
        p.batches, p.batched_ops, p.ops
    )?;
    Ok(())
}

/// `meta fsck`: returns whether the volume is clean (the caller sets the exit status).
pub async fn fsck(o: &Opened, json: bool, out: &mut dyn Write) -> Result<bool> {
    require_formatted(o).await?;
    let rep = meta_core::fsck::fsck(&*o.backend).await?;
    if json {
        #[derive(Serialize)]
        struct J<'a> {
            clean: bool,
            #[serde(flatten)]
            report: &'a meta_core::fsck::FsckReport,
        }
        serde_json::to_writer_pretty(
            &mut *out,
            &J {
                clean: rep.is_clean(),
                report: &rep,
            },
        )?;
        out.write_all(b"\n")?;
    } else {
        for p in &rep.problems {
            writeln!(out, "problem: {p}")?;
        }
        writeln!(
            out,
            "{}: {} inodes ({} sustained: unlinked, held open by a session), {} entries, {} \
             session(s), {} problem{}",
            if rep.is_clean() { "clean" } else { "NOT CLEAN" },
            rep.inodes,
            rep.sustained,
            rep.entries,
            rep.sessions,
            rep.problems.len(),
            if rep.problems.len() == 1 { "" } else { "s" }
        )?;
    }
    Ok(rep.is_clean())
}

fn is_stdio(file: Option<&Path>) -> bool {
    file.is_none_or(|f| f.as_os_str() == "-")
}

/// `meta dump [FILE|-]`: streams the volume as JSON Lines.
pub async fn dump(o: &Opened, file: Option<&Path>) -> Result<()> {
    require_formatted(o).await?;
    let pb = util::spinner("{spinner} {elapsed} dumped {pos} inodes ({per_sec})");
    let mut progress = |n: u64| pb.set_position(n);
    let stats = if is_stdio(file) {
        let mut w = BufWriter::with_capacity(1 << 16, std::io::stdout());
        meta_core::dump::dump(&*o.backend, &mut w, &mut progress).await?
    } else {
        let path = file.unwrap_or(Path::new("-"));
        let f = File::create(path).with_context(|| format!("create {}", path.display()))?;
        let mut w = BufWriter::with_capacity(1 << 16, f);
        let stats = meta_core::dump::dump(&*o.backend, &mut w, &mut progress).await?;
        w.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("write {}", path.display()))?;
        stats
    };
    pb.finish_and_clear();
    if !is_stdio(file) || util::stderr_is_tty() {
        eprintln!("dumped {} inodes, {} entries", stats.inodes, stats.entries);
    }
    if stats.snapshot {
        tracing::info!("the dump is a consistent snapshot of the volume");
    } else {
        // Said even when the dump goes to stdout: whoever reads it must know.
        eprintln!(
            "warning: {} gives no snapshot: the dump read the live volume, so writes made \
             while it ran may appear in part (dump a quiet volume for an exact copy)",
            o.backend.info().scheme
        );
    }
    Ok(())
}

/// `meta load [FILE|-] [--force]`: restores a dump into an empty volume.
pub async fn load(o: &Opened, file: Option<&Path>, force: bool, out: &mut dyn Write) -> Result<()> {
    let pb = util::spinner("{spinner} {elapsed} loaded {pos} inodes ({per_sec})");
    let mut progress = |n: u64| pb.set_position(n);
    let mut reader: Box<dyn BufRead + Send> = if is_stdio(file) {
        Box::new(BufReader::with_capacity(1 << 16, std::io::stdin()))
    } else {
        let path = file.unwrap_or(Path::new("-"));
        let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
        Box::new(BufReader::with_capacity(1 << 16, f))
    };
    let stats = meta_core::dump::load(&*o.backend, &mut reader, force, &mut progress)
        .await
        .with_context(|| format!("load into {}", o.display))?;
    pb.finish_and_clear();
    writeln!(
        out,
        "loaded {} inodes, {} entries into {}",
        stats.inodes, stats.entries, o.display
    )?;
    Ok(())
}
