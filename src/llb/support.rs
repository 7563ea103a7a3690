//! What the daemon supports decides the LLB: the LLB caps a daemon reports in the gateway's
//! `Ping` ([`Supported`]), and what marshalling does with an op that needs a cap the daemon
//! lacks ([`CAP_TABLE`]):
//! - an **optional** attribute (one that only tunes how BuildKit does the work, such as
//!   `local.differ`) is left out, so the op runs as it would have before the cap existed;
//! - anything else is an error that names the feature, the cap and the first BuildKit
//!   release that has it ([`LlbError::Unsupported`]), before the daemon sees the graph.
//!
//! A daemon refuses a whole Definition naming a cap it does not know ("unknown API
//! capability source.local.differ"), so an attribute must be left out together with its
//! cap.

use std::collections::BTreeSet;

use super::caps;

/// The LLB caps of one daemon, or every cap when the daemon is not known (raw `torchkit
/// llb`, whose reader may be any BuildKit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Supported {
    /// `None`: emit everything.
    caps: Option<BTreeSet<String>>,
}

impl Supported {
    /// Every cap: the LLB as the newest BuildKit reads it.
    pub fn all() -> Supported {
        Supported { caps: None }
    }

    /// Only these caps (the enabled LLB caps of a daemon's `Ping`).
    pub fn only<I, S>(caps: I) -> Supported
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Supported {
            caps: Some(caps.into_iter().map(Into::into).collect()),
        }
    }

    /// Whether the daemon has `cap`.
    pub fn has(&self, cap: &str) -> bool {
        self.caps.as_ref().is_none_or(|c| c.contains(cap))
    }
}

/// One LLB cap torchkit may emit: what it is for, the first BuildKit release that has it,
/// and the source attribute to leave out when the daemon lacks it (`None`: the op cannot
/// be built without the cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapInfo {
    /// The cap ID (`solver/pb/caps.go`).
    pub cap: &'static str,
    /// What a user would call the feature.
    pub feature: &'static str,
    /// The first BuildKit release with the cap.
    pub since: &'static str,
    /// The source-op attribute to drop when the daemon lacks the cap.
    pub optional_attr: Option<&'static str>,
}

/// The caps torchkit emits that some BuildKit still in use lacks. The versions are the
/// first release tag that contains the commit adding the cap to `solver/pb/caps.go` in
/// github.com/moby/buildkit (`git tag --contains`); BuildKit v0.8.4 (Docker 20.10, Debian
/// bookworm's docker.io) was measured to lack each of them, v0.13.2 (Docker 26.1) to have
/// all but `exec.meta.cdi`, v0.25.2 (Docker 28.5) to have all (tests/fixtures/caps/).
/// Every other cap torchkit emits is in v0.8.
pub const CAP_TABLE: &[CapInfo] = &[
    CapInfo {
        cap: caps::SOURCE_LOCAL_DIFFER,
        feature: "comparing local files by content only (`local.differ`)",
        since: "v0.9.0",
        optional_attr: Some("local.differ"),
    },
    CapInfo {
        cap: caps::FILE_COPY_INCLUDE_EXCLUDE_PATTERNS,
        feature: "copy with include/exclude patterns",
        since: "v0.9.0",
        optional_attr: None,
    },
    CapInfo {
        cap: caps::EXEC_MOUNT_TMPFS_SIZE,
        feature: "a size limit on a tmpfs mount",
        since: "v0.10.0",
        optional_attr: None,
    },
    CapInfo {
        cap: caps::EXEC_META_CDI,
        feature: "a GPU in a build step (CDI devices, `--gpus`)",
        since: "v0.20.0",
        optional_attr: None,
    },
];

/// What the table says about `cap`, if anything.
pub fn cap_info(cap: &str) -> Option<&'static CapInfo> {
    CAP_TABLE.iter().find(|c| c.cap == cap)
}

/// Checks one op against the daemon: the optional attributes of `attrs` (a source op's)
/// whose cap the daemon lacks, to leave out, or the error for the first cap of `op_caps`
/// it lacks. Optional attributes carry no cap in the op (as Go's `llb.Differ(t, false)`):
/// an old daemon would ignore them, and leaving them out makes the LLB say only what this
/// daemon does.
pub(super) fn check_op<'a>(
    supported: &Supported,
    op_caps: &BTreeSet<String>,
    attrs: impl IntoIterator<Item = &'a String>,
) -> Result<Vec<&'static str>, super::LlbError> {
    if let Some(cap) = op_caps.iter().find(|c| !supported.has(c)) {
        let (feature, since) = match cap_info(cap) {
            Some(info) => (info.feature.to_string(), info.since),
            None => (format!("the LLB cap `{cap}`"), "a newer release"),
        };
        return Err(super::LlbError::Unsupported {
            cap: cap.clone(),
            feature,
            since: since.to_string(),
        });
    }
    Ok(attrs
        .into_iter()
        .filter_map(|a| {
            CAP_TABLE
                .iter()
                .find(|c| c.optional_attr == Some(a.as_str()) && !supported.has(c.cap))
                .and_then(|c| c.optional_attr)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_has_everything_and_only_has_what_it_lists() {
        assert!(Supported::all().has("anything"));
        let s = Supported::only(["source.local"]);
        assert!(s.has("source.local"));
        assert!(!s.has(caps::SOURCE_LOCAL_DIFFER));
    }

    #[test]
    fn a_missing_optional_cap_drops_its_attribute_and_a_required_one_fails() {
        let attrs = [
            "local.differ".to_string(),
            "local.sharedkeyhint".to_string(),
        ];
        let op: BTreeSet<String> = [caps::SOURCE_LOCAL.to_string()].into();
        let old = Supported::only([caps::SOURCE_LOCAL, caps::SOURCE_LOCAL_SHARED_KEY_HINT]);
        assert_eq!(check_op(&old, &op, &attrs).unwrap(), vec!["local.differ"]);
        let new = Supported::only([caps::SOURCE_LOCAL, caps::SOURCE_LOCAL_DIFFER]);
        assert!(check_op(&new, &op, &attrs).unwrap().is_empty());
        assert!(check_op(&Supported::all(), &op, &attrs).unwrap().is_empty());
        let op: BTreeSet<String> = [caps::FILE_BASE, caps::FILE_COPY_INCLUDE_EXCLUDE_PATTERNS]
            .map(String::from)
            .into();
        let err = check_op(&Supported::only([caps::FILE_BASE]), &op, &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("file.copy.includeexcludepatterns"), "{msg}");
        assert!(msg.contains("v0.9.0"), "{msg}");
    }
}
