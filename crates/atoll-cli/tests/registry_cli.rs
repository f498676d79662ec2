//! The registry commands end to end: the real `atoll` binary runs `registry serve` on
//! 127.0.0.1 (port 0), and `key`, `publish`, `add`, `pull`, `search` and `yank` talk to it
//! with `ATOLL_HOME` in a temporary directory. An altered blob is refused with a
//! message naming the package, and nothing is written.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ATOLL: &str = env!("CARGO_BIN_EXE_atoll");

/// `atoll registry serve` as a child process; killed on drop.
struct Registry {
    child: Child,
    url: String,
}

impl Registry {
    fn start(data: &Path) -> Self {
        let mut child = Command::new(ATOLL)
            .args(["registry", "serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("ATOLL_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn atoll registry serve");
        let stdout = child.stdout.take().expect("stdout");
        // The first stdout line is the URL, printed once the socket is bound.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("registry prints its URL")
            .trim()
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");
        Self { child, url }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn atoll(home: &Path, dir: &Path, registry: &str, args: &[&str]) -> Output {
    let started = Instant::now();
    let out = Command::new(ATOLL)
        .args(args)
        .current_dir(dir)
        .env("ATOLL_HOME", home)
        .env("ATOLL_REGISTRY", registry)
        .env("ATOLL_LOG", "warn")
        .output()
        .expect("run atoll");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "atoll {args:?} took too long"
    );
    out
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn publish_add_pull_search_through_the_cli() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&tmp.path().join("data"));
    let publisher = tmp.path().join("publisher");
    let user = tmp.path().join("user");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    let url = registry.url.as_str();

    let out = ok(atoll(&publisher, tmp.path(), url, &["key", "generate"]));
    assert!(out.contains("generated key `default`: ed25519:"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(publisher.join("keys/default.key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let listed = ok(atoll(&publisher, tmp.path(), url, &["key", "list"]));
    assert!(listed.starts_with("default\ted25519:"), "{listed}");
    let shown = ok(atoll(&publisher, tmp.path(), url, &["key", "show"]));
    assert!(shown.contains("public key: "), "{shown}");

    let hello = test_programs_artifacts::HELLO;
    for version in ["1.0.0", "1.2.0"] {
        let out = ok(atoll(
            &publisher,
            tmp.path(),
            url,
            &[
                "publish",
                hello,
                "--package",
                "acme:hello",
                "--version",
                version,
            ],
        ));
        assert!(
            out.contains(&format!("published acme:hello@{version}")),
            "{out}"
        );
    }
    // Versions are immutable.
    let out = atoll(
        &publisher,
        tmp.path(),
        url,
        &[
            "publish",
            hello,
            "--package",
            "acme:hello",
            "--version",
            "1.2.0",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("acme:hello@1.2.0 is already published"),
        "{err}"
    );

    let out = ok(atoll(&user, &app, url, &["add", "acme:hello@^1"]));
    assert!(out.contains("added acme:hello@1.2.0"), "{out}");
    let lock = std::fs::read_to_string(app.join("atoll.lock")).expect("atoll.lock written");
    assert!(
        lock.contains("name = \"acme:hello\"") && lock.contains("version = \"1.2.0\""),
        "{lock}"
    );

    // A component name that atoll.toml could not hold is refused, and nothing changes.
    let (toml_before, lock_before) = (
        std::fs::read_to_string(app.join("atoll.toml")).ok(),
        std::fs::read_to_string(app.join("atoll.lock")).ok(),
    );
    let out = atoll(
        &user,
        &app,
        url,
        &["add", "acme:hello@^1", "--component", "Bad Name"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--component: name `Bad Name` is not valid"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(app.join("atoll.toml")).ok(),
        toml_before
    );
    assert_eq!(
        std::fs::read_to_string(app.join("atoll.lock")).ok(),
        lock_before
    );

    // Another machine pulls what the lockfile says.
    let other = tmp.path().join("other");
    let out = ok(atoll(&other, &app, url, &["pull"]));
    assert!(out.contains("downloaded acme:hello@1.2.0"), "{out}");
    let blobs: Vec<_> = std::fs::read_dir(other.join("blobs/sha256"))
        .expect("cache")
        .collect();
    assert_eq!(blobs.len(), 1);

    let out = ok(atoll(
        &user,
        &app,
        url,
        &["search", "--exports", "wasi:http/incoming-handler"],
    ));
    assert!(out.contains("acme:hello@1.2.0"), "{out}");
    let out = ok(atoll(&user, &app, url, &["search", "--json", "hello"]));
    assert!(out.contains("\"package\": \"acme:hello\""), "{out}");

    ok(atoll(
        &publisher,
        tmp.path(),
        url,
        &["yank", "acme:hello@1.2.0"],
    ));
    let out = ok(atoll(&user, &app, url, &["add", "acme:hello@^1"]));
    assert!(out.contains("added acme:hello@1.0.0"), "{out}");

    // Rotation: grant a second key, publish with it, revoke the first.
    ok(atoll(
        &publisher,
        tmp.path(),
        url,
        &["key", "generate", "--name", "second"],
    ));
    let shown = ok(atoll(
        &publisher,
        tmp.path(),
        url,
        &["key", "show", "--name", "second"],
    ));
    let second = shown
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("public key line")
        .trim()
        .to_string();
    let shown = ok(atoll(&publisher, tmp.path(), url, &["key", "show"]));
    let first = shown
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("public key line")
        .trim()
        .to_string();
    ok(atoll(
        &publisher,
        tmp.path(),
        url,
        &["key", "grant", "--namespace", "acme", &second],
    ));
    ok(atoll(
        &publisher,
        tmp.path(),
        url,
        &[
            "publish",
            hello,
            "--package",
            "acme:hello",
            "--version",
            "1.3.0",
            "--key",
            "second",
        ],
    ));
    ok(atoll(
        &publisher,
        tmp.path(),
        url,
        &[
            "key",
            "revoke",
            "--namespace",
            "acme",
            &first,
            "--key",
            "second",
        ],
    ));
    let out = atoll(
        &publisher,
        tmp.path(),
        url,
        &[
            "publish",
            hello,
            "--package",
            "acme:hello",
            "--version",
            "1.4.0",
        ],
    );
    assert!(!out.status.success(), "the revoked key cannot publish");
    let out = ok(atoll(&user, &app, url, &["add", "acme:hello@^1"]));
    assert!(out.contains("added acme:hello@1.3.0"), "{out}");

    // Without --registry or ATOLL_REGISTRY, pull uses the registry atoll.lock recorded.
    let third = tmp.path().join("third");
    let out = Command::new(ATOLL)
        .arg("pull")
        .current_dir(&app)
        .env("ATOLL_HOME", &third)
        .env_remove("ATOLL_REGISTRY")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = ok(atoll(&user, &app, url, &["registry", "audit"]));
    assert!(out.contains("every entry follows the rules"), "{out}");

    // No registry given: a clear error.
    let out = Command::new(ATOLL)
        .args(["search", "x"])
        .env("ATOLL_HOME", &user)
        .env_remove("ATOLL_REGISTRY")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no registry given"));
}

#[test]
fn altered_blob_is_refused_through_the_cli() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let registry = Registry::start(&data);
    let url = registry.url.as_str();
    let publisher = tmp.path().join("publisher");
    let user = tmp.path().join("user");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    ok(atoll(&publisher, tmp.path(), url, &["key", "generate"]));
    ok(atoll(
        &publisher,
        tmp.path(),
        url,
        &[
            "publish",
            test_programs_artifacts::HELLO,
            "--package",
            "acme:hello",
            "--version",
            "1.0.0",
        ],
    ));
    for entry in std::fs::read_dir(data.join("blobs/sha256"))
        .expect("blobs")
        .flatten()
    {
        let mut bytes = std::fs::read(entry.path()).expect("read");
        bytes[100] ^= 0x40;
        std::fs::write(entry.path(), bytes).expect("tamper");
    }
    let out = atoll(&user, &app, url, &["add", "acme:hello"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("acme:hello@1.0.0: the downloaded component has sha256"),
        "{err}"
    );
    assert!(!app.join("atoll.lock").exists(), "no lockfile written");
    assert!(!user.join("blobs").exists(), "nothing cached");
}

/// `atoll up` with `source = { package, version }` serves the component `atoll.lock`
/// pins, from the local cache, offline; a requirement the lock does not satisfy and a
/// missing cache entry are clear errors.
#[test]
fn up_serves_a_package_source_through_the_lockfile() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&tmp.path().join("data"));
    let home = tmp.path().join("home");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    let url = registry.url.clone();
    let url = url.as_str();
    ok(atoll(&home, tmp.path(), url, &["key", "generate"]));
    ok(atoll(
        &home,
        tmp.path(),
        url,
        &[
            "publish",
            test_programs_artifacts::HELLO,
            "--package",
            "acme:hello",
            "--version",
            "1.2.0",
        ],
    ));
    // `atoll add` writes the component into the app's manifest, keeping what is there.
    std::fs::write(
        app.join("atoll.toml"),
        "# my app\n[app]\nname = \"from-registry\"\n\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n",
    )
    .expect("manifest");
    let out = ok(atoll(&home, &app, url, &["add", "acme:hello@^1.2"]));
    assert!(out.contains("component `hello`"), "{out}");
    let written = std::fs::read_to_string(app.join("atoll.toml")).expect("manifest");
    assert!(written.starts_with("# my app\n[app]\n"), "{written}");
    assert!(
        written.contains(
            "[component.hello]\nsource = { package = \"acme:hello\", version = \"^1.2\" }"
        ),
        "{written}"
    );
    drop(registry); // From here on, everything is offline.

    let manifest = |req: &str| {
        format!(
            "[app]\nname = \"from-registry\"\n[component.web]\nsource = {{ package = \"acme:hello\", version = \"{req}\" }}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n"
        )
    };
    let mut child = Command::new(ATOLL)
        .args(["up", "--listen", "127.0.0.1:0"])
        .arg(&app)
        .env("ATOLL_HOME", &home)
        .env("ATOLL_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn atoll up");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split(" on http://").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("atoll up is serving");
    let response = {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Hello, world!"), "{response}");

    // A requirement the lock does not satisfy.
    std::fs::write(app.join("atoll.toml"), manifest("^2")).expect("manifest");
    let out = atoll(
        &home,
        tmp.path(),
        url,
        &[
            "up",
            app.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pins `acme:hello` at 1.2.0, which does not satisfy `^2`"),
        "{err}"
    );
    assert!(err.contains("atoll add acme:hello@^2"), "{err}");

    // The cached blob is gone: say how to fetch it, serve nothing.
    std::fs::remove_dir_all(home.join("blobs")).expect("remove cache");
    std::fs::write(app.join("atoll.toml"), manifest("^1")).expect("manifest");
    let out = atoll(
        &home,
        tmp.path(),
        url,
        &[
            "up",
            app.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("atoll pull"), "{err}");
}

/// Without --registry or ATOLL_REGISTRY, the registry comes from the user's config file.
#[test]
fn the_registry_can_come_from_the_user_config() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&tmp.path().join("data"));
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let search = || {
        Command::new(ATOLL)
            .args(["search", "anything"])
            .env("ATOLL_HOME", &home)
            .env_remove("ATOLL_REGISTRY")
            .output()
            .expect("run atoll search")
    };
    let out = search();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.toml"),
        "the error says where to configure it: {err}"
    );

    std::fs::write(
        home.join("config.toml"),
        format!("registry = \"{}\"\n", registry.url),
    )
    .expect("config");
    let out = search();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A dependency from the registry: `atoll add` locks it and sets the dependency's
/// version (adding no component), and `atoll inspect` composes it (the loader shares
/// that code with `atoll up`).
#[test]
fn a_registry_package_as_a_dependency_is_locked_and_composed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&tmp.path().join("data"));
    let publisher = tmp.path().join("publisher");
    let user = tmp.path().join("user");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    let url = registry.url.as_str();
    ok(atoll(&publisher, tmp.path(), url, &["key", "generate"]));
    ok(atoll(
        &publisher,
        tmp.path(),
        url,
        &[
            "publish",
            test_programs_artifacts::COMPOSE_FMT,
            "--package",
            "acme:fmt",
            "--version",
            "1.0.0",
        ],
    ));
    std::fs::write(
        app.join("atoll.toml"),
        format!(
            r#"[app]
name = "composed"

[component.api]
source = "{handler}"

[component.api.dependencies]
"acme:auth/verify" = {{ component = "auth" }}
"acme:fmt/format" = {{ package = "acme:fmt" }}

[component.auth]
source = "{auth}"

[[trigger.http]]
route = "/..."
component = "api"
"#,
            handler = test_programs_artifacts::COMPOSE_HANDLER,
            auth = test_programs_artifacts::COMPOSE_AUTH,
        ),
    )
    .expect("write manifest");

    // Not locked yet: a clear error at the dependency's line.
    let out = atoll(&user, &app, url, &["inspect", "."]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("dependency `acme:fmt/format`: package `acme:fmt` is not in"),
        "{err}"
    );
    assert!(err.contains("atoll add acme:fmt@*"), "{err}");

    let added = ok(atoll(&user, &app, url, &["add", "acme:fmt"]));
    assert!(
        added.contains("dependency `acme:fmt/format` of component `api`"),
        "{added}"
    );
    let manifest = std::fs::read_to_string(app.join("atoll.toml")).expect("manifest");
    assert!(
        manifest.contains(r#""acme:fmt/format" = { package = "acme:fmt" , version = "^1.0.0" }"#)
            || manifest
                .contains(r#""acme:fmt/format" = { package = "acme:fmt", version = "^1.0.0" }"#),
        "{manifest}"
    );
    assert!(!manifest.contains("[component.fmt]"), "{manifest}");

    let shown = ok(atoll(&user, &app, url, &["inspect", "."]));
    assert!(
        shown.contains("acme:fmt/format@1.0.0 <- package `acme:fmt`"),
        "{shown}"
    );
}

/// `--json` on the verbs scripts read: keys, publish, add, yank, each parsed and its
/// fields checked against what the registry and the files say.
#[test]
fn the_registry_verbs_print_json_for_scripts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&tmp.path().join("data"));
    let home = tmp.path().join("home");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    let url = registry.url.as_str();
    let json = |out: String| -> serde_json::Value {
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    };

    let generated = json(ok(atoll(
        &home,
        tmp.path(),
        url,
        &["key", "generate", "--json"],
    )));
    let id = generated["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("ed25519:"), "{generated}");
    assert!(
        Path::new(generated["private_key_file"].as_str().expect("file")).is_file(),
        "{generated}"
    );
    let shown = json(ok(atoll(
        &home,
        tmp.path(),
        url,
        &["key", "show", "--json"],
    )));
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["public_key"], generated["public_key"]);
    let listed = json(ok(atoll(
        &home,
        tmp.path(),
        url,
        &["key", "list", "--json"],
    )));
    assert_eq!(listed[0]["name"], "default", "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());

    let hello = test_programs_artifacts::HELLO;
    let published = json(ok(atoll(
        &home,
        tmp.path(),
        url,
        &[
            "publish",
            hello,
            "--package",
            "acme:hello",
            "--version",
            "1.0.0",
            "--json",
        ],
    )));
    assert_eq!(published["package"], "acme:hello", "{published}");
    assert_eq!(published["version"], "1.0.0");
    assert_eq!(published["key_id"], id.as_str());
    assert!(published["log_index"].is_u64(), "{published}");

    let added = json(ok(atoll(
        &home,
        &app,
        url,
        &["add", "acme:hello", "--json"],
    )));
    let sum = Command::new("sha256sum")
        .arg(hello)
        .output()
        .expect("sha256sum");
    let sum = String::from_utf8_lossy(&sum.stdout);
    let sum = sum.split_whitespace().next().expect("digest");
    assert!(
        added["sha256"].as_str().is_some_and(|s| s.ends_with(sum)),
        "{added} vs {sum}"
    );
    assert_eq!(added["version"], "1.0.0");
    assert_eq!(added["publisher"], id.as_str(), "{added}");

    let yanked = json(ok(atoll(
        &home,
        tmp.path(),
        url,
        &["yank", "acme:hello@1.0.0", "--json"],
    )));
    assert_eq!(yanked["yanked"], true, "{yanked}");
    assert_eq!(yanked["package"], "acme:hello");
}
