//! Creates per second with and without batching, 64 concurrent tasks, through a backend
//! wrapper that adds 200 µs to every `apply` and `reserve_ids` call (a stand-in for a network
//! round trip), in two models: `parallel` (concurrent calls overlap their delays, as over many
//! connections) and `serial` (one call at a time, as over one connection or one committing
//! writer). Run: `cargo bench -p meta-core --bench batching`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meta_core::memory::memory_backend;
use meta_core::testing::DelayBackend;
use meta_core::{Backend, Caller, Ino, Meta, MetaOptions, Setting};

const TASKS: usize = 64;
const PER_TASK: usize = 16;

async fn round(batchwrite: bool, serial: bool) -> Duration {
    let inner: Arc<dyn Backend> = Arc::new(memory_backend());
    Meta::format(&*inner, &Setting::new("bench"), false)
        .await
        .expect("format");
    let delay = Duration::from_micros(200);
    let b = Arc::new(if serial {
        DelayBackend::serialized(inner, delay)
    } else {
        DelayBackend::new(inner, delay)
    });
    let mut opts = MetaOptions::default();
    opts.batchwrite = batchwrite;
    let m = Meta::open(b, opts, None).await.expect("open");
    // Warm the ID pool so both variants measure creates, not the first reservation.
    m.new_ino().await.expect("ino");
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let name = format!("t{t}-{i}");
                m.create(Caller::ROOT, Ino::ROOT, name.as_bytes(), 0o644)
                    .await
                    .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    started.elapsed()
}

fn creates(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("creates_64_tasks_200us");
    g.throughput(Throughput::Elements((TASKS * PER_TASK) as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    for (name, batchwrite, serial) in [
        ("parallel/batched", true, false),
        ("parallel/unbatched", false, false),
        ("serial/batched", true, true),
        ("serial/unbatched", false, true),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += round(batchwrite, serial).await;
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, creates);
criterion_main!(benches);
