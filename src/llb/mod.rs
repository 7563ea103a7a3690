//! BuildKit's `client/llb` in Rust: an immutable builder for LLB graphs and their
//! deterministic marshalling into a `pb::Definition`.
//!
//! # What this module may do
//! - Build graphs of source, exec and file ops. Every builder method takes `&self` (or
//!   consumes a small option builder) and returns a new value; states share their ops through
//!   `Arc`, so branching a [`State`] is cheap and never mutates the original.
//! - Marshal a [`State`] into a [`pb::Definition`] the way the Go client does
//!   (`client/llb/state.go` `Marshal`): ops in post-order, deduplicated **by content digest**,
//!   an empty `constraints {}` on every op, then a terminal `Op{inputs:[result]}` with no
//!   platform or constraints. The digest of an op is `sha256:` + hex of its exact bytes.
//! - Decode, validate and dump a Definition as readable, stable JSON ([`dump`]).
//!
//! # What it may not do
//! No IO of any kind (no filesystem, environment, process or network access, no async
//! runtime or gRPC), no clock and no randomness, and it knows nothing about PyTorch, specs, plans or BuildKit
//! connections. It depends only on the generated [`crate::proto::pb`] messages, [`crate::error`],
//! serde/serde_json, sha2/hex, prost and thiserror.
//!
//! # Example
//! ```
//! use torchkit::llb::{self, Exec, Mount, Sharing, Platform};
//!
//! let base: llb::State = llb::image("pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime")
//!     .platform(Platform::linux_amd64())
//!     .into();
//! let built = base
//!     .add_env("PIP_NO_INPUT", "1")
//!     .dir("/workspace")
//!     .run(
//!         Exec::shell("pip install numpy")
//!             .mount(Mount::cache("/root/.cache/pip", "pip", Sharing::Locked))
//!             .custom_name("pip install"),
//!     )
//!     .root();
//! let def = llb::marshal(&built).unwrap();
//! assert_eq!(def.def.len(), 3); // image, exec, terminal
//! let json = llb::dump(&def).unwrap();
//! assert_eq!(json["ops"][1]["exec"]["cwd"], "/workspace");
//! ```

mod dump;
mod error;
mod exec;
mod file;
mod marshal;
mod platform;
mod resolver;
mod source;
mod sourcemap;
mod state;
mod support;

pub use crate::proto::pb;
pub use dump::dump;
pub use error::LlbError;
pub use exec::{Exec, ExecState, Mount, Network, Security, Sharing};
pub use file::{CopyOpts, FileAction, MkdirOpts, Owner, RmOpts, UserRef};
pub use marshal::{decode, definition_bytes, digest_of, marshal, marshal_for, validate};
pub use platform::Platform;
pub use resolver::{ImageMeta, ImageMetaResolver};
pub use source::{
    familiar_image_ref, image, local, normalize_image_ref, scratch, Differ, Image, Local,
    ResolveMode,
};
pub use sourcemap::{Range, SourceInfo, SourceLocation};
pub use state::State;
pub use support::Supported;

/// The `OpMetadata.description` key BuildKit shows as the vertex name in progress output.
pub const CUSTOM_NAME_KEY: &str = "llb.customname";

/// Capability names recorded in `OpMetadata.caps`, spelled as in BuildKit's
/// `solver/pb/caps.go`. The daemon rejects a Definition naming a cap it lacks, which turns
/// "old daemon" into a clean error.
pub mod caps {
    /// `docker-image://` sources.
    pub const SOURCE_IMAGE: &str = "source.image";
    /// `image.resolvemode` attribute.
    pub const SOURCE_IMAGE_RESOLVE_MODE: &str = "source.image.resolvemode";
    /// `local://` sources.
    pub const SOURCE_LOCAL: &str = "source.local";
    /// `local.unique` attribute.
    pub const SOURCE_LOCAL_UNIQUE: &str = "source.local.unique";
    /// `local.session` attribute.
    pub const SOURCE_LOCAL_SESSION_ID: &str = "source.local.sessionid";
    /// `local.includepattern` attribute.
    pub const SOURCE_LOCAL_INCLUDE_PATTERNS: &str = "source.local.includepatterns";
    /// `local.excludepatterns` attribute.
    pub const SOURCE_LOCAL_EXCLUDE_PATTERNS: &str = "source.local.excludepatterns";
    /// `local.followpaths` attribute.
    pub const SOURCE_LOCAL_FOLLOW_PATHS: &str = "source.local.followpaths";
    /// `local.sharedkeyhint` attribute.
    pub const SOURCE_LOCAL_SHARED_KEY_HINT: &str = "source.local.sharedkeyhint";
    /// `local.differ` attribute.
    pub const SOURCE_LOCAL_DIFFER: &str = "source.local.differ";
    /// Every exec op.
    pub const EXEC_META_BASE: &str = "exec.meta.base";
    /// A network mode other than sandbox.
    pub const EXEC_META_NETWORK: &str = "exec.meta.network";
    /// `ExecOp.cdiDevices`: Container Device Interface devices (GPUs), BuildKit v0.20.
    pub const EXEC_META_CDI: &str = "exec.meta.cdi";
    /// A security mode other than sandbox.
    pub const EXEC_META_SECURITY: &str = "exec.meta.security";
    /// A bind mount with a source (the root mount included).
    pub const EXEC_MOUNT_BIND: &str = "exec.mount.bind";
    /// A persistent cache mount.
    pub const EXEC_MOUNT_CACHE: &str = "exec.mount.cache";
    /// The sharing mode of a cache mount.
    pub const EXEC_MOUNT_CACHE_SHARING: &str = "exec.mount.cache.sharing";
    /// A mount with a selector (subpath of its input).
    pub const EXEC_MOUNT_SELECTOR: &str = "exec.mount.selector";
    /// A tmpfs mount.
    pub const EXEC_MOUNT_TMPFS: &str = "exec.mount.tmpfs";
    /// A tmpfs mount with a size limit.
    pub const EXEC_MOUNT_TMPFS_SIZE: &str = "exec.mount.tmpfs.size";
    /// A secret mount.
    pub const EXEC_MOUNT_SECRET: &str = "exec.mount.secret";
    /// Every file op.
    pub const FILE_BASE: &str = "file.base";
    /// `rm` with wildcards.
    pub const FILE_RM_WILDCARD: &str = "file.rm.wildcard";
    /// `copy` with include or exclude patterns.
    pub const FILE_COPY_INCLUDE_EXCLUDE_PATTERNS: &str = "file.copy.includeexcludepatterns";
    /// Terminal op: worker constraints are understood.
    pub const CONSTRAINTS: &str = "constraints";
    /// Terminal op: op platforms are understood.
    pub const PLATFORM: &str = "platform";
    /// Terminal op: some op sets `ignore_cache`.
    pub const META_IGNORE_CACHE: &str = "meta.ignorecache";
    /// Terminal op: some op has a description.
    pub const META_DESCRIPTION: &str = "meta.description";
}

#[cfg(test)]
mod tests;
