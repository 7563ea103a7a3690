//! BuildKit client edge: all network IO of the driver lives here.
//!
//! - [`transport`]: daemon addresses (`unix://`, `tcp://` + TLS, `docker://` through
//!   dockerd's `/grpc` upgrade, connection helpers) and the byte streams under gRPC;
//! - [`helper`]: buildctl's connection helpers (`docker-container://`, `kube-pod://`,
//!   `ssh://`…): gRPC over a child process's stdio;
//! - [`builder`]: buildx's builder store (`--builder`, `BUILDX_BUILDER`, `docker buildx use`);
//! - [`client`]: the Control API ([`Client`]), the gateway API ([`Bridge`], also used by the
//!   `# syntax=` frontend over stdio) and whole builds in in-client gateway mode;
//! - [`session`]: the services the daemon calls back during a build (owned separately);
//! - `resolver`: [`Bridge`] as an [`crate::llb::ImageMetaResolver`] (ResolveImageConfig), for
//!   `plan::pin_base`;
//! - [`progress`]: `Control.Status` rendered like buildctl (`plain`, `tty`, `rawjson`, `quiet`);
//! - [`output`]: `--output`, `--tag`, cache and `--secret` flag parsing;
//! - [`token`]: random build tokens and ids (the one source of randomness).

pub mod builder;
pub mod client;
pub mod docker_api;
pub mod helper;
pub mod output;
pub mod progress;
mod resolver;
pub mod session;
pub mod token;
pub mod transport;

pub use client::{Bridge, BuildError, BuildOptions, BuildOutput, Client, ClientError};
pub use transport::{Address, ConnectOptions, Target, TlsOptions, TransportError};
