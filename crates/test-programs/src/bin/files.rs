//! Reads files: `GET /?path=P` answers the file's contents (200) or the error (404).
//! `?write=P` tries to create or truncate P, `?list=P` lists a directory.
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Files;
impl Guest for Files {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        if let Some(p) = test_programs::query(&req, "write") {
            let r = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&p);
            let text = match r {
                Ok(_) => "write ok".to_string(),
                Err(e) => format!("write denied: {e}"),
            };
            return test_programs::respond(out, 200, "text/plain", text.as_bytes());
        }
        if let Some(p) = test_programs::query(&req, "list") {
            let text = match std::fs::read_dir(&p) {
                Ok(rd) => {
                    let mut names: Vec<String> = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                    names.sort();
                    names.join(",")
                }
                Err(e) => format!("list denied: {e}"),
            };
            return test_programs::respond(out, 200, "text/plain", text.as_bytes());
        }
        let p = test_programs::query(&req, "path").unwrap_or_default();
        match std::fs::read(&p) {
            Ok(data) => test_programs::respond(out, 200, "application/octet-stream", &data),
            Err(e) => test_programs::respond(out, 404, "text/plain", format!("read denied: {e}").as_bytes()),
        }
    }
}
wasip2::http::proxy::export!(Files);
fn main() {}
