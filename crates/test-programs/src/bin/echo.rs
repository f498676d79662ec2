//! Streams the request body back as the response body, chunk by chunk, without holding
//! it all in memory. With `?mode=count` it reads the whole body first and answers with
//! its length (a guest that responds only after reading everything).
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasip2::io::streams::StreamError;

struct Echo;
impl Guest for Echo {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let in_body = req.consume().expect("body once");
        let in_stream = in_body.stream().expect("stream once");
        if test_programs::query(&req, "mode").as_deref() == Some("count") {
            let mut n = 0usize;
            loop {
                match in_stream.blocking_read(64 * 1024) {
                    Ok(chunk) => n += chunk.len(),
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(_)) => {
                        // The host cut the body off (for example over its size cap).
                        drop(in_stream);
                        test_programs::respond(out, 400, "text/plain", b"body read failed\n");
                        return;
                    }
                }
            }
            test_programs::respond(out, 200, "text/plain", format!("{n}\n").as_bytes());
            return;
        }
        let resp = OutgoingResponse::new(Fields::new());
        let out_body = resp.body().expect("body once");
        ResponseOutparam::set(out, Ok(resp));
        let out_stream = out_body.write().expect("stream once");
        loop {
            match in_stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    for part in chunk.chunks(4096) {
                        out_stream.blocking_write_and_flush(part).expect("write");
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    panic!("reading the request body failed: {}", e.to_debug_string())
                }
            }
        }
        drop(in_stream);
        IncomingBody::finish(in_body);
        drop(out_stream);
        OutgoingBody::finish(out_body, None).expect("finish");
    }
}
wasip2::http::proxy::export!(Echo);
fn main() {}
