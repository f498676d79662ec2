//! The runtime config parser on arbitrary text: a config, or an error that never quotes
//! a value that may be secret; never a panic.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = atoll_capabilities::RuntimeConfig::parse(text, Path::new("runtime.toml")) {
        let message = e.to_string();
        // A value that may be a secret (a variable's, or a store URL, which may hold a
        // password) is never repeated in the message. Other settings are quoted on
        // purpose, to show what to fix. Checked for token-like values (12+ letters,
        // digits, `-` or `_`, with a digit: not a word the parser's own message uses).
        for quoted in secret_values(text) {
            let token_like = quoted.len() >= 12
                && quoted.chars().any(|c| c.is_ascii_digit())
                && quoted
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if token_like {
                assert!(
                    !message.contains(quoted),
                    "the error quotes a secret: {message}"
                );
            }
        }
    }
});

/// The quoted values of `key = "value"` lines under `[variables]`, and of `url` keys.
fn secret_values(text: &str) -> Vec<&str> {
    let mut in_variables = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_variables = line
                .trim_start_matches('[')
                .trim_start()
                .starts_with("variables");
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        if (in_variables || key.trim() == "url") && value.starts_with('"') {
            if let Some(inner) = value[1..].split('"').next() {
                out.push(inner);
            }
        }
    }
    out
}
