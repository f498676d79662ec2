// The body of `checkout` and `checkout_fixed`, the record/replay guests: `include!`d by
// both with `FIXED` set. `GET /?item=NAME` reads `stock:NAME` from key-value store
// `default`, asks the upstream named by config key `upstream` for the item's price
// (`GET {upstream}/price/NAME`, with config key `token`, a secret, as `x-api-key`),
// counts the visit (`visits:NAME`, incremented), and answers
// `N x NAME at PRICE = TOTAL cents; at SECS; id HEX` with the wall clock and a random id,
// so a replay is byte-identical only if the host's answers are played back.
// The bug `checkout_fixed` fixes: a price written with a decimal point (`2.50`) is not
// parsed (500) where it should mean 250 cents.
use test_programs::bindings::wasi::config::store as config;
use test_programs::bindings::wasi::keyvalue::{atomics, store};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingRequest, ResponseOutparam, Scheme};

struct Checkout;

fn price_of(upstream: &str, token: &str, item: &str) -> Result<String, String> {
    let rest = upstream.strip_prefix("http://").ok_or("upstream must be http://")?;
    let headers = Fields::from_list(&[("x-api-key".to_string(), token.as_bytes().to_vec())])
        .map_err(|e| format!("headers: {e:?}"))?;
    let req = OutgoingRequest::new(headers);
    req.set_scheme(Some(&Scheme::Http)).map_err(|_| "scheme")?;
    req.set_authority(Some(rest.trim_end_matches('/'))).map_err(|_| "authority")?;
    req.set_path_with_query(Some(&format!("/price/{item}"))).map_err(|_| "path")?;
    let fut = outgoing_handler::handle(req, None).map_err(|e| format!("outbound: {e:?}"))?;
    fut.subscribe().block();
    let resp = match fut.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(format!("outbound: {e:?}")),
        _ => return Err("outbound: no response".into()),
    };
    let body = resp.consume().map_err(|_| "body")?;
    let stream = body.stream().map_err(|_| "stream")?;
    let mut data = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        data.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&data).trim().to_string())
}

fn cents(price: &str) -> Result<u64, String> {
    if FIXED {
        if let Some((whole, frac)) = price.split_once('.') {
            let whole: u64 = whole.parse().map_err(|_| format!("cannot parse price `{price}`"))?;
            let frac: u64 = format!("{frac:0<2}")[..2].parse().map_err(|_| format!("cannot parse price `{price}`"))?;
            return Ok(whole * 100 + frac);
        }
    }
    price.parse().map_err(|_| format!("cannot parse price `{price}`"))
}

fn run(req: &IncomingRequest) -> Result<String, String> {
    let item = test_programs::query(req, "item").ok_or("no ?item=")?;
    let upstream = config::get("upstream").map_err(|e| format!("{e:?}"))?.ok_or("no upstream")?;
    let token = config::get("token").map_err(|e| format!("{e:?}"))?.unwrap_or_default();
    let bucket = store::open("default").map_err(|e| format!("kv: {e:?}"))?;
    let stock = bucket.get(&format!("stock:{item}")).map_err(|e| format!("kv: {e:?}"))?;
    let stock: u64 = stock.map(|v| String::from_utf8_lossy(&v).parse().unwrap_or(0)).unwrap_or(0);
    let price = price_of(&upstream, &token, &item)?;
    atomics::increment(&bucket, &format!("visits:{item}"), 1).map_err(|e| format!("kv: {e:?}"))?;
    let each = cents(&price)?;
    let now = wasip2::clocks::wall_clock::now();
    let id = wasip2::random::random::get_random_u64();
    Ok(format!("{stock} x {item} at {each} = {} cents; at {}; id {id:016x}\n", stock * each, now.seconds))
}

impl Guest for Checkout {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        match run(&req) {
            Ok(body) => test_programs::respond(out, 200, "text/plain", body.as_bytes()),
            Err(e) => test_programs::respond(out, 500, "text/plain", format!("{e}\n").as_bytes()),
        }
    }
}

wasip2::http::proxy::export!(Checkout);
