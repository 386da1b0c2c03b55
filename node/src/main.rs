//! `starling`: the Starling node and its command line.

mod bench;
mod cli;

use clap::{Parser, Subcommand};

/// Starling: a serverless trust mesh for AI agents.
#[derive(Debug, Parser)]
#[command(name = "starling", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or inspect an identity (an Ed25519 key, its did:key and PeerId).
    #[command(subcommand)]
    Id(cli::id::IdCommand),
    /// Create or inspect a mesh's genesis document.
    #[command(subcommand)]
    Genesis(cli::genesis::GenesisCommand),
    /// Issue or verify mandates (signed delegations).
    #[command(subcommand)]
    Mandate(cli::mandate::MandateCommand),
    /// Run a node beside an agent.
    Node(cli::node::NodeArgs),
    /// Check a node's audit log.
    #[command(subcommand)]
    Audit(cli::node::AuditCommand),
    /// Start a small real mesh on loopback and walk through the whole story.
    Demo(cli::demo::DemoArgs),
    /// Run the deterministic simulator (a scenario file or a built-in).
    Sim(cli::sim::SimArgs),
    /// Measure the cores and the node.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("STARLING_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,libp2p_kad=error,yamux=error")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let result = match cli.command {
        Command::Id(c) => cli::id::run(c),
        Command::Genesis(c) => cli::genesis::run(c),
        Command::Mandate(c) => cli::mandate::run(c),
        Command::Node(c) => cli::node::run(c),
        Command::Audit(c) => cli::node::audit(c),
        Command::Demo(c) => cli::demo::run(c),
        Command::Sim(c) => cli::sim::run(c),
        Command::Bench(c) => bench::run(c),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
