//! `nvidia-smi --query-gpu` CSV parser: never panics; what it accepts is well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchkit::probe::parse::{
    is_driver_version, parse_query_gpu, QUERY_FIELDS, QUERY_FIELDS_NO_CC,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first byte picks the requested field list, so both query shapes are explored.
    let fields = if data.first().is_some_and(|b| b & 1 == 1) {
        QUERY_FIELDS_NO_CC
    } else {
        QUERY_FIELDS
    };
    if let Ok(rows) = parse_query_gpu(text, fields) {
        assert!(!rows.is_empty());
        for row in rows {
            if let Some(d) = &row.driver_version {
                assert!(is_driver_version(d), "{d:?}");
            }
            if let Some(cc) = &row.compute_cap {
                assert!(cc.split('.').count() == 2, "{cc:?}");
            }
            if let Some(name) = &row.name {
                assert!(!name.is_empty() && !name.contains(','), "{name:?}");
            }
        }
    }
});
