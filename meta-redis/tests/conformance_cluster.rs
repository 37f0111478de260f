//! The shared conformance suite on a Redis Cluster (`META_TEST_REDIS_CLUSTER_URL`, e.g.
//! `redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002`); every test uses its own
//! key prefix (one slot) and deletes its keys.

mod common;

meta_conformance::conformance_tests!(common::RedisFactory::cluster());
