//! The shared conformance suite on the etcd cluster named by `META_TEST_ETCD_URL` (e.g.
//! `etcd://127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379/`, as `cargo xtask services` starts
//! it); every test gets its own key prefix, erased after. Skipped, loudly, when it is unset.

mod common;

meta_conformance::conformance_tests!(common::EtcdFactory);
