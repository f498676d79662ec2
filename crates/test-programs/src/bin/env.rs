//! Reports what the sandbox lets it see: every environment variable, the number of
//! preopened directories, and whether it could reach the network or the host's files.
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Env;
impl Guest for Env {
    fn handle(_req: IncomingRequest, out: ResponseOutparam) {
        let mut body = String::new();
        for (k, v) in wasip2::cli::environment::get_environment() {
            body.push_str(&format!("env {k}={v}\n"));
        }
        body.push_str(&format!("args {}\n", wasip2::cli::environment::get_arguments().len()));
        body.push_str(&format!("preopens {}\n", wasip2::filesystem::preopens::get_directories().len()));
        body.push_str(&format!("std_fs_root {}\n", std::fs::read_dir("/").is_ok()));
        body.push_str(&format!("std_net {}\n", std::net::TcpStream::connect("127.0.0.1:22").is_ok()));
        test_programs::respond(out, 200, "text/plain", body.as_bytes());
    }
}
wasip2::http::proxy::export!(Env);
fn main() {}
