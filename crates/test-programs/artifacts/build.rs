//! Compiles the guests in `crates/test-programs` to `wasm32-wasip2` once per build of
//! this crate, and writes a constant with the path of each component.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let programs = manifest_dir
        .parent()
        .expect("artifacts is inside test-programs")
        .to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let target_dir = out_dir.join("target");

    println!("cargo:rerun-if-changed={}", programs.join("src").display());
    println!("cargo:rerun-if-changed={}", programs.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        programs.join("wit-spin").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        programs.join("wit-spin-cron").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        programs.join("wit-plugin").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        programs.join("wit-compose").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        programs.join("Cargo.toml").display()
    );

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(programs.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir);
    // Settings meant for the host build must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for the test programs");
    assert!(
        status.success(),
        "building crates/test-programs for wasm32-wasip2 failed; is the target installed? \
         (`rustup target add wasm32-wasip2`)"
    );

    let wasm_dir = target_dir.join("wasm32-wasip2/release");
    let mut consts = String::new();
    let mut all = String::from(
        "/// Every test program as (name, path).\npub const ALL: &[(&str, &str)] = &[\n",
    );
    let mut names: Vec<String> = std::fs::read_dir(programs.join("src/bin"))
        .expect("src/bin exists")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "rs").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    for name in names {
        let path = wasm_dir.join(format!("{name}.wasm"));
        assert!(path.exists(), "{} was not built", path.display());
        consts.push_str(&format!(
            "/// Path of the `{name}` component.\npub const {}: &str = {:?};\n",
            name.to_uppercase(),
            path.display().to_string()
        ));
        all.push_str(&format!("    ({name:?}, {}),\n", name.to_uppercase()));
    }
    all.push_str("];\n");
    std::fs::write(out_dir.join("programs.rs"), consts + &all).expect("write programs.rs");
}
