//! Host facts and the pure decision of how to combine the probe sources into them.
//!
//! The IO edge ([`super::host`]) only collects raw outputs into [`Observations`];
//! [`assemble`] decides what they mean: which source wins, what falls back to what, and which
//! notes to show. That keeps the whole fallback chain testable on fixtures.

use serde::Serialize;

use super::error::ProbeError;
use super::parse::{
    parse_proc_version, parse_query_gpu, parse_smi_header, rejects_compute_cap, KernelModule,
    QueryRow, QUERY_FIELDS, QUERY_FIELDS_NO_CC,
};
use crate::error::Hint;

/// What this host reports about its NVIDIA driver and GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HostFacts {
    /// Installed driver version, e.g. `580.159.04`; `None` when no driver was found.
    pub driver: Option<String>,
    /// Highest CUDA driver API version the driver supports (`CUDA Version` in the `nvidia-smi`
    /// banner), e.g. `13.0`. Not a toolkit installed on the host.
    pub cuda_driver_api: Option<String>,
    /// One entry per GPU, in nvidia-smi's order.
    pub gpus: Vec<Gpu>,
    /// The loaded kernel module, from `/proc/driver/nvidia/version`.
    pub kernel_module: Option<KernelModule>,
    /// The sources that contributed facts, in the order they were consulted.
    pub sources: Vec<Source>,
    /// Fallbacks taken, sources that failed, and disagreements, for humans.
    pub notes: Vec<String>,
}

impl HostFacts {
    /// Whether any source found an NVIDIA driver.
    pub fn has_driver(&self) -> bool {
        self.driver.is_some()
    }
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// Product name as nvidia-smi prints it, e.g. `NVIDIA H200`.
    pub name: String,
    /// CUDA compute capability, e.g. `9.0`; `None` when the driver cannot report it (R470).
    pub compute_capability: Option<String>,
}

/// A probe source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `nvidia-smi --query-gpu=driver_version,name,compute_cap --format=csv,noheader`.
    QueryGpu,
    /// The R470 fallback `nvidia-smi --query-gpu=driver_version,name --format=csv,noheader`.
    QueryGpuNoComputeCap,
    /// The banner of plain `nvidia-smi`.
    SmiHeader,
    /// `/proc/driver/nvidia/version`.
    ProcVersion,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::QueryGpu => "nvidia-smi --query-gpu",
            Source::QueryGpuNoComputeCap => "nvidia-smi --query-gpu without compute_cap",
            Source::SmiHeader => "nvidia-smi",
            Source::ProcVersion => "/proc/driver/nvidia/version",
        })
    }
}

/// The raw result of one probe read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The program or file does not exist: the normal case on a host without a driver.
    /// The text says what is missing, e.g. "`nvidia-smi` is not on PATH".
    Absent(String),
    /// It exists but could not be read or run (permission, timeout); the text says why.
    Failed(String),
    /// It ran (whatever its exit status) or was read.
    Output {
        /// stdout followed by stderr (nvidia-smi prints some failures on either).
        text: String,
        /// Exit status of a command; `None` for a file or a command killed by a signal.
        status: Option<i32>,
    },
    /// Not attempted, because an earlier result made it pointless.
    Skipped,
}

/// Everything the IO edge collected, unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observations {
    /// `nvidia-smi --query-gpu=driver_version,name,compute_cap --format=csv,noheader`.
    pub query: Observed,
    /// The same without `compute_cap`, run only when [`rejects_compute_cap`] says so.
    pub query_no_cc: Observed,
    /// Plain `nvidia-smi`.
    pub smi: Observed,
    /// `/proc/driver/nvidia/version`.
    pub proc_version: Observed,
}

/// Whether the IO edge should run the R470 retry without `compute_cap`.
pub fn needs_query_without_compute_cap(query: &Observed) -> bool {
    matches!(query, Observed::Output { text, .. } if rejects_compute_cap(text))
}

/// Combine the observations into [`HostFacts`].
///
/// The driver version comes from the `--query-gpu` output, else the `nvidia-smi` banner, else
/// the kernel module; disagreements are noted. GPUs come only from `--query-gpu` (with the R470
/// fallback to names without compute capability). With neither `nvidia-smi` nor the `/proc`
/// file, the result holds no driver and one note saying so.
pub fn assemble(obs: &Observations) -> HostFacts {
    let mut facts = HostFacts::default();
    // Whether the GPU list is known, possibly known to be empty.
    let mut gpus_known = false;

    // GPUs and driver from --query-gpu.
    match parsed(&obs.query, |t| parse_query_gpu(t, QUERY_FIELDS)) {
        Parsed::Ok(rows) => {
            facts.sources.push(Source::QueryGpu);
            take_rows(&mut facts, &rows, Source::QueryGpu);
            gpus_known = true;
        }
        Parsed::Err(ProbeError::InvalidField { field, .. }) if field == "compute_cap" => {
            facts.notes.push(
                "this driver's nvidia-smi does not know the `compute_cap` query field \
                 (R470 or older): compute capability is unknown, GPUs are listed by name"
                    .to_owned(),
            );
            match parsed(&obs.query_no_cc, |t| parse_query_gpu(t, QUERY_FIELDS_NO_CC)) {
                Parsed::Ok(rows) => {
                    facts.sources.push(Source::QueryGpuNoComputeCap);
                    take_rows(&mut facts, &rows, Source::QueryGpuNoComputeCap);
                    gpus_known = true;
                }
                other => note_failure(
                    &mut facts,
                    "nvidia-smi --query-gpu (without compute_cap)",
                    other,
                ),
            }
        }
        other => {
            gpus_known = matches!(other, Parsed::Err(ProbeError::NoDevices { .. }));
            note_failure(&mut facts, "nvidia-smi --query-gpu", other);
        }
    }

    // CUDA driver API level (and the driver, if still unknown) from the banner.
    match parsed(&obs.smi, parse_smi_header) {
        Parsed::Ok(header) => {
            facts.sources.push(Source::SmiHeader);
            facts.cuda_driver_api = header.cuda;
            agree(&mut facts, header.driver, "the nvidia-smi banner");
        }
        // The same failure was already noted for --query-gpu.
        Parsed::Err(e) if same_failure(&obs.query, &e) => {}
        other => note_failure(&mut facts, "nvidia-smi", other),
    }

    // The loaded kernel module.
    match parsed(&obs.proc_version, parse_proc_version) {
        Parsed::Ok(module) => {
            facts.sources.push(Source::ProcVersion);
            agree(
                &mut facts,
                module.version.clone(),
                "the loaded kernel module (/proc/driver/nvidia/version)",
            );
            facts.kernel_module = Some(module);
        }
        other => note_failure(&mut facts, "/proc/driver/nvidia/version", other),
    }

    if let (Observed::Absent(smi), Observed::Absent(proc)) = (&obs.smi, &obs.proc_version) {
        facts.notes.insert(
            0,
            format!("no NVIDIA driver found on this host: {smi}, and {proc}"),
        );
    } else if facts.driver.is_some() && !gpus_known {
        let why = match &obs.query {
            Observed::Absent(why) => format!(" ({why})"),
            _ => String::new(),
        };
        facts.notes.push(format!(
            "the GPU list is unknown{why}; only the driver version was found"
        ));
    }
    facts
}

/// The resolver's view of the host: the driver version, and one entry per distinct GPU kind,
/// its compute capability when known, else its product name (first-seen order, duplicates
/// removed, so eight H100s give one `"9.0"`).
pub fn for_resolver(facts: &HostFacts) -> (Option<String>, Vec<String>) {
    let mut gpus: Vec<String> = Vec::new();
    for g in &facts.gpus {
        let key = g.compute_capability.as_ref().unwrap_or(&g.name);
        if !gpus.contains(key) {
            gpus.push(key.clone());
        }
    }
    (facts.driver.clone(), gpus)
}

enum Parsed<T> {
    Ok(T),
    Err(ProbeError),
    /// Absent or skipped: nothing to say here.
    Missing,
    /// Could not be run or read; the reason.
    Failed(String),
}

fn parsed<T>(obs: &Observed, parse: impl FnOnce(&str) -> Result<T, ProbeError>) -> Parsed<T> {
    match obs {
        Observed::Output { text, status } => match parse(text) {
            Ok(v) => Parsed::Ok(v),
            Err(ProbeError::Empty { .. }) if status.is_some_and(|s| s != 0) => {
                Parsed::Failed(format!(
                    "exited with status {} and printed nothing",
                    status.unwrap_or_default()
                ))
            }
            Err(e) => Parsed::Err(e),
        },
        Observed::Failed(why) => Parsed::Failed(why.clone()),
        Observed::Absent(_) | Observed::Skipped => Parsed::Missing,
    }
}

fn same_failure(query: &Observed, e: &ProbeError) -> bool {
    let Observed::Output { text, .. } = query else {
        return false;
    };
    matches!(
        (parse_query_gpu(text, QUERY_FIELDS), e),
        (
            Err(ProbeError::DriverNotLoaded { .. }),
            ProbeError::DriverNotLoaded { .. }
        ) | (
            Err(ProbeError::VersionMismatch { .. }),
            ProbeError::VersionMismatch { .. }
        )
    )
}

fn note_failure<T>(facts: &mut HostFacts, what: &str, p: Parsed<T>) {
    match p {
        Parsed::Ok(_) | Parsed::Missing => {}
        Parsed::Failed(why) => facts.notes.push(format!("{what}: {why}")),
        Parsed::Err(e) => {
            let mut note = e.to_string();
            if let Some(h) = e.hint() {
                note.push_str(" (");
                note.push_str(&h);
                note.push(')');
            }
            facts.notes.push(note);
        }
    }
}

fn take_rows(facts: &mut HostFacts, rows: &[QueryRow], source: Source) {
    for row in rows {
        if let Some(d) = &row.driver_version {
            agree(facts, d.clone(), &format!("`{source}`"));
        }
        facts.gpus.push(Gpu {
            name: row.name.clone().unwrap_or_else(|| "unknown GPU".to_owned()),
            compute_capability: row.compute_cap.clone(),
        });
    }
}

/// Record `driver` if none is known yet, else note a disagreement (once per differing value).
fn agree(facts: &mut HostFacts, driver: String, from: &str) {
    match &facts.driver {
        None => facts.driver = Some(driver),
        Some(known) if *known == driver => {}
        Some(known) => {
            let note = format!(
                "{from} reports driver {driver}, but {known} was found first; a reboot may be \
                 pending after a driver upgrade"
            );
            if !facts.notes.contains(&note) {
                facts.notes.push(note);
            }
        }
    }
}
