//! The HTTP front end on raw bytes: each input is written into a fresh connection to a
//! real atoll-http server (no apps, so every request that parses gets a 404), which
//! must answer or close it, never panic or hang, and keep serving the next one. Each
//! response's status line is checked.
#![no_main]
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let config = atoll_http::HttpConfig {
            workers: 1,
            pin_workers: false,
            header_read_timeout: Duration::from_millis(200),
            ..atoll_http::HttpConfig::default()
        };
        let apps = atoll_runtime::LiveApps::new(Vec::new());
        runtime.spawn(async move {
            let never = std::future::pending::<()>();
            if let Err(e) = atoll_http::serve(listener, apps, config, never).await {
                panic!("the server stopped: {e}");
            }
        });
        Server { runtime, addr }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = server();
    s.runtime.block_on(async {
        let mut conn = tokio::net::TcpStream::connect(s.addr)
            .await
            .expect("the server still accepts connections");
        let _ = conn.write_all(data).await;
        let _ = conn.shutdown().await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer));
        match read.await {
            Ok(_) => {}
            Err(_) => panic!("no answer and no close within 5 s"),
        }
        if answer.starts_with(b"HTTP/1.1 ") {
            let status = &answer[9..answer.len().min(12)];
            assert!(
                status.iter().all(u8::is_ascii_digit),
                "a bad status line: {:?}",
                String::from_utf8_lossy(&answer[..answer.len().min(40)])
            );
        }
    });
});
