//! `starling demo`: a small real mesh on loopback, narrated.

use anyhow::{Result, bail};
use clap::Args;
use starling_node::files;

/// Options of `starling demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Nodes in the mesh (at least 5).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Seed of the identities (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object instead of the narration.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: DemoArgs) -> Result<()> {
    if args.nodes < 5 || args.nodes > 64 {
        bail!("--nodes must be 5..=64");
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    let root = std::env::temp_dir().join(format!("starling-demo-{}-{seed:x}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let json = args.json;
    if !json {
        files::say(format!(
            "Starling demo: {} real nodes on 127.0.0.1 (seed {seed}, data under {})",
            args.nodes,
            root.display()
        ));
    }
    let mut index = 0;
    let report = runtime.block_on(starling_node::story::run(
        args.nodes,
        seed,
        root.clone(),
        |step| {
            index += 1;
            if !json {
                let mark = if step.pass { "PASS" } else { "FAIL" };
                files::say(format!(
                    "\n[{index}] {} ... {mark} ({} ms)\n    {}",
                    step.name, step.ms, step.detail
                ));
            }
        },
    ));
    let _ = std::fs::remove_dir_all(&root);
    if json {
        files::say(serde_json::to_string(&report)?);
    } else {
        let passed = report.steps.iter().filter(|s| s.pass).count();
        files::say(format!(
            "\n{passed}/{} steps passed in {} ms",
            report.steps.len(),
            report.total_ms
        ));
    }
    if !report.pass {
        bail!("the demo failed (seed {seed})");
    }
    Ok(())
}
