//! A real mesh of nodes in one process on 127.0.0.1, for the demo, the
//! benchmark and the integration tests.
//!
//! Identities derive from one seed: two governors (the first runs node 0,
//! holding a mandate from the second, since a governor cannot mandate
//! itself), one organisation mandated by the first governor, and agents
//! mandated by the organisation. Every node has its own data dir under
//! `root` and listens on TCP (and QUIC) on 127.0.0.1 with OS-chosen ports.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use starling_trust::{
    Did, Genesis, GenesisSpec, Keypair, Mandate, MandateChain, MandateSpec, Params, Scope,
};

use crate::handle::{ApiError, NodeHandle, Query};
use crate::runtime::{NodeOptions, RunningNode, StartError, start};

/// How long mandates in a local mesh last.
pub const MANDATE_MS: u64 = 24 * 3_600_000;
/// The default agent scope.
pub const AGENT_SCOPE: [&str; 3] = ["publish:*", "subscribe:*", "vouch"];

/// One node of the mesh, running or stopped.
#[derive(Debug)]
pub struct LocalNode {
    /// Its agent key.
    pub key: Keypair,
    /// Its mandate chain.
    pub chain: MandateChain,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Whom it joined through.
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// With an HTTP API?
    pub api: bool,
    /// The running node, if up.
    pub running: Option<RunningNode>,
}

/// The mesh.
#[derive(Debug)]
pub struct LocalMesh {
    /// The seed everything derives from.
    pub seed: u64,
    /// Where the data dirs are.
    pub root: PathBuf,
    /// The genesis.
    pub genesis: Arc<Genesis>,
    /// The governor that runs node 0.
    pub governor: Keypair,
    /// The co-governor that mandated it.
    pub co_governor: Keypair,
    /// The organisation (principal of every agent).
    pub org: Keypair,
    /// The organisation's mandate.
    pub org_link: Mandate,
    /// The nodes.
    pub nodes: Vec<LocalNode>,
    /// Gossip parameters of every node started from now on.
    pub gossip: starling_gossip::Config,
    rng: StdRng,
}

fn key_from(rng: &mut StdRng) -> Keypair {
    Keypair::generate(rng)
}

impl LocalMesh {
    /// A new mesh (no nodes yet) with data dirs under `root`.
    pub fn new(root: PathBuf, seed: u64, now_ms: u64) -> Result<Self, StartError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let governor = key_from(&mut rng);
        let co_governor = key_from(&mut rng);
        let org = key_from(&mut rng);
        let params = Params {
            epoch_ms: 60_000,
            ..Params::default()
        };
        let spec = GenesisSpec {
            name: "local".into(),
            other_governors: vec![co_governor.did()],
            created_ms: now_ms,
            params,
        };
        let genesis = Arc::new(
            Genesis::create(&governor, spec).map_err(|e| StartError::Setup(e.to_string()))?,
        );
        let org_link = Mandate::issue(
            &governor,
            &Self::spec_for(
                &genesis,
                &mut rng,
                org.did(),
                &["publish:*", "subscribe:*", "vouch", "delegate(2)"],
                now_ms,
            ),
            None,
        );
        Ok(Self {
            seed,
            root,
            genesis,
            governor,
            co_governor,
            org,
            org_link,
            nodes: Vec::new(),
            gossip: starling_gossip::Config::default(),
            rng,
        })
    }

    fn spec_for(
        genesis: &Genesis,
        rng: &mut StdRng,
        subject: Did,
        scope: &[&str],
        now_ms: u64,
    ) -> MandateSpec {
        let mut nonce = [0u8; 16];
        rand::Rng::fill_bytes(rng, &mut nonce);
        MandateSpec {
            mesh: genesis.id(),
            subject,
            scope: Scope::parse(scope)
                .unwrap_or_else(|e| unreachable!("built-in scope is valid: {e}")),
            not_before_ms: now_ms.saturating_sub(60_000),
            expires_ms: now_ms + MANDATE_MS,
            nonce,
        }
    }

    /// A fresh agent key and its chain (governor -> org -> agent).
    pub fn new_agent(&mut self, scope: &[&str], now_ms: u64) -> (Keypair, MandateChain) {
        let key = key_from(&mut self.rng);
        let mut spec = Self::spec_for(&self.genesis, &mut self.rng, key.did(), scope, now_ms);
        spec.expires_ms = spec.expires_ms.min(self.org_link.expires_ms());
        let link = Mandate::issue(&self.org, &spec, Some(&self.org_link));
        (key, MandateChain::new(vec![self.org_link.clone(), link]))
    }

    /// The governor's own chain (co-governor -> governor).
    pub fn governor_chain(&mut self, now_ms: u64) -> MandateChain {
        let scope = ["publish:*", "subscribe:*", "vouch", "delegate(3)"];
        let spec = Self::spec_for(
            &self.genesis,
            &mut self.rng,
            self.governor.did(),
            &scope,
            now_ms,
        );
        MandateChain::new(vec![Mandate::issue(&self.co_governor, &spec, None)])
    }

    /// Adds and starts a node with this key and chain, joining through node `via`.
    pub async fn add_node_with(
        &mut self,
        key: Keypair,
        chain: MandateChain,
        via: Option<usize>,
        api: bool,
    ) -> Result<usize, StartError> {
        let index = self.nodes.len();
        let data_dir = self.root.join(format!("node-{index}"));
        let bootstrap = match via
            .and_then(|v| self.nodes.get(v))
            .and_then(|n| n.running.as_ref())
        {
            Some(r) => r
                .listen
                .iter()
                .filter(|a| a.to_string().contains("/tcp/"))
                .take(1)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        self.nodes.push(LocalNode {
            key,
            chain,
            data_dir,
            bootstrap,
            api,
            running: None,
        });
        self.start_node(index, true).await?;
        Ok(index)
    }

    /// Adds the governor's node (index 0 by convention).
    pub async fn add_governor_node(&mut self, now_ms: u64, api: bool) -> Result<usize, StartError> {
        let chain = self.governor_chain(now_ms);
        self.add_node_with(self.governor.clone(), chain, None, api)
            .await
    }

    /// Adds an agent node with the default scope, joining through `via`.
    pub async fn add_agent_node(
        &mut self,
        via: Option<usize>,
        now_ms: u64,
        api: bool,
    ) -> Result<usize, StartError> {
        let (key, chain) = self.new_agent(&AGENT_SCOPE, now_ms);
        self.add_node_with(key, chain, via, api).await
    }

    /// (Re)starts node `i` from its data dir.
    pub async fn start_node(&mut self, i: usize, first: bool) -> Result<(), StartError> {
        let node = &self.nodes[i];
        let mut options = NodeOptions::new(node.data_dir.clone());
        if first {
            options.genesis = Some((*self.genesis).clone());
            options.key = Some(node.key.clone());
            options.chain = Some(node.chain.clone());
        }
        options.bootstrap = node.bootstrap.clone();
        options.gossip = self.gossip.clone();
        options.seed = Some(self.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        if node.api {
            options.api = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        let running = start(options).await?;
        self.nodes[i].running = Some(running);
        Ok(())
    }

    /// Stops node `i` cleanly.
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(r) = self.nodes[i].running.take() {
            r.stop().await;
        }
    }

    /// The handle of running node `i`.
    ///
    /// # Panics
    /// If node `i` is not running.
    pub fn handle(&self, i: usize) -> &NodeHandle {
        &self.nodes[i]
            .running
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} is not running"))
            .handle
    }

    /// The agent DID of node `i`.
    pub fn did(&self, i: usize) -> Did {
        self.nodes[i].key.did()
    }

    /// Stops every node.
    pub async fn shutdown(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
    }
}

/// Polls `check` every 50 ms until it is true or `timeout_ms` passes.
pub async fn until<F, Fut>(timeout_ms: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum over `handles` of a counter (`name`, as in the metrics text)
/// in each node's metrics.
pub async fn counter_sum(handles: &[NodeHandle], name: &str) -> u64 {
    let mut sum = 0;
    for h in handles {
        let text = h.query(Query::Metrics).await.unwrap_or_default();
        sum += text
            .as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    sum
}

/// The number of peers node `handle` has admitted.
pub async fn admitted(handle: &NodeHandle) -> usize {
    match handle.query(Query::Peers).await {
        Ok(v) => v["admitted"].as_array().map_or(0, Vec::len),
        Err(_) => 0,
    }
}

/// Each node's `view` (`active_view` or `passive_view`) as indices into
/// `handles` (a peer outside `handles` is left out), or the error of a
/// node that did not answer.
async fn views(handles: &[NodeHandle], view: &str) -> Result<Vec<Vec<usize>>, ApiError> {
    let mut ids = Vec::with_capacity(handles.len());
    let mut views = Vec::with_capacity(handles.len());
    for h in handles {
        let status = h.query(Query::Status).await?;
        ids.push(status["peer_id"].as_str().unwrap_or_default().to_string());
        let peers = h.query(Query::Peers).await?;
        views.push(peers[view].as_array().cloned().unwrap_or_default());
    }
    let index = |p: &serde_json::Value| ids.iter().position(|id| p.as_str() == Some(id.as_str()));
    Ok(views
        .iter()
        .map(|view| view.iter().filter_map(index).collect())
        .collect())
}

/// Whether active `views` (as from `views`), taken as undirected links,
/// connect every node. (Every node having a neighbour is not enough: in a
/// small mesh with small views a pair or a triangle can hold each other and
/// nobody else for a while, and a message published then never reaches
/// them, as Plumtree repairs loss only along links.)
fn connected(views: &[Vec<usize>]) -> bool {
    let mut links = vec![Vec::new(); views.len()];
    for (i, view) in views.iter().enumerate() {
        for &j in view {
            links[i].push(j);
            links[j].push(i);
        }
    }
    let mut reached = vec![false; views.len()];
    let mut stack = if views.is_empty() { vec![] } else { vec![0] };
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut reached[i], true) {
            stack.extend(links[i].iter().copied());
        }
    }
    reached.iter().all(|r| *r)
}

/// Waits up to `timeout_ms` for the mesh to be ready for a story: the
/// active views `connected`, every node holding at least `records`
/// evidence records (each agent's record, spread by the evidence
/// anti-entropy), and the active views unchanged for `SETTLE_MS`. Right
/// after joining, nodes still fill their views and evict to make room, and
/// Plumtree does not resend a message to a neighbour that arrives after it
/// passed, so a story told on a moving overlay can miss a node.
pub async fn settle(handles: &[NodeHandle], records: u64, timeout_ms: u64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let mut last: Option<Vec<Vec<usize>>> = None;
    loop {
        let now = views(handles, "active_view").await.ok();
        let ready = holding(handles, records).await && now.as_deref().is_some_and(connected);
        if ready && now == last {
            return true;
        }
        last = now.filter(|_| ready);
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
    }
}

/// How long the active views must stay the same for `settle`.
pub const SETTLE_MS: u64 = 500;

/// Whether every node holds at least `records` evidence records.
async fn holding(handles: &[NodeHandle], records: u64) -> bool {
    for h in handles {
        let status = h.query(Query::Status).await.unwrap_or_default();
        if status["evidence_records"].as_u64().unwrap_or(0) < records {
            return false;
        }
    }
    true
}

/// Each node's active and passive views, one line a node
/// (`0 -> [1, 3] passive [2]`), for failure messages.
pub async fn describe_overlay(handles: &[NodeHandle]) -> String {
    match (
        views(handles, "active_view").await,
        views(handles, "passive_view").await,
    ) {
        (Ok(active), Ok(passive)) => active
            .iter()
            .zip(&passive)
            .enumerate()
            .map(|(i, (a, p))| format!("{i} -> {a:?} passive {p:?}\n"))
            .collect(),
        (Err(e), _) | (_, Err(e)) => format!("a node did not answer: {e}"),
    }
}

/// The score `handle`'s node holds for `did`.
pub async fn score(handle: &NodeHandle, did: &Did) -> u64 {
    match handle.query(Query::Trust(*did)).await {
        Ok(v) => v["score"].as_u64().unwrap_or(0),
        Err(_) => 0,
    }
}
