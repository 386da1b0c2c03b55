//! Five real nodes on 127.0.0.1: delivery, refusal, revocation, kill switch,
//! restart with state intact, and bad API input; and two whose overlay
//! link outlives the idle-connection timeout.
//!
//! Identities derive from the printed seed (`STARLING_SEED` replays one).
//! Every wait has a deadline; nothing asserts on elapsed time.

use std::time::Duration;

use serde_json::json;
use starling_node::localmesh::{LocalMesh, admitted, counter_sum, describe_overlay, settle, until};
use starling_node::{AgentEvent, EvidenceInput, NodeHandle, Query};
use starling_tests::http;
use starling_trust::{
    Did, Genesis, GenesisSpec, Keypair, Mandate, MandateChain, MandateSpec, Params, Scope,
};

const WAIT_MS: u64 = 15_000;
/// Peers each node has admitted, over its life.
const ADMITTED: &str = "starling_peers_admitted_total";

/// `n` nodes, the governor's first, each joining through the one before,
/// all subscribed to "news", on a settled overlay.
async fn chain(n: usize, seed: u64, dir: &std::path::Path, api: bool) -> anyhow::Result<LocalMesh> {
    let now = starling_node::files::now_ms();
    let mut mesh = LocalMesh::new(dir.to_path_buf(), seed, now)?;
    mesh.add_governor_node(now, api).await?;
    for i in 1..n {
        mesh.add_agent_node(Some(i - 1), now, api).await?;
    }
    for i in 0..n {
        mesh.handle(i).subscribe("news").await?;
    }
    let handles: Vec<NodeHandle> = (0..n).map(|i| mesh.handle(i).clone()).collect();
    let formed = settle(&handles, n as u64, WAIT_MS).await;
    anyhow::ensure!(
        formed,
        "seed {seed}: the {n}-node overlay did not form:\n{}",
        describe_overlay(&handles).await
    );
    Ok(mesh)
}

async fn receives(
    h: &NodeHandle,
    mut rx: tokio::sync::broadcast::Receiver<AgentEvent>,
    payload: &str,
) -> bool {
    let _ = h;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(AgentEvent::Message { payload: p, .. })) if p == payload => return true,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => return false,
        }
    }
}

/// Whether every node not in `skip` sees `did` cut off (not admitted, mandate invalid).
async fn cut_off_everywhere(mesh: &LocalMesh, did: Did, skip: &[usize]) -> bool {
    let handles: Vec<NodeHandle> = (0..mesh.nodes.len())
        .filter(|i| !skip.contains(i))
        .map(|i| mesh.handle(i).clone())
        .collect();
    let peer = did.to_peer_id().to_string();
    until(WAIT_MS, || {
        let (handles, peer) = (handles.clone(), peer.clone());
        async move {
            for h in &handles {
                let t = h.query(Query::Trust(did)).await.unwrap_or_default();
                let peers = h.query(Query::Peers).await.unwrap_or_default();
                let linked = peers["admitted"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p["peer_id"] == peer.as_str()));
                if t["mandate_valid"] != false || linked {
                    return false;
                }
            }
            true
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_deliver_revoke_kill_and_restart() -> anyhow::Result<()> {
    let seed = starling_tests::seed(5);
    let dir = tempfile::tempdir()?;
    let mut mesh = chain(5, seed, dir.path(), false).await?;

    // Delivery: node 2 publishes, the four others deliver.
    let rxs: Vec<_> = [0, 1, 3, 4]
        .iter()
        .map(|i| mesh.handle(*i).events())
        .collect();
    mesh.handle(2).publish("news", b"first", "t-1").await?;
    for (rx, i) in rxs.into_iter().zip([0, 1, 3, 4]) {
        assert!(
            receives(mesh.handle(i), rx, "first").await,
            "seed {seed}: node {i} did not deliver"
        );
    }

    // A read of the store sees every write before it, though commits run
    // off the loop: two deliveries in quick succession (the second within
    // the commit interval of the first), and the audit page asked for at
    // once holds the second's entry, which no request waited for.
    let mut rx = mesh.handle(1).events();
    mesh.handle(2).publish("news", b"second", "t-1").await?;
    mesh.handle(2).publish("news", b"third", "t-1").await?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS);
    let third = loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(AgentEvent::Message { payload, id, .. })) if payload == "third" => break id,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => anyhow::bail!("seed {seed}: node 1 did not deliver the third message"),
        }
    };
    let page = mesh
        .handle(1)
        .query(Query::Audit {
            from: 0,
            limit: 1000,
        })
        .await?;
    let entries = page["entries"].as_array().cloned().unwrap_or_default();
    assert!(
        entries.iter().any(|e| e["task"] == third.as_str()),
        "seed {seed}: none of node 1's {} audit entries is its last delivery",
        entries.len()
    );

    // Revocation: the governor revokes node 3's mandate; everyone cuts it off.
    let victim = mesh.did(3);
    let r = mesh
        .handle(0)
        .evidence(
            EvidenceInput::Revoke {
                subject: victim,
                reason: "test".into(),
            },
            "t-rev",
        )
        .await?;
    assert_eq!(r["kind"], "revocation");
    assert!(
        cut_off_everywhere(&mesh, victim, &[3]).await,
        "seed {seed}: revoked node 3 is still admitted somewhere"
    );
    let refused = mesh
        .handle(3)
        .publish("news", b"from the revoked", "t-2")
        .await;
    // Its own node may or may not have heard before the cut; either way nobody delivers it.
    let mut rx = mesh.handle(1).events();
    let mut leaked = false;
    let mut got_after = false;
    for attempt in 0..10 {
        // The overlay repairs around the removed node: publish until delivery resumes.
        mesh.handle(4)
            .publish(
                "news",
                format!("after revocation {attempt}").as_bytes(),
                "t-3",
            )
            .await?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1_000);
        while let Ok(Ok(e)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if let AgentEvent::Message { payload, .. } = e {
                leaked |= payload == "from the revoked";
                got_after |= payload.starts_with("after revocation");
            }
            if got_after {
                break;
            }
        }
        if got_after {
            break;
        }
    }
    let _ = refused;
    assert!(
        !leaked,
        "seed {seed}: a message from the revoked agent was delivered"
    );
    assert!(
        got_after,
        "seed {seed}: the mesh stopped delivering after the revocation"
    );

    // Kill switch: the governor terminates node 4.
    let killed = mesh.did(4);
    mesh.handle(0)
        .evidence(
            EvidenceInput::Terminate {
                subject: killed,
                reason: "test".into(),
            },
            "t-kill",
        )
        .await?;
    // Node 3 (revoked and isolated) cannot hear of it; everyone else must.
    let cut = cut_off_everywhere(&mesh, killed, &[3, 4]).await;
    assert!(
        cut,
        "seed {seed}: terminated node 4 is still admitted somewhere"
    );
    for i in [0, 1, 2] {
        let h = mesh.handle(i).clone();
        let zero = until(WAIT_MS, || {
            let h = h.clone();
            async move {
                h.query(Query::Trust(killed))
                    .await
                    .is_ok_and(|t| t["terminated"] == true && t["score"] == 0)
            }
        })
        .await;
        assert!(
            zero,
            "seed {seed}: node {i} does not score the terminated agent 0"
        );
    }

    // Restart: node 2 stops and comes back from its data dir alone.
    let before = mesh.handle(2).query(Query::Status).await?;
    mesh.stop_node(2).await;
    mesh.nodes[2].bootstrap.clear();

    mesh.start_node(2, false).await?;
    let after = mesh.handle(2).query(Query::Status).await?;
    assert_eq!(after["did"], before["did"], "seed {seed}");
    assert!(
        after["evidence_records"].as_u64() >= before["evidence_records"].as_u64(),
        "seed {seed}: {before} -> {after}"
    );
    assert_eq!(
        after["audit_entries"], before["audit_entries"],
        "seed {seed}: audit entries lost on restart"
    );
    let t = mesh.handle(2).query(Query::Trust(killed)).await?;
    assert_eq!(
        t["terminated"], true,
        "seed {seed}: the kill switch was forgotten on restart"
    );
    // It rejoins through the peers it stored, and delivers again.
    let h2 = mesh.handle(2).clone();
    assert!(
        until(WAIT_MS, || {
            let h = h2.clone();
            async move { admitted(&h).await > 0 }
        })
        .await,
        "seed {seed}: no rejoin"
    );
    h2.subscribe("news").await?;
    let mut rx = h2.events();
    let mut back = false;
    for attempt in 0..15 {
        // The overlay may still be repairing around the rejoined node: publish until it delivers.
        mesh.handle(0)
            .publish("news", format!("welcome back {attempt}").as_bytes(), "t-4")
            .await?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1_000);
        while let Ok(Ok(e)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if matches!(e, AgentEvent::Message { ref payload, .. } if payload.starts_with("welcome back"))
            {
                back = true;
                break;
            }
        }
        if back {
            break;
        }
    }
    assert!(back, "seed {seed}: the restarted node did not deliver");
    let report = {
        let dir = mesh.nodes[2].data_dir.clone();
        mesh.stop_node(2).await;
        let store = starling_node::store::Store::open_existing(&dir)?;
        starling_node::audit::verify(&store, &mesh.did(2))?
    };
    assert_eq!(
        report.first_bad, None,
        "seed {seed}: audit log after restart"
    );
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_a_valid_mandate_are_refused() -> anyhow::Result<()> {
    let seed = starling_tests::seed(6);
    let dir = tempfile::tempdir()?;
    let now = starling_node::files::now_ms();
    let mut mesh = LocalMesh::new(dir.path().to_path_buf(), seed, now)?;
    mesh.add_governor_node(now, false).await?;
    let gov = mesh.handle(0).clone();
    let contact = mesh.nodes[0]
        .running
        .as_ref()
        .map(|r| r.listen[0].clone())
        .ok_or_else(|| anyhow::anyhow!("no addr"))?;

    // A node whose chain is rooted at a self-made "governor" does not even start.
    let rogue = Keypair::from_secret_bytes(&[0x42; 32]);
    let fake_gov = Keypair::from_secret_bytes(&[0x43; 32]);
    let spec = MandateSpec {
        mesh: mesh.genesis.id(),
        subject: rogue.did(),
        scope: Scope::parse(&["publish:*"])?,
        not_before_ms: now - 1_000,
        expires_ms: now + 3_600_000,
        nonce: [1; 16],
    };
    let chain = MandateChain::new(vec![Mandate::issue(&fake_gov, &spec, None)]);
    let mut options = starling_node::NodeOptions::new(dir.path().join("rogue"));
    options.genesis = Some((*mesh.genesis).clone());
    options.key = Some(rogue.clone());
    options.chain = Some(chain);
    let err = starling_node::start(options)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("governor"),
        "seed {seed}: a rogue mandate started a node: {err:?}"
    );

    // A node of another mesh (valid there) connects and is refused here.
    let other_gov = Keypair::from_secret_bytes(&[0x44; 32]);
    let other_co = Keypair::from_secret_bytes(&[0x45; 32]);
    let genesis = Genesis::create(
        &other_gov,
        GenesisSpec {
            name: "other".into(),
            other_governors: vec![other_co.did()],
            created_ms: now,
            params: Params::default(),
        },
    )?;
    let spec = MandateSpec {
        mesh: genesis.id(),
        subject: other_gov.did(),
        ..spec
    };
    let mut options = starling_node::NodeOptions::new(dir.path().join("other"));
    options.chain = Some(MandateChain::new(vec![Mandate::issue(
        &other_co, &spec, None,
    )]));
    options.genesis = Some(genesis);
    options.key = Some(other_gov.clone());
    options.bootstrap = vec![contact];
    let mut gov_events = gov.events();
    let outsider = starling_node::start(options).await?;
    let refused = tokio::time::timeout(Duration::from_millis(WAIT_MS), async {
        loop {
            match gov_events.recv().await {
                Ok(AgentEvent::PeerRefused { reason, .. }) => return reason,
                Ok(_) => {}
                Err(_) => return String::new(),
            }
        }
    })
    .await
    .unwrap_or_default();
    assert!(
        refused.contains("another mesh"),
        "seed {seed}: refusal reason {refused:?}"
    );
    assert_eq!(
        admitted(&gov).await,
        0,
        "seed {seed}: the outsider was admitted"
    );
    assert_eq!(
        admitted(&outsider.handle).await,
        0,
        "seed {seed}: the outsider admitted the governor"
    );
    outsider.stop().await;
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_api_input_gets_a_json_error_and_changes_nothing() -> anyhow::Result<()> {
    let seed = starling_tests::seed(7);
    let dir = tempfile::tempdir()?;
    let now = starling_node::files::now_ms();
    let mut mesh = LocalMesh::new(dir.path().to_path_buf(), seed, now)?;
    mesh.add_governor_node(now, true).await?;
    mesh.add_agent_node(Some(0), now, true).await?;
    let api = mesh.nodes[1]
        .running
        .as_ref()
        .and_then(|r| r.api)
        .ok_or_else(|| anyhow::anyhow!("no api"))?;
    let h1 = mesh.handle(1).clone();
    let settled = until(WAIT_MS, || {
        let h = h1.clone();
        async move {
            h.query(Query::Status).await.unwrap_or_default()["evidence_records"].as_u64() >= Some(2)
        }
    })
    .await;
    assert!(
        settled,
        "seed {seed}: the two nodes did not exchange agent records"
    );
    let status_before = http(api, "GET", "/v1/status", None).await?.json();
    let valid = mesh.did(0).to_string();
    let oversize =
        json!({"topic": "news", "payload_hex": "00".repeat(3 * 1024 * 1024)}).to_string();
    let cases: Vec<(&str, &str, Option<String>, u16)> = vec![
        ("POST", "/v1/publish", Some("{not json".into()), 400),
        ("POST", "/v1/publish", Some(json!({"topic": "news"}).to_string()), 400),
        ("POST", "/v1/publish", Some(json!({"topic": "news", "payload": "x", "extra": 1}).to_string()), 400),
        ("POST", "/v1/publish", Some(json!({"topic": "", "payload": "x"}).to_string()), 400),
        ("POST", "/v1/publish", Some(json!({"topic": "_starling/x", "payload": "x"}).to_string()), 400),
        ("POST", "/v1/publish", Some(json!({"topic": "news", "payload_hex": "zz"}).to_string()), 400),
        ("POST", "/v1/publish", Some(oversize), 413),
        ("POST", "/v1/direct", Some(json!({"to": "did:key:nope", "payload": "x"}).to_string()), 400),
        ("POST", "/v1/evidence", Some(json!({"record_hex": "00ff"}).to_string()), 400),
        ("POST", "/v1/evidence", Some(json!({"kind": "gossip", "subject": valid}).to_string()), 400),
        ("POST", "/v1/evidence", Some(json!({"kind": "outcome", "subject": valid, "success": false, "severity": 11}).to_string()), 400),
        ("POST", "/v1/vouch", Some(json!({"subject": valid, "weight": 1000}).to_string()), 400),
        ("POST", "/v1/revoke", Some(json!({"subject": "did:key:z6MkBAD", "reason": "x"}).to_string()), 400),
        ("POST", "/v1/policy/decide", Some(json!({"action": "fly", "resource": "*"}).to_string()), 400),
        ("POST", "/v1/policy/change", Some(json!({}).to_string()), 400),
        ("POST", "/v1/policy/change", Some(json!({"put_rules": [{"id": "BAD ID", "actor": "*", "action": "publish", "resource": "*", "effect": "allow"}]}).to_string()), 400),
        ("GET", "/v1/trust/not-a-did", None, 400),
        ("GET", "/v1/audit?from=minus", None, 400),
        ("GET", "/v1/evidence/1234", None, 400),
        ("GET", "/v1/nothing-here", None, 404),
    ];
    for (method, path, body, want) in &cases {
        let answer = http(api, method, path, body.as_deref()).await?;
        assert_eq!(
            answer.status, *want,
            "seed {seed}: {method} {path}: {}",
            answer.body
        );
        let j = answer.json();
        assert!(
            j["code"].is_string() && j["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {path}: {}",
            answer.body
        );
    }
    // A refusal by policy is a 403 with a reason (this agent may not change policy).
    let rule = json!({"put_rules": [{"id": "x", "actor": "*", "action": "publish", "resource": "*", "effect": "deny"}]});
    let answer = http(api, "POST", "/v1/policy/change", Some(&rule.to_string())).await?;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let status_after = http(api, "GET", "/v1/status", None).await?.json();
    assert_eq!(
        status_after["evidence_records"], status_before["evidence_records"],
        "seed {seed}"
    );
    assert_eq!(
        status_after["audit_entries"], status_before["audit_entries"],
        "seed {seed}"
    );
    assert_eq!(
        status_after["policy_heads"], status_before["policy_heads"],
        "seed {seed}"
    );
    // The node still serves: a good publish works and the metrics answer.
    let good = http(
        api,
        "POST",
        "/v1/publish",
        Some(&json!({"topic": "news", "payload": "ok"}).to_string()),
    )
    .await?;
    assert_eq!(good.status, 200, "{}", good.body);
    let metrics = http(api, "GET", "/metrics", None).await?;
    assert!(
        metrics.body.contains("starling_published_total 1"),
        "{}",
        metrics.body
    );
    mesh.shutdown().await;
    Ok(())
}

/// Connections with no open stream close after `IDLE_CONNECTION_MS`, which
/// ends Kademlia's and shuffle replies' passing connections; an overlay
/// link keeps its gossip streams open and must outlive it. Two nodes are
/// each other's whole view, so a closed link would be joined again and
/// admitted again on both ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_links_outlive_the_idle_timeout() -> anyhow::Result<()> {
    let seed = starling_tests::seed(7);
    let dir = tempfile::tempdir()?;
    let mut mesh = chain(2, seed, dir.path(), false).await?;
    let handles: Vec<NodeHandle> = (0..2).map(|i| mesh.handle(i).clone()).collect();
    let before = counter_sum(&handles, ADMITTED).await;
    tokio::time::sleep(Duration::from_millis(
        starling_node::net::IDLE_CONNECTION_MS + 3_000,
    ))
    .await;
    assert_eq!(
        counter_sum(&handles, ADMITTED).await,
        before,
        "seed {seed}: the overlay link closed and was admitted again:\n{}",
        describe_overlay(&handles).await
    );
    let rx = mesh.handle(0).events();
    mesh.handle(1)
        .publish("news", b"still here", "t-idle")
        .await?;
    assert!(
        receives(mesh.handle(0), rx, "still here").await,
        "seed {seed}: node 0 did not deliver after the idle timeout"
    );
    mesh.shutdown().await;
    Ok(())
}
