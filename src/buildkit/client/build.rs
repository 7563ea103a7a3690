//! A whole build: [`Client::build`] runs the caller's closure against a [`Bridge`] while
//! the solve runs; [`Client::build_frontend`] runs a frontend image instead. Their options,
//! output and errors.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::{
    error_status, Bridge, BridgeError, Client, ClientError, SessionHost, REQUIRED_GATEWAY_CAPS,
};
use crate::buildkit::output::{CacheEntry, Destination, Exporter};
use crate::buildkit::progress::ProgressMode;
use crate::buildkit::session::ExportSink;
use crate::error::Hint;

/// A frontend image to run instead of in-client code (`gateway.v0`).
#[derive(Debug, Clone)]
pub struct GatewayFrontend {
    /// The frontend image (`source`).
    pub source: String,
    /// Further frontend options (`filename`, `build-arg:*`, …).
    pub attrs: BTreeMap<String, String>,
}

/// Everything about a build except the code that defines it.
pub struct BuildOptions {
    /// Where results go (`--output`, `--tag`).
    pub exporters: Vec<Exporter>,
    /// `--import-cache`.
    pub cache_imports: Vec<CacheEntry>,
    /// `--export-cache`.
    pub cache_exports: Vec<CacheEntry>,
    /// `network.host`, `security.insecure`.
    pub entitlements: Vec<String>,
    /// Frontend attributes for the solve request.
    pub frontend_attrs: BTreeMap<String, String>,
    /// Session services (local dirs, exporter sinks, secrets, auth). Without them only a
    /// health-less session is impossible, so no session is opened at all.
    pub session: Option<Box<dyn SessionHost>>,
    /// Key for incremental context transfer (`name:hint:sharedKey`); keep it stable per
    /// machine and project.
    pub shared_key: String,
    /// `--progress`.
    pub progress: ProgressMode,
    /// Cancel the build on Ctrl-C, SIGTERM or SIGHUP (default true): the daemon stops the
    /// solve, client-side export temporaries are removed and the build ends with
    /// [`BuildError::Cancelled`].
    pub cancel_on_ctrl_c: bool,
    /// Client-side export destinations, committed after a successful solve (see
    /// [`BuildOptions::attach`]).
    pub export_sinks: Vec<ExportSink>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            exporters: Vec::new(),
            cache_imports: Vec::new(),
            cache_exports: Vec::new(),
            entitlements: Vec::new(),
            frontend_attrs: BTreeMap::new(),
            session: None,
            shared_key: "torchkit".into(),
            progress: ProgressMode::Auto,
            cancel_on_ctrl_c: true,
            export_sinks: Vec::new(),
        }
    }
}

impl BuildOptions {
    /// Attaches the session services and wires the exporters to them: exporters with
    /// client output (`local`, `tar`, `oci`, `docker`) move to the front of
    /// [`BuildOptions::exporters`], in their given order, so that exporter index *n* is the
    /// *n*-th [`ExportSink`] registered with `attachables` (the daemon names the exporter by
    /// index in `buildkit-attachable-exporter-id`). The sinks are committed when the build
    /// succeeds and dropped (temporary output removed) when it fails.
    pub fn attach(
        &mut self,
        mut attachables: crate::buildkit::session::Attachables,
    ) -> Result<(), crate::buildkit::session::ExportError> {
        let (mut client_side, daemon_side): (Vec<_>, Vec<_>) = std::mem::take(&mut self.exporters)
            .into_iter()
            .partition(Exporter::needs_file_send);
        for e in &client_side {
            let dest = match &e.dest {
                Destination::Dir(p) | Destination::File(p) => p.clone(),
                Destination::Stdout => std::path::PathBuf::from("-"),
                Destination::None => unreachable!("partitioned by needs_file_send"),
            };
            let sink = ExportSink::for_exporter(&e.kind, dest)?;
            attachables = attachables.with_exporter(sink.clone());
            self.export_sinks.push(sink);
        }
        client_side.extend(daemon_side);
        self.exporters = client_side;
        self.session = Some(Box::new(attachables));
        Ok(())
    }
}

impl fmt::Debug for BuildOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildOptions")
            .field("exporters", &self.exporters)
            .field("cache_imports", &self.cache_imports)
            .field("cache_exports", &self.cache_exports)
            .field("entitlements", &self.entitlements)
            .field("frontend_attrs", &self.frontend_attrs)
            .field("session", &self.session.as_ref().map(|s| s.methods()))
            .field("progress", &self.progress)
            .finish()
    }
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct BuildOutput<T> {
    /// The build ref (also the history record name).
    pub build_ref: String,
    /// The exporters' response: `containerimage.digest`, `image.name`, …
    pub exporter_response: BTreeMap<String, String>,
    /// What the build function returned.
    pub value: T,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Setting up the build failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A gateway call failed.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    /// The build function failed.
    #[error("{0}")]
    Function(Box<dyn std::error::Error + Send + Sync>),
    /// The daemon failed the solve.
    #[error("build failed: {message}")]
    Solve {
        /// The daemon's message (`process "…" did not complete successfully: exit code: 1`).
        message: String,
        /// The gRPC code.
        code: tonic::Code,
    },
    /// The session could not be attached or its services failed.
    #[error("the build session failed: {0}")]
    Session(String),
    /// The build succeeded but its output could not be moved into place.
    #[error("writing the build output failed: {0}")]
    Export(#[from] crate::buildkit::session::ExportError),
    /// The build function finished without calling `Return`.
    #[error("the build function finished without calling Bridge::return_result")]
    NoReturn,
    /// Ctrl-C, SIGTERM or SIGHUP.
    #[error("build cancelled ({0})")]
    Cancelled(Interrupt),
    /// A vertex failed: its name as progress shows it (a step title such as
    /// `[torchkit 3/6] pip: pip install …`), and the error of the build.
    #[error("`{step}` failed: {error}")]
    Step {
        /// The failing vertex's name.
        step: String,
        /// What the solve or the build function reported.
        error: Box<BuildError>,
    },
}

impl Hint for BuildError {
    fn hint(&self) -> Option<String> {
        match self {
            BuildError::Client(e) => e.hint(),
            BuildError::Bridge(e) => e.hint(),
            BuildError::Solve { message, .. } if message.contains("could not be found") && message.contains("exporter") => Some(
                "this daemon uses the classic image store: only `moby`, `local` and `tar` exporters work; turn on the containerd image store or use `--output type=tar,dest=…`".into(),
            ),
            BuildError::Solve { message, .. } if message.contains("no active session") || message.contains("session") && message.contains("not found") => Some(
                "the export needs a session service (FileSend/FileSync) that was not attached".into(),
            ),
            BuildError::Solve { .. } => {
                Some("see the progress output above for the failing step and its logs".into())
            }
            BuildError::Cancelled(_) => Some("the daemon was told to stop the build".into()),
            BuildError::Export(e) => e.hint(),
            BuildError::Step { error, .. } => error.hint(),
            _ => None,
        }
    }
}

impl BuildError {
    /// The process exit code the CLI should use: 128 + the signal for a cancelled build
    /// (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), like a shell.
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::Cancelled(i) => i.exit_code(),
            BuildError::Step { error, .. } => error.exit_code(),
            _ => 1,
        }
    }
}

/// The signal that cancelled a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// SIGINT.
    CtrlC,
    /// SIGTERM (`kill`, CI timeouts).
    Terminate,
    /// SIGHUP (the terminal went away).
    Hangup,
}

impl Interrupt {
    /// 128 + the signal number, as a shell reports a process the signal killed.
    pub fn exit_code(self) -> i32 {
        match self {
            Interrupt::CtrlC => 130,
            Interrupt::Terminate => 143,
            Interrupt::Hangup => 129,
        }
    }

    /// Waits for the first of SIGINT, SIGTERM and SIGHUP. The handlers are installed when
    /// this is first polled; a signal whose handler cannot be installed is never reported.
    pub async fn wait() -> Interrupt {
        use tokio::signal::unix::{signal, SignalKind};
        async fn on(kind: SignalKind) {
            match signal(kind) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = on(SignalKind::interrupt()) => Interrupt::CtrlC,
            _ = on(SignalKind::terminate()) => Interrupt::Terminate,
            _ = on(SignalKind::hangup()) => Interrupt::Hangup,
        }
    }
}

impl fmt::Display for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Interrupt::CtrlC => "Ctrl-C",
            Interrupt::Terminate => "SIGTERM received",
            Interrupt::Hangup => "SIGHUP received",
        })
    }
}

pub use crate::buildkit::token::new_id;

/// The build function's future, run beside the solve.
pub(super) type SideFuture<T> = Pin<Box<dyn Future<Output = Result<T, BuildError>> + Send>>;

impl Client {
    /// Runs a build in in-client gateway mode: `run` gets a [`Bridge`] for this build and
    /// must end by calling [`Bridge::return_result`] (or `return_error`). Progress goes to
    /// stderr; Ctrl-C cancels the solve on the daemon.
    ///
    /// The daemon's gateway caps [`REQUIRED_GATEWAY_CAPS`] are checked with a Ping before
    /// `run` starts (the caps stay available through [`Bridge::caps`]).
    pub async fn build<F, Fut, T, E>(
        &self,
        opts: BuildOptions,
        run: F,
    ) -> Result<BuildOutput<T>, BuildError>
    where
        F: FnOnce(Bridge) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let (build_ref, session_id) = (new_id(), new_id());
        // The session id goes into the LLB's local sources (`local.session`), so that
        // identical locals of concurrent builds are not merged into one vertex reading
        // whichever build's directory came first.
        let bridge = Bridge::new(self.channel.clone(), Some(&build_ref))?.with_session(&session_id);
        let side: SideFuture<T> = Box::pin(async move {
            let caps = bridge.ping().await?;
            if let Err(e) = caps.require_frontend(REQUIRED_GATEWAY_CAPS) {
                let _ = bridge.return_error(error_status(e.to_string())).await;
                return Err(e.into());
            }
            match run(bridge.clone()).await {
                Ok(v) if bridge.has_returned() => Ok(v),
                Ok(_) => {
                    let _ = bridge
                        .return_error(error_status(BuildError::NoReturn.to_string()))
                        .await;
                    Err(BuildError::NoReturn)
                }
                Err(e) => {
                    let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                    if !bridge.has_returned() {
                        let _ = bridge.return_error(error_status(e.to_string())).await;
                    }
                    Err(BuildError::Function(e))
                }
            }
        });
        let out = self
            .solve_with((build_ref, session_id), opts, "", Some(side))
            .await?;
        Ok(BuildOutput {
            build_ref: out.build_ref,
            exporter_response: out.exporter_response,
            value: out.value.ok_or(BuildError::NoReturn)?,
        })
    }

    /// Runs a build whose definition comes from a frontend image (`gateway.v0` with
    /// `source=<image>`), e.g. torchkit's own `# syntax=` image.
    pub async fn build_frontend(
        &self,
        mut opts: BuildOptions,
        frontend: GatewayFrontend,
    ) -> Result<BuildOutput<()>, BuildError> {
        opts.frontend_attrs.extend(frontend.attrs);
        opts.frontend_attrs
            .insert("source".into(), frontend.source.clone());
        self.solve_with(
            (new_id(), new_id()),
            opts,
            "gateway.v0",
            None::<SideFuture<()>>,
        )
        .await
        .map(|o| BuildOutput {
            build_ref: o.build_ref,
            exporter_response: o.exporter_response,
            value: (),
        })
    }
}
