//! Data on stdout when stdout cannot take it: a reader that went away (EPIPE) ends a command
//! quietly with 141, as a process killed by SIGPIPE; a full device (ENOSPC, `/dev/full`) is an
//! error (`writing to stdout: …`, exit 1). Never a panic.

use std::path::Path;
use std::process::Stdio;

mod support;
use support::{Run, TestCommand};

fn quickstart() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/quickstart/torchkit.toml")
        .display()
        .to_string()
}

/// Commands that write data to stdout and need neither a daemon nor the network.
fn commands() -> Vec<Vec<String>> {
    let spec = quickstart();
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["plan", &spec]),
        v(&["plan", "--json", &spec]),
        v(&["resolve", "--torch", "2.8.0", "--cuda", "12.8"]),
        v(&["resolve", "--json", "--torch", "2.8.0"]),
        v(&["probe"]),
        v(&["probe", "--json"]),
        v(&["llb", &spec]),
        v(&["graph", &spec]),
        v(&["matrix", "show"]),
    ]
}

/// `torchkit ARGS` with stdout set to `stdout`.
fn run_with_stdout(args: &[String], stdout: Stdio) -> Run {
    let mut c = TestCommand::new();
    c.args(args);
    // No nvidia-smi: probe reports the same on every host.
    c.env("PATH", "/nonexistent");
    c.cmd().stdout(stdout);
    c.run()
}

#[test]
fn a_closed_pipe_ends_the_command_quietly_with_141() {
    for args in commands() {
        let (reader, writer) = std::io::pipe().unwrap();
        // The reader is gone before the command writes: every write is EPIPE.
        drop(reader);
        let r = run_with_stdout(&args, Stdio::from(writer));
        assert_eq!(r.code, Some(141), "torchkit {args:?}:\n{}", r.describe());
        assert!(
            !r.stderr.contains("panicked") && !r.stderr.contains("error:"),
            "torchkit {args:?}:\n{}",
            r.describe()
        );
    }
}

#[test]
fn a_full_device_is_an_error_not_a_panic() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    for args in commands() {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let r = run_with_stdout(&args, Stdio::from(full));
        assert_eq!(r.code, Some(1), "torchkit {args:?}:\n{}", r.describe());
        assert!(
            r.stderr
                .starts_with("error: writing to stdout: No space left on device\n"),
            "torchkit {args:?}:\n{}",
            r.describe()
        );
        assert!(r.stderr.contains("\nhint: "), "{}", r.describe());
        assert!(!r.stderr.contains("panicked"), "{}", r.describe());
    }
}
