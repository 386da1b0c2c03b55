//! `starling id`: identities.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use starling_trust::Keypair;

use starling_node::files::{self, KeyFile};

#[derive(Debug, Subcommand)]
pub(crate) enum IdCommand {
    /// Make a new identity (or import one with --secret-hex) and print its DID and PeerId.
    New {
        /// Import this 32-byte Ed25519 secret key, in hex, instead of generating one.
        #[arg(long, value_name = "HEX")]
        secret_hex: Option<String>,
        /// Write the key file here (never overwritten; mode 0600).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the DID and PeerId of a key file.
    Show {
        /// The key file.
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: IdCommand) -> Result<()> {
    match command {
        IdCommand::New {
            secret_hex,
            out,
            json,
        } => {
            let key = match secret_hex {
                Some(hex) => files::parse_secret_hex(&hex)?,
                None => Keypair::generate(&mut rand::rng()),
            };
            if let Some(path) = &out {
                files::write_key(path, &key)?;
            }
            let file = KeyFile::of(&key);
            match (json, &out) {
                (true, Some(path)) => {
                    files::say(json!({"did": file.did, "peer_id": file.peer_id, "key_file": path}))
                }
                (true, None) => files::say(serde_json::to_string(&file)?),
                (false, _) => {
                    files::say(format!("did:     {}\npeer id: {}", file.did, file.peer_id));
                    match &out {
                        Some(path) => files::say(format!("key:     {}", path.display())),
                        None => files::say("key:     not saved (use --out FILE to keep it)"),
                    }
                }
            }
        }
        IdCommand::Show { file, json } => {
            let key = files::read_key(&file)?;
            let did = key.did();
            match json {
                true => files::say(
                    json!({"did": did.to_string(), "peer_id": did.to_peer_id().to_string()}),
                ),
                false => files::say(format!("did:     {did}\npeer id: {}", did.to_peer_id())),
            }
        }
    }
    Ok(())
}
