//! A native hyper "Hello, world!" server: the ceiling for any HTTP server here.

use bytes::Bytes;
use http_body_util::Full;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    atoll_bench::serve(atoll_bench::addr_arg(), || async {
        http::Response::new(Full::new(Bytes::from_static(b"Hello, world!\n")))
    })
    .await
}
