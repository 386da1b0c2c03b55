//! Starting a node: identity and state from the data dir, the swarm, the
//! gossip core, the event loop and (optionally) the local API.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use rand::SeedableRng;
use rand::rngs::StdRng;
use starling_gossip::{Command, Config, Input, Node};
use starling_trust::evidence::record::AgentRecord;
use starling_trust::{Did, Evidence, Genesis, Keypair, MandateChain, Record};
use tokio::sync::{broadcast, mpsc};

use crate::audit::AuditLog;
use crate::driver::{Driver, SESSION_QUEUE_MAX, unix_ms};
use crate::handle::{EVENT_QUEUE_MAX, NodeHandle, REQUEST_QUEUE_MAX};
use crate::net::{self, GOSSIP_PROTOCOL};
use crate::seal::{KemSecret, SECRET_BYTES};
use crate::store::{Batch, Store};

/// How long to wait for listeners to report their addresses.
pub const LISTEN_WAIT_MS: u64 = 5_000;

/// Everything a node needs to start. Fields left `None` come from the data
/// dir (a restart); a first start must give genesis, key and mandate.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// The mesh's genesis document.
    pub genesis: Option<Genesis>,
    /// The agent's key.
    pub key: Option<Keypair>,
    /// The agent's mandate chain.
    pub chain: Option<MandateChain>,
    /// Listen addresses (default: TCP and QUIC on 127.0.0.1, any port).
    pub listen: Vec<Multiaddr>,
    /// Peers to join through.
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the LAN.
    pub mdns: bool,
    /// The local API address (loopback only), if any.
    pub api: Option<SocketAddr>,
    /// Gossip parameters.
    pub gossip: Config,
    /// Seed of the core's RNG (default: from the OS).
    pub seed: Option<u64>,
}

impl NodeOptions {
    /// Options with defaults for a data dir.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            genesis: None,
            key: None,
            chain: None,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            mdns: false,
            api: None,
            gossip: Config::default(),
            seed: None,
        }
    }
}

/// Why a node would not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// SSLKEYLOGFILE would make libp2p-tls write session secrets to disk.
    #[error(
        "SSLKEYLOGFILE is set: TLS session secrets would be written to disk; unset it to start a node"
    )]
    KeyLogFile,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Required identity or mesh data is missing or inconsistent.
    #[error("{0}")]
    Setup(String),
    /// The network could not be set up.
    #[error(transparent)]
    Net(#[from] net::NetError),
    /// Listening failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The API could not bind.
    #[error("local API: {0}")]
    Api(String),
}

/// A started node.
#[derive(Debug)]
pub struct RunningNode {
    /// Requests and events.
    pub handle: NodeHandle,
    /// Its PeerId.
    pub peer_id: PeerId,
    /// Where it listens (each ends with its `/p2p/` id).
    pub listen: Vec<Multiaddr>,
    /// Where its API listens, if it has one.
    pub api: Option<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// This node's agent.
    pub fn did(&self) -> Did {
        self.handle.did
    }

    /// Stops the node and waits until its store is closed.
    pub async fn stop(self) {
        self.handle.shutdown().await;
        let _ = self.task.await;
    }

    /// Waits until the node stops by itself.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

fn setup(msg: impl Into<String>) -> StartError {
    StartError::Setup(msg.into())
}

/// Resolves genesis, key, KEM secret and mandate from options and store.
fn identity(
    options: &NodeOptions,
    store: &Store,
    batch: &mut Batch,
) -> Result<(Genesis, Keypair, KemSecret, MandateChain), StartError> {
    let genesis = match (store.meta("genesis")?, &options.genesis) {
        (Some(stored), Some(given)) if stored != given.to_bytes() => {
            return Err(setup(
                "this data dir belongs to another mesh (its genesis differs from --genesis)",
            ));
        }
        (Some(stored), _) => Genesis::from_bytes(&stored)
            .map_err(|e| setup(format!("stored genesis is corrupt: {e}")))?,
        (None, Some(given)) => {
            batch.meta.push(("genesis", given.to_bytes().to_vec()));
            given.clone()
        }
        (None, None) => return Err(setup("first start: --genesis is required")),
    };
    let key = match (store.meta("key")?, &options.key) {
        (Some(stored), given) => {
            let secret: [u8; 32] = stored
                .as_slice()
                .try_into()
                .map_err(|_| setup("stored key is corrupt"))?;
            let key = Keypair::from_secret_bytes(&secret);
            if given.as_ref().is_some_and(|g| g.did() != key.did()) {
                return Err(setup(format!(
                    "this data dir belongs to {}, not to the given --key",
                    key.did()
                )));
            }
            key
        }
        (None, Some(given)) => {
            batch.meta.push(("key", given.secret_bytes().to_vec()));
            given.clone()
        }
        (None, None) => return Err(setup("first start: --key is required")),
    };
    let kem = match store.meta("kem_seed")? {
        Some(seed) => {
            let seed: [u8; SECRET_BYTES] = seed
                .as_slice()
                .try_into()
                .map_err(|_| setup("stored KEM seed is corrupt"))?;
            KemSecret::from_seed(&seed)
        }
        None => {
            let kem = KemSecret::generate(&mut rand::rng());
            batch.meta.push(("kem_seed", kem.seed().to_vec()));
            kem
        }
    };
    let chain = match (&options.chain, store.meta("mandate")?) {
        (Some(given), _) => {
            batch.meta.push(("mandate", given.to_bytes()));
            given.clone()
        }
        (None, Some(stored)) => MandateChain::from_bytes(&stored)
            .map_err(|e| setup(format!("stored mandate is corrupt: {e}")))?,
        (None, None) => return Err(setup("first start: --mandate is required")),
    };
    match chain.leaf() {
        Some(leaf) if leaf.subject() == key.did() => {}
        Some(leaf) => {
            return Err(setup(format!(
                "the mandate was granted to {}, not to this node's key {}",
                leaf.subject(),
                key.did()
            )));
        }
        None => return Err(setup("the mandate chain is empty")),
    }
    Ok((genesis, key, kem, chain))
}

/// Starts a node on the current tokio runtime.
pub async fn start(options: NodeOptions) -> Result<RunningNode, StartError> {
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        return Err(StartError::KeyLogFile);
    }
    if let Some(api) = options.api
        && !api.ip().is_loopback()
    {
        return Err(StartError::Api(format!(
            "{api} is not a loopback address; the API has no authentication"
        )));
    }
    let store = Store::open(&options.data_dir)?;
    let mut batch = Batch::default();
    let (genesis, key, kem, chain) = identity(&options, &store, &mut batch)?;
    let genesis = Arc::new(genesis);
    let mut swarm = net::build(&key, &genesis.id(), options.mdns)?;
    let peer_id = *swarm.local_peer_id();
    let listen = match options.listen.is_empty() {
        true => vec![
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
            "/ip4/127.0.0.1/udp/0/quic-v1"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        ],
        false => options.listen.clone(),
    };
    for addr in &listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| StartError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
    }
    let listen_addrs = wait_for_listeners(&mut swarm, listen.len()).await?;
    let now_ms = unix_ms();
    let record = Record::create(
        &key,
        &genesis,
        now_ms,
        Evidence::Agent(AgentRecord {
            chain: chain.clone(),
            kem_public_key: kem.public_key().into(),
            addrs: listen_addrs
                .iter()
                .take(starling_trust::evidence::record::ADDRS_MAX)
                .map(ToString::to_string)
                .collect(),
        }),
    )
    .map_err(|e| setup(format!("cannot make this node's agent record: {e}")))?;
    let seed = options.seed.unwrap_or_else(rand::random);
    let rng = StdRng::seed_from_u64(seed);
    let mut core = Node::new(
        options.gossip.clone(),
        Arc::clone(&genesis),
        key.clone(),
        peer_id,
        Arc::new(record.clone()),
        rng,
        now_ms,
    )
    .map_err(|e| setup(e.to_string()))?;
    batch
        .evidence
        .push((record.id(), record.to_bytes().to_vec()));
    let (persisted_policy, persisted_evidence) = replay(&mut core, &store, now_ms)?;
    // Direct messages from agents that are not neighbours arrive here. An
    // agent whose mandate or policy does not allow `subscribe` on its inbox
    // still gets direct messages from its neighbours, only not relayed ones.
    let inbox = crate::seal::inbox_topic(&key.did());
    if let Err(e) = core.handle(now_ms, Input::Command(Command::Subscribe { topic: inbox })) {
        tracing::warn!("relayed direct messages will not reach this agent: {e}");
    }
    let audit = AuditLog::resume(key.clone(), &store)?;
    store.commit(&batch, true)?;

    let mut control = swarm.behaviour().stream.new_control();
    let incoming = control
        .accept(GOSSIP_PROTOCOL)
        .map_err(|e| setup(e.to_string()))?;
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE_MAX);
    let (sessions_tx, sessions_rx) = mpsc::channel(SESSION_QUEUE_MAX);
    let (events_tx, _) = broadcast::channel(EVENT_QUEUE_MAX);
    let known_peers = store.peers()?;
    let mut driver = Driver {
        core,
        swarm,
        control,
        store: std::sync::Arc::new(store),
        audit,
        batch: Batch::default(),
        key: key.clone(),
        kem,
        rng: StdRng::seed_from_u64(seed ^ 0x5eed),
        now_ms,
        timers: BTreeMap::new(),
        timer_seq: 0,
        writers: HashMap::new(),
        connected: BTreeSet::new(),
        cut: BTreeMap::new(),
        addrs: BTreeMap::new(),
        gossip_dials: BTreeMap::new(),
        sessions_tx,
        inbound: crate::session::InboundBudget::new(options.gossip.frame_bytes_max),
        events: events_tx.clone(),
        traffic: BTreeMap::new(),
        metrics: Default::default(),
        persisted_policy,
        listen_addrs: listen_addrs.clone(),
        housekeeping_at_ms: 0,
        committed_at_ms: 0,
        closing: BTreeMap::new(),
        reconnect_at: BTreeMap::new(),
        persisted_evidence,
        scanned_generation: 0,
        acks: Vec::new(),
        reads: Vec::new(),
        committing: None,
        graylisted: BTreeMap::new(),
        rejoin_at_ms: now_ms + crate::driver::REJOIN_MS,
        bootstrap: options.bootstrap.clone(),
    };
    for addr in &options.bootstrap {
        driver.dial_addr_and_join(addr.clone());
    }
    if options.bootstrap.is_empty() {
        for (peer, addrs) in known_peers.into_iter().take(8) {
            let Ok(peer) = PeerId::from_bytes(&peer) else {
                continue;
            };
            for a in addrs.iter().filter_map(|a| a.parse::<Multiaddr>().ok()) {
                driver
                    .swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, a.clone());
                driver.addrs.entry(peer).or_default().push(a);
            }
            driver.dial_and_join(peer);
        }
    }
    let handle = NodeHandle {
        requests: requests_tx,
        events: events_tx,
        did: key.did(),
    };
    let api = match options.api {
        Some(addr) => Some(
            crate::api::serve(addr, handle.clone())
                .await
                .map_err(|e| StartError::Api(e.to_string()))?,
        ),
        None => None,
    };
    let task = tokio::spawn(driver.run(requests_rx, sessions_rx, incoming));
    let listen = listen_addrs
        .into_iter()
        .map(|a| a.with_p2p(peer_id).unwrap_or_else(|a| a))
        .collect();
    Ok(RunningNode {
        handle,
        peer_id,
        listen,
        api,
        task,
    })
}

async fn wait_for_listeners(
    swarm: &mut libp2p::Swarm<net::Behaviour>,
    n: usize,
) -> Result<Vec<Multiaddr>, StartError> {
    let mut addrs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(LISTEN_WAIT_MS);
    while addrs.len() < n {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => addrs.push(address),
            Ok(SwarmEvent::ListenerError { error, .. })
            | Ok(SwarmEvent::ListenerClosed {
                reason: Err(error), ..
            }) => {
                return Err(StartError::Listen {
                    addr: Multiaddr::empty(),
                    reason: error.to_string(),
                });
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if addrs.is_empty() {
        return Err(StartError::Listen {
            addr: Multiaddr::empty(),
            reason: "no listener came up".into(),
        });
    }
    Ok(addrs)
}

/// Policy change hashes and evidence record ids already in the store.
type Replayed = (BTreeSet<[u8; 32]>, std::collections::HashSet<[u8; 32]>);

/// Feeds stored evidence and policy back into a fresh core; drops stored
/// records the core no longer keeps (superseded). Returns the stored policy hashes.
fn replay(
    core: &mut Node<PeerId, StdRng>,
    store: &Store,
    now_ms: u64,
) -> Result<Replayed, StartError> {
    let records = store.evidence()?;
    for bytes in &records {
        let _ = core.handle(
            now_ms,
            Input::Command(Command::SubmitEvidence {
                record: bytes.clone(),
            }),
        );
    }
    let stale: Vec<[u8; 32]> = records
        .iter()
        .map(|b| starling_trust::wire::sha256(b))
        .filter(|id| !core.trust().store().contains(id))
        .collect();
    let mut persisted = BTreeSet::new();
    for bytes in store.policy_changes()? {
        if let Ok(change) =
            starling_trust::policy::PolicyChange::from_bytes(&bytes, core.trust().genesis())
        {
            persisted.insert(change.hash().0);
        }
        if let Err(e) = core.handle(
            now_ms,
            Input::Command(Command::ChangePolicy { change: bytes }),
        ) {
            tracing::warn!("a stored policy change no longer applies: {e}");
        }
    }
    // The outputs (timers, events) stay queued for the event loop's first drain.
    if !stale.is_empty() {
        store.remove_evidence(&stale)?;
    }
    let kept = records
        .iter()
        .map(|b| starling_trust::wire::sha256(b))
        .filter(|id| !stale.contains(id))
        .collect();
    Ok((persisted, kept))
}
