//! Process-per-request isolation, CGI style: each request spawns a child process (this
//! same binary with `--child`), which writes the response body to stdout and exits.

use bytes::Bytes;
use http_body_util::Full;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    if std::env::args().any(|a| a == "--child") {
        use std::io::Write;
        std::io::stdout().write_all(b"Hello, world!\n")?;
        return Ok(());
    }
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
