//! TLS to the collector: a rustls client config over the webpki roots and the CA file
//! the environment names, for the HTTP exporter (through `hyper-rustls`) and the gRPC
//! one (tonic's `ClientTlsConfig`).

use std::sync::Arc;

use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::Tls;

/// How many certificates `pem` holds, or why it does not parse.
pub(crate) fn parse_pem(pem: &[u8]) -> Result<usize, String> {
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| format!("not a PEM certificate file: {e}"))?;
        n += 1;
    }
    Ok(n)
}

fn roots(tls: &Tls) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = &tls.ca_pem {
        // Checked when the settings were read: every entry parses.
        for cert in CertificateDer::pem_slice_iter(pem).flatten() {
            if let Err(e) = roots.add(cert) {
                tracing::warn!("a certificate of the OTLP CA file is not usable: {e}");
            }
        }
    }
    roots
}

/// The HTTP exporter's client: hyper with rustls (ring), HTTP/1.1.
pub(crate) fn http_client(tls: &Tls) -> impl opentelemetry_http::HttpClient + 'static {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots(tls)).with_no_client_auth())
    // ring supports the default versions; this cannot fail, but stay total.
    .unwrap_or_else(|_| {
        rustls::ClientConfig::builder()
            .with_root_certificates(roots(tls))
            .with_no_client_auth()
    });
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    opentelemetry_http::hyper::HyperClient::new(connector, tls.timeout, None)
}

/// The gRPC exporter's TLS: the webpki roots and the CA file.
pub(crate) fn grpc_config(tls: &Tls) -> ClientTlsConfig {
    let config = ClientTlsConfig::new().with_webpki_roots();
    match &tls.ca_pem {
        Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
        None => config,
    }
}
