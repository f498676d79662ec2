//! {{name}}: answers every request under the route `/...`.
use wstd::http::body::Body;
use wstd::http::{Request, Response, StatusCode};

#[wstd::http_server]
async fn main(req: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    match req.uri().path() {
        "/" => Ok(Response::builder()
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from("Hello from {{name}}!\n"))?),
        _ => Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("not found\n"))?),
    }
}
