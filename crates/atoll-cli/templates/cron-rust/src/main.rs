//! {{name}}: runs once per tick of its schedule. Print to log; exit non-zero (or panic)
//! to report a failed run.
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    println!("{{name}} ran at {now} (unix seconds)");
}
