//! torchkit: a BuildKit frontend and build driver for reproducible PyTorch/CUDA images.
//!
//! # Map
//!
//! ```text
//! torchkit.toml ─spec─▶ Spec ─┐
//! host ─probe─▶ Target ───────┼─resolve (matrix)─▶ Resolution ─plan::compile─▶ (LLB Definition, image config)
//!                             │                                          │
//!              ┌──────────────┴───────────────┬──────────────────────────┴──────────┐
//!         buildkit (driver: Control API      frontend (LLBBridge over          cli `llb`
//!         + session + progress)              stdin/stdout)                      (bytes on stdout)
//! ```
//!
//! **Pure core** — no IO, no tokio, no clock, no randomness; inputs are data, output is bytes:
//! - [`vocab`]: the values users type (CUDA request, flavor, profile, step, GPU list), one
//!   parser each for the spec, flags, environment variables and build-args, and
//!   [`vocab::Overrides`];
//! - [`spec`]: `torchkit.toml` → validated [`spec::Spec`], errors with `file:line:col` and hints;
//! - [`matrix`]: the CUDA ⇄ driver ⇄ torch ⇄ GPU tables, each citing its source;
//! - [`resolve`]: request + matrix → [`resolve::Resolution`] (base image, CUDA, why);
//! - [`plan`]: spec + resolution → [`plan::Plan`] (steps, helper nodes, mounts, cache rules:
//!   the whole graph as data), [`plan::lower`] of a plan to LLB, and [`plan::compile`], the
//!   one function the driver and the frontend share;
//! - [`llb`]: an immutable BuildKit LLB builder with deterministic marshalling, for the
//!   LLB caps a daemon reports;
//! - [`lock`]: `torchkit.lock` (base digest, exact apt/pip sets with hashes, input
//!   fingerprints), its diff against the spec, the lock rules of a build ([`lock::check`])
//!   and the readers of `torchkit lock`'s answers;
//! - [`load`]: the load pipeline the driver and the frontend share (parse, resolve with
//!   errors located in the spec; then `lock::check` and `plan::pin_base`).
//!
//! **Edges** — all IO lives here (behind the default `io` feature):
//! - `probe`: host facts (`nvidia-smi`, `/proc/driver/nvidia/version`); its parsers are pure;
//! - `buildkit`: transports (unix, tcp+TLS, dockerd `/grpc` and `/session`, connection
//!   helpers, buildx builders), Control client, session services (context upload, exports,
//!   secrets, auth, local cache store), progress;
//! - `frontend`: the gateway routine shared by the driver and the `# syntax=` frontend, and
//!   the frontend itself over stdio;
//! - `registry`: the OCI distribution API, a fallback for base digests without a daemon
//!   (an [`llb::ImageMetaResolver`], as the gateway `Bridge` is);
//! - `credentials`: registry credentials from the Docker config, for the session's Auth
//!   service and the registry client;
//! - `cli`: clap commands, one file each.
//!
//! **Dependency rule**: each module uses only the modules after its arrow. `tests/layering.rs`
//! holds the same table and fails, naming the file and line, on any other `crate::…` or
//! `super::…` reference between modules (unit tests are exempt) and when this list or
//! `docs/architecture.md` differs from it. No core module uses an edge module, tokio, tonic,
//! `std::fs`, `std::net`, `std::process`, `std::env`, the clock or randomness.
//!
//! - `error` (shared) → —
//! - `proto` (shared) → —
//! - `vocab` (core) → `error`
//! - `matrix` (core) → —
//! - `spec` (core) → `error`, `resolve`, `vocab`
//! - `resolve` (core) → `error`, `matrix`, `vocab`
//! - `llb` (core) → `error`, `proto`
//! - `plan` (core) → `error`, `llb`, `resolve`, `spec`, `vocab`
//! - `lock` (core) → `error`, `plan`, `resolve`, `spec`
//! - `load` (core) → `error`, `matrix`, `resolve`, `spec`
//! - `probe` (edge) → `error`
//! - `buildkit` (edge) → `credentials`, `error`, `llb`, `proto`
//! - `credentials` (edge) → `error`
//! - `registry` (edge) → `credentials`, `error`, `llb`, `matrix`
//! - `frontend` (edge) → `buildkit`, `error`, `llb`, `load`, `lock`, `matrix`, `plan`, `proto`, `resolve`, `spec`, `vocab`
//! - `cli` (edge) → `buildkit`, `credentials`, `error`, `frontend`, `llb`, `load`, `lock`, `matrix`, `plan`, `probe`, `registry`, `resolve`, `spec`, `vocab`

pub mod error;
pub mod proto;

pub mod llb;
pub mod load;
pub mod lock;
pub mod matrix;
pub mod plan;
pub mod resolve;
pub mod spec;
pub mod vocab;

pub mod probe;

#[cfg(feature = "io")]
pub mod buildkit;
#[cfg(feature = "io")]
pub mod cli;
#[cfg(feature = "io")]
pub mod credentials;
#[cfg(feature = "io")]
pub mod frontend;
#[cfg(feature = "io")]
pub mod registry;
