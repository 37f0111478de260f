//! `kv::shared::batch_keys` names what the session and lock ops read with point reads, so a
//! distributed store (etcd, TiKV) fetches them in the one request it makes before a batch,
//! instead of one round trip per read. Before it did, a queued release of 8 inodes on etcd
//! made 8 reads in a row inside its transaction, and creating, writing and closing a file
//! ran 2.5 times slower than creating and writing it (`docs/benchmarks.md`).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use meta_core::kv::shared::{batch_keys, load_setting};
use meta_core::kv::{KvRead, KvStore, KvTxn, session_key};
use meta_core::logic::{self, Limits};
use meta_core::memory::{MemStore, memory_backend};
use meta_core::{Caller, FileType, Ino, LockOwner, LockType, Meta, MetaOptions, Op, Setting};
use meta_core::{Result, Timespec};

/// Reads a [`MemStore`] and records every key read with a point read.
struct Recorder<'a> {
    store: &'a MemStore,
    gets: Mutex<Vec<Vec<u8>>>,
}

impl<'a> Recorder<'a> {
    fn new(store: &'a MemStore) -> Self {
        Recorder {
            store,
            gets: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl KvRead for Recorder<'_> {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.gets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key.to_vec());
        KvStore::get(self.store, key)
    }
    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        KvStore::scan(self.store, start, end, limit)
    }
}

/// The keys `ops` read with point reads when applied in one transaction over `store`.
async fn point_reads(store: &MemStore, ops: &[Op]) -> Vec<Vec<u8>> {
    // The format record is read as the store's transaction reads it (it is prefetched).
    let rec = Recorder::new(store);
    let limits = Limits::from(&load_setting(&rec).await.expect("setting"));
    let mut t = KvTxn::new(&rec);
    for op in ops {
        logic::apply_op(&mut t, op, &limits)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", op.name()));
    }
    rec.gets.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[tokio::test]
async fn session_and_lock_ops_read_only_prefetched_keys() {
    let backend = Arc::new(memory_backend());
    Meta::format(&*backend, &Setting::new("prefetch"), false)
        .await
        .expect("format");
    let meta = Meta::open(backend.clone(), MetaOptions::default(), None)
        .await
        .expect("open");
    let sid = meta.session_id().expect("a read-write Meta has a session");
    let me = Caller::ROOT;
    let (a, _) = meta
        .create_open(me.clone(), Ino::ROOT, b"a", 0o644)
        .await
        .expect("create a");
    let (b, _) = meta
        .create_open(me.clone(), Ino::ROOT, b"b", 0o644)
        .await
        .expect("create b");
    let (c, _) = meta
        .create(me.clone(), Ino::ROOT, b"c", 0o644)
        .await
        .expect("create c");
    meta.flock(b, 1, LockType::Write).await.expect("flock b");
    // `a` sustained: its last name removed while open, so the release deletes it.
    meta.unlink(me.clone(), Ino::ROOT, b"a")
        .await
        .expect("unlink a");
    let owner = LockOwner { sid, owner: 2 };
    let batches = [
        vec![Op::Release {
            sid,
            inos: vec![(a, false), (b, true)],
        }],
        vec![Op::Open { sid, ino: c }],
        vec![
            Op::Flock {
                ino: c,
                owner,
                typ: LockType::Read,
            },
            Op::Setlk {
                ino: c,
                owner,
                typ: LockType::Write,
                start: 0,
                end: 99,
                pid: 7,
            },
        ],
    ];
    let store = backend.store();
    for ops in &batches {
        let named = batch_keys(ops);
        for key in point_reads(store, ops).await {
            assert!(
                named.contains(&key),
                "{:?} read key {key:?}, which batch_keys does not name",
                ops.iter().map(Op::name).collect::<Vec<_>>()
            );
        }
    }
    // A create-and-open also reads statistics and quotas beyond the prefetch; its session
    // record is prefetched.
    let create = [Op::Mknod {
        parent: Ino::ROOT,
        name: b"d".to_vec(),
        ino: Ino(c.0 + 1000),
        typ: FileType::Regular,
        mode: 0o644,
        uid: 0,
        gid: 0,
        caller: me,
        rdev: 0,
        target: Vec::new(),
        time: Timespec::now(),
        opened_by: Some(sid),
        imported: None,
    }];
    let reads = point_reads(store, &create).await;
    let session = session_key(sid);
    assert!(
        reads.contains(&session),
        "a create-and-open checks its session"
    );
    assert!(
        batch_keys(&create).contains(&session),
        "batch_keys names the session of a create-and-open"
    );
}
