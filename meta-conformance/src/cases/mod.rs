//! The cases, one module per group. Every case is a plain
//! `pub async fn name(ctx: &TestCtx) -> anyhow::Result<()>` whose doc says which rule it
//! checks; the list that runs them is [`crate::CASES`].

pub mod bad_input;
pub mod batch;
pub mod compaction;
pub mod concurrency;
pub mod data;
pub mod dirstat;
pub mod dump;
pub mod errno;
pub mod format;
pub mod ids;
pub mod links;
pub mod model;
pub mod perm;
pub mod persistence;
pub mod quota;
pub mod readdir;
pub mod rename;
pub mod session;
pub mod session_bulk;
pub mod setattr;
pub mod statfs;
pub mod symlink;
pub mod xattr;

/// Imports every case module uses.
mod prelude {
    pub(crate) use crate::TestCtx;
    pub(crate) use crate::util::*;
    pub(crate) use anyhow::{Context, Result, bail, ensure};
    pub(crate) use meta_core::ErrorKind::{self, *};
    pub(crate) use meta_core::{
        Attr, Backend, Caller, FileType, Ino, Meta, MetaOptions, Op, OpOutput, Pending,
        RenameFlags, SetAttrMask, SetAttrValues, Setting, Slice, Timespec, XattrFlags,
    };
}
