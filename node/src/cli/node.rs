//! `starling node`: run a node beside an agent, and `starling audit`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use libp2p::Multiaddr;
use serde::Deserialize;
use serde_json::json;
use starling_node::files;
use starling_node::{NodeOptions, start};

/// Options of `starling node`; any of them may come from `--config FILE` instead.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// A TOML file with any of the options below (the command line wins).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the node keeps its store.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The mesh's genesis document (first start).
    #[arg(long, value_name = "FILE")]
    genesis: Option<PathBuf>,
    /// The agent's key file (first start).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The agent's mandate chain (first start, or to renew).
    #[arg(long, value_name = "FILE")]
    mandate: Option<PathBuf>,
    /// A listen multiaddr (repeatable; default TCP and QUIC on 127.0.0.1).
    #[arg(long = "listen", value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// The local API address (loopback only).
    #[arg(long, value_name = "ADDR")]
    api: Option<SocketAddr>,
    /// A peer to join through (repeatable).
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// Discover peers on the LAN with mDNS.
    #[arg(long)]
    mdns: bool,
    /// Print one JSON line when ready.
    #[arg(long)]
    json: bool,
}

/// The TOML config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<PathBuf>,
    genesis: Option<PathBuf>,
    key: Option<PathBuf>,
    mandate: Option<PathBuf>,
    #[serde(default)]
    listen: Vec<String>,
    api: Option<SocketAddr>,
    #[serde(default)]
    bootstrap: Vec<String>,
    #[serde(default)]
    mdns: bool,
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid node config", path.display()))
}

fn addrs(list: &[String], what: &str) -> Result<Vec<Multiaddr>> {
    list.iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("{what} `{a}` is not a multiaddr"))
        })
        .collect()
}

fn options(args: NodeArgs) -> Result<NodeOptions> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => ConfigFile::default(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .context("--data-dir is required")?;
    let mut options = NodeOptions::new(data_dir);
    if let Some(g) = args.genesis.or(file.genesis) {
        options.genesis = Some(files::read_genesis(&g)?);
    }
    if let Some(k) = args.key.or(file.key) {
        options.key = Some(files::read_key(&k)?);
    }
    if let Some(m) = args.mandate.or(file.mandate) {
        options.chain = Some(files::read_chain(&m)?);
    }
    let listen = if args.listen.is_empty() {
        file.listen
    } else {
        args.listen
    };
    options.listen = addrs(&listen, "--listen")?;
    let bootstrap = if args.bootstrap.is_empty() {
        file.bootstrap
    } else {
        args.bootstrap
    };
    options.bootstrap = addrs(&bootstrap, "--bootstrap")?;
    options.api = args.api.or(file.api);
    options.mdns = args.mdns || file.mdns;
    Ok(options)
}

pub(crate) fn run(args: NodeArgs) -> Result<()> {
    let json = args.json;
    let options = options(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let node = start(options).await?;
        let listen: Vec<String> = node.listen.iter().map(ToString::to_string).collect();
        if json {
            files::say(json!({"did": node.did().to_string(), "peer_id": node.peer_id.to_string(), "listen": listen, "api": node.api}));
        } else {
            files::say(format!("starling node {}", node.did()));
            for a in &listen {
                files::say(format!("listening on {a}"));
            }
            if let Some(api) = node.api {
                files::say(format!("local API on http://{api}"));
            }
        }
        let handle = node.handle.clone();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                handle.shutdown().await;
                node.wait().await;
            }
            _ = handle_stopped(&handle) => {}
        }
        Ok::<_, anyhow::Error>(())
    })
}

async fn handle_stopped(handle: &starling_node::NodeHandle) {
    handle.requests_closed().await;
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check a node's audit log: signatures, hash chain and signed head.
    Verify {
        /// The node's data dir.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn audit(command: AuditCommand) -> Result<()> {
    let AuditCommand::Verify { data_dir, json } = command;
    let store = starling_node::store::Store::open_existing(&data_dir)?;
    let secret = store.meta("key")?.context("the data dir has no node key")?;
    let secret: [u8; 32] = secret
        .as_slice()
        .try_into()
        .ok()
        .context("the stored node key is corrupt")?;
    let did = starling_trust::Keypair::from_secret_bytes(&secret).did();
    let report = starling_node::audit::verify(&store, &did)?;
    if json {
        files::say(
            json!({"node": did.to_string(), "entries": report.entries, "intact": report.first_bad.is_none(),
            "first_bad": report.first_bad.as_ref().map(|(seq, why)| json!({"seq": seq, "problem": why}))}),
        );
    } else {
        match &report.first_bad {
            None => files::say(format!(
                "audit log intact: {} entries signed by {did}",
                report.entries
            )),
            Some((seq, why)) => files::say(format!("audit log BROKEN at entry {seq}: {why}")),
        }
    }
    if let Some((seq, why)) = report.first_bad {
        bail!("audit log broken at entry {seq}: {why}");
    }
    Ok(())
}
