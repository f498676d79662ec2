//! The manifest parser on arbitrary text: a located error or an app, never a panic.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = Path::new("/nonexistent-atoll-fuzz");
    if let Err(d) = atoll_manifest::parse(text.to_string(), &dir.join("atoll.toml"), dir) {
        // Rendering the diagnostic (with its source line) must not panic either.
        let _ = d.to_string();
    }
});
