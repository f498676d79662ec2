//! Process-per-request isolation, CGI style: each request spawns a child process (this
//! same binary with `--child`), which writes the response body to stdout and exits.
//!
//! The child decides what it is before anything else runs: it starts no async runtime
//! and no threads, so each request pays for a process (spawn, exec, dynamic linking,
//! Rust's start-up, exit, reap) and nothing a CGI program would not.

use bytes::Bytes;
use http_body_util::Full;

fn main() -> std::io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--child") {
        use std::io::Write;
        return std::io::stdout().write_all(b"Hello, world!\n");
    }
    tokio::runtime::Runtime::new()?.block_on(serve())
}

async fn serve() -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    atoll_bench::serve(atoll_bench::addr_arg(), move || {
        let exe = exe.clone();
        async move {
            match tokio::process::Command::new(&exe)
                .arg("--child")
                .output()
                .await
            {
                Ok(out) if out.status.success() => {
                    http::Response::new(Full::new(Bytes::from(out.stdout)))
                }
                _ => {
                    let mut r =
                        http::Response::new(Full::new(Bytes::from_static(b"spawn failed\n")));
                    *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                    r
                }
            }
        }
    })
    .await
}
