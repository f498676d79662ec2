//! atoll's component registry: packages that depend on each other, whose integrity every
//! client checks for itself instead of trusting the server.
//!
//! What it is for: the registry server (`atoll registry serve`, [`server`]) with blobs
//! stored by sha256 on disk and metadata in redb or PostgreSQL ([`store`]); the
//! verifying client ([`client`]) behind `atoll publish / add / pull / search`; the
//! pieces both trust: ed25519 publisher signatures ([`sign`], [`log`]), an RFC 6962
//! Merkle log with inclusion and consistency proofs ([`merkle`]), semver resolution
//! ([`resolve`]) and the `atoll.lock` format ([`lockfile`]).
//!
//! What it is not for: running components (atoll-engine / atoll-http), parsing
//! `atoll.toml` (atoll-manifest), terminal output or reading environment variables (the
//! `atoll` binary decides the registry URL and the home directory and passes them in).
//! OCI push/pull and composition are not implemented yet.
//!
//! Key types: [`client::Client`] (every fetch verified: sha256, publisher signature,
//! namespace ownership, log inclusion, consistency with the last tree head seen, which
//! [`home::AtollHome`] keeps); [`server::ServerConfig`] / [`server::serve`];
//! [`log::LogEntry`] (what the log holds); [`lockfile::Lockfile`].
//! The HTTP API is documented in `docs/registry-api.md`.
//!
//! Dependencies and why: `ed25519-dalek` (signatures; audited, constant-time),
//! `sha2` + `hex` (digests, already in the workspace), `getrandom` (key seeds from the
//! OS, without pulling a `rand` version into the API), `semver` (the same rules as
//! Cargo), `redb` (embedded, pure-Rust, ACID key-value store: zero services by default),
//! `tokio-postgres` (the PostgreSQL store; async, no ORM), `serde_json` (API bodies and
//! log leaves), `toml` (the lockfile), `hyper` / `hyper-util` (server and client, as the
//! rest of atoll), `percent-encoding` (search query strings), `wasmparser` (indexing a
//! component's WIT world at publish time).

pub mod api;
pub mod client;
mod error;
pub mod hash;
pub mod home;
pub mod lockfile;
pub mod log;
pub mod merkle;
pub mod name;
pub mod resolve;
pub mod server;
pub mod sign;
pub mod store;
pub mod wit;

pub use error::Error;
pub use hash::Digest;
pub use home::AtollHome;
pub use lockfile::{LockedPackage, Lockfile};
pub use name::PackageName;
