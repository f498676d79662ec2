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
//! Cost: nothing until a guest sends a request; the first one in an instance allocates
//! the instance's in-flight counter. Each request costs a lookup (names only) and a new
//! connection.

mod addresses;
mod send;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use atoll_manifest::{AllowedHost, Denial, check_url};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use addresses::{Destinations, check_resolved};
use send::{Target, Timeouts};

use crate::logs::LogTarget;
use crate::runtime_config::OutboundConfig;

/// What a component may reach, shared by all its instances.
#[derive(Debug)]
pub(crate) struct OutboundPolicy {
    pub(crate) allowed: Vec<AllowedHost>,
    pub(crate) config: OutboundConfig,
    pub(crate) target: Arc<LogTarget>,
}

/// The outbound-HTTP state of one instance: its policy and its requests in flight.
pub struct OutboundHttp {
    policy: Arc<OutboundPolicy>,
    in_flight: Option<Arc<AtomicUsize>>,
}

impl OutboundHttp {
    pub(crate) fn new(policy: Arc<OutboundPolicy>) -> Self {
        Self {
            policy,
            in_flight: None,
        }
    }
}

type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;
type SendFuture = Box<
    dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>> + Send,
>;

/// Gives a slot back when the request's connection is done.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
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
            tracing::warn!(
                app = %policy.target.app,
                component = %policy.target.component,
                kind = %"outbound_http",
                url = %policy.target.redact(&url),
                "capability denied: outbound HTTP request refused: {reason}"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }

        let counter = self
            .in_flight
            .get_or_insert_with(|| Arc::new(AtomicUsize::new(0)))
            .clone();
        let max = policy.config.max_concurrent_requests;
        if counter.fetch_add(1, Ordering::AcqRel) >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            let url = uri.to_string();
            tracing::warn!(
                app = %policy.target.app,
                component = %policy.target.component,
                url = %policy.target.redact(&url),
                "outbound HTTP request refused: the instance already has {max} requests in flight"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::ConnectionLimitReached) });
        }
        let slot = InFlight(counter);

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
        let policy = policy.clone();
        Box::new(async move {
            let deadline = send::deadline(tokio::time::Instant::now(), timeouts.connect);
            let addrs = send::resolve(&target, deadline).await?;
            if target.ip.is_none()
                && let Err((addr, class)) = check_resolved(&addrs, destinations)
            {
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
            // The slot is held until the connection is done, body included.
            send::send(request, &target, &addrs, deadline, timeouts, slot).await
        })
    }
}
