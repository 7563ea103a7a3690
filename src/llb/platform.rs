//! The OCI platform an op runs on or pulls for.

use serde::Serialize;

use super::pb;

/// An OCI platform (`os/arch[/variant]`), set on exec ops and `docker-image://` sources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in GOARCH spelling, e.g. `amd64`, `arm64`.
    pub arch: String,
    /// Architecture variant, e.g. `v8`; empty when none.
    pub variant: String,
}

impl Platform {
    /// A platform from its parts; `variant` may be empty.
    pub fn new(os: &str, arch: &str, variant: &str) -> Self {
        Self {
            os: os.to_owned(),
            arch: arch.to_owned(),
            variant: variant.to_owned(),
        }
    }

    /// `linux/amd64`, also the platform ops get when nothing in the graph names one.
    pub fn linux_amd64() -> Self {
        Self::new("linux", "amd64", "")
    }

    /// `linux/arm64`.
    pub fn linux_arm64() -> Self {
        Self::new("linux", "arm64", "")
    }

    /// The protobuf form written into `Op.platform`.
    pub fn to_pb(&self) -> pb::Platform {
        pb::Platform {
            architecture: self.arch.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
            os_version: String::new(),
            os_features: Vec::new(),
        }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self::linux_amd64()
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}
