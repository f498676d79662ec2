//! The embed API against a real component built from source
//! (`crates/test-programs/src/bin/plugin.rs`, world `wit-plugin/world.wit`): typed and
//! dynamic calls, host functions with state, every hostile case with its specific error,
//! the policy's deny-by-default, the instance limit, and no state leaking between fresh
//! instances.
#![allow(missing_docs)] // the bindings `bindgen!` generates

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atoll::wasmtime::component::HasSelf;
use atoll::{Error, Limits, Policy, Runtime, Val};

atoll::bindgen!({
    path: "../test-programs/wit-plugin",
    world: "acme:plugin/plugin",
    imports: { "acme:plugin/host.sleep": async },
});

use exports::acme::plugin::api::{Color, Perms, Point, Shape};

/// The host functions' state: a counter shared by all instances, and a gauge of the
/// instances sleeping in `sleep` right now, with its high-water mark.
#[derive(Clone, Default)]
struct HostState {
    total: Arc<AtomicU32>,
    sleeping: Arc<AtomicUsize>,
    most_sleeping: Arc<AtomicUsize>,
}

impl acme::plugin::host::Host for HostState {
    async fn sleep(&mut self, ms: u64) {
        let now = self.sleeping.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_sleeping.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.sleeping.fetch_sub(1, Ordering::SeqCst);
    }

    fn bump(&mut self, by: u32) -> u32 {
        self.total.fetch_add(by, Ordering::SeqCst) + by
    }

    fn block(&mut self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

fn wasm() -> Vec<u8> {
    std::fs::read(test_programs_artifacts::PLUGIN).expect("the plugin test program is built")
}

/// A runtime with the test world's host functions; `fuel` turns fuel counting on.
fn runtime(fuel: bool) -> Runtime {
    Runtime::builder()
        .max_instances(32)
        .fuel(fuel)
        .link(|linker| {
            acme::plugin::host::add_to_linker::<_, HasSelf<HostState>>(linker, |c| {
                c.user::<HostState>()
            })
        })
        .build()
        .expect("runtime")
}

async fn load(rt: &Runtime, policy: Policy, limits: Limits, state: HostState) -> atoll::Plugin {
    rt.plugin(wasm())
        .name("plugin")
        .policy(policy)
        .limits(limits)
        .state(move || state.clone())
        .load()
        .await
        .expect("the plugin loads")
}

async fn plugin(limits: Limits) -> atoll::Plugin {
    load(
        &runtime(false),
        Policy::deny_all(),
        limits,
        HostState::default(),
    )
    .await
}

fn short() -> Limits {
    Limits::default().deadline(Duration::from_millis(300))
}

#[tokio::test]
async fn typed_calls_carry_records_variants_lists_options_results_and_a_resource() {
    let plugin = plugin(Limits::default()).await;
    let (n, shape, sum, word, none, parsed, bad, total) = plugin
        .with_instance(async |store, instance| {
            let b = Plugin::new(&mut *store, instance)?;
            let api = b.acme_plugin_api();
            let n = api.call_count_vowels(&mut *store, "hello world").await?;
            let shape = api
                .call_describe(
                    &mut *store,
                    Shape::Rect(Point { x: 3, y: -4 }),
                    Color::Green,
                    Perms::READ | Perms::EXEC,
                )
                .await?;
            let sum = api.call_sum(&mut *store, &[1, 2, -10]).await?;
            let word = api.call_first_word(&mut *store, "  two words").await?;
            let none = api.call_first_word(&mut *store, "   ").await?;
            let parsed = api.call_parse_num(&mut *store, " 42 ").await?;
            let bad = api.call_parse_num(&mut *store, "x").await?;
            let acc = api.accumulator().call_constructor(&mut *store, 10).await?;
            api.accumulator().call_add(&mut *store, acc, 5).await?;
            api.accumulator().call_add(&mut *store, acc, -2).await?;
            let total = api.accumulator().call_total(&mut *store, acc).await?;
            acc.resource_drop_async(&mut *store).await?;
            Ok((n, shape, sum, word, none, parsed, bad, total))
        })
        .await
        .expect("typed calls");
    assert_eq!(n, 3);
    assert_eq!(shape, "rect 3x-4 green r-x");
    assert_eq!(sum, -7);
    assert_eq!(word.as_deref(), Some("two"));
    assert_eq!(none, None);
    assert_eq!(parsed, Ok(42));
    assert!(bad.is_err_and(|e| e.contains("not a number")));
    assert_eq!(total, 13);
}

#[tokio::test]
async fn dynamic_calls_take_vals_and_wave_and_name_what_is_wrong() {
    let plugin = plugin(Limits::default()).await;
    assert_eq!(
        plugin
            .call("count-vowels", &[Val::String("aeiou xyz".into())])
            .await
            .expect("call"),
        vec![Val::U32(5)]
    );
    assert_eq!(
        plugin
            .call_wave("manhattan", &["{x: 3, y: -4}"])
            .await
            .expect("wave"),
        "7"
    );
    assert_eq!(
        plugin
            .call_wave("describe", &["circle(2)", "blue", "{write}"])
            .await
            .expect("wave"),
        r#""circle r=2 blue -w-""#
    );
    assert_eq!(
        plugin
            .call_wave("first-word", &[r#""hi there""#])
            .await
            .expect("wave"),
        r#"some("hi")"#
    );
    assert_eq!(
        plugin
            .call_wave("parse-num", &[r#""12""#])
            .await
            .expect("wave"),
        "ok(12)"
    );
    assert_eq!(
        plugin.call_wave("sum", &["[1, 2, 3]"]).await.expect("wave"),
        "6"
    );
    // The qualified name works too.
    assert_eq!(
        plugin
            .call_wave("acme:plugin/api@0.1.0#count-vowels", &[r#""oo""#])
            .await
            .expect("qualified"),
        "2"
    );

    // A wrong WAVE type names the parameter and its WIT type.
    let e = plugin
        .call_wave("manhattan", &["5"])
        .await
        .expect_err("wrong type");
    let text = e.to_string();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
    assert!(
        text.contains("`p`") && text.contains("record { x: s32, y: s32 }"),
        "{text}"
    );
    // A wrong Val type too.
    let e = plugin
        .call("count-vowels", &[Val::U32(1)])
        .await
        .expect_err("wrong val");
    assert!(
        e.to_string().contains("`s`") && e.to_string().contains("string"),
        "{e}"
    );
    // The wrong number of arguments shows the signature.
    let e = plugin
        .call_wave("count-vowels", &[])
        .await
        .expect_err("no args");
    assert!(e.to_string().contains("func(s: string) -> u32"), "{e}");
    // An unknown function lists every export with its signature.
    let e = plugin
        .call_wave("count-consonants", &[])
        .await
        .expect_err("unknown");
    let text = e.to_string();
    assert!(matches!(e, Error::NoSuchFunction { .. }), "{e:?}");
    assert!(
        text.contains("acme:plugin/api@0.1.0#count-vowels: func(s: string) -> u32"),
        "{text}"
    );
    assert!(text.contains("[method]accumulator.add"), "{text}");
    assert!(plugin.functions().iter().any(|f| f.name() == "manhattan"));
}

#[tokio::test]
async fn host_functions_get_the_plugins_state() {
    let state = HostState::default();
    let plugin = load(
        &runtime(false),
        Policy::deny_all(),
        Limits::default(),
        state.clone(),
    )
    .await;
    assert_eq!(plugin.call_wave("bump", &["2"]).await.expect("bump"), "2");
    assert_eq!(plugin.call_wave("bump", &["3"]).await.expect("bump"), "5");
    assert_eq!(state.total.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline_without_fuel() {
    let plugin = plugin(short()).await;
    let start = Instant::now();
    let e = plugin
        .call_wave("spin", &[])
        .await
        .expect_err("loops forever");
    let took = start.elapsed();
    assert!(
        matches!(e, Error::Deadline { limit } if limit == Duration::from_millis(300)),
        "{e:?}"
    );
    // Two epoch ticks are 20 ms; the bound is coarse because CI machines are noisy.
    assert!(took < Duration::from_millis(800), "stopped after {took:?}");
    // The host, and the plugin, carry on.
    assert_eq!(
        plugin
            .call_wave("count-vowels", &[r#""a""#])
            .await
            .expect("after"),
        "1"
    );
}

#[tokio::test]
async fn an_infinite_loop_runs_out_of_fuel() {
    let rt = runtime(true);
    let limits = Limits::default()
        .fuel(5_000_000)
        .deadline(Duration::from_secs(20));
    let plugin = load(&rt, Policy::deny_all(), limits, HostState::default()).await;
    let start = Instant::now();
    let e = plugin
        .call_wave("spin", &[])
        .await
        .expect_err("loops forever");
    assert!(matches!(e, Error::Fuel { limit: 5_000_000 }), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // A fresh call gets its full budget again.
    assert_eq!(
        plugin
            .call_wave("count-vowels", &[r#""ae""#])
            .await
            .expect("after"),
        "2"
    );
}

#[tokio::test]
async fn a_host_call_that_blocks_past_the_deadline_is_cut_off() {
    let plugin = plugin(short()).await;
    let start = Instant::now();
    let e = plugin
        .call_wave("nap", &["5000"])
        .await
        .expect_err("sleeps 5 s");
    assert!(matches!(e, Error::Deadline { .. }), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn unbounded_memory_growth_hits_the_memory_limit() {
    let plugin = plugin(Limits::default().memory(32 << 20)).await;
    let e = plugin
        .call_wave("grow", &["200"])
        .await
        .expect_err("grows to 200 MiB");
    assert!(
        matches!(e, Error::Memory { limit, .. } if limit == 32 << 20),
        "{e:?}"
    );
    // Under the limit it works.
    assert_eq!(plugin.call_wave("grow", &["8"]).await.expect("8 MiB"), "8");
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_trap() {
    let plugin = plugin(Limits::default()).await;
    let e = plugin
        .call_wave("recurse", &["100000000"])
        .await
        .expect_err("overflows");
    match &e {
        Error::Trap {
            code, backtrace, ..
        } => {
            assert_eq!(code, &Some(atoll::wasmtime::Trap::StackOverflow), "{e}");
            // The guest's own frames, demangled.
            assert!(
                backtrace.iter().any(|f| f.contains("recurse")),
                "{backtrace:?}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(
        plugin
            .call_wave("recurse", &["1000"])
            .await
            .expect("shallow"),
        "1000"
    );
}

/// A loopback listener owned by the test that records whether anything connected.
fn listener() -> (String, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://127.0.0.1:{}/", l.local_addr().expect("addr").port());
    let seen = Arc::new(AtomicBool::new(false));
    let flag = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            flag.store(true, Ordering::SeqCst);
            if let Ok(mut c) = conn {
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                let _ = std::io::Write::write_all(
                    &mut c,
                    b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
                );
            }
        }
    });
    (url, seen)
}

#[tokio::test]
async fn outbound_http_reaches_only_granted_hosts() {
    let (url, seen) = listener();
    let denied = plugin(Limits::default()).await;
    let out = denied
        .call_wave("fetch", &[&format!("{url:?}")])
        .await
        .expect("the call returns");
    assert!(
        out.starts_with("err(") && out.contains("HttpRequestDenied"),
        "{out}"
    );
    // A guest that panics at the refusal: the error says what was denied.
    let e = denied
        .call_wave("must-fetch", &[&format!("{url:?}")])
        .await
        .expect_err("panics");
    match &e {
        Error::Denied { capability, cause } => {
            assert!(
                capability.contains("outbound HTTP") && capability.contains("127.0.0.1"),
                "{e}"
            );
            assert!(matches!(cause.as_ref(), Error::Trap { .. }), "{e}");
        }
        other => panic!("expected Denied, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !seen.load(Ordering::SeqCst),
        "a denied request reached the listener"
    );

    // Granted, the same request goes through: the listener is not deaf.
    let origin = url.trim_end_matches('/').to_string();
    let granted = load(
        &runtime(false),
        Policy::deny_all().allow_outbound(origin),
        Limits::default(),
        HostState::default(),
    )
    .await;
    assert_eq!(
        granted
            .call_wave("fetch", &[&format!("{url:?}")])
            .await
            .expect("call"),
        "ok(204)"
    );
    assert!(seen.load(Ordering::SeqCst));
}

#[tokio::test]
async fn files_are_only_those_of_a_granted_dir_read_only_and_no_way_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let granted = dir.path().join("granted");
    std::fs::create_dir(&granted).expect("mkdir");
    std::fs::write(granted.join("hello.txt"), "hi from the host").expect("write");
    std::fs::write(dir.path().join("secret.txt"), "secret").expect("write");
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), granted.join("link"))
        .expect("symlink");

    let none = plugin(Limits::default()).await;
    let out = none
        .call_wave("read-file", &[r#""/etc/passwd""#])
        .await
        .expect("returns");
    assert!(out.starts_with("err("), "{out}");

    let plugin = load(
        &runtime(false),
        Policy::deny_all().dir(&granted, "/data"),
        Limits::default(),
        HostState::default(),
    )
    .await;
    let read = async |p: &str| {
        plugin
            .call_wave("read-file", &[&format!("{p:?}")])
            .await
            .expect("returns")
    };
    assert_eq!(read("/data/hello.txt").await, r#"ok("hi from the host")"#);
    // Read-only: neither a new file nor an overwrite lands on the host.
    let write = async |p: &str| {
        plugin
            .call_wave("write-file", &[&format!("{p:?}"), r#""scribbled""#])
            .await
            .expect("returns")
    };
    assert!(write("/data/new.txt").await.starts_with("err("));
    assert!(write("/data/hello.txt").await.starts_with("err("));
    assert!(!granted.join("new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(granted.join("hello.txt")).expect("read"),
        "hi from the host"
    );
    for escape in [
        "/etc/passwd",
        "/data/../secret.txt",
        "/data/link",
        "/secret.txt",
    ] {
        let out = read(escape).await;
        assert!(
            out.starts_with("err(") && !out.contains("secret\")"),
            "{escape}: {out}"
        );
    }
}

#[tokio::test]
async fn the_environment_is_empty_unless_granted() {
    // SAFETY: tests in this binary do not read the environment concurrently with this.
    unsafe { std::env::set_var("ATOLL_TEST_HOST_SECRET", "leak") };
    let none = plugin(Limits::default()).await;
    assert_eq!(none.call_wave("all-env", &[]).await.expect("env"), "[]");
    assert_eq!(
        none.call_wave("get-env", &[r#""ATOLL_TEST_HOST_SECRET""#])
            .await
            .expect("env"),
        "none"
    );
    let some = load(
        &runtime(false),
        Policy::deny_all().env("MODE", "strict"),
        Limits::default(),
        HostState::default(),
    )
    .await;
    assert_eq!(
        some.call_wave("all-env", &[]).await.expect("env"),
        r#"["MODE=strict"]"#
    );
}

#[tokio::test]
async fn key_value_stores_open_only_when_granted() {
    let none = plugin(Limits::default()).await;
    let out = none
        .call_wave("kv-set", &[r#""cache""#, r#""k""#, r#""v""#])
        .await
        .expect("returns");
    assert!(out.contains("AccessDenied"), "{out}");
    let policy: Policy =
        toml::from_str("[key_value_stores.cache]\ntype = \"memory\"").expect("policy");
    let granted = load(
        &runtime(false),
        policy,
        Limits::default(),
        HostState::default(),
    )
    .await;
    assert_eq!(
        granted
            .call_wave("kv-set", &[r#""cache""#, r#""k""#, r#""v""#])
            .await
            .expect("set"),
        "ok"
    );
    assert_eq!(
        granted
            .call_wave("kv-get", &[r#""cache""#, r#""k""#])
            .await
            .expect("get"),
        r#"ok(some("v"))"#
    );
    // Another label is still denied.
    let out = granted
        .call_wave("kv-get", &[r#""other""#, r#""k""#])
        .await
        .expect("returns");
    assert!(out.contains("AccessDenied"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_calls_than_the_instance_limit_wait_and_time_out_cleanly() {
    let state = HostState::default();
    let limits = Limits::default()
        .max_instances(2)
        .checkout_timeout(Duration::from_millis(150))
        .deadline(Duration::from_secs(5));
    let plugin = load(&runtime(false), Policy::deny_all(), limits, state.clone()).await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let p = plugin.clone();
            tokio::spawn(async move { p.call_wave("nap", &["600"]).await })
        })
        .collect();
    let mut ok = 0;
    let mut busy = 0;
    for c in calls {
        match c.await.expect("task") {
            Ok(_) => ok += 1,
            Err(Error::Busy {
                max_instances: 2, ..
            }) => busy += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, busy), (2, 4));
    assert_eq!(
        state.most_sleeping.load(Ordering::SeqCst),
        2,
        "never more than 2 live"
    );
    // Once free, calls go through again.
    assert_eq!(
        plugin.call_wave("nap", &["1"]).await.expect("free again"),
        ""
    );
}

#[tokio::test]
async fn bad_components_are_clear_errors_not_panics() {
    let rt = runtime(false);
    let e = rt
        .load(
            b"definitely not wasm".to_vec(),
            &Policy::deny_all(),
            &Limits::default(),
        )
        .await;
    assert!(matches!(e, Err(Error::InvalidComponent { .. })), "{e:?}");
    let mut truncated = wasm();
    truncated.truncate(truncated.len() / 2);
    let e = rt
        .load(truncated, &Policy::deny_all(), &Limits::default())
        .await
        .expect_err("truncated");
    assert!(matches!(e, Error::InvalidComponent { .. }), "{e:?}");
    // A runtime without the world's host functions: a link error naming the import.
    let bare = Runtime::new().expect("runtime");
    let e = bare
        .load(wasm(), &Policy::deny_all(), &Limits::default())
        .await
        .expect_err("link");
    match &e {
        Error::Link { import, .. } => {
            assert_eq!(import.as_deref(), Some("acme:plugin/host@0.1.0"), "{e}")
        }
        other => panic!("expected a link error, got {other:?}"),
    }
    // Limits out of range.
    let e = rt
        .load(wasm(), &Policy::deny_all(), &Limits::default().memory(0))
        .await
        .expect_err("limits");
    assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
}

#[tokio::test]
async fn fresh_instances_share_no_state_and_pooled_ones_do() {
    let plugin = plugin(Limits::default()).await;
    for _ in 0..3 {
        assert_eq!(plugin.call_wave("next", &[]).await.expect("next"), "1");
        assert_eq!(
            plugin.call_wave("scribble", &[]).await.expect("scribble"),
            r#""pristine""#
        );
        assert_eq!(
            plugin.call_wave("hoard", &["512"]).await.expect("hoard"),
            "512"
        );
    }
    let pool = plugin.pool();
    assert_eq!(pool.call_wave("next", &[]).await.expect("next"), "1");
    assert_eq!(pool.call_wave("next", &[]).await.expect("next"), "2");
    assert_eq!(
        pool.call_wave("scribble", &[]).await.expect("scribble"),
        r#""pristine""#
    );
    assert_eq!(
        pool.call_wave("scribble", &[]).await.expect("scribble"),
        r#""SCRIBBLE""#
    );
    assert_eq!(pool.idle_count(), 1);
    // A failed call drops its instance: the next starts from scratch.
    pool.call_wave("recurse", &["100000000"])
        .await
        .expect_err("overflows");
    assert_eq!(pool.idle_count(), 0);
    assert_eq!(pool.call_wave("next", &[]).await.expect("next"), "1");
}

#[test]
fn the_blocking_facade_works_without_a_runtime_and_refuses_inside_one() {
    let rt = runtime(false);
    let plugin = rt
        .plugin(wasm())
        .state(HostState::default)
        .load_blocking()
        .expect("load");
    assert_eq!(
        plugin
            .call_wave_blocking("count-vowels", &[r#""queue""#])
            .expect("call"),
        "4"
    );
    let inside = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
        .block_on(async { plugin.call_wave_blocking("count-vowels", &[r#""a""#]) });
    assert!(
        matches!(inside, Err(Error::Runtime(ref m)) if m.contains("async runtime")),
        "{inside:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_serves_more_callers_than_instances_by_handing_instances_on() {
    let state = HostState::default();
    let limits = Limits::default()
        .max_instances(2)
        .checkout_timeout(Duration::from_secs(3))
        .deadline(Duration::from_secs(5));
    let plugin = load(&runtime(false), Policy::deny_all(), limits, state.clone()).await;
    let pool = Arc::new(plugin.pool());
    // Warm both instances, so every later caller waits on returned ones, not on permits.
    let warm: Vec<_> = (0..2)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move { p.call_wave("nap", &["100"]).await })
        })
        .collect();
    for w in warm {
        w.await.expect("task").expect("warm-up");
    }
    assert_eq!(pool.idle_count(), 2);
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move { p.call_wave("nap", &["150"]).await })
        })
        .collect();
    for c in calls {
        c.await
            .expect("task")
            .expect("every caller gets an instance in time");
    }
    assert_eq!(
        state.most_sleeping.load(Ordering::SeqCst),
        2,
        "never more than 2 live"
    );
    assert_eq!(pool.idle_count(), 2);
}

#[tokio::test]
async fn fuel_on_a_runtime_that_does_not_count_it_is_refused() {
    let rt = runtime(false);
    let e = rt
        .load(wasm(), &Policy::deny_all(), &Limits::default().fuel(1000))
        .await
        .expect_err("fuel without fuel counting");
    assert!(
        matches!(&e, Error::InvalidInput { message } if message.contains("RuntimeBuilder::fuel(true)")),
        "{e:?}"
    );
}

#[tokio::test]
async fn plugins_granted_the_same_store_label_see_only_their_own_data() {
    let rt = runtime(false);
    let policy: Policy =
        toml::from_str("[key_value_stores.cache]\ntype = \"memory\"").expect("policy");
    let mk = async |name: &str| {
        rt.plugin(wasm())
            .name(name)
            .policy(policy.clone())
            .state(HostState::default)
            .load()
            .await
            .expect("load")
    };
    let (a, b) = (mk("alpha").await, mk("beta").await);
    let set = [r#""cache""#, r#""k""#, r#""from alpha""#];
    assert_eq!(a.call_wave("kv-set", &set).await.expect("set"), "ok");
    let get = [r#""cache""#, r#""k""#];
    assert_eq!(
        a.call_wave("kv-get", &get).await.expect("get"),
        r#"ok(some("from alpha"))"#
    );
    assert_eq!(b.call_wave("kv-get", &get).await.expect("get"), "ok(none)");
}

#[tokio::test]
async fn host_functions_without_the_plugins_state_get_a_default_not_a_panic() {
    let state = HostState::default();
    let rt = runtime(false);
    // Loaded without `.state`: its calls into `bump` get a fresh default state.
    let stateless = rt
        .load(wasm(), &Policy::deny_all(), &Limits::default())
        .await
        .expect("load");
    assert_eq!(
        stateless.call_wave("bump", &["2"]).await.expect("bump"),
        "2"
    );
    assert_eq!(
        stateless.call_wave("bump", &["2"]).await.expect("bump"),
        "2"
    );
    let with = load(&rt, Policy::deny_all(), Limits::default(), state.clone()).await;
    assert_eq!(with.call_wave("bump", &["5"]).await.expect("bump"), "5");
    assert_eq!(
        state.total.load(Ordering::SeqCst),
        5,
        "the stateless plugin never reached it"
    );
}

#[tokio::test]
async fn a_sync_host_call_that_blocks_is_caught_when_it_returns() {
    // A synchronous host function cannot be interrupted: the deadline (300 ms) is
    // enforced at the guest's next epoch check after the 800 ms block returns, instead
    // of letting the guest run on.
    let plugin = plugin(short()).await;
    let start = Instant::now();
    let e = plugin
        .call_wave("block-then-spin", &["800"])
        .await
        .expect_err("blocks, then loops");
    let took = start.elapsed();
    assert!(matches!(e, Error::Deadline { .. }), "{e:?}");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    // At the guest's next epoch check (one 10 ms tick), not after 300 ms more of CPU.
    assert!(
        took < Duration::from_millis(1000),
        "stopped only after {took:?}"
    );
}
