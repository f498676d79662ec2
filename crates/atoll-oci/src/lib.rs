//! Push and pull WebAssembly components through OCI registries.
//!
//! For: `atoll push`, `atoll pull oci://…`, components whose manifest `source` is an
//! `oci://` reference, and `atoll up oci://…`. An artifact is written in the CNCF "Wasm
//! OCI Artifact" layout, as wasm-pkg-tools (`wkg`) writes it: one `application/wasm`
//! layer and an `application/vnd.wasm.config.v0+json` config listing the component's
//! imports and exports (filled by `oci-wasm` from the component's world), so what atoll
//! pushes `wkg`, wasmCloud and runwasi read, and the other way round.
//!
//! What a pull guarantees: the layer's bytes hash to the digest the manifest names
//! (checked by `oci-client` while downloading, and again here), and a pull by digest gets
//! the manifest with that digest. Plain HTTP is used only for a loopback registry
//! (`localhost`, `127.0.0.0/8`, `[::1]`) or when the caller asks for it (`insecure`).
//! Credentials come from a Docker config file (`auths`, `credsStore`, `credHelpers`, as
//! `docker login` writes them); the caller says where it is, this crate reads no
//! environment.
//!
//! Not for: container images, Spin's multi-layer app artifacts (an artifact with other
//! than exactly one Wasm layer is refused with the reason), or atoll's own signed
//! registry (`atoll-registry`). No caching: the caller keeps what it pulled.

mod credentials;
mod reference;

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError};
use oci_client::secrets::RegistryAuth;
use oci_wasm::{WasmClient, WasmConfig};
use sha2::Digest as _;

pub use credentials::Credentials;
pub use reference::OciRef;

/// What can go wrong talking to a registry. Each variant says what happened; `help()`
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The string is not `oci://HOST/REPOSITORY[:TAG][@DIGEST]`.
    #[error("`{written}` is not an OCI reference: {reason}")]
    BadReference {
        /// The text given.
        written: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The Docker config file exists but could not be used.
    #[error("could not read registry credentials from {path}: {reason}")]
    Credentials {
        /// The config file.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// The registry wants credentials, or refused the ones sent.
    #[error("{registry} refused {action} {reference}{how}", how = if *.anonymous { " (no credentials were sent)" } else { " with the credentials from the Docker config" })]
    Unauthorized {
        /// `host[:port]`.
        registry: String,
        /// The reference, as `oci://…`.
        reference: String,
        /// "a push to" or "a pull of".
        action: &'static str,
        /// Whether the request went without credentials.
        anonymous: bool,
    },
    /// No manifest by that tag or digest.
    #[error("{reference} does not exist in the registry")]
    NotFound {
        /// The reference, as `oci://…`.
        reference: String,
    },
    /// The registry could not be reached at all.
    #[error("cannot reach the registry {registry}: {reason}")]
    Unreachable {
        /// `host[:port]`.
        registry: String,
        /// The connection error.
        reason: String,
    },
    /// The artifact exists but is not one Wasm component in the CNCF layout.
    #[error("{reference} is not a Wasm component artifact: {reason}")]
    NotWasm {
        /// The reference, as `oci://…`.
        reference: String,
        /// What the artifact is instead.
        reason: String,
    },
    /// Bytes that do not hash to the digest that names them.
    #[error(
        "{reference}: the registry sent bytes that do not match their digest (expected {expected}, got {actual}); nothing was kept"
    )]
    Tampered {
        /// The reference, as `oci://…`.
        reference: String,
        /// The digest that names the bytes.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// What is about to be pushed is not a component.
    #[error("{what} is not a WebAssembly component: {reason}")]
    NotComponent {
        /// The file's name.
        what: String,
        /// Why it is not one.
        reason: String,
    },
    /// Anything else the registry answered.
    #[error("the registry failed to {action} {reference}: {reason}")]
    Registry {
        /// The reference, as `oci://…`.
        reference: String,
        /// "push" or "pull".
        action: &'static str,
        /// The registry's answer.
        reason: String,
    },
}

impl OciError {
    /// What the user can do about it.
    pub fn help(&self) -> String {
        match self {
            OciError::BadReference { .. } => {
                "write it as oci://HOST[:PORT]/REPOSITORY:TAG or oci://HOST/REPOSITORY@sha256:HEX, e.g. oci://ghcr.io/acme/hello:1.0".into()
            }
            OciError::Credentials { path, .. } => format!(
                "fix {} (it is the file `docker login` writes), or point DOCKER_CONFIG at a directory with a valid config.json",
                path.display()
            ),
            OciError::Unauthorized {
                registry,
                anonymous: true,
                ..
            } => format!(
                "log in with `docker login {registry}`, or add `auths.\"{registry}\".auth` (base64 of user:password) to the Docker config"
            ),
            OciError::Unauthorized { registry, .. } => format!(
                "check the user and password for {registry} in the Docker config (`docker login {registry}` rewrites them)"
            ),
            OciError::NotFound { .. } => {
                "check the repository and tag (the registry's /v2/REPOSITORY/tags/list lists the tags)".into()
            }
            OciError::Unreachable { registry, .. } => format!(
                "check that {registry} is up and the name and port are right; a registry without TLS is reached only on a loopback address or with --insecure"
            ),
            OciError::NotWasm { .. } => {
                "push a single component with `atoll push` or `wkg oci push`; container images and Spin app artifacts are not served".into()
            }
            OciError::Tampered { .. } => {
                "do not use this registry's copy: push the artifact again from a trusted source, and check the registry's storage".into()
            }
            OciError::NotComponent { .. } => {
                "build a component (e.g. `cargo build --target wasm32-wasip2`); a core module needs `wasm-tools component new` first".into()
            }
            OciError::Registry { .. } => "see the registry's log for the cause".into(),
        }
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Use plain HTTP for a registry that is not on a loopback address.
    pub insecure: bool,
    /// Where credentials come from.
    pub credentials: Credentials,
}

/// A registry client for Wasm component artifacts.
#[derive(Debug, Clone, Default)]
pub struct Client {
    options: ClientOptions,
}

/// What a push left in the registry.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The reference with the manifest's digest, e.g. `oci://host/repo:1.0@sha256:…`.
    pub reference: OciRef,
    /// The manifest's digest (`sha256:…`): what `@digest` pins.
    pub digest: String,
    /// The layer's digest: the sha256 of the component's bytes.
    pub layer_digest: String,
}

/// A component pulled and verified.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The component's bytes; they hash to `layer_digest`.
    pub bytes: Vec<u8>,
    /// The manifest's digest (`sha256:…`).
    pub digest: String,
    /// `sha256:` and the hex sha256 of `bytes`.
    pub layer_digest: String,
    /// The config's `component.exports` (empty for a core module).
    pub exports: Vec<String>,
    /// The config's `component.imports`.
    pub imports: Vec<String>,
}

/// `sha256:` and the hex sha256 of `bytes`: an OCI digest.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl Client {
    /// A client with these options.
    pub fn new(options: ClientOptions) -> Self {
        Self { options }
    }

    fn wasm_client(&self, reference: &OciRef) -> WasmClient {
        let registry = reference.registry().to_string();
        let protocol = if plain_http_allowed(reference, self.options.insecure) {
            ClientProtocol::HttpsExcept(vec![registry])
        } else {
            ClientProtocol::Https
        };
        WasmClient::new(oci_client::Client::new(ClientConfig {
            protocol,
            ..ClientConfig::default()
        }))
    }

    fn auth(&self, reference: &OciRef) -> Result<RegistryAuth, OciError> {
        self.options.credentials.for_registry(reference.registry())
    }

    /// Push `component` (the bytes of a `.wasm` component) to `reference`, with
    /// `annotations` on the manifest and `title` as the layer's
    /// `org.opencontainers.image.title` (wkg writes `<name>.wasm`).
    pub async fn push(
        &self,
        reference: &OciRef,
        component: Vec<u8>,
        title: Option<String>,
        annotations: BTreeMap<String, String>,
    ) -> Result<Pushed, OciError> {
        let written = reference.to_string();
        let (config, mut layer) = WasmConfig::from_raw_component(component, None).map_err(|e| {
            OciError::NotComponent {
                what: title.clone().unwrap_or_else(|| "the file".into()),
                reason: format!("{e:#}"),
            }
        })?;
        let layer_digest = sha256_digest(&layer.data);
        if let Some(title) = title {
            layer.annotations = Some(BTreeMap::from([(
                oci_client::annotations::ORG_OPENCONTAINERS_IMAGE_TITLE.to_string(),
                title,
            )]));
        }
        let auth = self.auth(reference)?;
        let anonymous = matches!(auth, RegistryAuth::Anonymous);
        let client = self.wasm_client(reference);
        let annotations = (!annotations.is_empty()).then_some(annotations);
        client
            .push(reference.as_oci(), &auth, layer, config, annotations)
            .await
            .map_err(|e| classify(e, reference, "push", anonymous))?;
        let digest = client
            .fetch_manifest_digest(reference.as_oci(), &auth)
            .await
            .map_err(|e| classify(e.into(), reference, "push", anonymous))?;
        tracing::debug!(reference = %written, %digest, "pushed");
        Ok(Pushed {
            reference: reference.with_digest(&digest),
            digest,
            layer_digest,
        })
    }

    /// Pull the component at `reference`, verifying its bytes against the manifest (and
    /// the manifest against the reference's digest, when it has one).
    pub async fn pull(&self, reference: &OciRef) -> Result<Pulled, OciError> {
        let written = reference.to_string();
        let auth = self.auth(reference)?;
        let anonymous = matches!(auth, RegistryAuth::Anonymous);
        let client = self.wasm_client(reference);
        let image = client
            .pull(reference.as_oci(), &auth)
            .await
            .map_err(|e| classify(e, reference, "pull", anonymous))?;
        let not_wasm = |reason: String| OciError::NotWasm {
            reference: written.clone(),
            reason,
        };
        let manifest = image
            .manifest
            .as_ref()
            .ok_or_else(|| not_wasm("the registry returned no image manifest".into()))?;
        let [layer_desc] = manifest.layers.as_slice() else {
            return Err(not_wasm(format!(
                "it has {} layers; a Wasm component artifact has exactly one",
                manifest.layers.len()
            )));
        };
        let [layer] = image.layers.as_slice() else {
            return Err(not_wasm("it has no application/wasm layer".into()));
        };
        let actual = sha256_digest(&layer.data);
        if actual != layer_desc.digest {
            return Err(OciError::Tampered {
                reference: written,
                expected: layer_desc.digest.clone(),
                actual,
            });
        }
        let digest = image
            .digest
            .clone()
            .ok_or_else(|| not_wasm("the registry sent no manifest digest".into()))?;
        if let Some(wanted) = reference.digest()
            && wanted != digest
        {
            return Err(OciError::Tampered {
                reference: written,
                expected: wanted.to_string(),
                actual: digest,
            });
        }
        let config: WasmConfig = serde_json::from_slice(&image.config.data)
            .map_err(|e| not_wasm(format!("its config is not a Wasm config: {e}")))?;
        let (exports, imports) = match config.component {
            Some(c) => (c.exports, c.imports),
            None => (Vec::new(), Vec::new()),
        };
        Ok(Pulled {
            bytes: layer.data.to_vec(),
            digest,
            layer_digest: actual,
            exports,
            imports,
        })
    }
}

/// Whether `reference`'s registry may be spoken to without TLS.
fn plain_http_allowed(reference: &OciRef, insecure: bool) -> bool {
    reference.is_loopback() || insecure
}

/// Turn what oci-client or oci-wasm returned into an error that says what happened.
fn classify(
    error: anyhow::Error,
    reference: &OciRef,
    action: &'static str,
    anonymous: bool,
) -> OciError {
    let written = reference.to_string();
    let registry = reference.registry().to_string();
    let unauthorized = || OciError::Unauthorized {
        registry: registry.clone(),
        reference: written.clone(),
        action: if action == "push" {
            "a push to"
        } else {
            "a pull of"
        },
        anonymous,
    };
    let Some(oci) = error.downcast_ref::<OciDistributionError>() else {
        // oci-wasm's own checks (one layer, the config media type).
        return OciError::NotWasm {
            reference: written,
            reason: format!("{error:#}"),
        };
    };
    match oci {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => unauthorized(),
        OciDistributionError::ImageManifestNotFoundError(_) => {
            OciError::NotFound { reference: written }
        }
        OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
            OciError::Tampered {
                reference: written,
                expected: expected.clone(),
                actual: actual.clone(),
            }
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}", e.code))
                .collect();
            let has = |c: &str| codes.iter().any(|x| x.eq_ignore_ascii_case(c));
            if has("Unauthorized") || has("Denied") {
                unauthorized()
            } else if has("ManifestUnknown") || has("NameUnknown") || has("BlobUnknown") {
                OciError::NotFound { reference: written }
            } else {
                OciError::Registry {
                    reference: written,
                    action,
                    reason: oci.to_string(),
                }
            }
        }
        OciDistributionError::ServerError { code, .. } if *code == 401 || *code == 403 => {
            unauthorized()
        }
        OciDistributionError::ServerError { code: 404, .. } => {
            OciError::NotFound { reference: written }
        }
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            OciError::Unreachable {
                registry,
                reason: error_chain(e),
            }
        }
        other => OciError::Registry {
            reference: written,
            action,
            reason: other.to_string(),
        },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_unless_insecure() {
        let at = |r: &str| OciRef::parse(r).expect("reference");
        assert!(plain_http_allowed(&at("oci://127.0.0.1:5000/a:1"), false));
        assert!(plain_http_allowed(&at("oci://localhost:5000/a:1"), false));
        assert!(!plain_http_allowed(
            &at("oci://registry.example.com/a:1"),
            false
        ));
        assert!(!plain_http_allowed(&at("oci://10.0.0.7:5000/a:1"), false));
        assert!(plain_http_allowed(&at("oci://10.0.0.7:5000/a:1"), true));
    }
}
