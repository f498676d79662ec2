//! Outbound HTTP (`wasi:http/outgoing-handler`): the `allowed_outbound_hosts` check on
//! every request, timeouts, and a cap on requests in flight per instance.
//!
//! The check is [`atoll_manifest::check_url`] on the request's scheme and authority:
//! scheme, host (exact or `*.` subdomains, case-insensitive, trailing dot ignored, IP
//! literals only where an entry names that IP) and port all must match. Anything else
//! fails in the guest with `HTTP-request-denied` and logs one line naming the app,
//! component and URL. Redirects are never followed here: a 3xx goes back to the guest,
//! and if the guest follows it, its next request is checked like any other.
//!
//! An allowed *name* is then resolved once, and every address it resolves to must be
//! public unicast (`addresses.rs`): one loopback, private, link-local (cloud metadata),
//! CGNAT, multicast, documentation or otherwise reserved address among the answers, in
//! IPv4 or any IPv6 form that embeds one, and the request is denied the same way, with
//! a log line naming that address. The connection then goes to exactly the checked
//! addresses (`send.rs`; no second resolution), so a name that rebinds between the
//! check and the connect cannot reach anything new. Exceptions: a URL host that is an
//! IP literal was named by the grant itself and is used as is; `localhost` may resolve
//! to loopback addresses only; and the operator can allow every address with
//! `allow_private_addresses = true` under `[outbound_http]` in the runtime config.
//! wasmtime-wasi-http's own sender (which resolves by itself) is not compiled in.
//!
//! Not done here: HTTP proxies, connection pooling (an instance lives for one request),
//! HTTP/2 to upstreams.
//!
//! Per component, over all its instances: a cap on requests in flight and a token-bucket
//! cap on requests started per second (runtime config `[outbound_http]`).
//!
//! Cost: nothing until a guest sends a request; the first one in an instance allocates
//! the instance's in-flight counter. Each request costs a lookup (names only) and a new
//! connection.

mod addresses;
mod send;
mod taped;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use atoll_manifest::{AllowedHost, Denial, check_url};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use addresses::{Destinations, NonPublic, check_resolved};
use send::{Resolve, Target, Timeouts};

use crate::logs::LogTarget;
use crate::runtime_config::OutboundConfig;

/// Why [`checked_addresses`] gives no addresses.
#[derive(Debug)]
enum Refused {
    /// The lookup failed or timed out.
    Failed(wasmtime_wasi_http::Error),
    /// One answer is outside `destinations`: that address and its class.
    Denied(std::net::SocketAddr, NonPublic),
}

/// Resolve `target` once with `resolver` and check every answer against
/// `destinations` (an IP literal is used as is: the grant named it). The result is what
/// [`send::send`] connects to; nothing resolves the name again.
async fn checked_addresses(
    resolver: &dyn Resolve,
    target: &Target,
    destinations: Destinations,
    deadline: tokio::time::Instant,
) -> Result<Vec<std::net::SocketAddr>, Refused> {
    let addrs = send::resolve(resolver, target, deadline)
        .await
        .map_err(Refused::Failed)?;
    if target.ip.is_none() {
        check_resolved(&addrs, destinations).map_err(|(a, c)| Refused::Denied(a, c))?;
    }
    Ok(addrs)
}

/// What a component may reach, shared by all its instances.
#[derive(Debug)]
pub(crate) struct OutboundPolicy {
    pub(crate) allowed: Vec<AllowedHost>,
    pub(crate) config: OutboundConfig,
    pub(crate) target: Arc<LogTarget>,
    /// Requests in flight across all instances of the component.
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// Requests the component may still start this second.
    pub(crate) rate: RateLimit,
}

/// The outbound-HTTP state of one instance: its policy and its requests in flight.
pub struct OutboundHttp {
    policy: Arc<OutboundPolicy>,
    in_flight: Option<Arc<AtomicUsize>>,
    /// The first request this instance was refused by the grant check, for an embedder's
    /// error ([`InstanceCapabilities::first_denial`](crate::InstanceCapabilities::first_denial)).
    pub(crate) denied: Option<String>,
    /// The span of the request or tick this instance serves, when tracing is on.
    pub(crate) trace: Option<crate::trace::InstanceTrace>,
    /// Recording requests and their responses, or answering from a recording.
    pub(crate) tape: Option<crate::record::Tape>,
}

impl OutboundHttp {
    pub(crate) fn new(policy: Arc<OutboundPolicy>) -> Self {
        Self {
            policy,
            in_flight: None,
            denied: None,
            trace: None,
            tape: None,
        }
    }
}

type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;
type SendFuture = Box<
    dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>> + Send,
>;

/// Gives a slot back when the request's connection is done.
/// A token bucket: up to `per_second` requests in any second, refilled continuously,
/// starting full. One short lock per outbound request.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_second: f64,
    bucket: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl RateLimit {
    pub(crate) fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            bucket: std::sync::Mutex::new((per_second, std::time::Instant::now())),
        }
    }

    /// Take one token at `now`; false when none is left.
    fn take(&self, now: std::time::Instant) -> bool {
        let mut b = match self.bucket.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (tokens, last) = *b;
        let refill = now.saturating_duration_since(last).as_secs_f64() * self.per_second;
        let tokens = (tokens + refill).min(self.per_second);
        if tokens >= 1.0 {
            *b = (tokens - 1.0, now);
            true
        } else {
            *b = (tokens, now);
            false
        }
    }
}

/// Gives a request's slots back (the instance's and the component's) when its
/// connection is done.
struct InFlight(Arc<AtomicUsize>, Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        self.1.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Refuse a request that is over one of the outbound caps: log it (URL redacted like the
/// guest's output) and fail at once with connection-limit-reached.
fn over_limit(policy: &OutboundPolicy, uri: &http::Uri, why: &str) -> SendFuture {
    let url = uri.to_string();
    tracing::warn!(
        app = %policy.target.app,
        component = %policy.target.component,
        url = %policy.target.redact(&url),
        "outbound HTTP request refused: {why}"
    );
    Box::new(async { Err(wasmtime_wasi_http::Error::ConnectionLimitReached) })
}

impl WasiHttpHooks for OutboundHttp {
    /// A replayed request the recording does not have reaches the guest as an internal
    /// error with the message saying so; other connect errors as wasmtime maps them.
    fn p2_error_from_connect(
        &mut self,
        err: &std::io::Error,
    ) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
        use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
        let message = err.to_string();
        if message.starts_with("replay:") {
            return ErrorCode::InternalError(Some(message));
        }
        tracing::warn!("connect error: {err:?}");
        ErrorCode::ConnectionRefused
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let policy = &self.policy;
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("");
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
        if let Err(denial) = check_url(&policy.allowed, scheme, authority) {
            let reason = match denial {
                Denial::Scheme => "only http and https are supported",
                Denial::Userinfo => "URLs with a user name are never allowed",
                Denial::BadHost => "the host is malformed or a non-standard numeric address",
                Denial::NotAllowed => "it is not in the component's allowed_outbound_hosts",
            };
            // The URL is the guest's; a secret it put there is redacted like its output.
            let url = uri.to_string();
            if self.denied.is_none() {
                self.denied = Some(format!(
                    "outbound HTTP to {}: {reason}",
                    policy.target.redact(&url)
                ));
            }
            policy.target.denials.count("outbound_http");
            tracing::warn!(
                app = %policy.target.app,
                component = %policy.target.component,
                kind = %"outbound_http",
                url = %policy.target.redact(&url),
                "capability denied: outbound HTTP request refused: {reason}"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }

        // Replaying: answered from the recording, nothing leaves the process.
        if let Some(tape) = self.tape.as_ref().filter(|t| t.is_replay()) {
            return taped::replay(tape, request);
        }

        let counter = self
            .in_flight
            .get_or_insert_with(|| Arc::new(AtomicUsize::new(0)))
            .clone();
        let max = policy.config.max_concurrent_requests;
        if counter.fetch_add(1, Ordering::AcqRel) >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return over_limit(
                policy,
                uri,
                &format!("the instance already has {max} requests in flight"),
            );
        }
        // The component's caps, over all its instances: requests in flight, and started
        // per second. Excess fails at once (no queue), like the instance cap.
        let component_max = policy.config.max_concurrent_requests_per_component;
        let over = if policy.in_flight.fetch_add(1, Ordering::AcqRel) >= component_max {
            Some(format!(
                "the component already has {component_max} requests in flight"
            ))
        } else if !policy.rate.take(std::time::Instant::now()) {
            Some(format!(
                "the component has started {} requests in the last second",
                policy.config.max_requests_per_second
            ))
        } else {
            None
        };
        if let Some(why) = over {
            policy.in_flight.fetch_sub(1, Ordering::AcqRel);
            counter.fetch_sub(1, Ordering::AcqRel);
            return over_limit(policy, uri, &why);
        }
        let slot = InFlight(counter, policy.in_flight.clone());

        // The guest may ask for shorter timeouts, never longer ones.
        let limits = policy.config;
        let guest = options.unwrap_or_default();
        let clamp = |asked: Option<std::time::Duration>, max: std::time::Duration| {
            asked.map_or(max, |a| a.min(max))
        };
        let timeouts = Timeouts {
            connect: clamp(guest.connect_timeout, limits.connect_timeout),
            first_byte: clamp(guest.first_byte_timeout, limits.first_byte_timeout),
            between_bytes: clamp(guest.between_bytes_timeout, limits.between_bytes_timeout),
        };
        let Some(target) = Target::of(uri) else {
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestUriInvalid) });
        };
        // What the name may resolve to. An IP literal passed `check_url`, so a grant names
        // that very address; it is not resolved and needs no filter.
        let destinations = if limits.allow_private_addresses {
            Destinations::Any
        } else if target.host == "localhost" {
            Destinations::Loopback
        } else {
            Destinations::Public
        };
        // Traced: a client span for the whole send (until the response head), whose
        // `traceparent` the upstream gets in place of any the guest set.
        // Without the query, which often carries keys; a secret the component was
        // given is redacted as in its log lines.
        let url = self
            .trace
            .as_ref()
            .map(|_| format!("{scheme}://{authority}{}", uri.path()));
        let span = self.trace.as_ref().zip(url).map(|(trace, url)| {
            let url = policy.target.redact(&url).into_owned();
            let method = request.method().as_str().to_owned();
            let span = trace.child(
                method.clone(),
                opentelemetry::trace::SpanKind::Client,
                vec![
                    opentelemetry::KeyValue::new("http.request.method", method),
                    opentelemetry::KeyValue::new("server.address", target.host.clone()),
                    opentelemetry::KeyValue::new("server.port", i64::from(target.port)),
                    opentelemetry::KeyValue::new("url.full", url),
                ],
            );
            if let Ok(v) = http::HeaderValue::from_str(&span.traceparent()) {
                request.headers_mut().insert("traceparent", v);
            }
            // The caller's `tracestate` goes with the trace; one the guest set without
            // our `traceparent` would describe another trace.
            match span
                .tracestate()
                .and_then(|s| http::HeaderValue::from_str(&s).ok())
            {
                Some(v) => {
                    request.headers_mut().insert("tracestate", v);
                }
                None => {
                    request.headers_mut().remove("tracestate");
                }
            }
            span
        });
        let policy = policy.clone();
        let (request, recorded) = match &self.tape {
            Some(tape) => {
                let (request, i) = taped::record_request(tape, request);
                (request, Some((tape.clone(), i)))
            }
            None => (request, None),
        };
        Box::new(async move {
            let sent = async {
            let deadline = send::deadline(tokio::time::Instant::now(), timeouts.connect);
            let addrs = match checked_addresses(
                &send::SystemResolver,
                &target,
                destinations,
                deadline,
            )
            .await
            {
                Ok(addrs) => addrs,
                Err(Refused::Failed(e)) => return Err(e),
                Err(Refused::Denied(addr, class)) => {
                    let url = request.uri().to_string();
                    let why = match destinations {
                        Destinations::Loopback => format!(
                            "`localhost` resolves to {}, which is not a loopback address",
                            addr.ip()
                        ),
                        _ => format!(
                            "`{}` resolves to {}, a {class} address; grant that IP literally in allowed_outbound_hosts, or set allow_private_addresses = true under [outbound_http] in the runtime config",
                            target.host,
                            addr.ip()
                        ),
                    };
                    policy.target.denials.count("outbound_http");
                    tracing::warn!(
                        app = %policy.target.app,
                        component = %policy.target.component,
                        kind = %"outbound_http",
                        url = %policy.target.redact(&url),
                        resolved = %addr.ip(),
                        "capability denied: outbound HTTP request refused: {why}"
                    );
                    return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
                }
            };
            // The slot is held until the connection is done, body included.
            send::send(request, &target, &addrs, deadline, timeouts, slot).await
            }
            .await;
            if let Some(span) = &span {
                match &sent {
                    Ok((resp, _)) => {
                        let status = resp.status().as_u16();
                        span.set(opentelemetry::KeyValue::new(
                            "http.response.status_code",
                            i64::from(status),
                        ));
                        if status >= 400 {
                            span.fail(status.to_string());
                        }
                    }
                    Err(e) => span.fail(e.to_string()),
                }
            }
            match recorded {
                Some((tape, i)) => taped::record_outcome(&tape, i, sent),
                None => sent,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::time::Duration;

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn the_rate_limit_starts_full_refills_and_never_exceeds_a_second_of_tokens() {
        let r = RateLimit::new(3);
        let t0 = std::time::Instant::now();
        assert!(r.take(t0) && r.take(t0) && r.take(t0));
        assert!(!r.take(t0), "a fourth request in the same instant");
        let ms = Duration::from_millis;
        assert!(!r.take(t0 + ms(300)), "0.9 tokens is not one");
        assert!(r.take(t0 + ms(400)), "1.2 tokens");
        assert!(!r.take(t0 + ms(400)));
        // A long pause refills to one second's worth, not more.
        let later = t0 + Duration::from_secs(60);
        assert!(r.take(later) && r.take(later) && r.take(later));
        assert!(!r.take(later));
    }

    /// A resolver that gives its scripted answers in turn (the last one from then on),
    /// and counts its lookups.
    struct Scripted {
        answers: Vec<Vec<SocketAddr>>,
        calls: AtomicUsize,
    }

    impl Scripted {
        fn new(answers: Vec<Vec<SocketAddr>>) -> Self {
            Self {
                answers,
                calls: AtomicUsize::new(0),
            }
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl Resolve for Scripted {
        fn lookup<'a>(
            &'a self,
            _host: &'a str,
            _port: u16,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
            let i = self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.answers[i.min(self.answers.len() - 1)].clone();
            Box::pin(async move { Ok(answer) })
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    fn target(url: &str) -> Target {
        Target::of(&url.parse().expect("uri")).expect("target")
    }

    fn soon() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn one_private_answer_among_public_ones_is_refused() {
        let t = target("http://api.example.com/");
        let r = Scripted::new(vec![vec![
            addr("93.184.216.34:80"),
            addr("10.0.0.5:80"),
            addr("8.8.8.8:80"),
        ]]);
        match checked_addresses(&r, &t, Destinations::Public, soon()).await {
            Err(Refused::Denied(a, NonPublic::Private)) => assert_eq!(a, addr("10.0.0.5:80")),
            other => panic!("{other:?}"),
        }
        // The same in IPv6 forms that embed a private IPv4 address.
        let r = Scripted::new(vec![vec![
            addr("[2606:4700::1111]:80"),
            addr("[::ffff:127.0.0.1]:80"),
        ]]);
        assert!(matches!(
            checked_addresses(&r, &t, Destinations::Public, soon()).await,
            Err(Refused::Denied(_, NonPublic::Loopback))
        ));
        // `localhost` answering a public address is refused too.
        let r = Scripted::new(vec![vec![addr("127.0.0.1:80"), addr("8.8.8.8:80")]]);
        assert!(matches!(
            checked_addresses(&r, &target("http://localhost/"), Destinations::Loopback, soon())
                .await,
            Err(Refused::Denied(a, _)) if a == addr("8.8.8.8:80")
        ));
        // All public: allowed, every answer kept.
        let r = Scripted::new(vec![vec![addr("93.184.216.34:80"), addr("8.8.8.8:80")]]);
        let ok = checked_addresses(&r, &t, Destinations::Public, soon())
            .await
            .map_err(|e| format!("{e:?}"));
        assert_eq!(ok, Ok(vec![addr("93.184.216.34:80"), addr("8.8.8.8:80")]));
    }

    #[tokio::test]
    async fn a_name_is_looked_up_once_so_a_rebinding_answer_is_never_seen() {
        // First a public answer, then (a rebinding server's second reply) loopback.
        let r = Scripted::new(vec![
            vec![addr("93.184.216.34:80")],
            vec![addr("127.0.0.1:80")],
        ]);
        let t = target("http://rebind.example/");
        let addrs = checked_addresses(&r, &t, Destinations::Public, soon())
            .await
            .map_err(|e| format!("{e:?}"));
        assert_eq!(addrs, Ok(vec![addr("93.184.216.34:80")]));
        assert_eq!(r.calls(), 1);
        // An IP literal is not looked up at all.
        let r = Scripted::new(vec![vec![addr("10.0.0.1:80")]]);
        let addrs = checked_addresses(
            &r,
            &target("http://127.0.0.1:8080/"),
            Destinations::Public,
            soon(),
        )
        .await
        .map_err(|e| format!("{e:?}"));
        assert_eq!(addrs, Ok(vec![addr("127.0.0.1:8080")]));
        assert_eq!(r.calls(), 0);
    }

    /// A one-request HTTP server: answers `200 ok` and records the request head.
    async fn answering_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let at = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        });
        (at, seen)
    }

    #[tokio::test]
    async fn the_connection_goes_to_the_checked_address() {
        let (checked, seen_checked) = answering_server().await;
        let (other, seen_other) = answering_server().await;
        // The second answer would point elsewhere; it is never asked for.
        let r = Scripted::new(vec![vec![checked], vec![other]]);
        let url = format!("http://rebind.test:{}/x?y=1", checked.port());
        let t = target(&url);
        let deadline = soon();
        let addrs = checked_addresses(&r, &t, Destinations::Loopback, deadline)
            .await
            .map_err(|e| format!("{e:?}"))
            .expect("loopback answers pass a loopback-only check");
        let body = http_body_util::Empty::<bytes::Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::builder()
            .uri(&url)
            .body(body)
            .expect("request");
        let timeouts = Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(5),
            between_bytes: Duration::from_secs(5),
        };
        let (response, io) = send::send(request, &t, &addrs, deadline, timeouts, ())
            .await
            .map_err(|e| format!("{e:?}"))
            .expect("sent");
        tokio::spawn(Box::into_pin(io));
        assert_eq!(response.status(), 200);
        let got = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))
            .expect("body")
            .to_bytes();
        assert_eq!(&got[..], b"ok");
        assert_eq!(r.calls(), 1, "the name was looked up again");
        let heads = seen_checked.lock().expect("lock").clone();
        assert_eq!(heads.len(), 1, "{heads:?}");
        assert!(heads[0].starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{heads:?}");
        assert!(seen_other.lock().expect("lock").is_empty());
    }
}
