//! A flood: one admitted peer pushes validly signed gossip frames at the
//! victim as fast as loopback carries them, far above the victim's allowed
//! per-peer frame rate, while an honest node keeps publishing.
//!
//! The flooder is a real libp2p client (the node's own transport: TCP +
//! TLS + yamux, `/starling/gossip/2`) with a real mandate, so it passes the
//! handshake like any agent; after that it skips every courtesy the gossip
//! core would observe and writes pre-signed frames back to back. The test
//! shows, from the victim's `/metrics` and `/v1/peers`:
//! - its inbound and outbound queues stay within their bounds (sampled all
//!   through the flood), and the process's resident memory grows by far
//!   less than the bytes flooded;
//! - every honest message is still delivered;
//! - the flooder is graylisted, and when it comes back it is refused with
//!   that reason.
//!
//! Identities and payloads derive from the printed seed (`STARLING_SEED`
//! replays one). Nothing asserts on elapsed time: the flood rate is printed.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_gossip::SignedMessage;
use starling_gossip::wire::{
    Body, Frame, Gossip, Hello, ItemKind, decode_delimited, encode_delimited,
};
use starling_node::localmesh::{AGENT_SCOPE, LocalMesh, describe_overlay, settle, until};
use starling_node::net::GOSSIP_PROTOCOL;
use starling_node::{AgentEvent, NodeHandle, Query};
use starling_trust::evidence::record::AgentRecord;
use starling_trust::keys::Domain;
use starling_trust::{Evidence, Genesis, Keypair, MandateChain, Record};
use tokio::sync::mpsc;

const WAIT_MS: u64 = 20_000;
/// Frames per second one peer may send the victim, and the burst.
const PEER_FRAMES_PER_S: u32 = 200;
const PEER_FRAMES_BURST: u32 = 400;
/// The frames the flooder sends (unless cut off first): two and a half
/// times the burst, all signed before the flood so that writing them is
/// bound by the loopback and not by signing, on any machine.
const FLOOD_FRAMES: usize = 1_000;
/// Payload of each flood message (the probationary ring allows 64 KiB).
const FLOOD_PAYLOAD_BYTES: usize = 4 * 1024;
/// The test process (three nodes and the flooder, all in it) may grow by
/// at most this much during the flood: the victim's inbound queue bound
/// (16 MiB) plus room for the allocator and the flooder's own buffers.
const RSS_GROWTH_MAX: u64 = 64 << 20;

/// The flooder: a libp2p swarm with the node's transports, driven by a task.
struct Flooder {
    key: Keypair,
    hello: Vec<u8>,
    control: libp2p_stream::Control,
    refusals: mpsc::Receiver<String>,
    swarm_task: tokio::task::JoinHandle<()>,
}

impl Flooder {
    fn start(
        key: Keypair,
        chain: MandateChain,
        genesis: &Genesis,
        victim: Multiaddr,
    ) -> anyhow::Result<Self> {
        let now = starling_node::files::now_ms();
        let record = Record::create(
            &key,
            genesis,
            now,
            Evidence::Agent(AgentRecord {
                chain,
                kem_public_key: Default::default(),
                addrs: Vec::new(),
            }),
        )?;
        let hello = Frame::new(Body::Hello(Hello {
            mesh: genesis.id().to_vec(),
            agent_record: record.to_bytes().to_vec(),
        }))
        .encode();
        let mut swarm = starling_node::net::build(&key, &genesis.id(), false)?;
        let mut control = swarm.behaviour().stream.new_control();
        let mut incoming = control.accept(GOSSIP_PROTOCOL)?;
        swarm.dial(victim)?;
        let (tx, refusals) = mpsc::channel(16);
        let swarm_task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = swarm.select_next_some() => {}
                    Some((_, stream)) = incoming.next() => {
                        tokio::spawn(read_refusals(stream, tx.clone()));
                    }
                }
            }
        });
        Ok(Self {
            key,
            hello,
            control,
            refusals,
            swarm_task,
        })
    }

    /// Opens a gossip stream to `peer` (dialling if needed) and says hello.
    async fn hello(&mut self, peer: PeerId) -> anyhow::Result<libp2p::Stream> {
        let mut last = String::new();
        for _ in 0..100 {
            match self.control.open_stream(peer, GOSSIP_PROTOCOL).await {
                Ok(mut stream) => {
                    stream.write_all(&encode_delimited(&self.hello)).await?;
                    stream.flush().await?;
                    return Ok(stream);
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("cannot open a gossip stream to the victim: {last}")
    }
}

impl Drop for Flooder {
    fn drop(&mut self) {
        self.swarm_task.abort();
    }
}

/// Reads frames from the victim, reporting the reason of any `Refuse`.
async fn read_refusals(mut stream: libp2p::Stream, tx: mpsc::Sender<String>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = stream.read(&mut chunk).await {
        buf.extend_from_slice(&chunk[..n]);
        let mut used_total = 0;
        while let Ok(Some((frame, used))) = decode_delimited(&buf[used_total..], 1 << 20) {
            if let Ok(Body::Refuse(r)) = Frame::decode_capped(frame, 1 << 20) {
                let _ = tx.send(r.reason).await;
            }
            used_total += used;
        }
        buf.drain(..used_total);
    }
}

/// Flood frame `seq`: a message on `topic`, validly signed by the flooder.
fn flood_frame(
    key: &Keypair,
    genesis: &Genesis,
    topic: &str,
    seq: u64,
    rng: &mut StdRng,
) -> Vec<u8> {
    let mut payload = vec![0u8; FLOOD_PAYLOAD_BYTES];
    rng.fill_bytes(&mut payload);
    let now = starling_node::files::now_ms();
    let message = SignedMessage::sign(
        key,
        Domain::Message,
        &genesis.id(),
        topic,
        seq,
        now,
        payload,
    );
    let frame = Frame::new(Body::Gossip(Gossip {
        kind: ItemKind::Message as i32,
        round: 0,
        item: message.raw,
    }))
    .encode();
    encode_delimited(&frame)
}

/// One gauge or counter from the Prometheus text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

async fn metrics(h: &NodeHandle) -> String {
    h.query(Query::Metrics)
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[derive(Debug, Default)]
struct Peaks {
    inbound_frames: u64,
    inbound_bytes: u64,
    outbound_frames: u64,
    rss_bytes: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_is_graylisted_while_honest_traffic_flows() -> anyhow::Result<()> {
    let seed = starling_tests::seed(11);
    let dir = tempfile::tempdir()?;
    let now = starling_node::files::now_ms();
    let mut mesh = LocalMesh::new(dir.path().to_path_buf(), seed, now)?;
    mesh.gossip.peer_frames_per_s = PEER_FRAMES_PER_S;
    mesh.gossip.peer_frames_burst = PEER_FRAMES_BURST;
    mesh.add_governor_node(now, false).await?;
    let honest = mesh.add_agent_node(Some(0), now, false).await?;
    let victim = mesh.add_agent_node(Some(0), now, false).await?;
    for i in 0..3 {
        mesh.handle(i).subscribe("news").await?;
    }
    let (v, h) = (mesh.handle(victim).clone(), mesh.handle(honest).clone());
    let honest_nodes: Vec<NodeHandle> = (0..3).map(|i| mesh.handle(i).clone()).collect();
    anyhow::ensure!(
        settle(&honest_nodes, 3, WAIT_MS).await,
        "seed {seed}: the three honest nodes did not connect:\n{}",
        describe_overlay(&honest_nodes).await
    );

    // The flooder: a mandated agent, admitted like any other.
    let (key, chain) = mesh.new_agent(&AGENT_SCOPE, now);
    let flooder_peer = key.did().to_peer_id();
    let victim_node = mesh.nodes[victim]
        .running
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("victim not running"))?;
    let victim_peer = victim_node.peer_id;
    let victim_addr = victim_node
        .listen
        .iter()
        .find(|a| a.to_string().contains("/tcp/"))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("victim has no TCP address"))?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0xf100d);
    let frames: Vec<Vec<u8>> = (0..FLOOD_FRAMES as u64)
        .map(|seq| flood_frame(&key, &mesh.genesis, "news", seq, &mut rng))
        .collect();
    let mut flooder = Flooder::start(key, chain, &mesh.genesis, victim_addr)?;
    let mut stream = flooder.hello(victim_peer).await?;
    let is_admitted = until(WAIT_MS, || {
        let v = v.clone();
        async move {
            let peers = v.query(Query::Peers).await.unwrap_or_default();
            peers["admitted"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|p| p["peer_id"] == flooder_peer.to_string().as_str())
            })
        }
    })
    .await;
    anyhow::ensure!(
        is_admitted,
        "seed {seed}: the victim never admitted the flooder"
    );

    let before = metrics(&v).await;
    let rss_before = metric(&before, "starling_process_resident_bytes");
    let mut events = v.events();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);

    // Honest traffic all through the flood: one message every 100 ms.
    let publisher = {
        let h = h.clone();
        let mut stop = stop_tx.subscribe();
        tokio::spawn(async move {
            let mut sent = Vec::new();
            while !*stop.borrow() {
                let payload = format!("honest-{}", sent.len());
                if h.publish("news", payload.as_bytes(), "t-honest")
                    .await
                    .is_ok()
                {
                    sent.push(payload);
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), stop.changed()).await;
            }
            sent
        })
    };
    // The victim's queues and memory, sampled all through the flood.
    let sampler = {
        let v = v.clone();
        tokio::spawn(async move {
            let mut peaks = Peaks::default();
            loop {
                let m = metrics(&v).await;
                peaks.inbound_frames = peaks
                    .inbound_frames
                    .max(metric(&m, "starling_inbound_queue_frames"));
                peaks.inbound_bytes = peaks
                    .inbound_bytes
                    .max(metric(&m, "starling_inbound_queue_bytes"));
                peaks.outbound_frames = peaks
                    .outbound_frames
                    .max(metric(&m, "starling_outbound_queue_frames"));
                peaks.rss_bytes = peaks
                    .rss_bytes
                    .max(metric(&m, "starling_process_resident_bytes"));
                if tokio::time::timeout(Duration::from_millis(20), stop_rx.changed())
                    .await
                    .is_ok()
                {
                    return peaks;
                }
            }
        })
    };

    // The flood: back to back until the victim cuts the connection.
    let started = std::time::Instant::now();
    let mut sent_frames = 0usize;
    let mut sent_bytes = 0usize;
    for frame in &frames {
        if stream.write_all(frame).await.is_err() {
            break;
        }
        sent_frames += 1;
        sent_bytes += frame.len();
    }
    let _ = stream.flush().await;
    let flood_s = started.elapsed().as_secs_f64();

    let graylisted = until(WAIT_MS, || {
        let v = v.clone();
        async move {
            let peers = v.query(Query::Peers).await.unwrap_or_default();
            let listed = peers["graylisted"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|p| p["peer_id"] == flooder_peer.to_string().as_str())
            });
            let still = peers["admitted"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|p| p["peer_id"] == flooder_peer.to_string().as_str())
            });
            listed && !still
        }
    })
    .await;
    // Honest traffic goes on a little after the flood, then stops.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(true);
    let sent = publisher.await?;
    let peaks = sampler.await?;
    let mut missing: std::collections::BTreeSet<String> = sent.iter().cloned().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS);
    while !missing.is_empty() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(AgentEvent::Message { payload, .. })) => {
                missing.remove(&payload);
            }
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                anyhow::bail!("seed {seed}: the test's event reader lagged by {n}")
            }
            _ => break,
        }
    }

    // Back again: refused at the handshake, with the reason. Until the old
    // connection has closed, the victim ignores what comes on it, so say
    // hello again until the refusal arrives.
    let mut reason = None;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS);
    while reason.is_none() && tokio::time::Instant::now() < deadline {
        let _ = flooder.hello(victim_peer).await;
        if let Ok(Some(r)) =
            tokio::time::timeout(Duration::from_millis(1_000), flooder.refusals.recv()).await
        {
            reason = Some(r);
        }
    }

    let after = metrics(&v).await;
    let rate_limited = metric(&after, "starling_dropped_rate_limited_total");
    let frames_in = metric(&after, "starling_frames_in_total");
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "seed {seed}: flooder {} wrote {sent_frames} frames ({} KiB) in {flood_s:.2} s \
             (~{:.0} frames/s against an allowed {PEER_FRAMES_PER_S}/s, burst {PEER_FRAMES_BURST}); \
             victim: {frames_in} frames in, {rate_limited} dropped over rate, graylisted_total {}; \
             peaks: inbound {} frames / {} KiB, outbound {} frames, RSS {} -> {} MiB; \
             honest: {} sent, {} missing; refusal on return: {reason:?}",
            flooder.key.did(),
            sent_bytes / 1024,
            sent_frames as f64 / flood_s.max(1e-3),
            metric(&after, "starling_graylisted_total"),
            peaks.inbound_frames,
            peaks.inbound_bytes / 1024,
            peaks.outbound_frames,
            rss_before >> 20,
            peaks.rss_bytes >> 20,
            sent.len(),
            missing.len(),
        );
    }
    assert!(graylisted, "seed {seed}: the flooder was not graylisted");
    assert!(
        rate_limited > 0,
        "seed {seed}: nothing was dropped over rate"
    );
    assert!(
        sent_frames > PEER_FRAMES_BURST as usize,
        "seed {seed}: the flood was cut before it passed the burst"
    );
    assert!(
        !sent.is_empty(),
        "seed {seed}: no honest message was published"
    );
    assert!(
        missing.is_empty(),
        "seed {seed}: honest messages lost: {missing:?}"
    );
    assert!(
        peaks.inbound_frames <= starling_node::driver::SESSION_QUEUE_MAX as u64,
        "seed {seed}: inbound queue over its bound"
    );
    assert!(
        peaks.inbound_bytes <= starling_node::session::INBOUND_BYTES_MAX as u64,
        "seed {seed}: inbound bytes over their bound"
    );
    assert!(
        peaks.outbound_frames <= 3 * starling_node::session::WRITER_QUEUE_MAX as u64,
        "seed {seed}: outbound queues over their bound"
    );
    assert!(
        rss_before == 0 || peaks.rss_bytes.saturating_sub(rss_before) <= RSS_GROWTH_MAX,
        "seed {seed}: resident memory grew from {rss_before} to {} bytes",
        peaks.rss_bytes
    );
    let reason = reason.ok_or_else(|| anyhow::anyhow!("seed {seed}: no refusal on return"))?;
    assert!(
        reason.contains("graylisted"),
        "seed {seed}: refused for {reason}"
    );
    mesh.shutdown().await;
    Ok(())
}
