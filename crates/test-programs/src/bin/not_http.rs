//! A plain `wasi:cli` command: a valid component that exports no HTTP handler.
fn main() {
    println!("I am not an HTTP component");
}
