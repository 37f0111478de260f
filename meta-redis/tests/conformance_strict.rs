//! The shared conformance suite on a standalone Redis server (`META_TEST_REDIS_URL`) with
//! `strict_keys=true`: reads use plain commands instead of the read-only scripts that touch
//! undeclared keys (lookup, readdir-plus, the ancestor walk before a rename), as on servers
//! that forbid undeclared keys in scripts.

mod common;

meta_conformance::conformance_tests!(common::RedisFactory::standalone_strict());
