//! `atoll call`: the real binary calling real components' exports with WAVE arguments;
//! nothing granted unless a flag grants it; every failure exits non-zero and says what
//! happened.

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;

/// (exit ok?, stdout, stderr) of `atoll call ARGS...`.
fn call(args: &[&str]) -> (bool, String, String) {
    let out = atoll_command()
        .arg("call")
        .args(args)
        .env("ATOLL_LOG", "warn")
        .output()
        .expect("run atoll call");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const TEXT: &str = test_programs_artifacts::TEXT;

#[test]
fn calls_take_wave_arguments_and_print_wave_results() {
    assert_eq!(call(&[TEXT, "count-vowels", r#""hello world""#]).1, "3\n");
    assert_eq!(call(&[TEXT, "manhattan", "{x: 3, y: -4}"]).1, "7\n");
    assert_eq!(
        call(&[TEXT, "first-word", r#""  two words""#]).1,
        "some(\"two\")\n"
    );
    assert_eq!(call(&[TEXT, "first-word", r#""   ""#]).1, "none\n");
    assert_eq!(call(&[TEXT, "shout", r#""hey""#]).1, "\"HEY!\"\n");
    assert_eq!(
        call(&[TEXT, "acme:plugin/text@0.1.0#count-vowels", r#""aa""#]).1,
        "2\n"
    );
}

#[test]
fn list_prints_every_export_with_its_signature() {
    let (ok, out, err) = call(&[TEXT, "--list"]);
    assert!(ok, "{err}");
    assert!(out.contains("shout: func(s: string) -> string"), "{out}");
    assert!(
        out.contains("acme:plugin/text@0.1.0#manhattan: func(p: record { x: s32, y: s32 }) -> u32"),
        "{out}"
    );
}

#[test]
fn wrong_arguments_and_unknown_functions_say_what_is_expected() {
    let (ok, _, err) = call(&[TEXT, "manhattan", "5"]);
    assert!(!ok);
    assert!(
        err.contains("`p`") && err.contains("record { x: s32, y: s32 }"),
        "{err}"
    );
    let (ok, _, err) = call(&[TEXT, "count-vowels"]);
    assert!(!ok);
    assert!(
        err.contains("takes 1 argument") && err.contains("func(s: string) -> u32"),
        "{err}"
    );
    let (ok, _, err) = call(&[TEXT, "count-consonants", "1"]);
    assert!(!ok);
    assert!(err.contains("no function `count-consonants`"), "{err}");
    assert!(
        err.contains("count-vowels: func(s: string) -> u32"),
        "{err}"
    );
}

#[test]
fn traps_deadlines_and_memory_limits_exit_non_zero_with_what_happened() {
    let (ok, _, err) = call(&[TEXT, "fail", r#""boom""#]);
    assert!(!ok);
    // The guest's own frame, demangled.
    assert!(
        err.contains("trapped") && err.contains("Guest>::fail"),
        "{err}"
    );
    let (ok, _, err) = call(&["--timeout", "300ms", TEXT, "spin"]);
    assert!(!ok);
    assert!(err.contains("deadline of 300ms"), "{err}");
    let (ok, _, err) = call(&["--fuel", "1000000", TEXT, "spin"]);
    assert!(!ok);
    assert!(err.contains("used up its fuel"), "{err}");
    let (ok, _, err) = call(&["--memory", "16MiB", TEXT, "grow", "64"]);
    assert!(!ok);
    assert!(err.contains("memory limit of 16777216 bytes"), "{err}");
    assert_eq!(call(&["--memory", "16MiB", TEXT, "grow", "4"]).1, "4\n");
}

#[test]
fn nothing_is_granted_unless_a_flag_grants_it() {
    // Environment.
    let out = atoll_command()
        .args(["call", TEXT, "get-env", r#""HOME""#])
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "none\n");
    assert_eq!(
        call(&["--env", "MODE=strict", TEXT, "get-env", r#""MODE""#]).1,
        "some(\"strict\")\n"
    );

    // Files.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("note.txt"), "from the host").expect("write");
    let out = call(&[TEXT, "read-file", r#""/etc/passwd""#]).1;
    assert!(out.starts_with("err("), "{out}");
    let grant = format!("{}::/data", dir.path().display());
    assert_eq!(
        call(&["--dir", &grant, TEXT, "read-file", r#""/data/note.txt""#]).1,
        "ok(\"from the host\")\n"
    );

    // Outbound HTTP: a loopback listener of the test's own.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let seen = Arc::new(AtomicBool::new(false));
    let flag = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            flag.store(true, Ordering::SeqCst);
            if let Ok(mut c) = c {
                let _ = c.read(&mut [0u8; 1024]);
                let _ = std::io::Write::write_all(
                    &mut c,
                    b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
                );
            }
        }
    });
    let url = format!("\"http://127.0.0.1:{port}/\"");
    let out = call(&[TEXT, "fetch", &url]).1;
    assert!(out.contains("HttpRequestDenied"), "{out}");
    assert!(
        !seen.load(Ordering::SeqCst),
        "a denied request reached the listener"
    );
    let allow = format!("http://127.0.0.1:{port}");
    assert_eq!(
        call(&["--allow-outbound", &allow, TEXT, "fetch", &url]).1,
        "ok(204)\n"
    );
    assert!(seen.load(Ordering::SeqCst));
}

#[test]
fn a_policy_file_grants_like_the_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "env = { MODE = \"from-file\" }\n").expect("write");
    let p = policy.display().to_string();
    assert_eq!(
        call(&["--policy", &p, TEXT, "get-env", r#""MODE""#]).1,
        "some(\"from-file\")\n"
    );
    std::fs::write(&policy, "enviroment = {}\n").expect("write");
    let (ok, _, err) = call(&["--policy", &p, TEXT, "get-env", r#""MODE""#]);
    assert!(!ok);
    assert!(
        err.contains("policy.toml") && err.contains("enviroment"),
        "{err}"
    );
}

#[test]
fn bad_components_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "not wasm at all").expect("write");
    let (ok, _, err) = call(&[junk.to_str().expect("utf-8"), "--list"]);
    assert!(!ok);
    assert!(err.contains("not a WebAssembly file"), "{err}");
    // The embedding tests' plugin imports host functions `atoll call` does not have.
    let (ok, _, err) = call(&[test_programs_artifacts::PLUGIN, "--list"]);
    assert!(!ok);
    assert!(err.contains("acme:plugin/host@0.1.0"), "{err}");
    let (ok, _, err) = call(&["/no/such/file.wasm", "--list"]);
    assert!(!ok);
    assert!(
        err.contains("/no/such/file.wasm") && err.contains("no such file"),
        "{err}"
    );
}
