//! The component pre-check (what `atoll inspect` and the loader read before compiling)
//! on arbitrary bytes: a kind and a description or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = atoll_engine::inspect_bytes(data);
    if let Ok(file) = atoll_engine::describe_bytes(data) {
        assert_eq!(file.size, data.len() as u64);
    }
});
