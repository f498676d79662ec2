//! Sends outbound HTTP requests. Headers of the incoming request say what to do:
//! `x-url` (the URL to GET), `x-follow: 1` (follow one redirect, as a guest library
//! would), `x-parallel: N` (send N at once and count the outcomes), `x-first-byte-ms`.
//! Answers `status CODE\n<body>` (200), or `error <ErrorCode>` (502).
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler::{self, FutureIncomingResponse};
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingRequest, RequestOptions, ResponseOutparam, Scheme,
};

struct Outbound;

fn header(req: &IncomingRequest, name: &str) -> Option<String> {
    req.headers().get(name).into_iter().next().map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn start(url: &str, first_byte_ms: Option<u64>) -> Result<FutureIncomingResponse, String> {
    let (scheme, rest) = url.split_once("://").ok_or("no scheme")?;
    // `http://host?a=b` has the path-with-query `?a=b`, as a URL library would send it.
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    req.set_scheme(Some(&scheme)).map_err(|_| "scheme rejected")?;
    req.set_authority(Some(authority)).map_err(|_| format!("authority `{authority}` rejected by wasi:http"))?;
    req.set_path_with_query(Some(path)).map_err(|_| "path rejected")?;
    let body = req.body().map_err(|_| "body")?;
    let opts = RequestOptions::new();
    if let Some(ms) = first_byte_ms {
        let _ = opts.set_first_byte_timeout(Some(ms * 1_000_000));
    }
    let fut = outgoing_handler::handle(req, Some(opts)).map_err(|e| format!("error {e:?}"))?;
    OutgoingBody::finish(body, None).map_err(|e| format!("error {e:?}"))?;
    Ok(fut)
}

/// Wait for a response: (status, location header, body).
fn finish(fut: FutureIncomingResponse) -> Result<(u16, Option<String>, Vec<u8>), ErrorCode> {
    fut.subscribe().block();
    let resp = match fut.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(e),
        _ => return Err(ErrorCode::InternalError(Some("no response".into()))),
    };
    let status = resp.status();
    let location = resp.headers().get("location").into_iter().next().map(|v| String::from_utf8_lossy(&v).into_owned());
    let body = resp.consume().map_err(|_| ErrorCode::InternalError(Some("body".into())))?;
    let stream = body.stream().map_err(|_| ErrorCode::InternalError(Some("stream".into())))?;
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(_) => break,
        }
    }
    Ok((status, location, data))
}

impl Guest for Outbound {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let url = header(&req, "x-url").unwrap_or_default();
        let first_byte_ms = header(&req, "x-first-byte-ms").and_then(|v| v.parse().ok());
        if let Some(n) = header(&req, "x-parallel").and_then(|v| v.parse::<usize>().ok()) {
            let mut futs = Vec::new();
            let (mut ok, mut limited, mut other) = (0, 0, 0);
            for _ in 0..n {
                match start(&url, first_byte_ms) {
                    Ok(f) => futs.push(f),
                    Err(e) if e.contains("ConnectionLimitReached") => limited += 1,
                    Err(_) => other += 1,
                }
            }
            for f in futs {
                match finish(f) {
                    Ok(_) => ok += 1,
                    Err(ErrorCode::ConnectionLimitReached) => limited += 1,
                    Err(_) => other += 1,
                }
            }
            let text = format!("ok {ok} limited {limited} other {other}\n");
            return test_programs::respond(out, 200, "text/plain", text.as_bytes());
        }
        let follow = header(&req, "x-follow").is_some();
        let mut target = url;
        for _ in 0..2 {
            let result = start(&target, first_byte_ms).map_err(|e| e).and_then(|f| finish(f).map_err(|e| format!("error {e:?}")));
            match result {
                Ok((status, Some(location), _)) if follow && (300..400).contains(&status) => {
                    target = location;
                    continue;
                }
                Ok((status, _, body)) => {
                    let mut text = format!("status {status}\n").into_bytes();
                    text.extend_from_slice(&body);
                    return test_programs::respond(out, 200, "text/plain", &text);
                }
                Err(e) => return test_programs::respond(out, 502, "text/plain", e.as_bytes()),
            }
        }
        test_programs::respond(out, 508, "text/plain", b"too many redirects")
    }
}
wasip2::http::proxy::export!(Outbound);
fn main() {}
