//! Creates/s batched vs `batch=0` on one SQL volume, with the statements (round trips) and
//! commits each costs per 1,000 creates.
//!
//! ```text
//! cargo run --release -p meta-sql --example sql_bench -- URL [FILES] [TASKS] [EXTRA_QUERY] [DIRS]
//! cargo run --release -p meta-sql --example sql_bench -- postgres://postgres@127.0.0.1:5432/postgres 20000 16
//! ```
//!
//! Each mode runs on a fresh volume (a new table prefix, or a new SQLite file next to the
//! given one), which is dropped afterwards. TASKS tasks create FILES empty files in DIRS
//! directories (default 1; task `t` uses directory `t % DIRS`), each awaiting one create at a
//! time (so TASKS ops are in flight). EXTRA_QUERY is appended to the URL (`-` for none).

use std::sync::Arc;
use std::time::Instant;

use meta_core::{Caller, Ino, Meta, Setting, parse_url};
use meta_sql::{Dialect, SqlStats};

fn with_param(url: &str, p: &str) -> String {
    if p.is_empty() {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{p}")
}

struct Run {
    secs: f64,
    stats: SqlStats,
    apply_batches: u64,
    /// Mean time inside `Backend::apply` per batch, milliseconds.
    apply_ms: f64,
}

async fn run(
    url: &str,
    files: u64,
    tasks: u64,
    dirs: u64,
    batched: bool,
    extra: &str,
) -> anyhow::Result<Run> {
    let tag = format!(
        "b{}_{}_",
        std::process::id(),
        if batched { "on" } else { "off" }
    );
    let dialect = meta_sql::dialect_of(parse_url(url)?.0.scheme())
        .ok_or_else(|| anyhow::anyhow!("not a SQL URL"))?;
    let mut url = url.to_string();
    let tmp;
    if dialect == Dialect::Sqlite {
        tmp = tempfile::Builder::new()
            .prefix("meta-sql-bench-")
            .tempdir()?;
        url = format!("sqlite://{}", tmp.path().join("vol.db").display());
    } else {
        url = with_param(&url, &format!("table_prefix={tag}"));
    }
    url = with_param(&url, extra);
    if !batched {
        url = with_param(&url, "batch=0");
    }
    let (vurl, opts) = parse_url(&url)?;
    let backend = Arc::new(meta_sql::open(vurl)?);
    Meta::format(&*backend, &Setting::new("bench"), false).await?;
    let meta = Meta::open(backend.clone(), opts, None).await?;
    let me = Caller::ROOT;
    let mut dir_inos = Vec::new();
    for d in 0..dirs.max(1) {
        let (dir, _) = meta
            .mkdir(me.clone(), Ino::ROOT, format!("bench{d}").as_bytes(), 0o755)
            .await?;
        dir_inos.push(dir);
    }
    let s0 = backend.stats();
    let h = &meta.metrics().batch_flush_duration;
    let (h_sum0, h_n0) = (h.get_sample_sum(), h.get_sample_count());
    let t0 = Instant::now();
    let mut hs = Vec::new();
    for t in 0..tasks {
        let m = meta.clone();
        let dir = dir_inos[(t % dir_inos.len() as u64) as usize];
        let me = me.clone();
        hs.push(tokio::spawn(async move {
            let mut i = t;
            while i < files {
                m.create(me.clone(), dir, format!("f{i}").as_bytes(), 0o644)
                    .await?;
                i += tasks;
            }
            Ok::<_, meta_core::Error>(())
        }));
    }
    for h in hs {
        h.await??;
    }
    let secs = t0.elapsed().as_secs_f64();
    let s1 = backend.stats();
    let h = &meta.metrics().batch_flush_duration;
    let apply_ms =
        (h.get_sample_sum() - h_sum0) * 1e3 / (h.get_sample_count() - h_n0).max(1) as f64;
    let stats = s1.since(&s0);
    let mut n = 0;
    for dir in &dir_inos {
        n += meta.readdir(*dir, None, usize::MAX, false).await?.len() as u64;
    }
    anyhow::ensure!(n == files, "{n} files listed, {files} created");
    meta.close().await?;
    drop(meta);
    if dialect != Dialect::Sqlite {
        backend.drop_tables().await?;
    }
    backend.close().await;
    Ok(Run {
        secs,
        apply_batches: stats.batches,
        stats,
        apply_ms,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = args.get(1) else {
        anyhow::bail!("usage: sql_bench URL [FILES] [TASKS] [EXTRA_QUERY] [DIRS]");
    };
    let files: u64 = args.get(2).map_or(Ok(10_000), |s| s.parse())?;
    let tasks: u64 = args.get(3).map_or(Ok(16), |s| s.parse())?;
    let extra = args
        .get(4)
        .filter(|s| s.as_str() != "-")
        .cloned()
        .unwrap_or_default();
    let dirs: u64 = args.get(5).map_or(Ok(1), |s| s.parse())?;
    let scheme = parse_url(url)?.0.scheme().to_string();
    println!(
        "| dialect | mode | creates/s | statements / 1,000 creates | commits / 1,000 creates | mean ops per batch | ms per apply call | retries |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rates = Vec::new();
    for batched in [true, false] {
        let r = run(url, files, tasks, dirs, batched, &extra).await?;
        let k = 1000.0 / files as f64;
        let rate = files as f64 / r.secs;
        rates.push(rate);
        println!(
            "| {scheme} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.2} | {} |",
            if batched { "batched" } else { "batch=0" },
            rate,
            r.stats.statements as f64 * k,
            r.stats.commits as f64 * k,
            r.stats.ops as f64 / r.apply_batches.max(1) as f64,
            r.apply_ms,
            r.stats.retries,
        );
    }
    println!(
        "\n{scheme}: batched / batch=0 = {:.1}x ({files} creates, {tasks} tasks, {dirs} dirs{})",
        rates[0] / rates[1],
        if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        }
    );
    Ok(())
}
