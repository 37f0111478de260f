//! Helpers shared by meta-core's integration tests (each test file is its own crate and
//! uses a part of them).
#![allow(dead_code)]

use std::sync::Arc;

use meta_core::memory::memory_backend;
use meta_core::testing::DelayBackend;
use meta_core::{Backend, Caller, Counter, ErrorKind, Meta, MetaOptions, Result, Setting, Slice};

/// An unprivileged caller that owns what it creates.
pub const ME: Caller = Caller::new(1000, 1000);
/// Another unprivileged caller, in none of `ME`'s groups.
pub const OTHER: Caller = Caller::new(2000, 2000);

/// A fresh in-memory volume formatted with `setting`, opened with default options.
pub async fn volume_with(setting: Setting) -> Meta {
    let b = Arc::new(memory_backend());
    Meta::format(&*b, &setting, false).await.expect("format");
    Meta::open(b, MetaOptions::default(), None)
        .await
        .expect("open")
}

/// A fresh in-memory volume named `t`.
pub async fn volume() -> Meta {
    volume_with(Setting::new("t")).await
}

/// The error kind of `r`; panics (failing the test) when `r` is `Ok`.
pub fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind(),
    }
}

/// The value of counter `c` on `m`'s backend.
pub async fn counter(m: &Meta, c: Counter) -> i64 {
    m.backend().get_counter(c).await.expect("counter")
}

/// Fails the test when fsck finds a problem on `m`'s backend.
pub async fn assert_fsck_clean(m: &Meta) {
    let rep = meta_core::fsck::fsck(&**m.backend()).await.expect("fsck");
    assert!(rep.is_clean(), "fsck problems: {:#?}", rep.problems);
}

/// A slice `id` of `len` bytes placed at `pos` within its chunk (offset 0 of the object).
pub fn slice(id: u64, pos: u32, len: u32) -> Slice {
    Slice {
        pos,
        id,
        size: len,
        off: 0,
        len,
    }
}

/// A formatted in-memory volume behind a [`DelayBackend`] with no delay (for its call counts
/// and its fault injection).
pub async fn delay_backend() -> Arc<DelayBackend> {
    let b: Arc<dyn Backend> = Arc::new(memory_backend());
    Meta::format(&*b, &Setting::new("t"), false)
        .await
        .expect("format");
    Arc::new(DelayBackend::new(b, std::time::Duration::ZERO))
}
