//! Host facts for resolution: the NVIDIA driver version, the CUDA driver API level it
//! supports, and the GPUs with their compute capabilities.
//!
//! - [`parse`]: pure parsers for `nvidia-smi` (banner and `--query-gpu` CSV) and
//!   `/proc/driver/nvidia/version`; no IO, fuzzed (`fuzz/`).
//! - [`facts`]: [`HostFacts`] and the pure [`assemble`] that combines the raw outputs, with the
//!   fallbacks (R470 without `compute_cap`, banner, kernel module) and notes for humans;
//!   [`for_resolver`] turns the facts into the resolver's `(driver, gpus)`.
//! - `host` (feature `io`): the only IO: runs `nvidia-smi` with a timeout and reads the `/proc`
//!   file. No driver on the host is a normal outcome, not an error.
//!
//! The formats are described in `cuda-torch-matrix.md` §4 ("What the host reports").

pub mod error;
pub mod facts;
pub mod parse;

#[cfg(feature = "io")]
pub mod host;

pub use error::{Input, ProbeError};
pub use facts::{
    assemble, for_resolver, needs_query_without_compute_cap, Gpu, HostFacts, Observations,
    Observed, Source,
};
#[cfg(feature = "io")]
pub use host::{observe, probe, probe_with, ProbeConfig};
pub use parse::{
    parse_proc_version, parse_query_gpu, parse_smi_header, KernelModule, ModuleFlavor, QueryRow,
    SmiHeader, QUERY_FIELDS, QUERY_FIELDS_NO_CC,
};
