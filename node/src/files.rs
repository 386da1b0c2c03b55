//! The files the command line reads and writes.
//!
//! A key file is JSON (`did`, `peer_id`, `secret_key_hex`) readable only by
//! its owner. Genesis documents and mandate chains are their signed binary
//! encodings, exactly as they travel on the wire.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use starling_trust::{Genesis, Keypair, MandateChain};

/// The JSON form of a key file.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyFile {
    pub did: String,
    pub peer_id: String,
    pub secret_key_hex: String,
}

impl KeyFile {
    pub fn of(key: &Keypair) -> Self {
        Self {
            did: key.did().to_string(),
            peer_id: key.did().to_peer_id().to_string(),
            secret_key_hex: hex::encode(key.secret_bytes()),
        }
    }
}

/// Parses a 32-byte Ed25519 secret given in hex.
pub fn parse_secret_hex(text: &str) -> Result<Keypair> {
    let bytes = hex::decode(text.trim()).context("the secret key is not valid hex")?;
    let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "an Ed25519 secret key is 32 bytes (64 hex digits), got {}",
            bytes.len()
        )
    })?;
    Ok(Keypair::from_secret_bytes(&secret))
}

/// Reads a key file and checks its DID matches its secret.
pub fn read_key(path: &Path) -> Result<Keypair> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a Starling key file", path.display()))?;
    let key =
        parse_secret_hex(&file.secret_key_hex).with_context(|| format!("in {}", path.display()))?;
    if key.did().to_string() != file.did {
        bail!(
            "{}: the did does not match the secret key (the file was edited)",
            path.display()
        );
    }
    Ok(key)
}

/// Writes a key file readable only by its owner; refuses to overwrite.
pub fn write_key(path: &Path, key: &Keypair) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create key file {} (it must not exist yet)",
            path.display()
        )
    })?;
    file.write_all(serde_json::to_string_pretty(&KeyFile::of(key))?.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Writes bytes to a file (replacing it).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads and verifies a genesis document.
pub fn read_genesis(path: &Path) -> Result<Genesis> {
    let bytes =
        fs::read(path).with_context(|| format!("cannot read genesis {}", path.display()))?;
    Genesis::from_bytes(&bytes)
        .with_context(|| format!("{} is not a valid genesis document", path.display()))
}

/// Reads a mandate chain (each link's signature checked).
pub fn read_chain(path: &Path) -> Result<MandateChain> {
    let bytes =
        fs::read(path).with_context(|| format!("cannot read mandate chain {}", path.display()))?;
    MandateChain::from_bytes(&bytes)
        .with_context(|| format!("{} is not a valid mandate chain", path.display()))
}

/// Prints one line (or one JSON object) on stdout.
#[allow(clippy::print_stdout)]
pub fn say(text: impl std::fmt::Display) {
    println!("{text}");
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
