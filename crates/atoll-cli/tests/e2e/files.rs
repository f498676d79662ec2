//! `files`: read-only mounts, nothing outside them, refused sources.

use crate::common::*;

const APP: &str = r#"
[app]
name = "site"

[component.files]
source = "{{FILES}}"
files = [{ source = "static", destination = "/static" }, "assets/**/*.css"]

[component.none]
source = "{{FILES}}"

[[trigger.http]]
route = "/files"
component = "files"

[[trigger.http]]
route = "/none"
component = "none"
"#;

fn site() -> TestApp {
    let app = TestApp::new(APP);
    let p = app.path();
    std::fs::create_dir_all(p.join("static/sub")).expect("mkdir");
    std::fs::write(p.join("static/index.html"), "<h1>hi</h1>").expect("write");
    std::fs::write(p.join("static/sub/a.txt"), "nested").expect("write");
    std::fs::create_dir_all(p.join("assets")).expect("mkdir");
    std::fs::write(p.join("assets/site.css"), "body{}").expect("write");
    std::fs::create_dir_all(p.join("assets/deep")).expect("mkdir");
    std::fs::write(p.join("assets/deep/more.css"), "p{}").expect("write");
    std::fs::write(p.join("assets/notes.txt"), "not matched").expect("write");
    std::fs::write(p.join("secret.txt"), "top secret").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink("sub/a.txt", p.join("static/link.txt")).expect("symlink inside");
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_are_readable_and_nothing_else_is() {
    let app = site();
    let index = app.path().join("static/index.html");
    let server = Running::start(app);
    let c = client();
    let read = |p: &str| server.url(&format!("/files?path={p}"));

    let r = get(&c, &read("/static/index.html")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>hi</h1>"));
    assert_eq!(get(&c, &read("/static/sub/a.txt")).await.text(), "nested");
    assert_eq!(get(&c, &read("/static/link.txt")).await.text(), "nested");
    assert_eq!(get(&c, &read("/assets/site.css")).await.text(), "body{}");
    assert_eq!(get(&c, &read("/assets/deep/more.css")).await.text(), "p{}");
    assert_eq!(
        get(&c, &server.url("/files?list=/static")).await.text(),
        "index.html,link.txt,sub"
    );

    for escape in [
        "/static/../secret.txt",
        "/static/sub/../../secret.txt",
        "/secret.txt",
        "../secret.txt",
        "/etc/passwd",
        "/static/../../../../etc/passwd",
        "/assets/notes.txt",
        "/atoll.toml",
    ] {
        let r = get(&c, &read(escape)).await;
        assert_eq!(r.status, 404, "{escape} was readable: {}", r.text());
    }

    // Read-only: no create, no truncate, and the file is unchanged.
    for target in ["/static/index.html", "/static/new.txt"] {
        let r = get(&c, &server.url(&format!("/files?write={target}"))).await;
        assert!(
            r.text().starts_with("write denied"),
            "{target}: {}",
            r.text()
        );
    }
    assert_eq!(
        std::fs::read_to_string(&index).expect("read"),
        "<h1>hi</h1>"
    );

    // A component without `files` sees nothing.
    let r = get(&c, &server.url("/none?path=/static/index.html")).await;
    assert_eq!(r.status, 404);
}

#[cfg(unix)]
#[test]
fn a_symlink_leading_out_of_the_app_is_refused_at_load() {
    let app = site();
    let outside = tempfile::tempdir().expect("temp");
    std::fs::write(outside.path().join("passwd"), "root").expect("write");
    std::os::unix::fs::symlink(outside.path(), app.path().join("static/escape")).expect("symlink");
    let (ok, stderr) = up_fails(&app, &[], &[]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("outside the mounted directory"), "{stderr}");
    assert!(stderr.contains("component.files.files[0]"), "{stderr}");

    // The mount source itself a symlink to outside the app.
    let app = site();
    std::fs::remove_dir_all(app.path().join("static")).expect("rm");
    std::os::unix::fs::symlink(outside.path(), app.path().join("static")).expect("symlink");
    let (ok, stderr) = up_fails(&app, &[], &[]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("outside the app directory"), "{stderr}");
}

#[test]
fn a_missing_mount_source_is_refused_at_load() {
    let app = site();
    std::fs::remove_dir_all(app.path().join("static")).expect("rm");
    let (ok, stderr) = up_fails(&app, &[], &[]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("mount source `static` cannot be read"),
        "{stderr}"
    );
}
