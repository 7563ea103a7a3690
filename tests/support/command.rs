//! [`TestCommand`]: the one way the tests run the `torchkit` binary (after ripgrep's
//! `tests/util.rs`). It starts from a clean environment, so a developer's shell cannot change
//! what a test sees, and its checks print the command and both streams when they fail.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Environment variables the binary reads that a test must not inherit: every
/// `TORCHKIT_*` (spec overrides, `TORCHKIT_LOCKED`, …), every `BUILDKIT_*` (`BUILDKIT_HOST`,
/// `BUILDKIT_PROGRESS`, the frontend's `BUILDKIT_FRONTEND_OPT_*`), `BUILDX_BUILDER` and
/// `SOURCE_DATE_EPOCH`.
fn inherited_by_mistake(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with("TORCHKIT_")
        || name.starts_with("BUILDKIT_")
        || name == "BUILDX_BUILDER"
        || name == "SOURCE_DATE_EPOCH"
}

/// How many stderr lines a failed check shows (a build's progress log can be long).
const STDERR_TAIL: usize = 80;

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A finished run of the binary: its exit code and both streams as text, and the raw
/// [`Output`] (for binary stdout such as `torchkit llb`'s protobuf).
#[derive(Debug)]
pub struct Run {
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    /// stdout, lossily decoded.
    pub stdout: String,
    /// stderr, lossily decoded.
    pub stderr: String,
    /// What [`Command::output`] returned.
    pub raw: Output,
}

impl From<Output> for Run {
    fn from(raw: Output) -> Run {
        Run::new(raw)
    }
}

impl Run {
    fn new(raw: Output) -> Run {
        Run {
            code: raw.status.code(),
            stdout: String::from_utf8_lossy(&raw.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&raw.stderr).into_owned(),
            raw,
        }
    }

    /// Whether the binary exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout parsed as one JSON value (panics with the output when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The run described for a failure message: exit code, stdout, the tail of stderr.
    pub fn describe(&self) -> String {
        format!(
            "exit code: {:?}\n--- stdout\n{}\n--- stderr (last {STDERR_TAIL} lines)\n{}",
            self.code,
            self.stdout,
            tail(&self.stderr, STDERR_TAIL)
        )
    }
}

/// A `torchkit` invocation under construction.
///
/// ```ignore
/// let out = TestCommand::new().args(["plan", spec]).stdout();
/// let err = TestCommand::new().args(["plan", bad]).assert_err();
/// ```
#[derive(Debug)]
pub struct TestCommand {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Default for TestCommand {
    fn default() -> Self {
        TestCommand::new()
    }
}

impl TestCommand {
    /// The built `torchkit` binary with none of the variables it reads inherited (see
    /// [`inherited_by_mistake`]), stdin closed.
    pub fn new() -> TestCommand {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_torchkit"));
        for (name, _) in std::env::vars_os() {
            if inherited_by_mistake(&name) {
                cmd.env_remove(name);
            }
        }
        cmd.stdin(Stdio::null());
        TestCommand { cmd, stdin: None }
    }

    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut TestCommand {
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, A>(&mut self, args: I) -> &mut TestCommand
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable for this run.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut TestCommand {
        self.cmd.env(key, value);
        self
    }

    /// Runs in `dir`.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut TestCommand {
        self.cmd.current_dir(dir);
        self
    }

    /// Feeds `input` on stdin (closed otherwise).
    pub fn stdin(&mut self, input: impl Into<Vec<u8>>) -> &mut TestCommand {
        self.stdin = Some(input.into());
        self
    }

    /// The underlying [`Command`], for what the builder does not cover (stdio of a spawned
    /// child).
    pub fn cmd(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Starts the binary and returns the child (for tests that act while it runs).
    pub fn spawn(&mut self) -> Child {
        self.cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.cmd))
    }

    /// Runs to the end; checks nothing.
    pub fn run(&mut self) -> Run {
        let raw = match self.stdin.take() {
            None => self.cmd.output(),
            Some(input) => {
                self.cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = self.spawn();
                let mut pipe = child.stdin.take().expect("piped stdin");
                // Written from a thread: a child that fills its stdout before reading all
                // of stdin must not deadlock against us.
                let writer = std::thread::spawn(move || pipe.write_all(&input));
                let out = child.wait_with_output();
                writer
                    .join()
                    .expect("stdin writer")
                    .unwrap_or_else(|e| panic!("writing stdin of {:?}: {e}", self.cmd));
                out
            }
        };
        Run::new(raw.unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.cmd)))
    }

    /// The raw [`Output`] of a run; checks nothing.
    pub fn output(&mut self) -> Output {
        self.run().raw
    }

    /// Runs and asserts exit code 0, showing the command and both streams otherwise.
    pub fn assert_ok(&mut self) -> Run {
        let r = self.run();
        assert!(r.success(), "{:?} failed:\n{}", self.cmd, r.describe());
        r
    }

    /// Runs, asserts exit code 0, and returns stdout.
    pub fn stdout(&mut self) -> String {
        self.assert_ok().stdout
    }

    /// Runs and asserts it fails with `code`; returns stderr.
    pub fn assert_exit_code(&mut self, code: i32) -> String {
        let r = self.run();
        assert_eq!(
            r.code,
            Some(code),
            "{:?} should exit with {code}:\n{}",
            self.cmd,
            r.describe()
        );
        r.stderr
    }

    /// Runs and asserts it fails as torchkit reports an error (exit code 1); returns stderr.
    pub fn assert_err(&mut self) -> String {
        self.assert_exit_code(1)
    }
}
