//! The shared conformance suite on a standalone Redis server (`META_TEST_REDIS_URL`, e.g.
//! `redis://127.0.0.1:6379/0`); every test uses its own key prefix and deletes its keys.

mod common;

meta_conformance::conformance_tests!(common::RedisFactory::standalone());
