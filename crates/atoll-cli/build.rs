//! Rebuild when a template file is added or removed: `include_dir!` (in
//! `src/commands/new.rs`) tracks only the files that existed at the last build.
fn main() {
    println!("cargo:rerun-if-changed=templates");
}
