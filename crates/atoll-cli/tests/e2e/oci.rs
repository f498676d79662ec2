//! OCI registries end to end: a real CNCF distribution registry (Debian's
//! `docker-registry`) on a free 127.0.0.1 port, the real `atoll` binary pushing and
//! pulling, and `wkg` (wasm-pkg-tools, from crates.io) on the other side of each round
//! trip. Covered: the artifact layout, interoperability both ways, a tampered blob, the
//! lockfile pin, `atoll up oci://…`, and credentials from a Docker config file against a
//! registry with htpasswd auth.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Running, client, free_port, get};

/// A distribution registry on 127.0.0.1, storing under a temp dir; killed on drop.
struct Distribution {
    child: Child,
    port: u16,
    storage: tempfile::TempDir,
}

impl Distribution {
    fn start() -> Self {
        Self::start_with_auth(None)
    }

    /// With `htpasswd`, the registry asks for basic auth checked against that file.
    fn start_with_auth(htpasswd: Option<&Path>) -> Self {
        let storage = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.path().join("data").display()
        );
        if let Some(h) = htpasswd {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: atoll-test\n    path: {}\n",
                h.display()
            ));
        }
        let config_path = storage.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `docker-registry` ({e}): install Debian's docker-registry (`apt-get install docker-registry`; bash .ci/run does)"
                )
            });
        let registry = Self {
            child,
            port,
            storage,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // 200 without auth, 401 with it: either way the registry answers.
            let answered = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if answered {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("oci://{}/{repo_tag}", self.host())
    }

    /// The file the registry keeps the blob `sha256:HEX` in.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wkg` as `.ci/run` installs it (`cargo install wkg --root ~/.cache/atoll-tools`), or
/// `$ATOLL_WKG`, or on PATH.
fn wkg() -> PathBuf {
    if let Some(p) = std::env::var_os("ATOLL_WKG") {
        return PathBuf::from(p);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let cached = PathBuf::from(home).join(".cache/atoll-tools/bin/wkg");
        if cached.exists() {
            return cached;
        }
    }
    let on_path = Command::new("wkg").arg("--version").output();
    match on_path {
        Ok(o) if o.status.success() => PathBuf::from("wkg"),
        _ => panic!(
            "wkg (wasm-pkg-tools) is not installed: run `cargo install wkg --version 0.16.1 --locked --root ~/.cache/atoll-tools` (bash .ci/run does), or set ATOLL_WKG"
        ),
    }
}

/// `atoll up TARGET` (an app directory or an `oci://` reference) with `home` as
/// ATOLL_HOME and `docker` as DOCKER_CONFIG.
fn serve(target: &Path, home: &Path, docker: &Path) -> Running {
    let docker = docker.to_str().expect("utf-8 path");
    Running::start_command(
        Vec::new(),
        &[target.to_path_buf()],
        home,
        &[],
        &[("DOCKER_CONFIG", docker)],
    )
}

/// Run `atoll ARGS` with `home` as ATOLL_HOME and `docker_config` as DOCKER_CONFIG.
fn atoll(home: &Path, docker_config: &Path, args: &[&str]) -> Output {
    common::atoll_command()
        .args(args)
        .env("ATOLL_HOME", home)
        .env("DOCKER_CONFIG", docker_config)
        .env("ATOLL_LOG", "warn")
        .output()
        .expect("run atoll")
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn failed(out: &Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what} succeeded but should not have:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn push_json(home: &Path, docker: &Path, wasm: &str, reference: &str) -> serde_json::Value {
    let out = atoll(home, docker, &["push", wasm, reference, "--json"]);
    serde_json::from_str(ok(&out, "atoll push").trim()).expect("push --json")
}

/// GET a registry path with an Accept header, as a client without the crates would.
async fn registry_get(url: &str, accept: &str) -> (u16, Vec<u8>) {
    let req = http::Request::get(url)
        .header("accept", accept)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let resp = client().request(req).await.expect("registry answers");
    let status = resp.status().as_u16();
    use http_body_util::BodyExt as _;
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, body)
}

fn sha256_hex(path: &str) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_component_has_the_cncf_wasm_layout_and_round_trips_with_wkg() {
    let registry = Distribution::start();
    let home = tempfile::tempdir().expect("home");
    let docker = tempfile::tempdir().expect("docker config dir");
    let work = tempfile::tempdir().expect("work dir");
    let hello = test_programs_artifacts::HELLO;

    // atoll push: the layout wkg writes.
    let reference = registry.reference("acme/hello:1.0");
    let pushed = push_json(home.path(), docker.path(), hello, &reference);
    let digest = pushed["digest"].as_str().expect("digest").to_string();
    assert_eq!(
        pushed["layer"].as_str(),
        Some(format!("sha256:{}", sha256_hex(hello)).as_str()),
        "the layer is the component's bytes"
    );
    let base = format!("http://{}/v2/acme/hello", registry.host());
    let (status, manifest) = registry_get(
        &format!("{base}/manifests/1.0"),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .await;
    assert_eq!(status, 200);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(layers[0]["digest"], pushed["layer"]);
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "hello.wasm"
    );
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let (status, config) = registry_get(&format!("{base}/blobs/{config_digest}"), "*/*").await;
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_slice(&config).expect("config json");
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"][0], pushed["layer"]);
    let exports: Vec<&str> = config["component"]["exports"]
        .as_array()
        .expect("component exports")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        exports.contains(&"wasi:http/incoming-handler@0.2.12"),
        "{config}"
    );

    // wkg reads what atoll pushed: the same bytes.
    let wkg = wkg();
    let from_wkg = work.path().join("from-wkg.wasm");
    let out = Command::new(&wkg)
        .args(["oci", "pull", "--insecure", &registry.host(), "-o"])
        .arg(&from_wkg)
        .arg(format!("{}/acme/hello:1.0", registry.host()))
        .output()
        .expect("run wkg");
    assert!(
        out.status.success(),
        "wkg oci pull failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&from_wkg).expect("wkg output"),
        std::fs::read(hello).expect("hello"),
        "wkg pulled other bytes than atoll pushed"
    );

    // atoll reads what wkg pushed: another component, byte for byte, with its exports.
    let info = test_programs_artifacts::INFO;
    let out = Command::new(&wkg)
        .args(["oci", "push", "--insecure", &registry.host()])
        .arg(format!("{}/acme/info:2.0", registry.host()))
        .arg(info)
        .output()
        .expect("run wkg");
    assert!(
        out.status.success(),
        "wkg oci push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled_path = work.path().join("info.wasm");
    let out = atoll(
        home.path(),
        docker.path(),
        &[
            "pull",
            &registry.reference("acme/info:2.0"),
            "--output",
            pulled_path.to_str().expect("utf-8 path"),
            "--json",
        ],
    );
    let pulled: serde_json::Value =
        serde_json::from_str(ok(&out, "atoll pull").trim()).expect("pull --json");
    assert_eq!(
        std::fs::read(&pulled_path).expect("pulled"),
        std::fs::read(info).expect("info"),
        "atoll pulled other bytes than wkg pushed"
    );
    assert_eq!(
        pulled["layer"].as_str(),
        Some(format!("sha256:{}", sha256_hex(info)).as_str())
    );
    assert!(
        pulled["exports"]
            .as_array()
            .expect("exports")
            .iter()
            .any(|e| e == "wasi:http/incoming-handler@0.2.12"),
        "{pulled}"
    );

    // By digest: the same manifest; a digest that names nothing is "does not exist".
    let by_digest = format!("oci://{}/acme/hello@{digest}", registry.host());
    let out = atoll(
        home.path(),
        docker.path(),
        &[
            "pull",
            &by_digest,
            "-o",
            work.path().join("d.wasm").to_str().expect("path"),
        ],
    );
    ok(&out, "atoll pull by digest");
    let missing = format!(
        "oci://{}/acme/hello@sha256:{}",
        registry.host(),
        "0".repeat(64)
    );
    let err = failed(
        &atoll(home.path(), docker.path(), &["pull", &missing]),
        "pull of a digest nothing has",
    );
    assert!(err.contains("does not exist in the registry"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_blob_is_refused_and_nothing_is_written() {
    let registry = Distribution::start();
    let home = tempfile::tempdir().expect("home");
    let docker = tempfile::tempdir().expect("docker config dir");
    let work = tempfile::tempdir().expect("work dir");
    let reference = registry.reference("acme/hello:1.0");
    let pushed = push_json(
        home.path(),
        docker.path(),
        test_programs_artifacts::HELLO,
        &reference,
    );
    // Change one byte of the stored layer, keeping its size: the registry serves it as is.
    let blob = registry.blob_file(pushed["layer"].as_str().expect("layer digest"));
    let mut bytes = std::fs::read(&blob).expect("stored blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, &bytes).expect("tamper");

    let output = work.path().join("hello.wasm");
    let err = failed(
        &atoll(
            home.path(),
            docker.path(),
            &["pull", &reference, "-o", output.to_str().expect("path")],
        ),
        "pull of a tampered blob",
    );
    assert!(err.contains("do not match their digest"), "{err}");
    assert!(
        err.contains(pushed["layer"].as_str().expect("layer")),
        "{err}"
    );
    assert!(!output.exists(), "a tampered component was written");
    let leftovers: Vec<_> = std::fs::read_dir(work.path()).expect("read dir").collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // `atoll up oci://…` refuses it too, before serving anything.
    let out = common::atoll_command()
        .args(["up", &reference, "--listen", "127.0.0.1:0"])
        .env("ATOLL_HOME", home.path())
        .env("DOCKER_CONFIG", docker.path())
        .output()
        .expect("run atoll up");
    let err = failed(&out, "atoll up of a tampered artifact");
    assert!(err.contains("do not match their digest"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn atoll_up_serves_a_bare_component_straight_from_a_registry() {
    let registry = Distribution::start();
    let home = tempfile::tempdir().expect("home");
    let docker = tempfile::tempdir().expect("docker config dir");
    let reference = registry.reference("acme/hello:1.0");
    push_json(
        home.path(),
        docker.path(),
        test_programs_artifacts::HELLO,
        &reference,
    );
    let server = serve(Path::new(&reference), home.path(), docker.path());
    let reply = get(&client(), &server.url("/any/path")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "Hello, world!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_source_from_a_registry_is_locked_by_digest() {
    let registry = Distribution::start();
    let home = tempfile::tempdir().expect("home");
    let docker = tempfile::tempdir().expect("docker config dir");
    let reference = registry.reference("acme/web:latest");
    let first = push_json(
        home.path(),
        docker.path(),
        test_programs_artifacts::HELLO,
        &reference,
    );
    // The app directory outlives each server: three starts serve it.
    let app = tempfile::tempdir().expect("app dir");
    std::fs::write(
        app.path().join("atoll.toml"),
        format!(
            r#"
[app]
name = "from-oci"
[component.web]
source = "{reference}"
[[trigger.http]]
route = "/..."
component = "web"
"#
        ),
    )
    .expect("write manifest");
    let server_app = app.path().to_path_buf();
    let server = serve(&server_app, home.path(), docker.path());
    let reply = get(&client(), &server.url("/x")).await;
    assert_eq!(reply.text(), "Hello, world!\n");
    let lock = std::fs::read_to_string(server_app.join("atoll.lock")).expect("atoll.lock written");
    let digest = first["digest"].as_str().expect("digest");
    assert!(
        lock.contains(&format!("reference = \"{reference}\"")),
        "{lock}"
    );
    assert!(lock.contains(&format!("digest = \"{digest}\"")), "{lock}");
    drop(server);

    // The tag moves to another component. A new machine (empty cache) with this lock
    // still gets the pinned one, by digest.
    push_json(
        home.path(),
        docker.path(),
        test_programs_artifacts::INFO,
        &reference,
    );
    let fresh_home = tempfile::tempdir().expect("fresh home");
    let again = serve(&server_app, fresh_home.path(), docker.path());
    let reply = get(&client(), &again.url("/x")).await;
    assert_eq!(
        reply.text(),
        "Hello, world!\n",
        "the lock's digest was not used"
    );
    drop(again);

    // Without the lock, the tag resolves again, and the new pin is written.
    std::fs::remove_file(server_app.join("atoll.lock")).expect("rm lock");
    let relocked = serve(&server_app, fresh_home.path(), docker.path());
    let reply = get(&client(), &relocked.url("/x")).await;
    assert_eq!(reply.text(), "info Method::Get /x\n");
    let lock = std::fs::read_to_string(server_app.join("atoll.lock")).expect("relocked");
    assert!(!lock.contains(digest), "{lock}");
    drop(relocked);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_come_from_the_docker_config_file() {
    let auth_dir = tempfile::tempdir().expect("auth dir");
    let htpasswd = auth_dir.path().join("htpasswd");
    let hash = bcrypt::hash("s3cret-pass", 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).expect("write htpasswd");
    let registry = Distribution::start_with_auth(Some(&htpasswd));
    let home = tempfile::tempdir().expect("home");
    let reference = registry.reference("acme/hello:1.0");
    let hello = test_programs_artifacts::HELLO;

    // No credentials: refused, and told how to log in.
    let nobody = tempfile::tempdir().expect("empty docker config dir");
    let err = failed(
        &atoll(home.path(), nobody.path(), &["push", hello, &reference]),
        "anonymous push to an htpasswd registry",
    );
    assert!(err.contains("refused a push to"), "{err}");
    assert!(err.contains("no credentials were sent"), "{err}");
    assert!(
        err.contains(&format!("docker login {}", registry.host())),
        "{err}"
    );

    // A wrong password in the Docker config: refused, and the message says the
    // credentials were sent.
    let wrong = tempfile::tempdir().expect("docker config dir");
    write_docker_config(wrong.path(), &registry.host(), "alice", "wrong");
    let err = failed(
        &atoll(home.path(), wrong.path(), &["push", hello, &reference]),
        "push with a wrong password",
    );
    assert!(
        err.contains("with the credentials from the Docker config"),
        "{err}"
    );

    // The right ones (`auths.<host>.auth`, as `docker login` writes them): push and pull.
    let right = tempfile::tempdir().expect("docker config dir");
    write_docker_config(right.path(), &registry.host(), "alice", "s3cret-pass");
    ok(
        &atoll(home.path(), right.path(), &["push", hello, &reference]),
        "push with credentials",
    );
    let out_file = right.path().join("pulled.wasm");
    ok(
        &atoll(
            home.path(),
            right.path(),
            &["pull", &reference, "-o", out_file.to_str().expect("path")],
        ),
        "pull with credentials",
    );
    assert_eq!(
        std::fs::read(&out_file).expect("pulled"),
        std::fs::read(hello).expect("hello")
    );
    let err = failed(
        &atoll(home.path(), nobody.path(), &["pull", &reference]),
        "anonymous pull from an htpasswd registry",
    );
    assert!(err.contains("refused a pull of"), "{err}");
}

/// `DIR/config.json` with `auths.<host>.auth` = base64("user:password").
fn write_docker_config(dir: &Path, host: &str, user: &str, password: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let json = serde_json::json!({ "auths": { host: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), json.to_string()).expect("write docker config");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_from_a_registry_is_composed_and_pinned() {
    let registry = Distribution::start();
    let home = tempfile::tempdir().expect("home");
    let docker = tempfile::tempdir().expect("docker config dir");
    let fmt = registry.reference("acme/fmt:1.0.0");
    let pushed = push_json(
        home.path(),
        docker.path(),
        test_programs_artifacts::COMPOSE_FMT,
        &fmt,
    );
    let app = tempfile::tempdir().expect("app dir");
    std::fs::write(
        app.path().join("atoll.toml"),
        common::expand(&format!(
            r#"
[app]
name = "composed"
[component.api]
source = "{{{{COMPOSE_HANDLER}}}}"
[component.api.dependencies]
"acme:auth/verify" = {{ component = "auth" }}
"acme:fmt/format" = "{fmt}"
[component.auth]
source = "{{{{COMPOSE_AUTH}}}}"
[[trigger.http]]
route = "/..."
component = "api"
"#
        )),
    )
    .expect("write manifest");
    let server = serve(app.path(), home.path(), docker.path());
    let reply = crate::compose::as_alice(&server, "/").await;
    assert_eq!(reply.text(), "Hello, alice! (formatted by acme:fmt)\n");
    assert!(
        server
            .logs()
            .contains(&format!("composed: acme:fmt/format@1.0.0 <- `{fmt}`")),
        "{}",
        server.logs()
    );
    let lock = std::fs::read_to_string(app.path().join("atoll.lock")).expect("lock");
    assert!(lock.contains(&format!("reference = \"{fmt}\"")), "{lock}");
    assert!(
        lock.contains(&format!(
            "digest = \"{}\"",
            pushed["digest"].as_str().expect("digest")
        )),
        "{lock}"
    );
}

/// A registry that is not named by a loopback address is spoken to over TLS only:
/// `127.1` reaches the same plain-HTTP registry, but is not a loopback name atoll
/// recognises, so the push tries TLS and fails, until `--insecure` allows plain HTTP.
#[test]
fn plain_http_needs_a_loopback_address_or_insecure() {
    let registry = Distribution::start();
    let home = tempfile::tempdir().expect("home");
    let docker = tempfile::tempdir().expect("docker config dir");
    let reference = format!("oci://127.1:{}/acme/hello:1.0", registry.port);
    let hello = test_programs_artifacts::HELLO;
    let err = failed(
        &atoll(home.path(), docker.path(), &["push", hello, &reference]),
        "a plain-HTTP push to a name that is not loopback",
    );
    assert!(err.contains("cannot reach the registry 127.1:"), "{err}");
    assert!(err.contains("(https://"), "tried TLS: {err}");
    assert!(err.contains("--insecure"), "{err}");
    ok(
        &atoll(
            home.path(),
            docker.path(),
            &["push", hello, &reference, "--insecure"],
        ),
        "the same push with --insecure",
    );
}

/// `credHelpers` in the Docker config: atoll runs `docker-credential-NAME get` with the
/// registry on stdin, as docker does, and uses what it prints.
#[test]
fn a_credential_helper_from_the_docker_config_is_used() {
    let auth_dir = tempfile::tempdir().expect("auth dir");
    let htpasswd = auth_dir.path().join("htpasswd");
    let hash = bcrypt::hash("helper-pass", 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("bob:{hash}\n")).expect("write htpasswd");
    let registry = Distribution::start_with_auth(Some(&htpasswd));
    let home = tempfile::tempdir().expect("home");

    // The helper logs what it was asked for, and answers for this registry only.
    let bin = tempfile::tempdir().expect("bin dir");
    let asked = bin.path().join("asked");
    let helper = bin.path().join("docker-credential-atolltest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" >> {asked}\n[ \"$server\" = {host} ] || exit 1\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"bob\",\"Secret\":\"helper-pass\"}}' \"$server\"\n",
            asked = asked.display(),
            host = registry.host(),
        ),
    )
    .expect("write helper");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let docker = tempfile::tempdir().expect("docker config dir");
    let json = serde_json::json!({ "credHelpers": { registry.host(): "atolltest" } });
    std::fs::write(docker.path().join("config.json"), json.to_string()).expect("config");

    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = common::atoll_command()
        .args([
            "push",
            test_programs_artifacts::HELLO,
            &registry.reference("acme/hello:1.0"),
        ])
        .env("ATOLL_HOME", home.path())
        .env("DOCKER_CONFIG", docker.path())
        .env("PATH", &path)
        .env("ATOLL_LOG", "warn")
        .output()
        .expect("run atoll push");
    ok(&out, "push with a credential helper");
    let asked = std::fs::read_to_string(&asked).expect("the helper was run");
    assert!(asked.lines().any(|l| l == registry.host()), "{asked}");
}
