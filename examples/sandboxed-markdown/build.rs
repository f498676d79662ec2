//! Compiles the guest (`guest/`, pulldown-cmark behind `wit/markdown.wit`) to a
//! `wasm32-wasip2` component in `$OUT_DIR/markdown.wasm`, which `src/lib.rs` embeds:
//! the crate ships no file of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let guest = manifest_dir.join("guest");
    for input in ["src", "Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        rerun_if_changed(&guest.join(input));
    }
    rerun_if_changed(&manifest_dir.join("wit"));

    // The guest's own target dir: a nested cargo must not wait on the lock of the one
    // running this script.
    let target_dir = out_dir.join("guest-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Run in the guest's directory, so its `.cargo/config.toml` applies.
    cmd.current_dir(&guest)
        .arg("build")
        .arg("--release")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(guest.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir);
    // What is set for the host build (flags, wrappers such as clippy-driver or a
    // coverage tool, a build target, profile overrides) must not reach the guest build.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if matches!(
            key,
            "RUSTFLAGS"
                | "CARGO_ENCODED_RUSTFLAGS"
                | "RUSTDOCFLAGS"
                | "CARGO_ENCODED_RUSTDOCFLAGS"
                | "RUSTC_WRAPPER"
                | "RUSTC_WORKSPACE_WRAPPER"
        ) || key.starts_with("CARGO_BUILD_")
            || key.starts_with("CARGO_PROFILE_")
            || (key.starts_with("CARGO_TARGET_") && key != "CARGO_TARGET_DIR")
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the markdown guest: {e}"));
    let wasm = target_dir.join("wasm32-wasip2/release/sandboxed_markdown_guest.wasm");
    if !status.success() || !wasm.exists() {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"));
        let hint = match installed {
            Ok(false) => {
                "the wasm32-wasip2 target is not installed: run `rustup target add wasm32-wasip2`"
            }
            _ => {
                "see cargo's output above (the wasm32-wasip2 target is needed: `rustup target add wasm32-wasip2`)"
            }
        };
        panic!(
            "building the markdown guest ({}) for wasm32-wasip2 failed: {hint}",
            guest.display()
        );
    }
    std::fs::copy(&wasm, out_dir.join("markdown.wasm"))
        .unwrap_or_else(|e| panic!("cannot copy {} into OUT_DIR: {e}", wasm.display()));
}

fn rerun_if_changed(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}
