//! The app the README runs: answers `/` and `/hello/NAME` with a greeting.
use wstd::http::body::Body;
use wstd::http::{Request, Response, StatusCode};

#[wstd::http_server]
async fn main(req: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let path = req.uri().path();
    let body = match path.strip_prefix("/hello/") {
        Some(name) if !name.is_empty() => format!("Hello, {name}!\n"),
        _ if path == "/" || path == "/hello" => "Hello from atoll!\n".to_string(),
        _ => {
            return Ok(Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Body::from("not found\n"))?);
        }
    };
    Ok(Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(body))?)
}
