//! Private topics on three real nodes: the publisher seals a message on
//! `private/ops` for one member; the member reads it; a third node, which
//! receives and relays the same gossip message (it is subscribed), holds
//! only the envelope and cannot open it. Bad publish requests are refused
//! and change nothing. (Tampering is covered byte by byte in the
//! `private` module's unit test: here a relay cannot even try, since the
//! publisher's signature over the envelope stops any changed copy.)

use std::time::Duration;

use starling_node::localmesh::{LocalMesh, admitted, until};
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
    let formed = until(WAIT_MS, || {
        let handles = handles.clone();
        async move {
            for h in &handles {
                let s = h.query(Query::Status).await.unwrap_or_default();
                if admitted(h).await == 0 || s["evidence_records"].as_u64().unwrap_or(0) < 3 {
                    return false;
                }
            }
            true
        }
    })
    .await;
    anyhow::ensure!(formed, "seed {seed}: the three nodes did not form a mesh");
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
