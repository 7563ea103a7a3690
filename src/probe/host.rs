//! **IO edge**: runs `nvidia-smi` and reads `/proc/driver/nvidia/version`. This is the only
//! part of [`crate::probe`] that touches processes or files; it collects raw text into
//! [`Observations`] and leaves every decision to the pure [`assemble`].

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::facts::{assemble, needs_query_without_compute_cap, HostFacts, Observations, Observed};
use super::parse::{QUERY_FIELDS, QUERY_FIELDS_NO_CC};

/// Where to look, and how long to wait.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The `nvidia-smi` program; a bare name is looked up on `PATH`.
    pub nvidia_smi: PathBuf,
    /// The kernel module's version file.
    pub proc_version: PathBuf,
    /// Limit for each `nvidia-smi` run (it can take seconds on many-GPU hosts without
    /// persistence mode); a run past it is killed and noted.
    pub timeout: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            nvidia_smi: PathBuf::from("nvidia-smi"),
            proc_version: PathBuf::from("/proc/driver/nvidia/version"),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Probe this host with the default [`ProbeConfig`]. Never fails: a host without an NVIDIA
/// driver yields [`HostFacts`] with no driver and a note that says so.
pub fn probe() -> HostFacts {
    probe_with(&ProbeConfig::default())
}

/// Probe with explicit locations and timeout.
pub fn probe_with(config: &ProbeConfig) -> HostFacts {
    assemble(&observe(config))
}

/// Collect the raw outputs: `--query-gpu` (and the R470 retry without `compute_cap` only when
/// the first run rejects that field), the plain `nvidia-smi` banner, and the `/proc` file.
pub fn observe(config: &ProbeConfig) -> Observations {
    let query = run_smi(config, &query_args(QUERY_FIELDS));
    let smi_absent = matches!(query, Observed::Absent(_));
    let query_no_cc = if needs_query_without_compute_cap(&query) {
        run_smi(config, &query_args(QUERY_FIELDS_NO_CC))
    } else {
        Observed::Skipped
    };
    let smi = if smi_absent {
        query.clone()
    } else {
        run_smi(config, &[])
    };
    let proc_version = read_file(&config.proc_version);
    Observations {
        query,
        query_no_cc,
        smi,
        proc_version,
    }
}

fn query_args(fields: &[&str]) -> Vec<String> {
    vec![
        format!("--query-gpu={}", fields.join(",")),
        "--format=csv,noheader".to_owned(),
    ]
}

fn read_file(path: &std::path::Path) -> Observed {
    match std::fs::read_to_string(path) {
        Ok(text) => Observed::Output { text, status: None },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Observed::Absent(format!("{} does not exist", path.display()))
        }
        Err(e) => Observed::Failed(format!("cannot read {}: {e}", path.display())),
    }
}

fn run_smi(config: &ProbeConfig, args: &[String]) -> Observed {
    let program = config.nvidia_smi.display().to_string();
    let shown = std::iter::once(program.as_str())
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = match Command::new(&config.nvidia_smi)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Observed::Absent(if config.nvidia_smi.components().count() > 1 {
                format!("`{program}` does not exist")
            } else {
                format!("`{program}` is not on PATH")
            });
        }
        Err(e) => return Observed::Failed(format!("cannot run `{shown}`: {e}")),
    };
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                // A read error leaves what was read so far; the parsers judge the text.
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );

    let deadline = Instant::now() + config.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                // Kill and reap. The reader threads are left to finish on their own: a
                // grandchild could keep the pipes open past the kill.
                let _ = child.kill();
                let _ = child.wait();
                return Observed::Failed(format!(
                    "`{shown}` did not finish within {} s and was stopped",
                    config.timeout.as_secs_f32()
                ));
            }
            Err(e) => return Observed::Failed(format!("waiting for `{shown}`: {e}")),
        }
    };
    let mut text = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    text.push_str(&String::from_utf8_lossy(&err.join().unwrap_or_default()));
    Observed::Output {
        text,
        status: status.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_and_file_are_absent_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let config = ProbeConfig {
            nvidia_smi: dir.path().join("nvidia-smi"),
            proc_version: dir.path().join("version"),
            timeout: Duration::from_secs(5),
        };
        let obs = observe(&config);
        assert!(matches!(&obs.query, Observed::Absent(w) if w.contains("does not exist")));
        assert_eq!(obs.query_no_cc, Observed::Skipped);
        assert!(matches!(obs.proc_version, Observed::Absent(_)));
        let facts = assemble(&obs);
        assert_eq!(facts.driver, None);
        assert!(facts.notes[0].starts_with("no NVIDIA driver found on this host"));
    }

    #[cfg(unix)]
    #[test]
    fn a_hanging_nvidia_smi_is_stopped_at_the_timeout() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let smi = dir.path().join("nvidia-smi");
        std::fs::write(&smi, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = ProbeConfig {
            nvidia_smi: smi,
            proc_version: dir.path().join("version"),
            timeout: Duration::from_millis(300),
        };
        let started = Instant::now();
        let obs = observe(&config);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(matches!(&obs.query, Observed::Failed(w) if w.contains("did not finish")));
    }
}
