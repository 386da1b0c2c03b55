//! The libp2p swarm: transports and the thin behaviour beside the core.
//!
//! Transports are QUIC and TCP + TLS 1.3 + yamux; there is deliberately no
//! noise (X25519 only). libp2p-tls 0.7 builds its rustls config on aws-lc-rs
//! with X25519MLKEM768 as the first key-exchange group, so two Starling
//! nodes agree on the post-quantum hybrid (the `pq_tls` test proves it on
//! the wire). The behaviour only translates: identify and Kademlia find
//! addresses, ping measures round trips (it closes nothing: the gossip
//! core probes its own quiet links), mDNS (off by default) finds LAN
//! peers, and `libp2p-stream` carries the gossip core's frames on
//! `/starling/gossip/2`. Every decision stays in the sans-IO core.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{StreamProtocol, Swarm, identify, kad, mdns, ping};
use starling_trust::{Keypair, MeshId};

/// The gossip stream protocol.
pub const GOSSIP_PROTOCOL: StreamProtocol = StreamProtocol::new("/starling/gossip/2");
/// How long a connection with no open streams stays up. An overlay link
/// keeps its gossip stream open, so this ends only the connections that
/// Kademlia's queries and HyParView's shuffle replies opened. At 60 s
/// Kademlia's bootstrap kept nearly every pair of a 48-node mesh connected
/// (1,131 connections, each pinged every 15 s), and `bench vs-gossipsub`
/// measured Starling's p99 about 2 ms higher than with 10 s.
pub const IDLE_CONNECTION_MS: u64 = 10_000;

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The transport could not be set up.
    #[error("transport: {0}")]
    Transport(String),
    /// A behaviour could not be set up (mDNS needs a usable socket).
    #[error("behaviour: {0}")]
    Behaviour(String),
}

/// The node's network behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Gossip frames on `/starling/gossip/2`.
    pub stream: libp2p_stream::Behaviour,
    /// Exchange of listen addresses and protocols.
    pub identify: identify::Behaviour,
    /// Liveness.
    pub ping: ping::Behaviour,
    /// Peer discovery and routing, per mesh.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// LAN discovery, when enabled.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Behaviour")
    }
}

/// The libp2p key of a Starling identity: the same Ed25519 key, so the
/// transport-authenticated `PeerId` *is* the agent's DID.
pub fn libp2p_key(key: &Keypair) -> libp2p::identity::Keypair {
    let mut secret = key.secret_bytes();
    libp2p::identity::Keypair::ed25519_from_bytes(&mut secret)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid Ed25519 secret"))
}

/// Builds the swarm for `key` in the mesh `mesh`.
pub fn build(key: &Keypair, mesh: &MeshId, use_mdns: bool) -> Result<Swarm<Behaviour>, NetError> {
    // Kademlia and identify are per mesh, so nodes of different meshes never
    // fill each other's routing tables.
    let mesh_tag = hex::encode(&mesh[..8]);
    let kad_protocol = StreamProtocol::try_from_owned(format!("/starling/kad/{mesh_tag}"))
        .map_err(|e| NetError::Behaviour(e.to_string()))?;
    let tcp = libp2p::tcp::Config::default().nodelay(true);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(libp2p_key(key))
        .with_tokio()
        .with_tcp(
            tcp,
            libp2p::tls::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_quic()
        .with_behaviour(|k| {
            let peer = k.public().to_peer_id();
            let mut kad_config = kad::Config::new(kad_protocol);
            kad_config.set_periodic_bootstrap_interval(Some(Duration::from_secs(60)));
            let mut kad =
                kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), kad_config);
            // Loopback and LAN nodes never learn a confirmed external address,
            // which would leave Kademlia in client mode and undiscoverable.
            kad.set_mode(Some(kad::Mode::Server));
            let mdns = match use_mdns {
                true => Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer)?),
                false => None,
            };
            Ok(Behaviour {
                stream: libp2p_stream::Behaviour::new(),
                identify: identify::Behaviour::new(identify::Config::new(
                    format!("/starling/{mesh_tag}/1"),
                    k.public(),
                )),
                ping: ping::Behaviour::new(ping::Config::new()),
                kad,
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|e| NetError::Behaviour(e.to_string()))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_millis(IDLE_CONNECTION_MS))
        })
        .build();
    Ok(swarm)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_peer_id_is_the_did() {
        let key = starling_trust::Keypair::from_secret_bytes(&[4; 32]);
        assert_eq!(
            super::libp2p_key(&key).public().to_peer_id(),
            key.did().to_peer_id()
        );
    }
}
