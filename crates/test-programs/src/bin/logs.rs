//! Writes to stdout and stderr: `?lines=N` numbered lines, `?big=1` 200 KB without a
//! newline at the end, `?partial=1` a last line without a newline, `?structured=1`
//! three `wasi:logging` calls (info, critical, debug), `?html=1` a line of HTML with a
//! script in it (for the dashboard's test: it must show as text).
use std::io::Write;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Logs;
impl Guest for Logs {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let lines: usize = test_programs::query(&req, "lines").and_then(|n| n.parse().ok()).unwrap_or(0);
        for i in 0..lines {
            println!("guest line {i} on stdout");
        }
        if lines > 0 {
            eprintln!("guest complaint on stderr");
        }
        if test_programs::query(&req, "html").is_some() {
            println!("<img src=x onerror=\"document.title='pwned'\"><b>bold guest</b>");
        }
        if test_programs::query(&req, "big").is_some() {
            let chunk = vec![b'x'; 1000];
            let mut stdout = std::io::stdout();
            for _ in 0..200 {
                let _ = stdout.write_all(&chunk);
            }
            let _ = stdout.flush();
        }
        if test_programs::query(&req, "structured").is_some() {
            use test_programs::bindings::wasi::logging::logging::{log, Level};
            log(Level::Info, "checkout", "structured hello");
            log(Level::Critical, "checkout", "structured alarm");
            log(Level::Debug, "checkout", "structured detail");
        }
        if test_programs::query(&req, "partial").is_some() {
            print!("unterminated last words");
            let _ = std::io::stdout().flush();
        }
        test_programs::respond(out, 200, "text/plain", b"logged\n");
    }
}
wasip2::http::proxy::export!(Logs);
fn main() {}
