//! `cargo bench -p starling-benches --bench vs_gossipsub`: the side-by-side
//! run of `starling bench vs-gossipsub` as a plain bench. N Starling nodes,
//! then N rust-libp2p gossipsub nodes, each on a runtime of its own in this
//! process, one after the other (so neither competes with the other for
//! the cores, and the CPU and socket counters of a window belong to one
//! system), on the same seeded workload; prints the comparison as JSON.
//! `STARLING_VS_NODES` and `STARLING_VS_MESSAGES` set the size (the
//! command's defaults otherwise).

use starling_benches::vs::{Comparison, Workload, gossipsub};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let defaults = Workload::default();
    let workload = Workload {
        nodes: env_or("STARLING_VS_NODES", defaults.nodes),
        messages: env_or("STARLING_VS_MESSAGES", defaults.messages),
        ..defaults
    };
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    let starling = runtime()?.block_on(starling_node::vs::run(&workload))?;
    let gossipsub = runtime()?.block_on(gossipsub::run(&workload))?;
    let comparison = Comparison::new(&workload, starling, gossipsub);
    starling_node::files::say(serde_json::to_string_pretty(&comparison)?);
    Ok(())
}
