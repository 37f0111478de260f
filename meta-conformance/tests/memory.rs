//! The whole conformance suite on the in-memory reference backend, through the same macro
//! every backend crate uses (this is its first user).

meta_conformance::conformance_tests!(meta_conformance::MemoryFactory);
