//! `/proc/driver/nvidia/version` parser: never panics; an accepted version is a driver version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchkit::probe::parse::{is_driver_version, parse_proc_version};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = parse_proc_version(text) {
        assert!(is_driver_version(&m.version), "{:?}", m.version);
        assert!(text.contains(&m.version));
    }
});
