//! The compute suite's smoke run, as CI runs it: the guest built from
//! `bench/compute/kernels` (release, wasm32-wasip2) and the runner agree on every
//! kernel's checksum, and the report lists each kernel and the geometric mean without
//! judging the goal (sizes of 1, one round: timings mean nothing here).

use std::path::Path;
use std::process::Command;

#[test]
fn every_kernel_computes_the_same_in_the_guest_as_natively() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compute-guest");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(repo.join("bench/compute/guest/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "the compute guest did not build");
    let guest = target.join("wasm32-wasip2/release/compute-guest.wasm");
    let json = target.join("smoke.json");
    let out = Command::new(env!("CARGO_BIN_EXE_compute-suite"))
        .arg(&guest)
        .arg("--smoke")
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run compute-suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("not judged (smoke run"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    let kernels: Vec<&str> = report["kernels"]
        .as_array()
        .expect("kernels")
        .iter()
        .filter_map(|k| k["kernel"].as_str())
        .collect();
    let expected: Vec<&str> = compute_kernels::KERNELS.iter().map(|(k, _)| *k).collect();
    assert_eq!(kernels, expected);
    assert!(kernels.len() >= 8);
    assert_eq!(report["met"], false, "a smoke run never claims the goal");
    assert!(
        report["geomean"]["guest"].as_f64().is_some_and(|g| g > 0.0),
        "{report}"
    );

    // A selection of none runs nothing and still reports; a file that is not the
    // guest is refused with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_compute-suite"))
        .arg(&guest)
        .args(["--smoke", "--only", "nope"])
        .output()
        .expect("run compute-suite");
    assert!(out.status.success(), "an empty selection is not an error");
    let out = Command::new(env!("CARGO_BIN_EXE_compute-suite"))
        .arg(repo.join("Cargo.toml"))
        .arg("--smoke")
        .output()
        .expect("run compute-suite");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot load"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
