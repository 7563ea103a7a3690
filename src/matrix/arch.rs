//! GPU architecture lists (`TORCH_CUDA_ARCH_LIST`) and the cubin/PTX matching rule.
//!
//! Rule (reference §6.3, [S25][S3]): a cubin `X.Y` runs on a GPU `X.Z` with `Z >= Y` and the
//! same major; a `+PTX` entry `A.B` can be JIT-compiled for any GPU with capability `>= A.B`,
//! but only when the driver is at least as new as the toolkit that produced the PTX.

use std::fmt;

use super::version::{ComputeCapability, ParseVersionError};

/// One entry of an arch list: `"9.0"` (cubin) or `"12.0+PTX"` (cubin plus PTX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchEntry {
    /// The architecture the cubin (and PTX) targets.
    pub cc: ComputeCapability,
    /// Whether `compute_XY` PTX ships too.
    pub ptx: bool,
}

/// A parsed `TORCH_CUDA_ARCH_LIST`, e.g. `7.0;7.5;8.0;8.6;9.0;10.0;12.0+PTX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchList {
    /// Entries in list order.
    pub entries: Vec<ArchEntry>,
}

/// How a GPU is covered by an arch list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// A cubin of the same major and an equal or lower minor (the best such entry).
    Native(ArchEntry),
    /// Only PTX of an older architecture: JIT at first use, needs driver CUDA >= image CUDA.
    PtxJit(ArchEntry),
    /// No usable kernels.
    None,
}

impl ArchList {
    /// Parse the `;`-separated list.
    pub fn parse(s: &str) -> Result<Self, ParseVersionError> {
        let mut entries = Vec::new();
        for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            let (cc, ptx) = match item.strip_suffix("+PTX") {
                Some(base) => (base, true),
                None => (item, false),
            };
            entries.push(ArchEntry {
                cc: ComputeCapability::parse(cc)?,
                ptx,
            });
        }
        Ok(ArchList { entries })
    }

    /// Where `gpu` finds kernels in this list.
    pub fn coverage(&self, gpu: ComputeCapability) -> Coverage {
        let native = self
            .entries
            .iter()
            .filter(|e| e.cc.major == gpu.major && e.cc.minor <= gpu.minor)
            .max_by_key(|e| e.cc);
        if let Some(e) = native {
            return Coverage::Native(*e);
        }
        let ptx = self
            .entries
            .iter()
            .filter(|e| e.ptx && e.cc <= gpu)
            .max_by_key(|e| e.cc);
        match ptx {
            Some(e) => Coverage::PtxJit(*e),
            None => Coverage::None,
        }
    }

    /// `sm_50 … sm_90` style summary for messages.
    pub fn summary(&self) -> String {
        self.entries
            .iter()
            .map(|e| {
                if e.ptx {
                    format!("{}+PTX", e.cc.sm())
                } else {
                    e.cc.sm()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for ArchList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self
            .entries
            .iter()
            .map(|e| {
                if e.ptx {
                    format!("{}+PTX", e.cc)
                } else {
                    e.cc.to_string()
                }
            })
            .collect();
        f.write_str(&s.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(s: &str) -> ComputeCapability {
        ComputeCapability::parse(s).unwrap()
    }

    #[test]
    fn cubin_covers_same_major_equal_or_higher_minor() {
        let l = ArchList::parse("5.0;6.0;7.0;7.5;8.0;8.6;9.0").unwrap();
        assert_eq!(l.coverage(cc("6.1")), Coverage::Native(l.entries[1]));
        assert_eq!(l.coverage(cc("8.9")), Coverage::Native(l.entries[5]));
        assert_eq!(l.coverage(cc("9.0")), Coverage::Native(l.entries[6]));
        // No +PTX: Blackwell and Kepler have nothing.
        assert_eq!(l.coverage(cc("12.0")), Coverage::None);
        assert_eq!(l.coverage(cc("3.7")), Coverage::None);
    }

    #[test]
    fn ptx_only_forward_never_down() {
        let l = ArchList::parse("7.5;8.0;8.6;9.0;10.0;12.0+PTX").unwrap();
        assert_eq!(l.to_string(), "7.5;8.0;8.6;9.0;10.0;12.0+PTX");
        assert!(matches!(l.coverage(cc("12.1")), Coverage::Native(_)));
        assert!(matches!(l.coverage(cc("13.0")), Coverage::PtxJit(e) if e.cc == cc("12.0")));
        // 11.0 (Jetson Thor): 10.0 is another major and 12.0 PTX cannot JIT down.
        assert_eq!(l.coverage(cc("11.0")), Coverage::None);
        // Volta is absent.
        assert_eq!(l.coverage(cc("7.0")), Coverage::None);
    }
}
