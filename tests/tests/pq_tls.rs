//! Two real nodes negotiate the post-quantum hybrid X25519MLKEM768 group.
//!
//! Node A dials node B through a loopback TCP relay that copies bytes both
//! ways and keeps what B sends. After the handshake completes (A admits B),
//! the test finds B's TLS ServerHello in those bytes (after libp2p's
//! multistream-select preamble) and reads the group of its key_share
//! extension: it must be 0x11EC (X25519MLKEM768), not 0x001D (X25519).

use std::sync::{Arc, Mutex};

use libp2p::Multiaddr;
use starling_node::localmesh::{LocalMesh, admitted, until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const X25519MLKEM768: u16 = 0x11EC;

/// Finds the ServerHello and returns the key_share group it selected.
fn server_hello_group(bytes: &[u8]) -> Option<u16> {
    let mut i = 0;
    while i + 9 <= bytes.len() {
        // TLS record: handshake (0x16), legacy version 0x0303, length; then
        // handshake type ServerHello (0x02).
        if bytes[i] == 0x16 && bytes[i + 1] == 0x03 && bytes[i + 2] == 0x03 && bytes[i + 5] == 0x02
        {
            let record_len = u16::from_be_bytes([bytes[i + 3], bytes[i + 4]]) as usize;
            let record = bytes.get(i + 5..i + 5 + record_len)?;
            return parse_server_hello(record);
        }
        i += 1;
    }
    None
}

fn parse_server_hello(h: &[u8]) -> Option<u16> {
    // type(1) len(3) legacy_version(2) random(32) session_id(1+n) cipher(2) compression(1) ext_len(2) exts
    let mut p = 1 + 3 + 2 + 32;
    let sid_len = *h.get(p)? as usize;
    p += 1 + sid_len + 2 + 1;
    let ext_len = u16::from_be_bytes([*h.get(p)?, *h.get(p + 1)?]) as usize;
    p += 2;
    let end = p + ext_len;
    while p + 4 <= end {
        let kind = u16::from_be_bytes([h[p], h[p + 1]]);
        let len = u16::from_be_bytes([h[p + 2], h[p + 3]]) as usize;
        if kind == 0x0033 {
            return Some(u16::from_be_bytes([*h.get(p + 4)?, *h.get(p + 5)?]));
        }
        p += 4 + len;
    }
    None
}

async fn relay(listener: TcpListener, target: std::net::SocketAddr, seen: Arc<Mutex<Vec<u8>>>) {
    let Ok((client, _)) = listener.accept().await else {
        return;
    };
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            if s.len() < 64 * 1024 {
                s.extend_from_slice(&buf[..n]);
            }
        }
        if cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    up.abort();
}

#[test]
fn the_parser_reads_a_known_server_hello() {
    // A hand-built ServerHello record choosing X25519 (0x001d), after a multistream preamble.
    let mut hello = vec![0x02, 0, 0, 0, 0x03, 0x03];
    hello.extend_from_slice(&[7; 32]);
    hello.extend_from_slice(&[0, 0x13, 0x01, 0]);
    let ext = [
        0x00, 0x2b, 0x00, 0x02, 0x03, 0x04, 0x00, 0x33, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x02, 0xaa,
        0xbb,
    ];
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);
    let mut wire = b"\x13/multistream/1.0.0\n\x0b/tls/1.0.0\n".to_vec();
    wire.extend_from_slice(&[0x16, 0x03, 0x03]);
    wire.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    wire.extend_from_slice(&hello);
    assert_eq!(server_hello_group(&wire), Some(0x001d));
    assert_eq!(server_hello_group(&wire[..wire.len() - 12]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_negotiate_x25519mlkem768_over_tcp_tls() -> anyhow::Result<()> {
    let seed = starling_tests::seed(11);
    let dir = tempfile::tempdir()?;
    let now = starling_node::files::now_ms();
    let mut mesh = LocalMesh::new(dir.path().to_path_buf(), seed, now)?;
    let b = mesh.add_governor_node(now, false).await?;
    let b_tcp = mesh.nodes[b]
        .running
        .as_ref()
        .and_then(|r| {
            r.listen
                .iter()
                .find(|a| a.to_string().contains("/tcp/"))
                .cloned()
        })
        .ok_or_else(|| anyhow::anyhow!("node B has no TCP address"))?;
    let port = b_tcp
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("no port"))?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let relay_port = listener.local_addr()?.port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(relay(
        listener,
        ([127, 0, 0, 1], port).into(),
        Arc::clone(&seen),
    ));

    // Node A knows B only through the relay.
    let (key, chain) = mesh.new_agent(&starling_node::localmesh::AGENT_SCOPE, now);
    let via_relay: Multiaddr = format!(
        "/ip4/127.0.0.1/tcp/{relay_port}/p2p/{}",
        mesh.did(b).to_peer_id()
    )
    .parse()?;
    let index = mesh.nodes.len();
    mesh.nodes.push(starling_node::localmesh::LocalNode {
        key,
        chain,
        data_dir: dir.path().join("a"),
        bootstrap: vec![via_relay],
        api: false,
        running: None,
    });
    mesh.start_node(index, true).await?;
    let a = mesh.handle(index).clone();
    assert!(
        until(10_000, || {
            let a = a.clone();
            async move { admitted(&a).await >= 1 }
        })
        .await,
        "seed {seed}: A never admitted B through the relay"
    );
    let group = server_hello_group(&seen.lock().unwrap_or_else(|e| e.into_inner()));
    mesh.shutdown().await;
    assert_eq!(
        group,
        Some(X25519MLKEM768),
        "seed {seed}: the ServerHello selected {group:04x?}, not X25519MLKEM768"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_with_sslkeylogfile_set() -> anyhow::Result<()> {
    // Only this test sets the variable; `start` checks it before touching the data dir.
    let dir = tempfile::tempdir()?;
    // Setting the variable in this multi-threaded process would be unsound; a child gets it instead.
    let status = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "child_start_with_keylog",
            "--ignored",
            "--nocapture",
        ])
        .env("SSLKEYLOGFILE", dir.path().join("keys.log"))
        .env("STARLING_CHILD_DIR", dir.path())
        .output()?;
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "child failed: {out}");
    assert!(
        out.contains("REFUSED: SSLKEYLOGFILE is set"),
        "child output: {out}"
    );
    assert!(
        !dir.path().join("node").exists(),
        "the data dir was touched"
    );
    Ok(())
}

/// Helper run only as a child of the test above.
#[tokio::test]
#[ignore = "run by a_node_refuses_to_start_with_sslkeylogfile_set in a child process"]
async fn child_start_with_keylog() {
    let Some(dir) = std::env::var_os("STARLING_CHILD_DIR") else {
        return;
    };
    let options = starling_node::NodeOptions::new(std::path::PathBuf::from(dir).join("node"));
    match starling_node::start(options).await {
        Err(e) => {
            #[allow(clippy::print_stdout)]
            {
                println!("REFUSED: {e}");
            }
        }
        Ok(_) => panic!("started with SSLKEYLOGFILE set"),
    }
}
