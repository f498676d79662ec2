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
        let (secrets, others) = quoted_values(text);
        for quoted in secrets {
            // The same text given to a setting that is quoted on purpose (a bad
            // duration, say) explains its presence in the message.
            if others.contains(&quoted) {
                continue;
            }
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

/// The quoted values of `key = "value"` lines: those that may be secret (under
/// `[variables]`, and of `url` keys), and all the others.
fn quoted_values(text: &str) -> (Vec<&str>, Vec<&str>) {
    let mut in_variables = false;
    let (mut secrets, mut others) = (Vec::new(), Vec::new());
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
        if let Some(inner) = value.strip_prefix('"').and_then(|v| v.split('"').next()) {
            if in_variables || key.trim() == "url" {
                secrets.push(inner);
            } else {
                others.push(inner);
            }
        }
    }
    (secrets, others)
}
