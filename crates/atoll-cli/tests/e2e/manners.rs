//! The CLI's manners: every subcommand's `--help` ends with examples, the documented
//! exit codes, shell completions that a real bash loads and completes with, man pages a
//! real `man` renders, `atoll doctor`'s findings (each with its fix) against a real
//! Redis and a port that is taken, and `atoll inspect`'s WIT world of a bare component.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::*;

fn atoll(args: &[&str], dir: &Path) -> Output {
    atoll_command()
        .args(args)
        .current_dir(dir)
        .env("ATOLL_HOME", shared_home())
        .env_remove("ATOLL_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run atoll")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The subcommand names `atoll help` lists (its "Commands:" block), except `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect()
}

#[test]
fn every_subcommand_help_shows_an_example() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let top = stdout(&atoll(&["--help"], tmp.path()));
    assert!(top.contains("Exit codes:"), "{top}");
    let names = subcommands(&top);
    assert!(names.len() >= 17, "{names:?}");
    let mut checked = 0;
    let mut queue: Vec<Vec<String>> = names.into_iter().map(|n| vec![n]).collect();
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = atoll(&args, tmp.path());
        let help = stdout(&out);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            help.contains("Example"),
            "`atoll {}` has no example in its help:\n{help}",
            path.join(" ")
        );
        // Nested subcommands (key generate, registry serve) too.
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            queue.push(p);
        }
        checked += 1;
    }
    assert!(checked >= 23, "only {checked} commands checked");
}

#[test]
fn exit_codes_say_what_kind_of_failure_it_was() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // 2: usage.
    let out = atoll(&["up", "--no-such-flag"], tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // 3: the manifest (an unknown key, named with its line).
    let app = TestApp::new(
        "[app]\nname = \"x\"\n[component.web]\nsourc = \"a.wasm\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n",
    );
    let out = atoll(&["inspect"], app.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("atoll.toml:4"), "{err}");
    // 4: a component (the source is not WebAssembly), through the manifest...
    let app = TestApp::new(
        "[app]\nname = \"x\"\n[component.web]\nsource = \"a.wasm\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n",
    );
    std::fs::write(app.path().join("a.wasm"), b"not wasm").expect("write");
    let (ok, err) = {
        let out = atoll(&["up", "--listen", "127.0.0.1:0"], app.path());
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        (out.status.success(), stderr(&out))
    };
    assert!(!ok);
    assert!(err.contains("not a WebAssembly file"), "{err}");
    // ...and given on the command line.
    let out = atoll(&["inspect", "a.wasm"], app.path());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let out = atoll(&["call", "a.wasm", "f"], app.path());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // A missing component file, on the command line.
    let out = atoll(&["inspect", "missing.wasm"], app.path());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let out = atoll(&["call", "missing.wasm", "f"], app.path());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // A component that lacks the export its trigger needs (a cron job behind HTTP).
    let app = TestApp::new(&format!(
        "[app]\nname = \"x\"\n[component.web]\nsource = {:?}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n",
        test_programs_artifacts::NOT_HTTP
    ));
    let out = atoll(&["up", "--listen", "127.0.0.1:0"], app.path());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // 2: a value clap accepts that makes no sense.
    let out = atoll(&["up", "--listen", "nowhere"], app.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // 1: anything else (a build command that fails).
    let app = TestApp::new(
        "[app]\nname = \"x\"\n[component.web]\nsource = \"a.wasm\"\nbuild = { command = \"exit 1\" }\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n",
    );
    let out = atoll(&["build"], app.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn colors_only_on_a_terminal_unless_forced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = atoll(&["inspect", "missing.wasm"], tmp.path());
    assert!(!stderr(&out).contains('\x1b'), "{:?}", stderr(&out));
    let out = atoll_command()
        .args(["inspect", "missing.wasm"])
        .current_dir(tmp.path())
        .env("CLICOLOR_FORCE", "1")
        .output()
        .expect("run atoll");
    assert!(
        stderr(&out).contains("\x1b[1;31merror\x1b[0m"),
        "{:?}",
        stderr(&out)
    );
}

/// On a real terminal (a pty from util-linux `script`), errors are red; `NO_COLOR`
/// turns that off.
#[test]
fn errors_are_red_on_a_terminal_and_plain_with_no_color() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let on_tty = |no_color: bool| {
        let mut c = Command::new("script");
        c.args(["-qec", &format!("{BIN} inspect missing.wasm"), "/dev/null"])
            .current_dir(tmp.path())
            .env_remove("CLICOLOR_FORCE")
            .env("TERM", "xterm");
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        let out = c.output().expect("run script (util-linux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let colored = on_tty(false);
    assert!(colored.contains("\x1b[1;31merror\x1b[0m"), "{colored:?}");
    let plain = on_tty(true);
    assert!(
        plain.contains("error: missing.wasm does not exist"),
        "{plain:?}"
    );
    assert!(!plain.contains('\x1b'), "{plain:?}");
}

#[test]
fn bash_loads_the_completions_and_completes_subcommands_and_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = atoll(&["completions", "bash"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let script = tmp.path().join("atoll.bash");
    std::fs::write(&script, &out.stdout).expect("write");
    // Load it into a real bash and ask the completion function, as bash does on TAB.
    let probe = format!(
        r#"source {script}
complete -p atoll
COMP_WORDS=(atoll ne); COMP_CWORD=1; COMP_LINE="atoll ne"; COMP_POINT=${{#COMP_LINE}}
_atoll atoll ne atoll; echo "words: ${{COMPREPLY[*]}}"
COMP_WORDS=(atoll up --sh); COMP_CWORD=2; COMP_LINE="atoll up --sh"; COMP_POINT=${{#COMP_LINE}}
_atoll atoll --sh up; echo "flags: ${{COMPREPLY[*]}}"
"#,
        script = script.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .expect("run bash");
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("-F _atoll atoll"), "{text}");
    assert!(text.contains("words: new"), "{text}");
    assert!(text.contains("--shutdown-grace"), "{text}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = atoll(&["completions", shell], tmp.path());
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("doctor"), "{shell}");
    }
    let out = atoll(&["completions", "tcsh"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
}

/// A man page as `man -l` renders it, as plain text: without a terminal, grotty still
/// marks bold as `X\bX`, so only the last of each such pair is kept.
fn render_man(page: &Path) -> String {
    let out = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(page)
        .env("MANWIDTH", "100")
        .output()
        .expect("run man");
    assert!(
        out.status.success(),
        "man -l {}: {}",
        page.display(),
        stderr(&out)
    );
    let mut text = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    text
}

#[test]
fn man_pages_render_with_man_for_atoll_and_each_subcommand() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = atoll(&["man", "--out", "pages"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let pages = tmp.path().join("pages");
    for page in [
        "atoll.1",
        "atoll-up.1",
        "atoll-new.1",
        "atoll-doctor.1",
        "atoll-key-generate.1",
    ] {
        assert!(pages.join(page).is_file(), "no {page}");
    }
    // `man -l` renders each page through groff.
    let page = render_man(&pages.join("atoll-up.1"));
    assert!(page.contains("--shutdown-grace"), "{page}");
    assert!(page.contains("Examples:"), "{page}");
    // A subcommand's page names it by its full path, global flags included.
    let page = render_man(&pages.join("atoll-key-generate.1"));
    // (groff justifies lines: compare with single spaces)
    let page = page.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        page.contains("SYNOPSIS atoll key generate [--name]"),
        "{page}"
    );
    assert!(page.contains("[-q|--quiet]"), "{page}");
    let top = std::fs::read_to_string(pages.join("atoll.1")).expect("atoll.1");
    assert!(top.contains(".TH atoll 1"), "{top}");
    assert!(top.contains("Exit codes"), "{top}");
}

#[test]
fn doctor_finds_a_taken_port_and_a_backend_that_does_not_answer_and_says_how_to_fix_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();
    let dead = free_port();
    std::fs::write(
        tmp.path().join("runtime.toml"),
        format!(
            "[key_value_store.live]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\n[key_value_store.dead]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{dead}\"\n"
        ),
    )
    .expect("runtime config");
    let out = atoll(
        &[
            "doctor",
            "--json",
            "--listen",
            &taken_addr,
            "--runtime-config",
            "runtime.toml",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["ok"], false);
    let find = |check: &str| {
        report["findings"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["check"] == check))
            .cloned()
            .unwrap_or_else(|| panic!("no {check} finding: {report}"))
    };
    let listen = find("listen");
    assert_eq!(listen["status"], "error", "{listen}");
    assert!(
        listen["fix"]
            .as_str()
            .is_some_and(|f| f.contains("--listen")),
        "{listen}"
    );
    let live = find("backend:live");
    assert_eq!(live["status"], "ok", "{live}");
    let dead = find("backend:dead");
    assert_eq!(dead["status"], "error", "{dead}");
    assert!(
        dead["fix"]
            .as_str()
            .is_some_and(|f| f.contains("start the server")),
        "{dead}"
    );
    let target = find("rust-target");
    assert_eq!(
        target["status"], "ok",
        "this machine has wasm32-wasip2: {target}"
    );
    // The kernel finding matches this machine: Linux 6.7+ and no swap is `ok`.
    let kernel = find("kernel");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let version = (
        parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0),
        parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0),
    );
    let swap_on = std::fs::read_to_string("/proc/swaps")
        .map(|s| s.lines().skip(1).any(|l| !l.trim().is_empty()))
        .unwrap_or(true);
    let expected = if version >= (6, 7) && !swap_on {
        "ok"
    } else {
        "warn"
    };
    assert_eq!(
        kernel["status"], expected,
        "{kernel} (kernel {version:?}, swap on: {swap_on})"
    );
    drop(taken);

    // Text, on a free port and no runtime config: the problems go, the exit is 0.
    let out = atoll(&["doctor", "--listen", "127.0.0.1:0"], tmp.path());
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("ok    listen: 127.0.0.1:0 is free"), "{text}");
}

#[test]
fn doctor_checks_the_manifest_and_the_programs_its_builds_run() {
    let app = TestApp::new(
        "[app]\nname = \"x\"\n[component.web]\nsource = \"a.wasm\"\nbuild = { command = \"no-such-compiler-xyz --out a.wasm\" }\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n",
    );
    let out = atoll(&["doctor", "--listen", "127.0.0.1:0"], app.path());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ok    manifest:"), "{text}");
    assert!(
        text.contains("error build:web: the build command `no-such-compiler-xyz --out a.wasm` runs `no-such-compiler-xyz`, which is not on PATH"),
        "{text}"
    );
    assert!(
        text.contains("fix: install `no-such-compiler-xyz`"),
        "{text}"
    );

    let bad = TestApp::new("[app]\nname = \"x\"\n[component.web]\nsource = 5\n");
    let out = atoll(&["doctor", "--json", "--listen", "127.0.0.1:0"], bad.path());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let manifest = report["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["check"] == "manifest"))
        .cloned()
        .expect("manifest finding");
    assert_eq!(manifest["status"], "error", "{manifest}");
    assert!(
        manifest["message"]
            .as_str()
            .is_some_and(|m| m.contains("atoll.toml:4")),
        "{manifest}"
    );
}

#[test]
fn inspect_prints_a_bare_components_wit_world() {
    let wasm = test_programs_artifacts::HELLO;
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = atoll(&["inspect", wasm], tmp.path());
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("  wit:"), "{text}");
    assert!(text.contains("world root {"), "{text}");
    assert!(
        text.contains("export wasi:http/incoming-handler@0.2"),
        "{text}"
    );
    let out = atoll(&["inspect", wasm, "--json"], tmp.path());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        report["wit"]
            .as_str()
            .is_some_and(|w| w.contains("export wasi:http/incoming-handler@0.2")),
        "{report}"
    );
}
