//! `wasi:sockets`, denied and logged. A component gets no sockets: it reaches the
//! network only through outbound HTTP, whose hosts the manifest grants. wasmtime-wasi
//! already refuses TCP, UDP and name lookups when they are not enabled (they are not),
//! but it refuses silently; the three calls that start any use of the network
//! (`create-tcp-socket`, `create-udp-socket`, `resolve-addresses`) are shadowed here by
//! functions that answer the same `access-denied` and log one `capability denied` line
//! with `kind=socket`. No host socket is ever created, so a guest cannot use up the
//! process's file descriptors either.
//!
//! Not here: what a guest does with sockets it cannot get (nothing), and outbound HTTP
//! (`outbound`).
//!
//! Cost: nothing unless a guest calls one of them.

use wasmtime::component::{Linker, Resource, Val};
use wasmtime_wasi::p2::Network;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::ResolveAddressStream;
use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;

use crate::CapabilityView;

/// The version of `wasi:sockets` wasmtime-wasi links; guests built for an earlier 0.2
/// release are matched to it by the linker.
const VERSION: &str = "0.2.12";

/// Denial lines (sockets, config keys, key-value stores) logged per instance, so a guest
/// retrying in a loop cannot flood the log.
pub(crate) const MAX_LOGGED_PER_INSTANCE: u8 = 4;

pub(crate) fn add_to_linker<T: CapabilityView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = shadow(linker);
    linker.allow_shadowing(false);
    result
}

fn shadow<T: CapabilityView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    for (interface, function, what) in [
        ("tcp-create-socket", "create-tcp-socket", "a TCP socket"),
        ("udp-create-socket", "create-udp-socket", "a UDP socket"),
    ] {
        let name = format!("wasi:sockets/{interface}@{VERSION}");
        // Dynamic, so the socket types need not be named: the one parameter is an
        // address family, the result is always the error.
        linker
            .instance(&name)?
            .func_new(function, move |mut store, _ty, _params, results| {
                deny(store.data_mut(), what);
                let Some(out) = results.first_mut() else {
                    return Err(wasmtime::format_err!("{name}#{function} has no result"));
                };
                *out = Val::Result(Err(Some(Box::new(Val::Enum("access-denied".into())))));
                Ok(())
            })?;
    }
    // Typed: its `borrow<network>` parameter must be released at the end of the call,
    // which the typed lift does and a dynamic one leaves to the host.
    linker
        .instance(&format!("wasi:sockets/ip-name-lookup@{VERSION}"))?
        .func_wrap(
            "resolve-addresses",
            |mut store, (_network, name): (Resource<Network>, String)| {
                let asked = {
                    let (caps, _) = store.data_mut().capabilities();
                    format!("a name lookup of `{}`", caps.grants.target.quote(&name))
                };
                deny(store.data_mut(), &asked);
                let denied: Result<Resource<ResolveAddressStream>, ErrorCode> =
                    Err(ErrorCode::AccessDenied);
                Ok((denied,))
            },
        )?;
    Ok(())
}

/// Record and log (a few times per instance) that the guest asked for `what`.
fn deny<T: CapabilityView>(data: &mut T, what: &str) {
    let (caps, _) = data.capabilities();
    caps.deny(
        "socket",
        what,
        &format!(
            "the component asked for {what}; components get no sockets: reach the network with outbound HTTP and allowed_outbound_hosts"
        ),
    );
}
