//! The shared conformance suite on postgres (see `common::SqlFactory::postgres`: a temp file for SQLite,
//! a fresh table prefix per test on a server named by `META_TEST_POSTGRES_URL` /
//! `META_TEST_MYSQL_URL`, skipped loudly when unset and failed under
//! `META_CONFORMANCE_REQUIRE=1`). `cargo xtask conformance --backend postgres` runs it with a server.

mod common;

meta_conformance::conformance_tests!(common::SqlFactory::postgres());
