//! GPU product name → compute capability (reference §6.4, [S24]).
//!
//! Names are matched as whole words, case-insensitively, so `"NVIDIA H100 80GB HBM3"`,
//! `"h100"` and `"Tesla V100-SXM2-16GB"` all resolve. The longest matching table name wins
//! (`"RTX 6000 Ada"` beats a shorter match); a tie between different capabilities is ambiguous.

use super::version::ComputeCapability;
use super::GpuFamily;

/// Outcome of a product-name lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuLookup {
    /// One capability; `name` is the table entry that matched.
    Found {
        /// Table name that matched, e.g. "H100".
        name: String,
        /// Its compute capability.
        cc: ComputeCapability,
        /// The table marks this row uncertain.
        uncertain: bool,
    },
    /// Several table names match equally well with different capabilities.
    Ambiguous(Vec<(String, ComputeCapability)>),
    /// Nothing matched; the nearest table names by spelling.
    Unknown(Vec<String>),
}

/// Lower-case words of a product name, split on spaces, `-` and `_`.
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

fn contains_run(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

pub(super) fn lookup(families: &[GpuFamily], input: &str) -> GpuLookup {
    let hay = words(input);
    let mut best: Vec<(usize, &str, &GpuFamily)> = Vec::new();
    for fam in families {
        for name in &fam.names {
            let needle = words(name);
            if contains_run(&hay, &needle) {
                best.push((needle.len(), name, fam));
            }
        }
    }
    let Some(top) = best.iter().map(|b| b.0).max() else {
        return GpuLookup::Unknown(nearest(families, input));
    };
    best.retain(|b| b.0 == top);
    let first = best[0];
    if best.iter().all(|b| b.2.cc == first.2.cc) {
        return GpuLookup::Found {
            name: first.1.to_string(),
            cc: first.2.cc,
            uncertain: first.2.uncertain,
        };
    }
    let mut all: Vec<(String, ComputeCapability)> =
        best.iter().map(|b| (b.1.to_string(), b.2.cc)).collect();
    all.sort();
    all.dedup();
    GpuLookup::Ambiguous(all)
}

fn nearest(families: &[GpuFamily], input: &str) -> Vec<String> {
    let probe = words(input)
        .into_iter()
        .filter(|w| w != "nvidia" && w != "geforce" && w != "tesla")
        .collect::<Vec<_>>()
        .join(" ");
    let probe_words = words(&probe);
    // Names containing every word of the input come first ("RTX 5000" → "RTX 5000 Ada"),
    // then the closest spellings.
    let mut scored: Vec<(bool, f64, &str)> = families
        .iter()
        .flat_map(|f| f.names.iter())
        .map(|n| {
            let nw = words(n);
            let superset = !probe_words.is_empty() && probe_words.iter().all(|w| nw.contains(w));
            let sim = strsim::jaro_winkler(&probe, &n.to_ascii_lowercase());
            (superset, sim, n.as_str())
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(b.2)));
    scored
        .into_iter()
        .take(3)
        .map(|s| s.2.to_string())
        .collect()
}
