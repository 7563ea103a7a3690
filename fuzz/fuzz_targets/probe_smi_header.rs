//! `nvidia-smi` banner parser: never panics; an accepted driver is a driver version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchkit::probe::parse::{is_driver_version, parse_smi_header};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = parse_smi_header(text) {
        assert!(is_driver_version(&h.driver), "{:?}", h.driver);
        if let Some(cuda) = &h.cuda {
            assert!(cuda.split('.').count() == 2, "{cuda:?}");
        }
    }
});
