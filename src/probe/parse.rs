//! Pure parsers for what an NVIDIA host prints about itself. Text in, typed data out: no
//! process, file or environment access here (that is the `host` module, feature `io`), so
//! every function runs on fixtures and under the fuzzer.
//!
//! Formats (`cuda-torch-matrix.md` §4):
//! - `nvidia-smi` banner: `| NVIDIA-SMI 580.159.04   Driver Version: 580.159.04   CUDA Version: 13.0 |`;
//!   `CUDA Version` is the highest CUDA driver API the driver supports, not an installed toolkit.
//! - `nvidia-smi --query-gpu=driver_version,name,compute_cap --format=csv,noheader`: one line per
//!   GPU, cells separated by `", "`, in the order requested. With `--format=csv` a header line
//!   (`driver_version, name, compute_cap, memory.total [MiB]`) comes first and names the columns.
//!   R470 drivers reject `compute_cap` with `Field "compute_cap" is not a valid field to query.`
//! - `/proc/driver/nvidia/version`, proprietary module:
//!   `NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  …`; open module:
//!   `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build …`.
//!   The version is the first token shaped like `N.N[.N]`, not the token after `Kernel Module`.

use serde::Serialize;

use super::error::{Input, ProbeError};

/// The fields torchkit asks `nvidia-smi --query-gpu` for, in order.
pub const QUERY_FIELDS: &[&str] = &["driver_version", "name", "compute_cap"];

/// The fields of the retry on drivers that reject `compute_cap` (R470 and older).
pub const QUERY_FIELDS_NO_CC: &[&str] = &["driver_version", "name"];

/// The banner of plain `nvidia-smi`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmiHeader {
    /// `Driver Version`, e.g. `580.159.04`.
    pub driver: String,
    /// `CUDA Version`, e.g. `13.0`: the newest CUDA driver API this driver supports.
    /// `None` when the banner shows `N/A` or omits it.
    pub cuda: Option<String>,
}

/// One GPU line of `nvidia-smi --query-gpu` output. A field is `None` when it was not
/// requested or nvidia-smi printed `[N/A]` / `[Not Supported]` for it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct QueryRow {
    /// `driver_version`.
    pub driver_version: Option<String>,
    /// `name` (or `gpu_name`), e.g. `NVIDIA H200`.
    pub name: Option<String>,
    /// `compute_cap`, e.g. `9.0`.
    pub compute_cap: Option<String>,
}

/// Which NVIDIA kernel module is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleFlavor {
    /// The closed-source module (`NVIDIA UNIX x86_64 Kernel Module`).
    Proprietary,
    /// The open GPU kernel module (`NVIDIA UNIX Open Kernel Module for x86_64`).
    Open,
}

/// What `/proc/driver/nvidia/version` says about the loaded kernel module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelModule {
    /// Driver version of the loaded module, e.g. `535.104.05`.
    pub version: String,
    /// Proprietary or open module; `None` for a first line in neither known wording.
    pub flavor: Option<ModuleFlavor>,
    /// CPU architecture named in the line (`x86_64`, `aarch64`), if any.
    pub arch: Option<String>,
}

/// Parse the banner of plain `nvidia-smi` (`Driver Version: …  CUDA Version: …`).
///
/// Known failure messages (driver not loaded, NVML version mismatch) become their own errors.
pub fn parse_smi_header(text: &str) -> Result<SmiHeader, ProbeError> {
    const INPUT: Input = Input::SmiHeader;
    check_blank(text, INPUT)?;
    if let Some(e) = known_failure(text, INPUT) {
        return Err(e);
    }
    for (i, line) in text.lines().enumerate() {
        let bad = |reason: String| ProbeError::Malformed {
            input: INPUT,
            line: i + 1,
            reason,
        };
        let Some(driver) = value_after(line, "Driver Version:") else {
            continue;
        };
        if !is_driver_version(driver) {
            return Err(bad(format!(
                "`Driver Version: {driver}` is not a driver version"
            )));
        }
        let cuda = match value_after(line, "CUDA Version:") {
            Some(v) if is_major_minor(v) => Some(v.to_owned()),
            Some(v) if is_not_available(v) => None,
            None => None,
            Some(v) => {
                return Err(bad(format!(
                    "`CUDA Version: {v}` is not a MAJOR.MINOR version"
                )))
            }
        };
        return Ok(SmiHeader {
            driver: driver.to_owned(),
            cuda,
        });
    }
    Err(ProbeError::Malformed {
        input: INPUT,
        line: 1,
        reason: "no `Driver Version:` banner in the output".to_owned(),
    })
}

/// Parse `nvidia-smi --query-gpu=<fields> --format=csv[,noheader]` output, one row per GPU.
///
/// `fields` are the fields that were requested, in order (e.g. [`QUERY_FIELDS`]). If the first
/// line is a header (`--format=csv` without `noheader`), the header names the columns instead
/// and `fields` is ignored; unit suffixes such as `memory.total [MiB]` are dropped. Columns other
/// than `driver_version`, `name`/`gpu_name` and `compute_cap` are checked for count only.
///
/// An empty row list is never returned: no rows is [`ProbeError::Empty`], and
/// `No devices were found` is [`ProbeError::NoDevices`].
pub fn parse_query_gpu(text: &str, fields: &[&str]) -> Result<Vec<QueryRow>, ProbeError> {
    const INPUT: Input = Input::QueryGpu;
    check_blank(text, INPUT)?;
    if let Some(e) = known_failure(text, INPUT) {
        return Err(e);
    }
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .peekable();

    let header: Vec<String>;
    let columns: Vec<&str> = match lines.peek() {
        Some((_, first)) if is_header(first) => {
            header = split_cells(first)
                .map(|c| strip_unit(c).to_owned())
                .collect();
            lines.next();
            header.iter().map(String::as_str).collect()
        }
        _ => fields.to_vec(),
    };
    if columns.is_empty() {
        return Err(ProbeError::Malformed {
            input: INPUT,
            line: 1,
            reason: "no query fields to match the columns against".to_owned(),
        });
    }

    let mut rows = Vec::new();
    for (n, line) in lines {
        let cells: Vec<&str> = split_cells(line).collect();
        if cells.len() != columns.len() {
            return Err(ProbeError::Malformed {
                input: INPUT,
                line: n,
                reason: format!(
                    "expected {} comma-separated values ({}), found {}",
                    columns.len(),
                    columns.join(", "),
                    cells.len()
                ),
            });
        }
        let mut row = QueryRow::default();
        for (field, cell) in columns.iter().zip(cells) {
            let bad = |what: &str| ProbeError::Malformed {
                input: INPUT,
                line: n,
                reason: format!("{field} `{cell}` is not {what}"),
            };
            let value = if is_not_available(cell) {
                None
            } else {
                Some(cell.to_owned())
            };
            match *field {
                "driver_version" => {
                    if value.as_deref().is_some_and(|v| !is_driver_version(v)) {
                        return Err(bad("a driver version"));
                    }
                    row.driver_version = value;
                }
                "name" | "gpu_name" => {
                    if value.as_deref().is_some_and(|v| !is_gpu_name(v)) {
                        return Err(bad("a GPU name"));
                    }
                    row.name = value;
                }
                "compute_cap" => {
                    if value.as_deref().is_some_and(|v| !is_major_minor(v)) {
                        return Err(bad("a compute capability (MAJOR.MINOR)"));
                    }
                    row.compute_cap = value;
                }
                _ => {}
            }
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(ProbeError::Empty { input: INPUT });
    }
    Ok(rows)
}

/// Parse `/proc/driver/nvidia/version` (proprietary or open kernel module).
pub fn parse_proc_version(text: &str) -> Result<KernelModule, ProbeError> {
    const INPUT: Input = Input::ProcVersion;
    check_blank(text, INPUT)?;
    let (n, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim_start().starts_with("NVRM version:"))
        .ok_or_else(|| ProbeError::Malformed {
            input: INPUT,
            line: 1,
            reason: "no `NVRM version:` line".to_owned(),
        })?;
    let rest = line.trim_start()["NVRM version:".len()..].trim();
    let tokens: Vec<&str> = rest.split_whitespace().collect();
    let version = tokens
        .iter()
        .find(|t| is_driver_version(t))
        .ok_or_else(|| ProbeError::Malformed {
            input: INPUT,
            line: n + 1,
            reason: "no driver version (N.N or N.N.N) after `NVRM version:`".to_owned(),
        })?;
    let (flavor, arch) = if rest.contains("Open Kernel Module") {
        (Some(ModuleFlavor::Open), token_after(&tokens, "for"))
    } else if rest.contains("Kernel Module") {
        (
            Some(ModuleFlavor::Proprietary),
            token_after(&tokens, "UNIX"),
        )
    } else {
        (None, None)
    };
    Ok(KernelModule {
        version: (*version).to_owned(),
        flavor,
        arch: arch.filter(|a| is_arch(a)).map(str::to_owned),
    })
}

/// Whether `text` is nvidia-smi rejecting the `compute_cap` query field (R470 and older), so
/// the query should be repeated with [`QUERY_FIELDS_NO_CC`].
pub fn rejects_compute_cap(text: &str) -> bool {
    matches!(
        known_failure(text, Input::QueryGpu),
        Some(ProbeError::InvalidField { field, .. }) if field == "compute_cap"
    )
}

/// `driver` looks like an NVIDIA driver version: two or three dot-separated groups of digits
/// (`515.76`, `535.104.05`).
pub fn is_driver_version(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_major_minor(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_gpu_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| !c.is_control())
}

fn is_arch(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 16
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// nvidia-smi's placeholders for a value it cannot report.
fn is_not_available(s: &str) -> bool {
    matches!(
        s.trim_matches(|c| c == '[' || c == ']'),
        "N/A" | "Not Supported" | "Unknown Error" | "Insufficient Permissions"
    )
}

/// A header line: every cell is a field name (`memory.total`), optionally with a unit suffix.
fn is_header(line: &str) -> bool {
    split_cells(line).all(|c| {
        let name = strip_unit(c);
        name.starts_with(|ch: char| ch.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    })
}

fn strip_unit(cell: &str) -> &str {
    match cell.find(" [") {
        Some(i) if cell.ends_with(']') => &cell[..i],
        _ => cell,
    }
}

fn split_cells(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(str::trim)
}

/// The whitespace-delimited value after `key` on `line`, without trailing `|` decoration.
fn value_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let i = line.find(key)?;
    line[i + key.len()..]
        .split_whitespace()
        .next()
        .map(|v| v.trim_end_matches('|'))
        .filter(|v| !v.is_empty())
}

fn token_after<'a>(tokens: &[&'a str], word: &str) -> Option<&'a str> {
    tokens
        .iter()
        .position(|t| *t == word)
        .and_then(|i| tokens.get(i + 1))
        .copied()
}

fn check_blank(text: &str, input: Input) -> Result<(), ProbeError> {
    if text.trim().is_empty() {
        Err(ProbeError::Empty { input })
    } else {
        Ok(())
    }
}

/// Messages nvidia-smi prints instead of data.
fn known_failure(text: &str, input: Input) -> Option<ProbeError> {
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Field \"") {
            if let Some((field, tail)) = rest.split_once('"') {
                if tail
                    .trim_start()
                    .starts_with("is not a valid field to query")
                {
                    return Some(ProbeError::InvalidField {
                        input,
                        field: field.to_owned(),
                    });
                }
            }
        }
        if line.contains("couldn't communicate with the NVIDIA driver") {
            return Some(ProbeError::DriverNotLoaded { input });
        }
        if line.contains("Driver/library version mismatch") {
            return Some(ProbeError::VersionMismatch { input });
        }
        if line == "No devices were found" {
            return Some(ProbeError::NoDevices { input });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_versions() {
        for ok in ["515.76", "535.104.05", "470.82.01", "551.78"] {
            assert!(is_driver_version(ok), "{ok}");
        }
        for bad in [
            "",
            "535",
            "535.",
            ".104",
            "535.104.05.1",
            "5a5.1",
            "v535.1",
            "1.2.3 ",
        ] {
            assert!(!is_driver_version(bad), "{bad:?}");
        }
    }

    #[test]
    fn header_detection() {
        assert!(is_header(
            "driver_version, name, compute_cap, memory.total [MiB]"
        ));
        assert!(!is_header("580.159.04, NVIDIA H200, 9.0"));
        assert!(!is_header(
            "Field \"compute_cap\" is not a valid field to query."
        ));
        assert_eq!(strip_unit("memory.total [MiB]"), "memory.total");
        assert_eq!(strip_unit("name"), "name");
    }

    #[test]
    fn malformed_reports_the_line_number() {
        let text = "\nfoo\n| Driver Version: banana   CUDA Version: 12.4 |\n";
        match parse_smi_header(text) {
            Err(ProbeError::Malformed { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn placeholders() {
        for na in ["[N/A]", "N/A", "[Not Supported]", "[Unknown Error]"] {
            assert!(is_not_available(na), "{na}");
        }
        assert!(!is_not_available("9.0"));
    }
}
