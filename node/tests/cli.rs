//! The `starling` command line, end to end: identities, a genesis, a
//! delegation chain, verification, and clear refusals of bad input.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn starling(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_starling"))
        .args(args)
        .output()
        .expect("run starling")
}

fn json(args: &[&str]) -> Value {
    let out = starling(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn error_of(args: &[&str]) -> String {
    let out = starling(args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn id_new_imports_the_w3c_vector_key() {
    let seed = "0000000000000000000000000000000000000000000000000000000000000000";
    let id = json(&["id", "new", "--secret-hex", seed, "--json"]);
    assert_eq!(
        id["did"],
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    );
    assert!(id["peer_id"].as_str().unwrap().starts_with("12D3KooW"));
    assert!(error_of(&["id", "new", "--secret-hex", "abcd"]).contains("32 bytes"));
    assert!(error_of(&["id", "new", "--secret-hex", "xyz"]).contains("not valid hex"));
}

#[test]
fn a_chain_from_genesis_to_sub_agent_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["gov", "org", "agent"] {
        json(&["id", "new", "--out", &path(d, name), "--json"]);
    }
    let shown = json(&["id", "show", &path(d, "org"), "--json"]);
    let org = shown["did"].as_str().unwrap().to_string();
    let agent = json(&["id", "show", &path(d, "agent"), "--json"])["did"]
        .as_str()
        .unwrap()
        .to_string();
    let genesis = json(&[
        "genesis",
        "new",
        "--key",
        &path(d, "gov"),
        "--name",
        "acme",
        "--out",
        &path(d, "g"),
        "--json",
    ]);
    assert_eq!(genesis["name"], "acme");
    assert_eq!(
        json(&["genesis", "show", &path(d, "g"), "--json"])["mesh_id"],
        genesis["mesh_id"]
    );

    let g = path(d, "g");
    let issued = json(&[
        "mandate",
        "issue",
        "--genesis",
        &g,
        "--key",
        &path(d, "gov"),
        "--subject",
        &org,
        "--scope",
        "publish:billing.*",
        "--scope",
        "delegate(2)",
        "--out",
        &path(d, "org.chain"),
        "--json",
    ]);
    assert_eq!(issued["agent"], org.as_str());
    let sub = json(&[
        "mandate",
        "issue",
        "--genesis",
        &g,
        "--key",
        &path(d, "org"),
        "--parent",
        &path(d, "org.chain"),
        "--subject",
        &agent,
        "--scope",
        "publish:billing.invoices",
        "--valid-for",
        "1h",
        "--out",
        &path(d, "agent.chain"),
        "--json",
    ]);
    assert_eq!(sub["principal"], org.as_str());
    let verified = json(&[
        "mandate",
        "verify",
        "--genesis",
        &g,
        &path(d, "agent.chain"),
        "--json",
    ]);
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["links"], 2);
    assert_eq!(verified["scope"][0], "publish:billing.invoices");

    // Escalation beyond the parent's scope is refused before anything is written.
    let err = error_of(&[
        "mandate",
        "issue",
        "--genesis",
        &g,
        "--key",
        &path(d, "org"),
        "--parent",
        &path(d, "org.chain"),
        "--subject",
        &agent,
        "--scope",
        "publish:*",
        "--out",
        &path(d, "wide.chain"),
    ]);
    assert!(
        err.contains("grants `publish:*`, which its parent does not hold"),
        "{err}"
    );
    assert!(!d.join("wide.chain").exists());
    // Expired at a later time.
    let far = (u64::MAX / 2).to_string();
    assert!(
        error_of(&[
            "mandate",
            "verify",
            "--genesis",
            &g,
            &path(d, "agent.chain"),
            "--at-ms",
            &far
        ])
        .contains("expired")
    );
    // A chain for another mesh.
    json(&[
        "genesis",
        "new",
        "--key",
        &path(d, "gov"),
        "--name",
        "other",
        "--out",
        &path(d, "g2"),
        "--json",
    ]);
    assert!(
        error_of(&[
            "mandate",
            "verify",
            "--genesis",
            &path(d, "g2"),
            &path(d, "agent.chain")
        ])
        .contains("another mesh")
    );
    // Corrupt files.
    std::fs::write(d.join("junk"), b"not a chain").unwrap();
    assert!(
        error_of(&["mandate", "verify", "--genesis", &g, &path(d, "junk")])
            .contains("not a valid mandate chain")
    );
    assert!(error_of(&["genesis", "show", &path(d, "junk")]).contains("not a valid genesis"));
    // Key files are never overwritten.
    assert!(error_of(&["id", "new", "--out", &path(d, "gov")]).contains("must not exist yet"));
}

/// Starts `starling node` with `args`, waits for its JSON ready line, returns it and the child.
fn node(args: &[&str]) -> (std::process::Child, Value) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_starling"))
        .args(["node", "--json"])
        .args(args)
        .env_remove("SSLKEYLOGFILE")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start starling node");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let ready: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
    (child, ready)
}

#[test]
fn node_starts_from_files_restarts_from_its_data_dir_and_audit_verify_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&["id", "new", "--out", &path(d, "gov"), "--json"]);
    let agent = json(&["id", "new", "--out", &path(d, "agent"), "--json"])["did"]
        .as_str()
        .unwrap()
        .to_string();
    json(&[
        "genesis",
        "new",
        "--key",
        &path(d, "gov"),
        "--out",
        &path(d, "genesis"),
        "--json",
    ]);
    json(&[
        "mandate",
        "issue",
        "--genesis",
        &path(d, "genesis"),
        "--key",
        &path(d, "gov"),
        "--subject",
        &agent,
        "--scope",
        "publish:*",
        "--out",
        &path(d, "chain"),
        "--json",
    ]);
    let data = path(d, "data");
    let first = [
        "--data-dir",
        &data,
        "--genesis",
        &path(d, "genesis"),
        "--key",
        &path(d, "agent"),
        "--mandate",
        &path(d, "chain"),
    ];
    let (mut child, ready) = node(&first);
    assert_eq!(ready["did"], agent.as_str());
    assert!(
        ready["listen"][0]
            .as_str()
            .unwrap()
            .starts_with("/ip4/127.0.0.1/")
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Restart from the data dir alone.
    let (mut child, again) = node(&["--data-dir", &data]);
    assert_eq!(again["did"], agent.as_str());
    child.kill().unwrap();
    child.wait().unwrap();
    let report = json(&["audit", "verify", "--data-dir", &data, "--json"]);
    assert_eq!(report["intact"], true, "{report}");
    // Refusals: SSLKEYLOGFILE, another key for this data dir, a bad config, no data dir.
    let out = Command::new(env!("CARGO_BIN_EXE_starling"))
        .args(["node", "--data-dir", &data])
        .env("SSLKEYLOGFILE", path(d, "keys.log"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SSLKEYLOGFILE"));
    assert!(!d.join("keys.log").exists());
    assert!(
        error_of(&["node", "--data-dir", &data, "--key", &path(d, "gov")]).contains("belongs to")
    );
    std::fs::write(d.join("bad.toml"), "data_dir = 7\nlisten = \"x\"").unwrap();
    assert!(
        error_of(&["node", "--config", &path(d, "bad.toml")]).contains("not a valid node config")
    );
    assert!(error_of(&["node"]).contains("--data-dir"));
    assert!(error_of(&["audit", "verify", "--data-dir", &path(d, "nothing")]).contains("no store"));
}
