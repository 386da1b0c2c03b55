//! `starling genesis`: the document that names a mesh.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;
use starling_trust::{Did, Genesis, GenesisSpec, Params};

use starling_node::files;

#[derive(Debug, Subcommand)]
pub(crate) enum GenesisCommand {
    /// Create a mesh: sign a genesis document with the first governor's key.
    New {
        /// The first governor's key file; it signs the document.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Further governors, by DID.
        #[arg(long = "governor", value_name = "DID")]
        governors: Vec<String>,
        /// The mesh's name.
        #[arg(long, default_value = "starling")]
        name: String,
        /// Score epoch length in milliseconds.
        #[arg(long, value_name = "MS")]
        epoch_ms: Option<u64>,
        /// Where to write the document.
        #[arg(long, value_name = "FILE", default_value = "genesis.bin")]
        out: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Verify a genesis document and print what it says.
    Show {
        /// The genesis document.
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: GenesisCommand) -> Result<()> {
    match command {
        GenesisCommand::New {
            key,
            governors,
            name,
            epoch_ms,
            out,
            json,
        } => {
            let creator = files::read_key(&key)?;
            let other_governors = governors
                .iter()
                .map(|g| g.parse::<Did>().with_context(|| format!("--governor {g}")))
                .collect::<Result<Vec<_>>>()?;
            let defaults = Params::default();
            let params = Params {
                epoch_ms: epoch_ms.unwrap_or(defaults.epoch_ms),
                ..defaults
            };
            let spec = GenesisSpec {
                name,
                other_governors,
                created_ms: files::now_ms(),
                params,
            };
            let genesis =
                Genesis::create(&creator, spec).context("cannot create the genesis document")?;
            files::write_bytes(&out, genesis.to_bytes())?;
            describe(&genesis, json, Some(&out));
        }
        GenesisCommand::Show { file, json } => describe(&files::read_genesis(&file)?, json, None),
    }
    Ok(())
}

fn describe(genesis: &Genesis, json: bool, written: Option<&PathBuf>) {
    let governors: Vec<String> = genesis
        .governors()
        .iter()
        .map(ToString::to_string)
        .collect();
    if json {
        files::say(json!({
            "mesh_id": hex::encode(genesis.id()),
            "name": genesis.name(),
            "governors": governors,
            "created_ms": genesis.created_ms(),
            "epoch_ms": genesis.params().epoch_ms,
            "file": written,
        }));
        return;
    }
    files::say(format!("mesh id:   {}", hex::encode(genesis.id())));
    files::say(format!("name:      {}", genesis.name()));
    for g in &governors {
        files::say(format!("governor:  {g}"));
    }
    if let Some(path) = written {
        files::say(format!("written:   {}", path.display()));
    }
}
