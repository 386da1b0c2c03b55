//! Crash safety: 1,000 records through the API while the node is killed
//! with SIGKILL and restarted; every record the API acknowledged (HTTP 200)
//! is in the store afterwards, and the audit log still verifies.
//!
//! The node runs in a child process: this test binary re-executes itself
//! running only the ignored `child_node` test. Kills are scheduled by
//! progress, not by the clock: the seed (`STARLING_SEED` replays) picks
//! how many kills and after which record each one comes. At each kill
//! point a burst of records is sent concurrently and the node is killed as
//! soon as the first of them is answered, so the others are mid-request,
//! mid-commit or queued. Which of those the node acknowledged before dying
//! depends on the machine's timing, which is the point; what the test
//! checks does not: the number of kills, that every record outside a burst
//! is acknowledged, and that every acknowledged record survives.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use starling_tests::http;
use tokio::task::JoinSet;

const RECORDS: usize = 1_000;
/// Records in flight when a kill lands.
const BURST: usize = 8;
/// Fewest and most kills a seed schedules.
const KILLS_MIN: usize = 3;
const KILLS_MAX: usize = 6;

fn spawn_child(dir: &Path, seed: u64, first: bool) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "child_node",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("STARLING_CHILD_DIR", dir)
        .env("STARLING_CHILD_SEED", seed.to_string())
        .env("STARLING_CHILD_FIRST", if first { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let Some(line) = lines.next().transpose()? else {
            let status = child.wait()?;
            anyhow::bail!("the child node exited before serving: {status}");
        };
        // libtest may print "test child_node ... " on the same line first.
        if let Some(addr) = line.split_once("API ").map(|(_, a)| a) {
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((child, addr.trim().parse()?));
        }
    }
}

/// SIGKILL and reap.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The record indices after which a kill burst starts: between
/// `KILLS_MIN` and `KILLS_MAX` of them, distinct, sorted, each burst
/// fitting before `RECORDS`.
fn kill_schedule(rng: &mut StdRng) -> Vec<usize> {
    let kills = rng.random_range(KILLS_MIN..=KILLS_MAX);
    let mut points = std::collections::BTreeSet::new();
    while points.len() < kills {
        // Spaced by at least a burst so bursts never overlap.
        let at = rng.random_range(1..(RECORDS - BURST) / BURST) * BURST;
        points.insert(at);
    }
    points.into_iter().collect()
}

/// One record: `Ok(Some(id))` if acknowledged, `Ok(None)` if the node died
/// or answered 5xx (not stored, the caller may retry), `Err` for a refusal.
async fn post_record(api: SocketAddr, subject: String, i: usize) -> anyhow::Result<Option<String>> {
    let body = json!({"kind": "outcome", "subject": subject, "success": true, "task": format!("task-{i}")});
    match http(api, "POST", "/v1/evidence", Some(&body.to_string())).await {
        Ok(a) if a.status == 200 => {
            let id = a.json()["id"].as_str().unwrap_or_default().to_string();
            anyhow::ensure!(id.len() == 64, "bad id in {}", a.body);
            Ok(Some(id))
        }
        Ok(a) if a.status >= 500 => Ok(None),
        Ok(a) => anyhow::bail!("record {i} refused: {} {}", a.status, a.body),
        Err(_) => Ok(None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill() -> anyhow::Result<()> {
    let seed = starling_tests::seed(20_251_125);
    let dir = tempfile::tempdir()?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5u64.rotate_right(4)); // not the mesh's key stream
    let subjects: Vec<String> = (0..RECORDS)
        .map(|_| {
            starling_trust::Keypair::generate(&mut rng)
                .did()
                .to_string()
        })
        .collect();
    let schedule = kill_schedule(&mut rng);
    let (mut child, mut api) = spawn_child(dir.path(), seed, true)?;
    let mut acknowledged: Vec<(usize, String)> = Vec::new();
    let mut in_bursts = 0;
    let mut kills = 0;
    let mut i = 0;
    while i < RECORDS {
        if schedule.get(kills) != Some(&i) {
            let id = post_record(api, subjects[i].clone(), i)
                .await
                .map_err(|e| anyhow::anyhow!("seed {seed}: {e}"))?;
            let id = id.ok_or_else(|| {
                anyhow::anyhow!("seed {seed}: record {i} not acknowledged by a live node")
            })?;
            acknowledged.push((i, id));
            i += 1;
            continue;
        }
        // A kill point: a burst in flight, SIGKILL at the first answer.
        let mut burst = JoinSet::new();
        for (j, subject) in subjects.iter().enumerate().skip(i).take(BURST) {
            let subject = subject.clone();
            burst.spawn(async move { (j, post_record(api, subject, j).await) });
        }
        let mut killed = false;
        while let Some(done) = burst.join_next().await {
            let (j, result) = done?;
            if let Some(id) = result.map_err(|e| anyhow::anyhow!("seed {seed}: {e}"))? {
                acknowledged.push((j, id));
            }
            if !killed {
                kill(&mut child);
                killed = true;
            }
        }
        kills += 1;
        in_bursts += BURST;
        i += BURST;
        (child, api) = spawn_child(dir.path(), seed, false)?;
    }
    // One last SIGKILL, then a clean look at what survived.
    kill(&mut child);
    let (mut child, api) = spawn_child(dir.path(), seed, false)?;
    let mut missing = Vec::new();
    for (i, id) in &acknowledged {
        let a = http(api, "GET", &format!("/v1/evidence/{id}"), None).await?;
        if a.status != 200 || a.json()["stored"] != true {
            missing.push(*i);
        }
    }
    let audit = http(api, "GET", "/v1/status", None).await?.json();
    kill(&mut child);
    let store = starling_node::store::Store::open_existing(&dir.path().join("node"))?;
    let secret: [u8; 32] = store
        .meta("key")?
        .unwrap_or_default()
        .as_slice()
        .try_into()?;
    let did = starling_trust::Keypair::from_secret_bytes(&secret).did();
    let report = starling_node::audit::verify(&store, &did)?;
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "seed {seed}: kills after records {schedule:?}; {} of {RECORDS} acknowledged \
             ({} of {in_bursts} in kill bursts), {} audit entries",
            acknowledged.len(),
            (acknowledged.len() + in_bursts).saturating_sub(RECORDS),
            audit["audit_entries"]
        );
    }
    assert_eq!(kills, schedule.len(), "seed {seed}: kills");
    assert!(
        acknowledged.len() >= RECORDS - in_bursts,
        "seed {seed}: a record outside a kill burst was not acknowledged"
    );
    assert!(
        missing.is_empty(),
        "seed {seed}: acknowledged records lost after SIGKILL: {missing:?}"
    );
    assert_eq!(
        report.first_bad, None,
        "seed {seed}: the audit log broke across crashes"
    );
    assert!(
        report.entries >= acknowledged.len() as u64,
        "seed {seed}: audit entries {} < acknowledged",
        report.entries
    );
    Ok(())
}

/// The node process of the test above.
#[test]
#[ignore = "run as a child process by acknowledged_records_survive_sigkill"]
fn child_node() -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os("STARLING_CHILD_DIR") else {
        return Ok(());
    };
    let seed: u64 = std::env::var("STARLING_CHILD_SEED")?.parse()?;
    let first = std::env::var("STARLING_CHILD_FIRST")? == "1";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let dir = std::path::PathBuf::from(dir);
        let now = starling_node::files::now_ms();
        let mut mesh = starling_node::localmesh::LocalMesh::new(dir.join("mesh"), seed, now)?;
        let mut options = starling_node::NodeOptions::new(dir.join("node"));
        if first {
            options.genesis = Some((*mesh.genesis).clone());
            options.key = Some(mesh.governor.clone());
            options.chain = Some(mesh.governor_chain(now));
        }
        options.api = Some(([127, 0, 0, 1], 0).into());
        let node = starling_node::start(options).await?;
        #[allow(clippy::print_stdout)]
        {
            println!("API {}", node.api.ok_or_else(|| anyhow::anyhow!("no API"))?);
        }
        node.wait().await;
        Ok(())
    })
}
