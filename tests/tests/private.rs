//! Private topics on three real nodes: the publisher seals a message on
//! `private/ops` for one member; the member reads it; a third node, which
//! receives and relays the same gossip message (it is subscribed), holds
//! only the envelope and cannot open it. Bad publish requests are refused
//! and change nothing. (Tampering is covered byte by byte in the
//! `private` module's unit test: here a relay cannot even try, since the
//! publisher's signature over the envelope stops any changed copy.)

use std::time::Duration;

use starling_node::localmesh::{LocalMesh, describe_overlay, settle};
use starling_node::{AgentEvent, NodeHandle, Query};
use tokio::sync::broadcast::Receiver;

const WAIT_MS: u64 = 15_000;
const TOPIC: &str = "private/ops";

/// The next event about `TOPIC`, or `None` at the deadline.
async fn next_on_topic(rx: &mut Receiver<AgentEvent>) -> Option<AgentEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) if e.topic() == TOPIC => return Some(e),
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_read_a_private_topic_relays_cannot() -> anyhow::Result<()> {
    let seed = starling_tests::seed(3);
    let dir = tempfile::tempdir()?;
    let now = starling_node::files::now_ms();
    let mut mesh = LocalMesh::new(dir.path().to_path_buf(), seed, now)?;
    let publisher = mesh.add_governor_node(now, false).await?;
    let relay = mesh.add_agent_node(Some(publisher), now, false).await?;
    let member = mesh.add_agent_node(Some(relay), now, false).await?;
    let handles: Vec<NodeHandle> = (0..3).map(|i| mesh.handle(i).clone()).collect();
    for h in &handles {
        h.subscribe(TOPIC).await?;
    }
    let formed = settle(&handles, 3, WAIT_MS).await;
    anyhow::ensure!(
        formed,
        "seed {seed}: the three nodes did not form a mesh:\n{}",
        describe_overlay(&handles).await
    );
    let (p, r, m) = (&handles[publisher], &handles[relay], &handles[member]);

    // Bad requests: refused, nothing published.
    let before = p.query(Query::Status).await?["audit_entries"].clone();
    let no_members = p.publish(TOPIC, b"x", "t").await.err();
    assert_eq!(
        no_members.map(|e| e.status),
        Some(400),
        "seed {seed}: no members"
    );
    let public_with_members = p
        .publish_to("news", b"x", &[mesh.did(member)], "t")
        .await
        .err();
    assert_eq!(
        public_with_members.map(|e| e.status),
        Some(400),
        "seed {seed}: members on a public topic"
    );
    let stranger = starling_trust::Keypair::from_secret_bytes(&[9; 32]).did();
    let unknown = p.publish_to(TOPIC, b"x", &[stranger], "t").await.err();
    assert_eq!(
        unknown.map(|e| e.status),
        Some(403),
        "seed {seed}: an unknown member"
    );
    assert_eq!(
        p.query(Query::Status).await?["audit_entries"],
        before,
        "seed {seed}: a bad request changed the log"
    );

    let (mut at_relay, mut at_member) = (r.events(), m.events());
    let secret = "the launch code is 0000";
    let sent = p
        .publish_to(TOPIC, secret.as_bytes(), &[mesh.did(member)], "t-private")
        .await?;
    let id = sent["id"].as_str().unwrap_or_default().to_string();

    match next_on_topic(&mut at_member).await {
        Some(AgentEvent::Message {
            payload,
            origin,
            id: got,
            ..
        }) => {
            assert_eq!(payload, secret, "seed {seed}");
            assert_eq!(origin, mesh.did(publisher).to_string(), "seed {seed}");
            assert_eq!(got, id, "seed {seed}");
        }
        other => panic!("seed {seed}: the member did not read it: {other:?}"),
    }
    let relayed = next_on_topic(&mut at_relay).await;
    #[allow(clippy::print_stderr)]
    {
        eprintln!("seed {seed}: at the relay: {relayed:?}");
    }
    match relayed {
        Some(AgentEvent::Sealed {
            id: got,
            reason,
            sealed_bytes,
            ..
        }) => {
            assert_eq!(got, id, "seed {seed}");
            assert!(reason.contains("not a member"), "seed {seed}: {reason}");
            assert!(sealed_bytes > secret.len(), "seed {seed}");
        }
        other => panic!("seed {seed}: the relay did not get the sealed envelope: {other:?}"),
    }
    let metrics = r.query(Query::Metrics).await?;
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("starling_private_unopened_total 1"),
        "seed {seed}: the relay's metrics do not count the unopened message"
    );
    mesh.shutdown().await;
    Ok(())
}

/// A direct message to an agent that is not a neighbour travels through the
/// overlay, sealed: the recipient opens it, relays (here subscribed to the
/// recipient's inbox topic, so they show what they hold) cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_is_relayed_sealed_to_a_non_neighbour() -> anyhow::Result<()> {
    const NODES: usize = 8;
    let seed = starling_tests::seed(6);
    let dir = tempfile::tempdir()?;
    let now = starling_node::files::now_ms();
    let mut mesh = LocalMesh::new(dir.path().to_path_buf(), seed, now)?;
    // Active views of five (the default) on eight nodes: every node has
    // at least two non-neighbours. (Views of three would show it sooner,
    // but eight nodes can then settle as two full cliques of four, which
    // HyParView never joins again: a full view seeks no one.)
    mesh.add_governor_node(now, false).await?;
    for i in 1..NODES {
        mesh.add_agent_node(Some(i - 1), now, false).await?;
    }
    let handles: Vec<NodeHandle> = (0..NODES).map(|i| mesh.handle(i).clone()).collect();
    let formed = settle(&handles, NODES as u64, WAIT_MS).await;
    anyhow::ensure!(
        formed,
        "seed {seed}: the {NODES} nodes did not form a mesh:\n{}",
        describe_overlay(&handles).await
    );

    // The first pair (in index order) that are not overlay neighbours.
    let mut pair = None;
    'find: for (s, h) in handles.iter().enumerate() {
        let peers = h.query(Query::Peers).await?;
        for t in (0..NODES).filter(|t| *t != s) {
            let peer = mesh.did(t).to_peer_id().to_string();
            let linked = peers["active_view"]
                .as_array()
                .is_some_and(|a| a.iter().any(|p| *p == peer.as_str()));
            if !linked {
                pair = Some((s, t));
                break 'find;
            }
        }
    }
    let (from, to) = pair.ok_or_else(|| anyhow::anyhow!("seed {seed}: every pair is linked"))?;
    let inbox = starling_node::seal::inbox_topic(&mesh.did(to));
    let relays: Vec<usize> = (0..NODES).filter(|i| *i != from && *i != to).collect();
    for i in &relays {
        handles[*i].subscribe(&inbox).await?;
    }
    let mut at_relays: Vec<_> = relays.iter().map(|i| handles[*i].events()).collect();
    let mut at_recipient = handles[to].events();
    let secret = "meet behind the third relay";
    let sent = handles[from]
        .direct(mesh.did(to), secret.as_bytes(), "t-relayed")
        .await?;
    assert_eq!(
        sent["route"], "relayed",
        "seed {seed}: {from} -> {to}: {sent}"
    );
    let id = sent["id"].as_str().unwrap_or_default().to_string();

    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS);
    let mut opened = false;
    while !opened {
        match tokio::time::timeout_at(deadline, at_recipient.recv()).await {
            Ok(Ok(AgentEvent::Direct {
                from: f, payload, ..
            })) => {
                assert_eq!(f, mesh.did(from).to_string(), "seed {seed}");
                assert_eq!(payload, secret, "seed {seed}");
                opened = true;
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => break,
        }
    }
    assert!(
        opened,
        "seed {seed}: node {to} did not open the relayed message from {from}"
    );
    for (rx, i) in at_relays.iter_mut().zip(&relays) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS);
        let held = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(AgentEvent::Sealed {
                    id: got, reason, ..
                })) if got == id => break Some(reason),
                Ok(Ok(
                    AgentEvent::Message { payload, .. } | AgentEvent::Direct { payload, .. },
                )) => {
                    assert!(
                        !payload.contains("third relay"),
                        "seed {seed}: relay {i} read it"
                    )
                }
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                _ => break None,
            }
        };
        let Some(reason) = held else {
            anyhow::bail!(
                "seed {seed}: relay {i} never held the message from {from} to {to}:\n{}",
                describe_overlay(&handles).await
            );
        };
        assert!(
            reason.contains("another agent"),
            "seed {seed}: relay {i}: {reason}"
        );
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "seed {seed}: node {from} -> node {to} relayed ({} sealed bytes); relays {relays:?} held it sealed",
            sent["sealed_bytes"]
        );
    }
    mesh.shutdown().await;
    Ok(())
}
