//! Reports what the sandbox lets it see: every environment variable, the number of
//! preopened directories, and whether it could reach the network or the host's files.
//! `?tcp=PORT&udp=PORT&lookup=NAME` says where to try the network: a TCP connection and
//! a UDP datagram to 127.0.0.1 at those ports (a test listens there), and a name lookup.
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Env;
impl Guest for Env {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let mut body = String::new();
        for (k, v) in wasip2::cli::environment::get_environment() {
            body.push_str(&format!("env {k}={v}\n"));
        }
        body.push_str(&format!("args {}\n", wasip2::cli::environment::get_arguments().len()));
        body.push_str(&format!("preopens {}\n", wasip2::filesystem::preopens::get_directories().len()));
        body.push_str(&format!("std_fs_root {}\n", std::fs::read_dir("/").is_ok()));
        let port = |name: &str| test_programs::query(&req, name).and_then(|p| p.parse::<u16>().ok());
        if let Some(p) = port("tcp") {
            let r = std::net::TcpStream::connect(("127.0.0.1", p));
            body.push_str(&format!("tcp {}\n", outcome(r.map(|_| ()))));
        }
        if let Some(p) = port("udp") {
            let r = std::net::UdpSocket::bind("0.0.0.0:0")
                .and_then(|s| s.send_to(b"leak", ("127.0.0.1", p)).map(|_| ()));
            body.push_str(&format!("udp {}\n", outcome(r)));
        }
        if let Some(name) = test_programs::query(&req, "lookup") {
            use std::net::ToSocketAddrs;
            let r = (name.as_str(), 80).to_socket_addrs().map(|_| ());
            body.push_str(&format!("lookup {}\n", outcome(r)));
        }
        test_programs::respond(out, 200, "text/plain", body.as_bytes());
    }
}
/// `ok`, or `denied (the error)`.
fn outcome(r: std::io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("denied ({:?}: {e})", e.kind()),
    }
}

wasip2::http::proxy::export!(Env);
fn main() {}
