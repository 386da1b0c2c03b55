//! Exact outputs of each sub-protocol, driven by hand: handshake and
//! admission, join, broadcast repair, anti-entropy, and flood control.

// Test helpers may unwrap: a failure is the test's failure.
#![allow(clippy::unwrap_used)]

mod harness;

use std::sync::Arc;

use harness::{Mesh, START_MS};
use rand::SeedableRng;
use rand::rngs::StdRng;
use starling_gossip::wire::{
    Body, ForwardJoin, Frame, Gossip, Graft, Hello, IHave, ItemKind, NeighborReply, Prune, Refuse,
};
use starling_gossip::{Command, Config, Event, Input, Node, Output, Timer};
use starling_trust::{Keypair, Mandate, Record};

type N = Node<u32, StdRng>;

const SCOPE: [&str; 2] = ["publish:*", "subscribe:*"];

fn node(mesh: &Mesh, i: u32) -> (N, Keypair, Arc<Record>) {
    let (key, record) = mesh.agent(i, &SCOPE);
    (
        start(mesh, key.clone(), Arc::clone(&record), i),
        key,
        record,
    )
}

/// Agent `i` of another organisation (from `Mesh::other_org`).
fn org_node(mesh: &Mesh, org: &(Keypair, Mandate), i: u32) -> N {
    let (key, record) = mesh.agent_of(&org.0, &org.1, i, &SCOPE);
    start(mesh, key, record, i)
}

fn start(mesh: &Mesh, key: Keypair, record: Arc<Record>, i: u32) -> N {
    Node::new(
        Config::default(),
        Arc::clone(&mesh.genesis),
        key,
        i,
        record,
        StdRng::seed_from_u64(u64::from(i)),
        START_MS,
    )
    .unwrap()
}

/// Outputs other than timers.
fn drain(n: &mut N) -> Vec<Output<u32>> {
    std::iter::from_fn(|| n.poll_output())
        .filter(|o| !matches!(o, Output::SetTimer { .. }))
        .collect()
}

fn frame(body: Body) -> Vec<u8> {
    Frame::new(body).encode()
}

/// A frame as the node hands it to its driver.
fn sent(body: Body) -> bytes::Bytes {
    frame(body).into()
}

fn body(output: &Output<u32>) -> (u32, Body) {
    match output {
        Output::Send { to, frame } => (*to, Frame::decode_capped(frame, usize::MAX).unwrap()),
        other => panic!("expected a send, got {other:?}"),
    }
}

/// Connects two nodes and runs their handshake.
fn connect(a: &mut N, b: &mut N, at: u64) {
    a.handle(
        at,
        Input::Connected {
            peer: b.peer(),
            did: b.did(),
        },
    )
    .unwrap();
    b.handle(
        at,
        Input::Connected {
            peer: a.peer(),
            did: a.did(),
        },
    )
    .unwrap();
    let to_b: Vec<_> = drain(a)
        .into_iter()
        .filter_map(|o| match o {
            Output::Send { to, frame } if to == b.peer() => Some(frame),
            _ => None,
        })
        .collect();
    let to_a: Vec<_> = drain(b)
        .into_iter()
        .filter_map(|o| match o {
            Output::Send { to, frame } if to == a.peer() => Some(frame),
            _ => None,
        })
        .collect();
    for f in to_b {
        b.handle(
            at,
            Input::Frame {
                from: a.peer(),
                bytes: f.into(),
            },
        )
        .unwrap();
    }
    for f in to_a {
        a.handle(
            at,
            Input::Frame {
                from: b.peer(),
                bytes: f.into(),
            },
        )
        .unwrap();
    }
    drain(a);
    drain(b);
}

#[test]
fn the_handshake_admits_a_peer_with_a_valid_mandate() {
    let mesh = Mesh::new();
    let (mut a, _, a_record) = node(&mesh, 1);
    let (_b, b_key, b_record) = node(&mesh, 2);
    drain(&mut a);
    a.handle(
        START_MS,
        Input::Connected {
            peer: 2,
            did: b_key.did(),
        },
    )
    .unwrap();
    let hello = Hello {
        mesh: mesh.genesis.id().to_vec(),
        agent_record: a_record.to_bytes().to_vec(),
    };
    assert_eq!(
        drain(&mut a),
        [Output::Send {
            to: 2,
            frame: sent(Body::Hello(hello))
        }]
    );
    // Frames before the hello are dropped.
    a.handle(
        START_MS,
        Input::Frame {
            from: 2,
            bytes: frame(Body::Prune(Prune {
                tree: "x".into(),
                origin: vec![],
            })),
        },
    )
    .unwrap();
    assert!(matches!(
        drain(&mut a).as_slice(),
        [Output::Event(Event::Dropped { from: 2, .. })]
    ));
    let hello = Hello {
        mesh: mesh.genesis.id().to_vec(),
        agent_record: b_record.to_bytes().to_vec(),
    };
    a.handle(
        START_MS,
        Input::Frame {
            from: 2,
            bytes: frame(Body::Hello(hello)),
        },
    )
    .unwrap();
    // The peer's agent record is new evidence here, then the peer is admitted.
    assert_eq!(
        drain(&mut a),
        [
            Output::Event(Event::EvidenceApplied {
                id: b_record.id(),
                kind: "agent",
                author: b_key.did(),
                subject: b_key.did()
            }),
            Output::Event(Event::PeerAdmitted {
                peer: 2,
                did: b_key.did()
            })
        ]
    );
    assert!(a.trust().store().agent(&b_key.did()).is_some());
}

fn refusal(a: &mut N, peer: u32, did: starling_trust::Did, hello: Hello) -> String {
    refusal_with(a, peer, did, hello, &[])
}

/// A refusal preceded by a `Records` frame carrying exactly `why`.
fn refusal_with(
    a: &mut N,
    peer: u32,
    did: starling_trust::Did,
    hello: Hello,
    why: &[Vec<u8>],
) -> String {
    drain(a);
    a.handle(START_MS, Input::Connected { peer, did }).unwrap();
    drain(a);
    a.handle(
        START_MS,
        Input::Frame {
            from: peer,
            bytes: frame(Body::Hello(hello)),
        },
    )
    .unwrap();
    let mut outputs = drain(a);
    if !why.is_empty() {
        assert_eq!(
            body(&outputs.remove(0)),
            (
                peer,
                Body::Records(starling_gossip::wire::Records {
                    records: why.to_vec()
                })
            )
        );
    }
    let [
        Output::Send { to, frame: refuse },
        Output::Event(Event::PeerRefused { peer: p, reason }),
        Output::Disconnect(d),
    ] = outputs.as_slice()
    else {
        panic!("unexpected outputs {outputs:?}");
    };
    assert_eq!((*to, *p, *d), (peer, peer, peer));
    assert_eq!(
        Frame::decode_capped(refuse, usize::MAX).unwrap(),
        Body::Refuse(Refuse {
            reason: reason.clone()
        })
    );
    reason.clone()
}

#[test]
fn wrong_genesis_missing_mandates_and_borrowed_records_are_refused() {
    let mesh = Mesh::new();
    let (mut a, _, _) = node(&mesh, 1);
    let (_, b_key, b_record) = node(&mesh, 2);
    let other_mesh = Hello {
        mesh: vec![9; 32],
        agent_record: b_record.to_bytes().to_vec(),
    };
    assert_eq!(
        refusal(&mut a, 2, b_key.did(), other_mesh),
        "wrong genesis: the peer belongs to another mesh"
    );

    // A record signed by someone other than the connected peer.
    let rogue_key = Keypair::from_secret_bytes(&[66; 32]);
    let borrowed = Hello {
        mesh: mesh.genesis.id().to_vec(),
        agent_record: b_record.to_bytes().to_vec(),
    };
    assert_eq!(
        refusal(&mut a, 3, rogue_key.did(), borrowed),
        "the agent record is not the connected peer's"
    );

    // An expired mandate.
    let mut spec = harness::mandate_spec(&mesh.genesis, rogue_key.did(), &["publish:*"]);
    spec.expires_ms = START_MS - 10;
    let link = starling_trust::Mandate::issue(&mesh.org, &spec, Some(&mesh.org_link));
    let chain = starling_trust::MandateChain::new(vec![mesh.org_link.clone(), link]);
    let agent = starling_trust::evidence::record::AgentRecord {
        chain,
        kem_public_key: Default::default(),
        addrs: vec![],
    };
    let expired = Record::create(
        &rogue_key,
        &mesh.genesis,
        START_MS,
        starling_trust::Evidence::Agent(agent),
    )
    .unwrap();
    let hello = Hello {
        mesh: mesh.genesis.id().to_vec(),
        agent_record: expired.to_bytes().to_vec(),
    };
    let reason = refusal(&mut a, 5, rogue_key.did(), hello);
    assert_eq!(
        reason,
        format!(
            "mandate: link 1 expired at {} ms (now {START_MS} ms)",
            START_MS - 10
        )
    );

    // A terminated agent.
    let kill = starling_trust::evidence::record::Termination {
        subject: b_key.did(),
        reason: "kill switch".into(),
        mandate: None,
    };
    let kill = Record::create(
        &mesh.governor,
        &mesh.genesis,
        START_MS,
        starling_trust::Evidence::Termination(kill),
    )
    .unwrap();
    a.handle(
        START_MS,
        Input::Command(Command::SubmitEvidence {
            record: kill.to_bytes().to_vec(),
        }),
    )
    .unwrap();
    let hello = Hello {
        mesh: mesh.genesis.id().to_vec(),
        agent_record: b_record.to_bytes().to_vec(),
    };
    // Refused with the termination itself, so the agent's node learns why.
    assert_eq!(
        refusal_with(&mut a, 6, b_key.did(), hello, &[kill.to_bytes().to_vec()]),
        format!(
            "mandate: {} has been terminated by the kill switch",
            b_key.did()
        )
    );
    // A revoked mandate: refused with the revocation.
    let (_, c_key, c_record) = node(&mesh, 7);
    let starling_trust::Evidence::Agent(c_agent) = c_record.evidence() else {
        panic!("not an agent record")
    };
    let revoke = starling_trust::evidence::record::Revocation {
        mandate: c_agent.chain.leaf().unwrap().clone(),
        reason: "test".into(),
    };
    let revoke = Record::create(
        &mesh.org,
        &mesh.genesis,
        START_MS,
        starling_trust::Evidence::Revocation(revoke),
    )
    .unwrap();
    a.handle(
        START_MS,
        Input::Command(Command::SubmitEvidence {
            record: revoke.to_bytes().to_vec(),
        }),
    )
    .unwrap();
    let hello = Hello {
        mesh: mesh.genesis.id().to_vec(),
        agent_record: c_record.to_bytes().to_vec(),
    };
    assert_eq!(
        refusal_with(&mut a, 7, c_key.did(), hello, &[revoke.to_bytes().to_vec()]),
        "mandate: link 1 has been revoked"
    );
    let garbage = Hello {
        mesh: mesh.genesis.id().to_vec(),
        agent_record: vec![1, 2, 3],
    };
    assert!(refusal(&mut a, 4, rogue_key.did(), garbage).starts_with("invalid agent record"));
    assert_eq!(a.stats().peers_refused, 6);
}

/// `peer` connects to `n` and joins through it; `n`'s outputs.
fn join(n: &mut N, peer: &mut N) -> Vec<Output<u32>> {
    connect(n, peer, START_MS);
    n.handle(
        START_MS,
        Input::Frame {
            from: peer.peer(),
            bytes: frame(Body::Join(starling_gossip::wire::Join {})),
        },
    )
    .unwrap();
    drain(n)
}

#[test]
fn a_join_is_forwarded_to_the_contacts_neighbours() {
    let mesh = Mesh::new();
    let (mut a, _, _) = node(&mesh, 1);
    let (mut b, _, _) = node(&mesh, 2);
    let (mut c, _, _) = node(&mesh, 3);
    assert_eq!(join(&mut b, &mut c), [Output::Event(Event::NeighborUp(3))]);
    let out = join(&mut b, &mut a);
    assert_eq!(out[0], Output::Event(Event::NeighborUp(1)));
    let (to, fj) = body(&out[1]);
    assert_eq!(to, 3);
    let Body::ForwardJoin(ForwardJoin {
        peer: Some(peer),
        ttl,
    }) = fj
    else {
        panic!("{fj:?}")
    };
    assert_eq!(
        (peer.peer.as_slice(), ttl),
        (1u32.to_le_bytes().as_slice(), 6)
    );
    assert_eq!(peer.did, a.did().as_bytes().to_vec());
    assert_eq!(b.active_view(), [3, 1]);
}

#[test]
fn a_handshake_corrects_what_a_walk_claimed_of_a_peer() {
    let mesh = Mesh::new();
    let (mut b, _, _) = node(&mesh, 2);
    let (mut c, _, _) = node(&mesh, 3);
    let (mut d, _, _) = node(&mesh, 4);
    let (mut e, _, _) = node(&mesh, 5);
    let (liar, _, _) = node(&mesh, 6);
    join(&mut b, &mut c);
    join(&mut b, &mut d);
    // A walk passing through b claims peer 5 has agent 6's DID; at the
    // passive walk length b keeps 5 in its passive view.
    let claim = starling_gossip::wire::PeerRef {
        peer: 5u32.to_le_bytes().to_vec(),
        did: liar.did().as_bytes().to_vec(),
    };
    b.handle(
        START_MS,
        Input::Frame {
            from: 3,
            bytes: frame(Body::ForwardJoin(ForwardJoin {
                peer: Some(claim),
                ttl: 3,
            })),
        },
    )
    .unwrap();
    drain(&mut b);
    assert_eq!(b.passive_view(), [5]);
    // The handshake proves 5's own DID; after the link is gone, b's shuffle
    // passes on the proved one, not the claim.
    connect(&mut b, &mut e, START_MS);
    b.handle(START_MS, Input::Disconnected { peer: 5 }).unwrap();
    drain(&mut b);
    b.handle(START_MS + 1, Input::Timer(Timer::Shuffle))
        .unwrap();
    let refs: Vec<_> = drain(&mut b)
        .iter()
        .filter_map(|o| match body(o).1 {
            Body::Shuffle(s) => Some(s.peers),
            _ => None,
        })
        .flatten()
        .filter(|r| r.peer == 5u32.to_le_bytes())
        .collect();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].did, e.did().as_bytes().to_vec());
}

#[test]
fn duplicates_prune_and_missing_items_are_grafted() {
    let mesh = Mesh::new();
    let (mut a, _, _) = node(&mesh, 1);
    let (mut b, _, _) = node(&mesh, 2);
    let (mut c, c_key, _) = node(&mesh, 3);
    connect(&mut a, &mut b, START_MS);
    connect(&mut c, &mut b, START_MS);
    for from in [1, 3] {
        b.handle(
            START_MS,
            Input::Frame {
                from,
                bytes: frame(Body::Join(starling_gossip::wire::Join {})),
            },
        )
        .unwrap();
    }
    // c's agent record reached b in the handshake, so b can check c's message.
    let message = starling_gossip::SignedMessage::sign(
        &c_key,
        starling_trust::keys::Domain::Message,
        &mesh.genesis.id(),
        "news",
        1,
        START_MS,
        b"hi".to_vec(),
    );
    let origin = c_key.did().as_bytes().to_vec();
    let gossip = |round| Gossip {
        kind: ItemKind::Message as i32,
        round,
        item: message.raw.clone(),
    };
    drain(&mut b);
    b.handle(
        START_MS,
        Input::Frame {
            from: 3,
            bytes: frame(Body::Gossip(gossip(1))),
        },
    )
    .unwrap();
    let out = drain(&mut b);
    assert_eq!(
        out,
        [Output::Send {
            to: 1,
            frame: sent(Body::Gossip(gossip(2)))
        }]
    );
    b.handle(
        START_MS,
        Input::Frame {
            from: 1,
            bytes: frame(Body::Gossip(gossip(2))),
        },
    )
    .unwrap();
    assert_eq!(
        drain(&mut b),
        [Output::Send {
            to: 1,
            frame: sent(Body::Prune(Prune {
                tree: "news".into(),
                origin: origin.clone()
            }))
        }]
    );
    assert_eq!(b.broadcast().links("news", b.active_view()), (1, 1));
    assert_eq!(b.broadcast().trees(), 1);

    // An announcement of an unknown item sets a timer; when it fires, graft.
    let id = u64::from_le_bytes([5; 8]);
    let ihave = IHave {
        ids: vec![id],
        hops: vec![],
    };
    b.handle(
        START_MS + 10,
        Input::Frame {
            from: 1,
            bytes: frame(Body::IHave(ihave)),
        },
    )
    .unwrap();
    let timers: Vec<_> = std::iter::from_fn(|| b.poll_output()).collect();
    assert_eq!(
        timers,
        [Output::SetTimer {
            at_ms: START_MS + 260,
            timer: Timer::Graft(id)
        }]
    );
    b.handle(START_MS + 260, Input::Timer(Timer::Graft(id)))
        .unwrap();
    let out = drain(&mut b);
    assert_eq!(
        out,
        [Output::Send {
            to: 1,
            frame: sent(Body::Graft(Graft {
                id,
                link_only: false
            }))
        }]
    );
    assert_eq!(b.stats().grafts_sent, 1);
}

/// A node with neighbours 1, 3 and 4 whose tree for 3's messages on "news"
/// has settled to eager {3, 4}, lazy {1}; with 3's key.
fn settled_news_tree(mesh: &Mesh) -> (N, Keypair) {
    let (mut a, _, _) = node(mesh, 1);
    let (mut b, _, _) = node(mesh, 2);
    let (mut c, c_key, _) = node(mesh, 3);
    let (mut d, _, _) = node(mesh, 4);
    for n in [&mut a, &mut c, &mut d] {
        connect(n, &mut b, START_MS);
        b.handle(
            START_MS,
            Input::Frame {
                from: n.peer(),
                bytes: frame(Body::Join(starling_gossip::wire::Join {})),
            },
        )
        .unwrap();
    }
    drain(&mut b);
    let from_c = news(mesh, &c_key, 1);
    b.handle(START_MS, from_c.frame(3, 1)).unwrap();
    b.handle(START_MS, from_c.frame(1, 2)).unwrap();
    drain(&mut b);
    assert_eq!(b.broadcast().links("news", b.active_view()), (2, 1));
    (b, c_key)
}

/// A signed message on "news" and the gossip frames carrying it.
struct News {
    item: Vec<u8>,
    id: u64,
}

fn news(mesh: &Mesh, key: &Keypair, seq: u64) -> News {
    let m = starling_gossip::SignedMessage::sign(
        key,
        starling_trust::keys::Domain::Message,
        &mesh.genesis.id(),
        "news",
        seq,
        START_MS,
        b"hi".to_vec(),
    );
    News {
        id: u64::from_le_bytes(m.id[..8].try_into().unwrap()),
        item: m.raw,
    }
}

impl News {
    fn gossip(&self, round: u32) -> Body {
        Body::Gossip(Gossip {
            kind: ItemKind::Message as i32,
            round,
            item: self.item.clone(),
        })
    }

    /// The frame as it arrives from `from` after `round` hops.
    fn frame(&self, from: u32, round: u32) -> Input<u32> {
        Input::Frame {
            from,
            bytes: frame(self.gossip(round)),
        }
    }
}

#[test]
fn a_graft_makes_the_link_eager_and_is_answered_unless_link_only() {
    let mesh = Mesh::new();
    for link_only in [false, true] {
        let (mut b, c_key) = settled_news_tree(&mesh);
        let from_c = news(&mesh, &c_key, 1);
        b.handle(START_MS + 10, graft(from_c.id, link_only))
            .unwrap();
        let answer = match link_only {
            false => vec![(1, from_c.gossip(2))],
            true => vec![],
        };
        assert_eq!(sends(&mut b), answer);
        assert_eq!(b.broadcast().links("news", b.active_view()), (3, 0));
        // An id not in the cache: no answer.
        b.handle(START_MS + 10, graft(!from_c.id, false)).unwrap();
        assert_eq!(drain(&mut b), []);
    }
}

/// A graft of item `id` from peer 1.
fn graft(id: u64, link_only: bool) -> Input<u32> {
    Input::Frame {
        from: 1,
        bytes: frame(Body::Graft(Graft { id, link_only })),
    }
}

/// What `n` sent, in order, with every other output left out.
fn sends(n: &mut N) -> Vec<(u32, Body)> {
    drain(n)
        .iter()
        .filter(|o| matches!(o, Output::Send { .. }))
        .map(body)
        .collect()
}

fn ihave(id: u64, hops: u8) -> Input<u32> {
    Input::Frame {
        from: 1,
        bytes: frame(Body::IHave(IHave {
            ids: vec![id],
            hops: vec![hops],
        })),
    }
}

fn link_only(id: u64) -> Body {
    Body::Graft(Graft {
        id,
        link_only: true,
    })
}

fn prune_news(origin: &Keypair) -> Body {
    Body::Prune(Prune {
        tree: "news".into(),
        origin: origin.did().as_bytes().to_vec(),
    })
}

#[test]
fn a_new_origins_tree_starts_as_a_copy_of_its_topics_tree() {
    let mesh = Mesh::new();
    // b's tree of c's messages: 3 (c) and 4 eager, 1 lazy.
    let (mut b, _) = settled_news_tree(&mesh);
    let (d_key, _) = mesh.agent(4, &SCOPE);
    let from_d = news(&mesh, &d_key, 1);
    b.handle(START_MS + 10, from_d.frame(4, 1)).unwrap();
    // d's first message follows the copy instead of flooding: on to 3,
    // and 1 only hears of it.
    assert_eq!(sends(&mut b), [(3, from_d.gossip(2))]);
    b.handle(START_MS + 60, Input::Timer(Timer::IHaveFlush))
        .unwrap();
    let announced = Body::IHave(IHave {
        ids: vec![from_d.id],
        hops: vec![1],
    });
    assert_eq!(sends(&mut b), [(1, announced)]);
    assert_eq!(b.broadcast().trees(), 2);
}

#[test]
fn an_announcer_two_hops_closer_to_the_origin_becomes_the_parent() {
    let mesh = Mesh::new();
    let (mut b, c_key) = settled_news_tree(&mesh);
    let second = news(&mesh, &c_key, 2);
    // The tree brings c's next message over four hops.
    b.handle(START_MS + 10, second.frame(3, 4)).unwrap();
    drain(&mut b);
    // 1 got it over three: no closer than one hop, no move.
    b.handle(START_MS + 20, ihave(second.id, 3)).unwrap();
    assert_eq!(sends(&mut b), []);
    // Over two: 1 becomes the parent (eager without resending the item)
    // and the old parent link is pruned.
    b.handle(START_MS + 30, ihave(second.id, 2)).unwrap();
    assert_eq!(
        sends(&mut b),
        [(1, link_only(second.id)), (3, prune_news(&c_key))]
    );
    assert_eq!(b.broadcast().links("news", b.active_view()), (2, 1));
    // A copy from the new parent, say the answer to an earlier graft, is
    // a duplicate that prunes nothing.
    b.handle(START_MS + 40, second.frame(1, 3)).unwrap();
    assert_eq!(sends(&mut b), []);
    // The next message comes from 1 and goes on to 4 alone.
    let third = news(&mesh, &c_key, 3);
    b.handle(START_MS + 50, third.frame(1, 3)).unwrap();
    assert_eq!(sends(&mut b), [(4, third.gossip(4))]);
}

#[test]
fn an_announcement_before_the_item_counts_when_the_item_comes() {
    let mesh = Mesh::new();
    let (mut b, c_key) = settled_news_tree(&mesh);
    let second = news(&mesh, &c_key, 2);
    b.handle(START_MS + 10, ihave(second.id, 1)).unwrap();
    assert_eq!(sends(&mut b), []);
    b.handle(START_MS + 20, second.frame(3, 4)).unwrap();
    assert_eq!(
        sends(&mut b),
        [
            (4, second.gossip(5)),
            (1, link_only(second.id)),
            (3, prune_news(&c_key))
        ]
    );
    // The item came: the graft timer finds nothing to do.
    b.handle(START_MS + 300, Input::Timer(Timer::Graft(second.id)))
        .unwrap();
    assert_eq!(sends(&mut b), []);
}

#[test]
fn anti_entropy_sends_only_what_the_other_lacks() {
    let mesh = Mesh::new();
    let (mut a, _, _) = node(&mesh, 1);
    let (mut b, b_key, _) = node(&mesh, 2);
    connect(&mut a, &mut b, START_MS);
    for n in [&mut a, &mut b] {
        n.handle(
            START_MS,
            Input::Frame {
                from: if n.peer() == 1 { 2 } else { 1 },
                bytes: frame(Body::Join(starling_gossip::wire::Join {})),
            },
        )
        .unwrap();
    }
    drain(&mut a);
    drain(&mut b);
    // a learns a vouch b has never seen, outside the broadcast tree.
    let vouch = Record::create(
        &mesh.governor,
        &mesh.genesis,
        START_MS,
        starling_trust::Evidence::Vouch(starling_trust::evidence::record::Vouch {
            subject: b_key.did(),
            weight: 50,
            expires_ms: START_MS + 1_000_000,
        }),
    )
    .unwrap();
    a.handle(
        START_MS,
        Input::Command(Command::SubmitEvidence {
            record: vouch.to_bytes().to_vec(),
        }),
    )
    .unwrap();
    drain(&mut a);
    drain(&mut b);
    assert!(!b.trust().store().contains(&vouch.id()));
    a.handle(START_MS + 5_000, Input::Timer(Timer::AntiEntropy))
        .unwrap();
    let mut from_a: Vec<_> = drain(&mut a);
    for _round in 0..6 {
        let mut from_b = Vec::new();
        for o in from_a.drain(..) {
            if let Output::Send { frame, .. } = o {
                b.handle(
                    START_MS + 5_000,
                    Input::Frame {
                        from: 1,
                        bytes: frame.into(),
                    },
                )
                .unwrap();
                from_b.extend(drain(&mut b));
            }
        }
        for o in from_b {
            if let Output::Send { frame, .. } = o {
                a.handle(
                    START_MS + 5_000,
                    Input::Frame {
                        from: 2,
                        bytes: frame.into(),
                    },
                )
                .unwrap();
                from_a.extend(drain(&mut a));
            }
        }
    }
    assert!(b.trust().store().contains(&vouch.id()));
    assert_eq!(a.trust().store(), b.trust().store());
}

#[test]
fn a_flooding_peer_is_rate_limited_and_graylisted() {
    let mesh = Mesh::new();
    let (mut a, _, _) = node(&mesh, 1);
    let (mut b, b_key, _) = node(&mesh, 2);
    connect(&mut a, &mut b, START_MS);
    drain(&mut a);
    let junk = frame(Body::Prune(Prune {
        tree: "x".into(),
        origin: vec![],
    }));
    for _ in 0..10_000 {
        a.handle(
            START_MS,
            Input::Frame {
                from: 2,
                bytes: junk.clone(),
            },
        )
        .unwrap();
    }
    let out = drain(&mut a);
    assert!(out.contains(&Output::Event(Event::Graylisted {
        peer: 2,
        did: b_key.did()
    })));
    assert!(out.contains(&Output::Disconnect(2)));
    assert_eq!(a.stats().dropped_rate_limited, 8);
    assert_eq!(a.admitted().count(), 0);
    // Reconnecting while graylisted is refused.
    let reason = refusal(
        &mut a,
        2,
        b_key.did(),
        Hello {
            mesh: mesh.genesis.id().to_vec(),
            agent_record: b
                .trust()
                .store()
                .agent(&b_key.did())
                .unwrap()
                .to_bytes()
                .to_vec(),
        },
    );
    assert_eq!(reason, "graylisted for repeated misbehaviour");
    // Bounded memory: the ids of a flood of distinct junk items are capped.
    assert!(a.broadcast().seen() <= Config::default().seen_max);
}

#[test]
fn one_principal_cannot_fill_the_active_view() {
    let mesh = Mesh::new();
    let (mut hub, _, _) = node(&mesh, 1);
    let org2 = mesh.other_org(40);
    let mut peers: Vec<N> = (100..105).map(|i| org_node(&mesh, &org2, i)).collect();
    for i in 0..3u32 {
        peers.push(node(&mesh, 10 + i).0);
    }
    for p in &mut peers {
        connect(&mut hub, p, START_MS);
        hub.handle(
            START_MS,
            Input::Frame {
                from: p.peer(),
                bytes: frame(Body::Join(starling_gossip::wire::Join {})),
            },
        )
        .unwrap();
    }
    let active = hub.active_view().to_vec();
    assert_eq!(active.len(), 5);
    // org2 filled the view first; each org1 join displaced one of org2's
    // peers until the two were level (3 and 2, then 3 and 3 counting the
    // third joiner): on that tie the newcomer's own principal gives way.
    let from_org2 = active.iter().filter(|p| **p >= 100).count();
    assert_eq!(from_org2, 3, "org2 holds {from_org2} of {active:?}");
    assert_eq!(active.len() - from_org2, 2);
}

proptest::proptest! {
    #[test]
    fn arbitrary_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..200), 1..20)) {
        let mesh = Mesh::new();
        let (mut a, _, _) = node(&mesh, 1);
        let (mut b, _, _) = node(&mesh, 2);
        connect(&mut a, &mut b, START_MS);
        for bytes in frames {
            a.handle(START_MS, Input::Frame { from: 2, bytes }).unwrap();
        }
        drain(&mut a);
    }
}

#[test]
fn a_neighbour_asking_again_is_accepted_in_a_full_view() {
    let mesh = Mesh::new();
    let (mut b, _, _) = node(&mesh, 2);
    for i in 3..8 {
        let (mut peer, _, _) = node(&mesh, i);
        join(&mut b, &mut peer);
    }
    drain(&mut b);
    assert_eq!(b.active_view(), [3, 4, 5, 6, 7]);
    let ask = frame(Body::Neighbor(starling_gossip::wire::Neighbor {
        high_priority: false,
    }));
    b.handle(
        START_MS,
        Input::Frame {
            from: 4,
            bytes: ask,
        },
    )
    .unwrap();
    let accepted = Body::NeighborReply(starling_gossip::wire::NeighborReply { accepted: true });
    assert_eq!(
        drain(&mut b),
        [Output::Send {
            to: 4,
            frame: sent(accepted)
        }]
    );
    assert_eq!(b.active_view(), [3, 4, 5, 6, 7]);
}

/// A shuffle reply's peers join the passive view one after another with
/// the view's principals looked up once; the view must end as it would
/// with each peer in a reply of its own. The view is full and split
/// between two principals, so every newcomer evicts a peer of the most
/// represented one and a wrongly tracked principal changes the victim.
#[test]
fn a_shuffle_reply_fills_the_passive_view_as_single_replies_would() {
    let mesh = Mesh::new();
    let org2 = mesh.other_org(40);
    let agents: Vec<(u32, Keypair, Arc<Record>)> = (100..120)
        .map(|i| {
            let (key, record) = mesh.agent(i, &SCOPE);
            (i, key, record)
        })
        .chain((200..220).map(|i| {
            let (key, record) = mesh.agent_of(&org2.0, &org2.1, i, &SCOPE);
            (i, key, record)
        }))
        .collect();
    let peer_ref = |(i, key, _): &(u32, Keypair, Arc<Record>)| starling_gossip::wire::PeerRef {
        peer: i.to_le_bytes().to_vec(),
        did: key.did().as_bytes().to_vec(),
    };
    // 15 of each principal fill the view; then the newcomers alternate.
    let fill: Vec<_> = agents[..15]
        .iter()
        .chain(&agents[20..35])
        .map(peer_ref)
        .collect();
    let newcomers: Vec<_> = (0..5)
        .flat_map(|k| [&agents[15 + k], &agents[35 + k]])
        .map(peer_ref)
        .collect();
    let replies = |batches: &[&[starling_gossip::wire::PeerRef]]| {
        let (mut hub, _, _) = node(&mesh, 1);
        let (mut helper, _, _) = node(&mesh, 2);
        connect(&mut hub, &mut helper, START_MS);
        let records = agents
            .iter()
            .map(|(_, _, r)| r.to_bytes().to_vec())
            .collect();
        let mut bodies = vec![Body::Records(starling_gossip::wire::Records { records })];
        for peers in fill.chunks(8).chain(batches.iter().copied()) {
            bodies.push(Body::ShuffleReply(starling_gossip::wire::ShuffleReply {
                peers: peers.to_vec(),
            }));
        }
        for b in bodies {
            let bytes = frame(b);
            hub.handle(START_MS, Input::Frame { from: 2, bytes })
                .unwrap();
        }
        let known = agents
            .iter()
            .filter(|(_, k, _)| hub.trust().store().agent(&k.did()).is_some());
        assert_eq!(known.count(), 40, "every agent record applies");
        hub.passive_view().to_vec()
    };
    let batched = replies(&[&newcomers[..8], &newcomers[8..]]);
    let singles: Vec<&[starling_gossip::wire::PeerRef]> = newcomers.chunks(1).collect();
    let one_by_one = replies(&singles);
    assert_eq!(batched.len(), 30);
    let org2_held = batched.iter().filter(|p| **p >= 200).count();
    assert_eq!(
        org2_held, 15,
        "each newcomer displaced its own principal's peer: {batched:?}"
    );
    assert_eq!(batched, one_by_one);
}

/// The organisation's revocation of agent `i`'s mandate, issued at `at`.
fn revocation(mesh: &Mesh, i: u32, at: u64) -> Record {
    let (_, record) = mesh.agent(i, &SCOPE);
    let starling_trust::Evidence::Agent(agent) = record.evidence() else {
        unreachable!("an agent record")
    };
    Record::create(
        &mesh.org,
        &mesh.genesis,
        at,
        starling_trust::Evidence::Revocation(starling_trust::evidence::record::Revocation {
            mandate: agent.chain.links()[1].clone(),
            reason: "compromised".into(),
        }),
    )
    .unwrap()
}

#[test]
fn a_recent_revocation_learned_by_reconciliation_goes_on_the_tree() {
    let mesh = Mesh::new();
    let (mut a, _, _) = node(&mesh, 1);
    let (mut b, _, _) = node(&mesh, 2);
    let (mut c, _, _) = node(&mesh, 3);
    join(&mut a, &mut b);
    join(&mut a, &mut c);
    // b hands a, by reconciliation, a revocation issued just within
    // `urgent_age_max_ms` and one issued just outside it.
    let window = Config::default().urgent_age_max_ms;
    let now = START_MS + 2 * window;
    let recent = revocation(&mesh, 8, now - window + 1);
    let old = revocation(&mesh, 9, now - window);
    let records = [&recent, &old].map(|r| r.to_bytes().to_vec()).to_vec();
    a.handle(
        now,
        Input::Frame {
            from: 2,
            bytes: frame(Body::Records(starling_gossip::wire::Records { records })),
        },
    )
    .unwrap();
    assert!(a.trust().store().contains(&recent.id()));
    assert!(a.trust().store().contains(&old.id()));
    let pushed: Vec<(u32, Vec<u8>)> = (drain(&mut a).iter())
        .filter(|o| matches!(o, Output::Send { .. }))
        .filter_map(|o| match body(o) {
            (to, Body::Gossip(g)) => Some((to, g.item)),
            _ => None,
        })
        .collect();
    // To every active neighbour: the tree's shape is left as it was, so b
    // too gets a copy (and prunes, as for any duplicate).
    let recent = recent.to_bytes().to_vec();
    assert_eq!(pushed, vec![(2, recent.clone()), (3, recent)]);
}

#[test]
fn a_lost_neighbour_that_does_not_answer_is_asked_again() {
    // b falls silent, as behind a partition that drops frames. a's driver
    // does what a driver does: a dial to b connects and a close is
    // reported. Either b's node never speaks, or only its handshake gets
    // through and never its reply to a's request.
    for hello_gets_through in [false, true] {
        let mesh = Mesh::new();
        let (mut a, _, _) = node(&mesh, 1);
        let (mut b, _, _) = node(&mesh, 2);
        join(&mut a, &mut b);
        assert_eq!(a.active_view(), [2]);
        let (mut asked, mut asked_early) = (0, 0);
        for second in 1..=180 {
            let now = START_MS + second * 1_000;
            if second == 120 {
                asked_early = asked;
            }
            for output in tick_beside_silent(&mut a, &mut b, now, hello_gets_through) {
                asked += usize::from(match output {
                    Output::Connect(2) => !hello_gets_through,
                    Output::Send { to: 2, .. } => {
                        hello_gets_through && matches!(body(&output).1, Body::Neighbor(_))
                    }
                    _ => false,
                });
            }
        }
        let case = format!("hello gets through: {hello_gets_through}");
        assert_eq!(a.stats().neighbors_lost, 1, "{case}");
        assert!(a.active_view().is_empty(), "{case}");
        // Each request went unanswered, and b is still kept to be asked.
        assert!(a.passive_view().contains(&2), "{case}");
        assert!(asked >= 4, "{case}: asked {asked} times");
        // And still asked after the first two minutes.
        assert!(asked > asked_early, "{case}");
    }
}

/// One housekeeping tick of `a` at `now` while peer 2, `b`, stays silent,
/// with a driver's part played: a dial to b connects (and, if
/// `hello_gets_through`, b's handshake arrives, and nothing after it), and
/// a close is reported. Returns everything `a` put out meanwhile.
fn tick_beside_silent(
    a: &mut N,
    b: &mut N,
    now: u64,
    hello_gets_through: bool,
) -> Vec<Output<u32>> {
    let mut outputs = Vec::new();
    let mut inputs = std::collections::VecDeque::from([Input::Timer(Timer::Tick)]);
    while let Some(input) = inputs.pop_front() {
        a.handle(now, input).unwrap();
        for output in drain(a) {
            match output {
                Output::Connect(2) => {
                    inputs.push_back(Input::Connected {
                        peer: 2,
                        did: b.did(),
                    });
                    if hello_gets_through {
                        let bytes = handshake_of(b, 1, a.did(), now);
                        inputs.push_back(Input::Frame { from: 2, bytes });
                    }
                }
                Output::Disconnect(2) => inputs.push_back(Input::Disconnected { peer: 2 }),
                _ => {}
            }
            outputs.push(output);
        }
    }
    outputs
}

/// Nodes 1 (`a`) and 2 (`b`), joined; then b falls silent until a loses
/// it. Returns them, and the time a lost b (its link's close reported).
fn a_loses_b(mesh: &Mesh) -> (N, N, u64) {
    let (mut a, _, _) = node(mesh, 1);
    let (mut b, _, _) = node(mesh, 2);
    join(&mut a, &mut b);
    let mut now = START_MS;
    while a.stats().neighbors_lost == 0 {
        now += 1_000;
        a.handle(now, Input::Timer(Timer::Tick)).unwrap();
    }
    for output in drain(&mut a) {
        if output == Output::Disconnect(2) {
            a.handle(now, Input::Disconnected { peer: 2 }).unwrap();
        }
    }
    (a, b, now)
}

/// The handshake frame `n` sends `peer` on a new connection.
fn handshake_of(n: &mut N, peer: u32, did: starling_trust::Did, now: u64) -> Vec<u8> {
    n.handle(now, Input::Disconnected { peer }).unwrap();
    n.handle(now, Input::Connected { peer, did }).unwrap();
    let hello = drain(n).into_iter().find_map(|o| match o {
        Output::Send { to, frame } if to == peer => Some(frame.to_vec()),
        _ => None,
    });
    hello.unwrap()
}

#[test]
fn copies_of_held_records_spend_nothing_of_their_authors_budget() {
    let mesh = Mesh::new();
    let (mut a, _, _) = node(&mesh, 1);
    let (mut b, _, _) = node(&mesh, 2);
    join(&mut a, &mut b);
    // The organisation (not a governor: its records are rate limited)
    // revoked twenty agents long ago (too long for a to push them on), and
    // a holds the revocations. b pushes a copy of each on the tree, as a
    // node that learned them by reconciliation might.
    let now = START_MS + Config::default().urgent_age_max_ms;
    let old: Vec<Record> = (10..30).map(|i| revocation(&mesh, i, START_MS)).collect();
    let records = old.iter().map(|r| r.to_bytes().to_vec()).collect();
    let records = Body::Records(starling_gossip::wire::Records { records });
    a.handle(
        now,
        Input::Frame {
            from: 2,
            bytes: frame(records),
        },
    )
    .unwrap();
    let copy = |r: &Record| Input::Frame {
        from: 2,
        bytes: frame(Body::Gossip(Gossip {
            kind: ItemKind::Evidence as i32,
            round: 1,
            item: r.to_bytes().to_vec(),
        })),
    };
    for r in &old {
        assert!(a.trust().store().contains(&r.id()));
        a.handle(now, copy(r)).unwrap();
    }
    assert_eq!(a.stats().dropped_rate_limited, 0);
    assert_eq!(a.stats().violations_reported, 0);
    // Its budget intact, the organisation's next record is taken at once.
    let next = revocation(&mesh, 9, now);
    a.handle(now, copy(&next)).unwrap();
    assert!(a.trust().store().contains(&next.id()));
}

#[test]
fn a_lost_neighbour_that_answers_is_taken_into_a_full_view() {
    let mesh = Mesh::new();
    let (mut a, mut b, mut now) = a_loses_b(&mesh);
    // Meanwhile a's view fills with five others, as a refill would fill it.
    let mut others: Vec<N> = (3..8).map(|i| node(&mesh, i).0).collect();
    for other in &mut others {
        connect(&mut a, other, now);
        let bytes = frame(Body::Join(starling_gossip::wire::Join {}));
        let from = other.peer();
        a.handle(now, Input::Frame { from, bytes }).unwrap();
    }
    drain(&mut a);
    assert_eq!(a.active_view().len(), a.config().active_size);
    // a asks b back; b's node answers, accepting.
    loop {
        now += 1_000;
        if tick_beside_silent(&mut a, &mut b, now, true).contains(&Output::Connect(2)) {
            break;
        }
    }
    let bytes = frame(Body::NeighborReply(NeighborReply { accepted: true }));
    a.handle(now, Input::Frame { from: 2, bytes }).unwrap();
    assert!(a.active_view().contains(&2), "{:?}", a.active_view());
    assert_eq!(a.active_view().len(), a.config().active_size);
}

#[test]
fn a_lost_neighbour_found_unfit_is_not_asked_again() {
    let mesh = Mesh::new();
    let (mut a, mut b, mut now) = a_loses_b(&mesh);
    // While b is silent, a learns that b's mandate was revoked.
    let record = revocation(&mesh, 2, now).to_bytes().to_vec();
    let submit = Input::Command(Command::SubmitEvidence { record });
    a.handle(now, submit).unwrap();
    // Asked back, b's handshake is refused, and b is asked no more.
    let mut asked = 0;
    for _ in 0..300 {
        now += 1_000;
        let outputs = tick_beside_silent(&mut a, &mut b, now, true);
        asked += outputs.iter().filter(|o| **o == Output::Connect(2)).count();
    }
    assert_eq!(asked, 1);
    assert!(!a.passive_view().contains(&2));
    assert_eq!(a.stats().peers_refused, 1);
}
