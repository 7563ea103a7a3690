//! Why a piece of probe output could not be read.
//!
//! Each variant names the source it came from, so a note such as "nvidia-smi --query-gpu: …"
//! tells the user which command to run by hand. [`Hint`] gives the fix where there is one.

use crate::error::Hint;

/// Which output a parser was reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `nvidia-smi --query-gpu=… --format=csv[,noheader]`.
    QueryGpu,
    /// The banner of plain `nvidia-smi`.
    SmiHeader,
    /// `/proc/driver/nvidia/version`.
    ProcVersion,
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Input::QueryGpu => "nvidia-smi --query-gpu",
            Input::SmiHeader => "nvidia-smi",
            Input::ProcVersion => "/proc/driver/nvidia/version",
        })
    }
}

/// A probe output that did not parse, or that reports a known driver failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The output was empty (or only whitespace).
    #[error("{input}: empty output")]
    Empty {
        /// The output being read.
        input: Input,
    },

    /// `nvidia-smi` does not know a requested `--query-gpu` field. R470 drivers print
    /// `Field "compute_cap" is not a valid field to query.` and exit with status 2.
    #[error("{input}: field \"{field}\" is not a valid field to query on this driver")]
    InvalidField {
        /// The output being read.
        input: Input,
        /// The field nvidia-smi rejected, e.g. `compute_cap`.
        field: String,
    },

    /// `nvidia-smi` is installed but cannot reach the kernel driver.
    #[error("{input}: nvidia-smi could not communicate with the NVIDIA driver")]
    DriverNotLoaded {
        /// The output being read.
        input: Input,
    },

    /// The user-space driver libraries and the loaded kernel module differ (typical after a
    /// driver upgrade without a reboot).
    #[error("{input}: NVML reports a driver/library version mismatch")]
    VersionMismatch {
        /// The output being read.
        input: Input,
    },

    /// The driver is loaded but sees no GPU.
    #[error("{input}: no NVIDIA devices were found")]
    NoDevices {
        /// The output being read.
        input: Input,
    },

    /// The output does not have the expected shape.
    #[error("{input}: line {line}: {reason}")]
    Malformed {
        /// The output being read.
        input: Input,
        /// 1-based line number.
        line: usize,
        /// What was expected and what was found.
        reason: String,
    },
}

impl ProbeError {
    /// The output the error is about.
    pub fn input(&self) -> Input {
        match self {
            ProbeError::Empty { input }
            | ProbeError::InvalidField { input, .. }
            | ProbeError::DriverNotLoaded { input }
            | ProbeError::VersionMismatch { input }
            | ProbeError::NoDevices { input }
            | ProbeError::Malformed { input, .. } => *input,
        }
    }
}

impl Hint for ProbeError {
    fn hint(&self) -> Option<String> {
        match self {
            ProbeError::InvalidField { field, .. } if field == "compute_cap" => Some(
                "this nvidia-smi predates the compute_cap field (R470 or older), so GPUs \
                 are reported by product name, without a compute capability"
                    .to_owned(),
            ),
            ProbeError::InvalidField { .. } => None,
            ProbeError::DriverNotLoaded { .. } => Some(
                "check that the kernel module is loaded (`lsmod | grep nvidia`, \
                 `sudo modprobe nvidia`), or reboot after installing the driver"
                    .to_owned(),
            ),
            ProbeError::VersionMismatch { .. } => Some(
                "the driver was upgraded but the old kernel module is still loaded; reboot \
                 (or unload and reload the nvidia modules)"
                    .to_owned(),
            ),
            ProbeError::NoDevices { .. } => Some(
                "the driver is installed but sees no GPU; in a container, start it with \
                 `--gpus all` (NVIDIA Container Toolkit)"
                    .to_owned(),
            ),
            ProbeError::Empty { input } | ProbeError::Malformed { input, .. } => Some(format!(
                "run `{}` by hand and report its output if it looks normal",
                match input {
                    Input::QueryGpu =>
                        "nvidia-smi --query-gpu=driver_version,name,compute_cap --format=csv,noheader",
                    Input::SmiHeader => "nvidia-smi",
                    Input::ProcVersion => "cat /proc/driver/nvidia/version",
                }
            )),
        }
    }
}
