//! Helpers shared by the guest components in `src/bin/`. Each binary is one
//! `wasi:http/proxy` component (or, for `not_http`, a plain command) that a test runs.

pub mod compute;

/// Bindings for `wit/world.wit`: wasi:config/store, wasi:keyvalue and wasi:logging.
pub mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "atoll:test/guest", generate_all });
}

/// Bindings for the versions Spin 3 guests use (`wit-spin/world.wit`).
pub mod spin_bindings {
    wit_bindgen::generate!({ path: "wit-spin", world: "atoll:test-spin/guest-spin", generate_all });
}

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// Send a complete response with `body`.
pub fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_string(), content_type.as_bytes().to_vec())])
        .expect("valid header");
    let resp = OutgoingResponse::new(headers);
    resp.set_status_code(status).expect("valid status");
    let out_body = resp.body().expect("body once");
    ResponseOutparam::set(out, Ok(resp));
    write_all(&out_body, body);
    OutgoingBody::finish(out_body, None).expect("finish body");
}

/// Write `data` to an outgoing body in chunks the host accepts.
pub fn write_all(body: &OutgoingBody, data: &[u8]) {
    let stream = body.write().expect("stream once");
    for chunk in data.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write body");
    }
    drop(stream);
}

/// The request path without the query.
pub fn path(req: &IncomingRequest) -> String {
    let pq = req.path_with_query().unwrap_or_default();
    pq.split('?').next().unwrap_or("").to_string()
}

/// The value of query parameter `name`, if present.
pub fn query(req: &IncomingRequest, name: &str) -> Option<String> {
    let pq = req.path_with_query().unwrap_or_default();
    let q = pq.split_once('?')?.1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A blocking `GET url` through `wasi:http/outgoing-handler`: the response status, or
/// the error as text (a denied request is `error HttpRequestDenied`).
pub fn get(url: &str) -> Result<u16, String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{OutgoingRequest, Scheme};
    let (scheme, rest) = url.split_once("://").ok_or("no scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    req.set_scheme(Some(&scheme)).map_err(|_| "scheme rejected")?;
    req.set_authority(Some(authority)).map_err(|_| "authority rejected")?;
    req.set_path_with_query(Some(path)).map_err(|_| "path rejected")?;
    let fut = outgoing_handler::handle(req, None).map_err(|e| format!("error {e:?}"))?;
    fut.subscribe().block();
    match fut.get() {
        Some(Ok(Ok(resp))) => Ok(resp.status()),
        Some(Ok(Err(e))) => Err(format!("error {e:?}")),
        _ => Err("no response".into()),
    }
}
