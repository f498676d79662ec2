//! `atoll key generate|list|show|grant|revoke`: the ed25519 keys that sign what you publish.

use atoll_registry::sign::PublicKey;
use clap::{Args, Subcommand};

use super::share::{RegistryArg, atoll_home, runtime};

/// Manage publisher keys.
#[derive(Args)]
pub struct KeyCommand {
    #[command(subcommand)]
    action: KeyAction,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Create a new key (private key file mode 0600).
    Generate {
        /// Name of the key.
        #[arg(long, default_value = "default")]
        name: String,
        /// Print JSON: name, id, public key, private key file.
        #[arg(long)]
        json: bool,
    },
    /// List keys with their ids.
    List {
        /// Print JSON: a list of {name, id, public_key}.
        #[arg(long)]
        json: bool,
    },
    /// Print a key's id and public key.
    Show {
        /// Name of the key.
        #[arg(long, default_value = "default")]
        name: String,
        /// Print JSON: name, id, public key.
        #[arg(long)]
        json: bool,
    },
    /// Let another key publish in a namespace (signed with one of its current keys).
    Grant(KeyChangeArgs),
    /// Stop a key from publishing in a namespace; what it signed before stays valid.
    Revoke(KeyChangeArgs),
}

#[derive(Args)]
struct KeyChangeArgs {
    /// The namespace, e.g. acme.
    #[arg(long)]
    namespace: String,
    /// The public key to grant or revoke (64 hex digits, from `atoll key show`).
    public_key: String,
    /// Name of your key that signs the change.
    #[arg(long, default_value = "default")]
    key: String,
    #[command(flatten)]
    registry: RegistryArg,
}

impl KeyCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let home = atoll_home();
        match self.action {
            KeyAction::Generate { name, json } => {
                let key = home.generate_key(&name)?;
                let private = home.keys_dir().join(format!("{name}.key"));
                if json {
                    super::print_json(&serde_json::json!({
                        "name": name,
                        "id": key.public().key_id(),
                        "public_key": key.public().to_hex(),
                        "private_key_file": private.display().to_string(),
                    }))?;
                } else {
                    println!("generated key `{name}`: {}", key.public().key_id());
                    println!("  private: {}", private.display());
                    println!("  public:  {}", key.public().to_hex());
                }
            }
            KeyAction::List { json } => {
                let names = home.list_keys()?;
                if names.is_empty() && !json {
                    eprintln!(
                        "no keys in {}; create one with `atoll key generate`",
                        home.keys_dir().display()
                    );
                }
                let mut list = Vec::new();
                for name in names {
                    let key = home.load_key(&name)?;
                    if json {
                        list.push(serde_json::json!({
                            "name": name,
                            "id": key.public().key_id(),
                            "public_key": key.public().to_hex(),
                        }));
                    } else {
                        println!("{name}\t{}", key.public().key_id());
                    }
                }
                if json {
                    super::print_json(&list)?;
                }
            }
            KeyAction::Show { name, json } => {
                let key = home.load_key(&name)?;
                if json {
                    super::print_json(&serde_json::json!({
                        "name": name,
                        "id": key.public().key_id(),
                        "public_key": key.public().to_hex(),
                    }))?;
                } else {
                    println!("name:       {name}");
                    println!("id:         {}", key.public().key_id());
                    println!("public key: {}", key.public().to_hex());
                }
            }
            KeyAction::Grant(args) => {
                let (signer, subject, client) = args.prepare()?;
                runtime()?.block_on(client.grant_key(&signer, &args.namespace, &subject))?;
                println!("granted {} in `{}`", subject.key_id(), args.namespace);
            }
            KeyAction::Revoke(args) => {
                let (signer, subject, client) = args.prepare()?;
                runtime()?.block_on(client.revoke_key(&signer, &args.namespace, &subject))?;
                println!("revoked {} in `{}`", subject.key_id(), args.namespace);
            }
        }
        Ok(())
    }
}

impl KeyChangeArgs {
    fn prepare(
        &self,
    ) -> anyhow::Result<(
        atoll_registry::sign::KeyPair,
        PublicKey,
        atoll_registry::client::Client,
    )> {
        let subject = PublicKey::from_hex("the key to change", &self.public_key)?;
        let signer = atoll_home().load_key(&self.key)?;
        Ok((signer, subject, self.registry.client()?))
    }
}
