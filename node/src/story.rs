//! The `starling demo` story: a real mesh on loopback, step by step.
//!
//! Each step does something through the same [`NodeHandle`] the HTTP API
//! uses, then checks the outcome on *other* nodes (never on the node that
//! acted), so a pass means the mesh carried it. Steps wait for convergence
//! with deadlines; a step that times out fails with what it saw.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use starling_trust::Did;
use tokio::sync::broadcast::error::TryRecvError;

use crate::handle::{AgentEvent, EvidenceInput, NodeHandle, PolicyInput, Query};
use crate::localmesh::{LocalMesh, admitted, score, settle, until};

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Short name.
    pub name: String,
    /// Whether it did what it should.
    pub pass: bool,
    /// What happened, for a person.
    pub detail: String,
    /// How long it took.
    pub ms: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Whether every step passed.
    pub pass: bool,
    /// Total time.
    pub total_ms: u64,
    /// Publish-to-delivery latency of the delivery step, per receiver (ms).
    pub delivery_latency_ms: Vec<u64>,
    /// The seed of the identities.
    pub seed: u64,
}

struct Ctx {
    mesh: LocalMesh,
    steps: Vec<Step>,
    latencies: Vec<u64>,
}

impl Ctx {
    fn h(&self, i: usize) -> &NodeHandle {
        self.mesh.handle(i)
    }
    fn others(&self, skip: &[usize]) -> Vec<usize> {
        (0..self.mesh.nodes.len())
            .filter(|i| !skip.contains(i) && self.mesh.nodes[*i].running.is_some())
            .collect()
    }
}

/// Runs the story with `n` nodes (at least 5) under `root`; `narrate` sees each step as it ends.
pub async fn run(n: usize, seed: u64, root: PathBuf, mut narrate: impl FnMut(&Step)) -> Report {
    let started = Instant::now();
    let now = crate::files::now_ms();
    let mesh = match LocalMesh::new(root, seed, now) {
        Ok(m) => m,
        Err(e) => {
            let step = Step {
                name: "setup".into(),
                pass: false,
                detail: e.to_string(),
                ms: 0,
            };
            narrate(&step);
            return Report {
                steps: vec![step],
                nodes: 0,
                pass: false,
                total_ms: 0,
                delivery_latency_ms: vec![],
                seed,
            };
        }
    };
    let mut ctx = Ctx {
        mesh,
        steps: Vec::new(),
        latencies: Vec::new(),
    };
    let n = n.max(5);
    type StepFn = for<'a> fn(
        &'a mut Ctx,
        usize,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<String, String>> + 'a>,
    >;
    let steps: [(&str, StepFn); 8] = [
        ("join", |c, n| Box::pin(join(c, n))),
        ("publish and delivery", |c, _| Box::pin(delivery(c))),
        ("outcomes move trust up and down", |c, _| {
            Box::pin(outcomes(c))
        }),
        ("a vouch", |c, _| Box::pin(vouch(c))),
        ("governor policy change converges", |c, _| {
            Box::pin(policy(c))
        }),
        ("kill switch cuts an agent off mesh-wide", |c, _| {
            Box::pin(kill_switch(c))
        }),
        ("sealed direct message", |c, _| Box::pin(sealed_direct(c))),
        ("audit log verifies; an edit is caught", |c, _| {
            Box::pin(audit(c))
        }),
    ];
    for (name, f) in steps {
        let t = Instant::now();
        let result = f(&mut ctx, n).await;
        let (pass, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        let step = Step {
            name: name.into(),
            pass,
            detail,
            ms: t.elapsed().as_millis() as u64,
        };
        narrate(&step);
        ctx.steps.push(step);
        if !pass && name == "join" {
            break;
        }
    }
    ctx.mesh.shutdown().await;
    let pass = ctx.steps.iter().all(|s| s.pass) && ctx.steps.len() == 8;
    Report {
        steps: ctx.steps,
        nodes: n,
        pass,
        total_ms: started.elapsed().as_millis() as u64,
        delivery_latency_ms: ctx.latencies,
        seed,
    }
}

async fn join(c: &mut Ctx, n: usize) -> Result<String, String> {
    let now = crate::files::now_ms();
    c.mesh
        .add_governor_node(now, false)
        .await
        .map_err(|e| e.to_string())?;
    for i in 1..n {
        // Each node joins through an earlier one, so the overlay is not a star.
        let via = if i <= 2 { 0 } else { (i * 7 + 3) % i };
        c.mesh
            .add_agent_node(Some(via), now, false)
            .await
            .map_err(|e| e.to_string())?;
    }
    for i in 0..n {
        c.h(i).subscribe("news").await.map_err(|e| e.to_string())?;
    }
    let handles: Vec<NodeHandle> = (0..n).map(|i| c.h(i).clone()).collect();
    // A connected, settled overlay, and everyone knows every agent's record.
    let ok = settle(&handles, n as u64, 15_000).await;
    // And scores every agent as anchored (probationary or better) before trust moves.
    let dids: Vec<Did> = (0..n).map(|i| c.mesh.did(i)).collect();
    let scored = until(10_000, || {
        let (handles, dids) = (handles.clone(), dids.clone());
        async move {
            for h in &handles {
                for d in &dids {
                    if score(h, d).await < 300 {
                        return false;
                    }
                }
            }
            true
        }
    })
    .await;
    let ok = ok && scored;
    let mut views = Vec::new();
    for h in &handles {
        views.push(admitted(h).await);
    }
    match ok {
        true => Ok(format!(
            "{n} nodes on 127.0.0.1 (TCP+TLS 1.3/yamux, QUIC) admitted each other by mandate; peers per node {views:?}"
        )),
        false => Err(format!(
            "the overlay did not form in 15 s; peers per node {views:?}"
        )),
    }
}

async fn drain_until<F: FnMut(&AgentEvent) -> bool>(
    rx: &mut tokio::sync::broadcast::Receiver<AgentEvent>,
    timeout_ms: u64,
    mut want: F,
) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    loop {
        match rx.try_recv() {
            Ok(e) if want(&e) => return true,
            Ok(_) | Err(TryRecvError::Lagged(_)) => continue,
            Err(TryRecvError::Closed) => return false,
            Err(TryRecvError::Empty) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) if want(&e) => return true,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) | Err(_) => return false,
        }
    }
}

async fn delivery(c: &mut Ctx) -> Result<String, String> {
    let receivers = c.others(&[1]);
    let mut rxs: Vec<_> = receivers.iter().map(|i| c.h(*i).events()).collect();
    let payload = format!("hello mesh {}", c.mesh.seed);
    c.h(1)
        .publish("news", payload.as_bytes(), "demo-publish")
        .await
        .map_err(|e| e.to_string())?;
    let mut got = 0;
    for rx in rxs.iter_mut() {
        let mut latency = None;
        let ok = drain_until(rx, 10_000, |e| match e {
            AgentEvent::Message {
                topic,
                payload: p,
                sent_ms,
                ..
            } if topic == "news" && *p == payload => {
                latency = Some(crate::files::now_ms().saturating_sub(*sent_ms));
                true
            }
            _ => false,
        })
        .await;
        if ok {
            got += 1;
            c.latencies.extend(latency);
        }
    }
    match got == receivers.len() {
        true => Ok(format!(
            "node 1 published on `news`; all {got} other nodes delivered it; latency ms {:?}",
            c.latencies
        )),
        false => Err(format!(
            "only {got} of {} nodes delivered the message",
            receivers.len()
        )),
    }
}

async fn trust_everywhere(
    c: &Ctx,
    subject: Did,
    watcher_skip: &[usize],
    pred: impl Fn(u64) -> bool + Copy,
) -> (bool, Vec<u64>) {
    let watchers = c.others(watcher_skip);
    let handles: Vec<NodeHandle> = watchers.iter().map(|i| c.h(*i).clone()).collect();
    let ok = until(10_000, || {
        let handles = handles.clone();
        async move {
            for h in &handles {
                if !pred(score(h, &subject).await) {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let mut seen = Vec::new();
    for h in &handles {
        seen.push(score(h, &subject).await);
    }
    (ok, seen)
}

async fn outcomes(c: &mut Ctx) -> Result<String, String> {
    let (good, bad) = (c.mesh.did(2), c.mesh.did(3));
    let before_good = score(c.h(1), &good).await;
    let before_bad = score(c.h(1), &bad).await;
    for t in 0..5 {
        let input = EvidenceInput::Outcome {
            subject: good,
            success: true,
            severity: 0,
            task: format!("task-ok-{t}"),
        };
        c.h(0)
            .evidence(input, &format!("task-ok-{t}"))
            .await
            .map_err(|e| e.to_string())?;
    }
    for t in 0..3 {
        let input = EvidenceInput::Outcome {
            subject: bad,
            success: false,
            severity: 8,
            task: format!("task-fail-{t}"),
        };
        c.h(0)
            .evidence(input, &format!("task-fail-{t}"))
            .await
            .map_err(|e| e.to_string())?;
    }
    let (up, seen_good) = trust_everywhere(c, good, &[0], |s| s > before_good).await;
    let (down, seen_bad) = trust_everywhere(c, bad, &[0], |s| s < before_bad).await;
    let detail = format!(
        "the governor reported 5 successes for node 2 and 3 severe failures for node 3: node 2 {before_good} -> {seen_good:?}, node 3 {before_bad} -> {seen_bad:?} (as seen by every other node)"
    );
    match up && down {
        true => Ok(detail),
        false => Err(detail),
    }
}

async fn vouch(c: &mut Ctx) -> Result<String, String> {
    let subject = c.mesh.did(4);
    let before = score(c.h(1), &subject).await;
    let expires_ms = crate::files::now_ms() + 3_600_000;
    c.h(0)
        .evidence(
            EvidenceInput::Vouch {
                subject,
                weight: 80,
                expires_ms,
            },
            "demo-vouch",
        )
        .await
        .map_err(|e| e.to_string())?;
    // A probationary agent may not vouch: refused locally, before anything leaves its node.
    let refused = c
        .h(1)
        .evidence(
            EvidenceInput::Vouch {
                subject,
                weight: 50,
                expires_ms,
            },
            "demo-vouch-2",
        )
        .await;
    let (up, seen) = trust_everywhere(c, subject, &[0], |s| s > before).await;
    let detail = format!(
        "the governor vouched (weight 80) for node 4: {before} -> {seen:?}; node 1's own vouch was refused locally: {}",
        refused
            .as_ref()
            .err()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "NOT refused".into())
    );
    match up && refused.is_err() {
        true => Ok(detail),
        false => Err(detail),
    }
}

async fn policy(c: &mut Ctx) -> Result<String, String> {
    let rule = starling_trust::policy::Rule::parse(
        "no-secrets",
        900,
        "*",
        "publish",
        "secrets/*",
        "deny",
        "publishing secrets is forbidden by the governors",
    )
    .map_err(|e| e.to_string())?;
    let before = c
        .h(2)
        .publish("secrets/plans", b"before", "demo-before")
        .await;
    c.h(0)
        .policy(PolicyInput::Edits(vec![
            starling_trust::policy::Edit::PutRule(rule),
        ]))
        .await
        .map_err(|e| e.to_string())?;
    let watchers: Vec<NodeHandle> = c.others(&[0]).iter().map(|i| c.h(*i).clone()).collect();
    let converged = until(10_000, || {
        let watchers = watchers.clone();
        async move {
            for h in &watchers {
                let q = Query::Decide {
                    did: None,
                    action: starling_trust::Action::Publish,
                    resource: "secrets/plans".into(),
                };
                if h.query(q).await.ok().and_then(|v| v["allowed"].as_bool()) != Some(false) {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let after = c
        .h(2)
        .publish("secrets/plans", b"after", "demo-after")
        .await;
    let detail = format!(
        "before: node 2 publishing on secrets/plans {}; the governor added rule `no-secrets`; {} nodes converged; after: {}",
        if before.is_ok() { "allowed" } else { "refused" },
        watchers.len(),
        after
            .as_ref()
            .err()
            .map(|e| format!("refused locally ({})", e.message))
            .unwrap_or_else(|| "NOT refused".into())
    );
    match before.is_ok() && converged && after.as_ref().is_err_and(|e| e.status == 403) {
        true => Ok(detail),
        false => Err(detail),
    }
}

async fn kill_switch(c: &mut Ctx) -> Result<String, String> {
    let victim = c.mesh.nodes.len() - 1;
    let did = c.mesh.did(victim);
    c.h(0)
        .evidence(
            EvidenceInput::Terminate {
                subject: did,
                reason: "demo kill switch".into(),
            },
            "demo-kill",
        )
        .await
        .map_err(|e| e.to_string())?;
    let watchers: Vec<NodeHandle> = c
        .others(&[victim])
        .iter()
        .map(|i| c.h(*i).clone())
        .collect();
    let victim_peer = did.to_peer_id().to_string();
    let cut = until(10_000, || {
        let (watchers, victim_peer) = (watchers.clone(), victim_peer.clone());
        async move {
            for h in &watchers {
                let t = h.query(Query::Trust(did)).await.unwrap_or_default();
                let peers = h.query(Query::Peers).await.unwrap_or_default();
                let linked = peers["admitted"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p["peer_id"] == victim_peer.as_str()));
                if t["terminated"] != true || linked {
                    return false;
                }
            }
            true
        }
    })
    .await;
    // The victim's own node received the termination before it was cut off.
    let victim_handle = c.h(victim).clone();
    let knows = until(5_000, || {
        let h = victim_handle.clone();
        async move { h.query(Query::Trust(did)).await.unwrap_or_default()["terminated"] == true }
    })
    .await;
    let own = c
        .h(victim)
        .publish("news", b"still here?", "demo-after-kill")
        .await;
    let mut rx = c.h(1).events();
    let leaked = drain_until(
        &mut rx,
        1_000,
        |e| matches!(e, AgentEvent::Message { origin, .. } if *origin == did.to_string()),
    )
    .await;
    let detail = format!(
        "the governor terminated node {victim}; every other node marked it terminated and dropped its links: {cut}; its own node refuses to publish: {}; messages leaked: {leaked}",
        own.as_ref()
            .err()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "NO".into())
    );
    match cut && knows && own.is_err() && !leaked {
        true => Ok(detail),
        false => Err(detail),
    }
}

async fn sealed_direct(c: &mut Ctx) -> Result<String, String> {
    let (from, to) = (1, 2);
    let mut rx = c.h(to).events();
    let secret = "the launch code is 0000 (sealed)";
    let sent = c
        .h(from)
        .direct(c.mesh.did(to), secret.as_bytes(), "demo-direct")
        .await
        .map_err(|e| e.to_string())?;
    let mut sealed_bytes = 0;
    let got = drain_until(&mut rx, 10_000, |e| match e {
        AgentEvent::Direct {
            payload,
            sealed_bytes: n,
            ..
        } if payload == secret => {
            sealed_bytes = *n;
            true
        }
        _ => false,
    })
    .await;
    // What a relay would hold: the sealed form. Another key cannot open it; one flipped bit is caught.
    let mut rng = rand::rng();
    let (recipient, relay) = (
        crate::seal::KemSecret::generate(&mut rng),
        crate::seal::KemSecret::generate(&mut rng),
    );
    let (a, b) = (c.mesh.did(from), c.mesh.did(to));
    let sealed = crate::seal::seal(&mut rng, &recipient.public_key(), &a, &b, secret.as_bytes())
        .map_err(|e| e.to_string())?;
    let relay_reads = relay.open(&sealed, &a, &b).is_ok();
    let mut tampered = sealed.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 1;
    let tamper_caught = recipient.open(&tampered, &a, &b).is_err();
    let detail = format!(
        "node 1 sent node 2 a direct message sealed with X25519+ML-KEM-768 ({} sealed bytes for {} plaintext bytes): delivered and opened: {got}; a relay's key opens it: {relay_reads}; a flipped bit detected: {tamper_caught}",
        sent["sealed_bytes"].as_u64().unwrap_or(sealed_bytes as u64),
        secret.len()
    );
    match got && !relay_reads && tamper_caught {
        true => Ok(detail),
        false => Err(detail),
    }
}

async fn audit(c: &mut Ctx) -> Result<String, String> {
    let i = 1;
    let did = c.mesh.did(i);
    let dir = c.mesh.nodes[i].data_dir.clone();
    c.mesh.stop_node(i).await;
    let store = crate::store::Store::open_existing(&dir).map_err(|e| e.to_string())?;
    let report = crate::audit::verify(&store, &did).map_err(|e| e.to_string())?;
    let entries = report.entries;
    if report.first_bad.is_some() || entries < 2 {
        return Err(format!("node 1's audit log did not verify: {report:?}"));
    }
    // Edit one entry the way an attacker with the disk would, then verify again.
    let target = entries / 2;
    let mut stored = store
        .audit(target, 1)
        .map_err(|e| e.to_string())?
        .remove(0)
        .1;
    let at = stored.len() / 2;
    stored[at] ^= 0x20;
    store
        .tamper_audit(target, Some(&stored))
        .map_err(|e| e.to_string())?;
    let tampered = crate::audit::verify(&store, &did).map_err(|e| e.to_string())?;
    let caught = tampered.first_bad.as_ref().map(|(seq, _)| *seq) == Some(target);
    let detail = format!(
        "node 1's log: {entries} signed, hash-chained entries verify; after editing entry {target} on disk, verify reports: {}",
        tampered
            .first_bad
            .map(|(s, w)| format!("entry {s}: {w}"))
            .unwrap_or_else(|| "nothing".into())
    );
    let _ = json!({});
    match caught {
        true => Ok(detail),
        false => Err(detail),
    }
}
