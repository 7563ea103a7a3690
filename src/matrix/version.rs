//! Version numbers and compute capabilities, compared numerically field by field.
//!
//! Pure value types: parsing and ordering only, no knowledge of the tables.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A dotted version such as `"2.8.0"`, `"12.8"` or `"570.124.06"`.
///
/// Ordering compares the numeric fields left to right; a missing field counts as zero, so
/// `"570.26" < "570.124.06"` and `"12.8" == "12.8.0"`. The original text is kept for display
/// (driver versions carry meaningful leading zeros, as in `570.124.06`).
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    parts: Vec<u32>,
}

/// Why a string is not a [`Version`] or [`ComputeCapability`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a version: {why}")]
pub struct ParseVersionError {
    /// The rejected input.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Version {
    /// Parse `"X"`, `"X.Y"`, `"X.Y.Z"` … (digits and dots only).
    pub fn parse(s: &str) -> Result<Self, ParseVersionError> {
        let err = |why| ParseVersionError {
            input: s.to_string(),
            why,
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(err("it is empty"));
        }
        let mut parts = Vec::new();
        for field in text.split('.') {
            if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("expected numbers separated by dots"));
            }
            parts.push(field.parse().map_err(|_| err("a field is too large"))?);
        }
        Ok(Version {
            text: text.to_string(),
            parts,
        })
    }

    /// The numeric fields.
    pub fn parts(&self) -> &[u32] {
        &self.parts
    }

    /// First field.
    pub fn major(&self) -> u32 {
        self.parts[0]
    }

    /// Second field (0 when absent).
    pub fn minor(&self) -> u32 {
        self.parts.get(1).copied().unwrap_or(0)
    }

    /// The first two fields as a version: `"12.8.1"` → `"12.8"`.
    pub fn major_minor(&self) -> Version {
        let (a, b) = (self.major(), self.minor());
        Version {
            text: format!("{a}.{b}"),
            parts: vec![a, b],
        }
    }

    /// The original text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The numeric distance used to rank "nearest" suggestions: fields weighted by position.
    pub(crate) fn distance(&self, other: &Version) -> u64 {
        let n = self.parts.len().max(other.parts.len()).min(4);
        let mut d = 0u64;
        for i in 0..n {
            let a = i64::from(self.parts.get(i).copied().unwrap_or(0));
            let b = i64::from(other.parts.get(i).copied().unwrap_or(0));
            let weight = 1000u64.pow((3 - i) as u32);
            d += (a - b).unsigned_abs() * weight;
        }
        d
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        for i in 0..n {
            let a = self.parts.get(i).copied().unwrap_or(0);
            let b = other.parts.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Version {
    type Err = ParseVersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A CUDA compute capability, `major.minor` (`9.0` for Hopper, `12.0` for RTX 50xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComputeCapability {
    /// Architecture generation; cubins never cross it.
    pub major: u32,
    /// Revision within the generation.
    pub minor: u32,
}

impl ComputeCapability {
    /// Parse `"9.0"`, `"12.0"`, `"sm_90"`, `"sm_120"`, `"compute_90"` or `"sm90"`.
    pub fn parse(s: &str) -> Result<Self, ParseVersionError> {
        let err = |why| ParseVersionError {
            input: s.to_string(),
            why,
        };
        let t = s.trim().to_ascii_lowercase();
        let digits = t
            .strip_prefix("sm_")
            .or_else(|| t.strip_prefix("compute_"))
            .or_else(|| t.strip_prefix("sm"));
        if let Some(d) = digits {
            if d.len() < 2 || !d.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("expected sm_XY, e.g. sm_90"));
            }
            let (maj, min) = d.split_at(d.len() - 1);
            return Ok(ComputeCapability {
                major: maj.parse().map_err(|_| err("major too large"))?,
                minor: min.parse().map_err(|_| err("minor too large"))?,
            });
        }
        let v = Version::parse(&t).map_err(|_| err("expected MAJOR.MINOR, e.g. 9.0"))?;
        if v.parts().len() != 2 || v.minor() > 9 {
            return Err(err("expected MAJOR.MINOR, e.g. 9.0"));
        }
        Ok(ComputeCapability {
            major: v.major(),
            minor: v.minor(),
        })
    }

    /// `sm_90` spelling.
    pub fn sm(&self) -> String {
        format!("sm_{}{}", self.major, self.minor)
    }
}

impl fmt::Display for ComputeCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl<'de> Deserialize<'de> for ComputeCapability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ComputeCapability::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ComputeCapability {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn compares_numerically_field_by_field() {
        assert!(v("570.124.06") > v("570.26"));
        assert!(v("2.10.0") > v("2.9.1"));
        assert!(v("12.10") > v("12.9"));
        assert!(v("525.60.13") < v("535.104.05"));
        assert_eq!(v("12.8"), v("12.8.0"));
        assert!(v("580") < v("580.65.06"));
        assert_eq!(v("570.124.06").to_string(), "570.124.06");
    }

    #[test]
    fn rejects_non_versions() {
        for bad in ["", "12.x", "2.8.0+cu128", "1..2", "v2.8", "-1"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn major_minor_truncates() {
        assert_eq!(v("12.8.1").major_minor().as_str(), "12.8");
        assert_eq!(v("13").major_minor().as_str(), "13.0");
    }

    #[test]
    fn compute_capability_forms() {
        let cc = |s| ComputeCapability::parse(s).unwrap();
        assert_eq!(cc("9.0"), ComputeCapability { major: 9, minor: 0 });
        assert_eq!(
            cc("sm_120"),
            ComputeCapability {
                major: 12,
                minor: 0
            }
        );
        assert_eq!(cc("SM_86"), ComputeCapability { major: 8, minor: 6 });
        assert_eq!(cc("12.1").to_string(), "12.1");
        assert_eq!(cc("8.9").sm(), "sm_89");
        for bad in ["9", "9.0.1", "sm_9", "H100", "8.10"] {
            assert!(ComputeCapability::parse(bad).is_err(), "{bad}");
        }
    }
}
