//! The whole fallback chain: the input is split on NUL bytes into the four probe outputs
//! (query, query without compute_cap, banner, /proc file); `assemble` never panics and its
//! facts stay consistent with `for_resolver`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchkit::probe::{assemble, for_resolver, Observations, Observed};

fn observed(part: Option<&str>, status: Option<i32>) -> Observed {
    match part {
        None => Observed::Absent("absent in this input".to_owned()),
        Some(t) => Observed::Output {
            text: t.to_owned(),
            status,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let status = Some(i32::from(data.first().copied().unwrap_or(0) % 4));
    let obs = Observations {
        query: observed(parts.next(), status),
        query_no_cc: observed(parts.next(), status),
        smi: observed(parts.next(), status),
        proc_version: observed(parts.next(), None),
    };
    let facts = assemble(&obs);
    let (driver, gpus) = for_resolver(&facts);
    assert_eq!(driver, facts.driver);
    assert!(gpus.len() <= facts.gpus.len());
    if !facts.gpus.is_empty() {
        assert!(!facts.sources.is_empty());
    }
    let _ = serde_json::to_string(&facts);
});
