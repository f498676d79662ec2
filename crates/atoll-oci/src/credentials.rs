//! Registry credentials from a Docker config file (`config.json`: `auths`, `credsStore`,
//! `credHelpers`), read with `docker_credential`; anonymous when the file or an entry for
//! the registry is missing.

use std::path::PathBuf;

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

use crate::OciError;

/// Where credentials come from. The caller decides the directory (`$DOCKER_CONFIG`, else
/// `~/.docker`); `None` means anonymous only.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    docker_config_dir: Option<PathBuf>,
}

impl Credentials {
    /// Credentials from `DIR/config.json`.
    pub fn docker_config(dir: impl Into<PathBuf>) -> Self {
        Self {
            docker_config_dir: Some(dir.into()),
        }
    }

    /// No credentials: every request is anonymous.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The config file this reads, if any.
    pub fn path(&self) -> Option<PathBuf> {
        self.docker_config_dir
            .as_ref()
            .map(|d| d.join("config.json"))
    }

    /// The credentials for `registry` (`host[:port]`). Looked up as `docker login`
    /// records them: the bare host, then with `https://` and `http://` (Docker Hub as
    /// `https://index.docker.io/v1/`).
    pub fn for_registry(&self, registry: &str) -> Result<RegistryAuth, OciError> {
        let Some(path) = self.path() else {
            return Ok(RegistryAuth::Anonymous);
        };
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistryAuth::Anonymous);
            }
            Err(e) => {
                return Err(OciError::Credentials {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let mut keys = vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ];
        if registry == "docker.io" || registry == "index.docker.io" {
            keys.insert(0, "https://index.docker.io/v1/".to_string());
        }
        for key in &keys {
            match docker_credential::get_credential_from_reader(text.as_slice(), key) {
                Ok(DockerCredential::UsernamePassword(user, password)) => {
                    tracing::debug!(registry, entry = %key, "using credentials from {}", path.display());
                    return Ok(RegistryAuth::Basic(user, password));
                }
                Ok(DockerCredential::IdentityToken(_)) => {
                    tracing::warn!(
                        registry,
                        "{} holds an identity token for {key}, which atoll cannot use (it is an OAuth refresh token); trying anonymously. Log in with a user and password or an access token instead",
                        path.display()
                    );
                    return Ok(RegistryAuth::Anonymous);
                }
                Err(CredentialRetrievalError::NoCredentialConfigured) => continue,
                Err(e) => {
                    return Err(OciError::Credentials {
                        path,
                        reason: format!("{e} (for {key})"),
                    });
                }
            }
        }
        Ok(RegistryAuth::Anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, json: &str) -> Credentials {
        std::fs::write(dir.join("config.json"), json).expect("write config");
        Credentials::docker_config(dir)
    }

    #[test]
    fn reads_auths_and_falls_back_to_anonymous() {
        let dir = std::env::temp_dir().join(format!("atoll-oci-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // base64("alice:s3cret")
        let creds = config(
            &dir,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6czNjcmV0"}}}"#,
        );
        match creds.for_registry("127.0.0.1:5000").expect("auth") {
            RegistryAuth::Basic(u, p) => assert_eq!((u.as_str(), p.as_str()), ("alice", "s3cret")),
            other => panic!("expected basic auth, got {other:?}"),
        }
        assert!(matches!(
            creds.for_registry("127.0.0.1:5001").expect("other"),
            RegistryAuth::Anonymous
        ));
        let broken = config(&dir, "{ not json");
        let e = broken.for_registry("127.0.0.1:5000").expect_err("broken");
        assert!(matches!(e, OciError::Credentials { .. }), "{e}");
        std::fs::remove_file(dir.join("config.json")).expect("rm");
        assert!(matches!(
            Credentials::docker_config(&dir)
                .for_registry("x.io")
                .expect("missing"),
            RegistryAuth::Anonymous
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
