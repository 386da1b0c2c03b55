//! Frames: the prost messages peers exchange, versioned and size-capped.
//!
//! A stream carries frames, each prefixed by its length as an unsigned
//! LEB128 varint ([`encode_delimited`], [`decode_delimited`]). Every frame
//! names the wire version. Decoding arbitrary bytes returns an error, never
//! panics; what a well-formed frame *means* is checked by the state machine.

use prost::Message;
use prost::encoding::WireType;
use starling_trust::RecordId;
use starling_trust::evidence::reconcile::Fingerprint;

/// The wire version this build speaks.
pub const FRAME_VERSION: u32 = 2;

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Larger than the configured cap.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not a protobuf frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Another wire version.
    #[error("frame has wire version {0}; this node speaks version {FRAME_VERSION}")]
    Version(u32),
    /// A frame with no body.
    #[error("frame has no body")]
    Empty,
    /// The length prefix is not a valid varint.
    #[error("bad length prefix")]
    BadLength,
}

/// One frame.
#[derive(Clone, PartialEq, Message)]
pub struct Frame {
    /// [`FRAME_VERSION`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// What the frame says.
    #[prost(
        oneof = "Body",
        tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23"
    )]
    pub body: Option<Body>,
}

/// The frame kinds.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    /// Handshake: mesh id and the sender's signed agent record.
    #[prost(message, tag = "2")]
    Hello(Hello),
    /// Handshake refused, with a reason, before disconnecting.
    #[prost(message, tag = "3")]
    Refuse(Refuse),
    /// HyParView: a new node asks to join through this contact.
    #[prost(message, tag = "4")]
    Join(Join),
    /// HyParView: a join travelling a random walk.
    #[prost(message, tag = "5")]
    ForwardJoin(ForwardJoin),
    /// HyParView: asks to become an active neighbour.
    #[prost(message, tag = "6")]
    Neighbor(Neighbor),
    /// HyParView: the answer to a neighbour request.
    #[prost(message, tag = "7")]
    NeighborReply(NeighborReply),
    /// HyParView: leaving the receiver's active view.
    #[prost(message, tag = "8")]
    Disconnect(Disconnect),
    /// HyParView: a shuffle travelling a random walk.
    #[prost(message, tag = "9")]
    Shuffle(Shuffle),
    /// HyParView: the answer to a shuffle.
    #[prost(message, tag = "10")]
    ShuffleReply(ShuffleReply),
    /// Plumtree: an item pushed eagerly.
    #[prost(message, tag = "11")]
    Gossip(Gossip),
    /// Plumtree: ids of items the sender holds (lazy push).
    #[prost(message, tag = "12")]
    IHave(IHave),
    /// Plumtree: send me this item and make this link eager.
    #[prost(message, tag = "13")]
    Graft(Graft),
    /// Plumtree: make this link lazy for a topic.
    #[prost(message, tag = "14")]
    Prune(Prune),
    /// Anti-entropy: range fingerprints or id lists of evidence.
    #[prost(message, tag = "15")]
    Reconcile(Reconcile),
    /// Anti-entropy: send me these records.
    #[prost(message, tag = "16")]
    Want(Want),
    /// Anti-entropy: evidence records.
    #[prost(message, tag = "17")]
    Records(Records),
    /// Anti-entropy: the heads of the sender's policy document.
    #[prost(message, tag = "18")]
    PolicyHeads(PolicyHeads),
    /// Anti-entropy: every policy change the sender holds.
    #[prost(message, tag = "19")]
    PolicyHave(PolicyHave),
    /// Anti-entropy: signed policy change envelopes.
    #[prost(message, tag = "20")]
    PolicyChanges(PolicyChanges),
    /// A direct message for the receiving node's agent.
    #[prost(message, tag = "21")]
    Direct(Direct),
    /// Send me these agents' records (I hold messages from them).
    #[prost(message, tag = "22")]
    WantAgents(WantAgents),
    /// Liveness: are you there (or, as a reply, I am).
    #[prost(message, tag = "23")]
    Probe(Probe),
}

/// A peer named in a join or shuffle: its id and the DID it claims.
#[derive(Clone, PartialEq, Message)]
pub struct PeerRef {
    /// The driver's peer id, in wire form.
    #[prost(bytes = "vec", tag = "1")]
    pub peer: Vec<u8>,
    /// Its DID key (a hint; checked at its handshake).
    #[prost(bytes = "vec", tag = "2")]
    pub did: Vec<u8>,
}

/// Handshake.
#[derive(Clone, PartialEq, Message)]
pub struct Hello {
    /// The sender's mesh id (genesis hash).
    #[prost(bytes = "vec", tag = "1")]
    pub mesh: Vec<u8>,
    /// The sender's signed agent record (its mandate chain and KEM key).
    #[prost(bytes = "vec", tag = "2")]
    pub agent_record: Vec<u8>,
}

/// Handshake refusal.
#[derive(Clone, PartialEq, Message)]
pub struct Refuse {
    /// Why.
    #[prost(string, tag = "1")]
    pub reason: String,
}

/// Join request.
#[derive(Clone, PartialEq, Message)]
pub struct Join {}

/// Forwarded join.
#[derive(Clone, PartialEq, Message)]
pub struct ForwardJoin {
    /// The joining node.
    #[prost(message, optional, tag = "1")]
    pub peer: Option<PeerRef>,
    /// Hops left.
    #[prost(uint32, tag = "2")]
    pub ttl: u32,
}

/// Neighbour request.
#[derive(Clone, PartialEq, Message)]
pub struct Neighbor {
    /// Set when the sender's active view is empty: must be accepted.
    #[prost(bool, tag = "1")]
    pub high_priority: bool,
}

/// Neighbour answer.
#[derive(Clone, PartialEq, Message)]
pub struct NeighborReply {
    /// Whether the receiver is now an active neighbour.
    #[prost(bool, tag = "1")]
    pub accepted: bool,
}

/// Leaving the active view.
#[derive(Clone, PartialEq, Message)]
pub struct Disconnect {
    /// The sender stays up (keep it in the passive view).
    #[prost(bool, tag = "1")]
    pub alive: bool,
}

/// Shuffle request.
#[derive(Clone, PartialEq, Message)]
pub struct Shuffle {
    /// Who started it (the reply goes there).
    #[prost(message, optional, tag = "1")]
    pub origin: Option<PeerRef>,
    /// Hops left.
    #[prost(uint32, tag = "2")]
    pub ttl: u32,
    /// Sample of the origin's views.
    #[prost(message, repeated, tag = "3")]
    pub peers: Vec<PeerRef>,
}

/// Shuffle answer.
#[derive(Clone, PartialEq, Message)]
pub struct ShuffleReply {
    /// Sample of the replier's passive view.
    #[prost(message, repeated, tag = "1")]
    pub peers: Vec<PeerRef>,
}

/// What a gossip item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum ItemKind {
    /// An application message on a topic.
    Message = 0,
    /// An evidence record.
    Evidence = 1,
    /// A policy change envelope.
    Policy = 2,
}

/// An item pushed along the broadcast tree.
#[derive(Clone, PartialEq, Message)]
pub struct Gossip {
    /// What the item is.
    #[prost(enumeration = "ItemKind", tag = "1")]
    pub kind: i32,
    /// Hops from the origin.
    #[prost(uint32, tag = "2")]
    pub round: u32,
    /// The signed item, exactly as its author signed it. Its tree is not
    /// sent: a message's is its topic and origin, which it signs; evidence
    /// and policy each have one.
    #[prost(bytes = "vec", tag = "3")]
    pub item: Vec<u8>,
}

/// Lazy push: items the sender holds, named by short id (the first 64 bits
/// of the id, see `broadcast::short_id`). The tree is not named: a graft
/// finds it in the announcer's cache, and the item names it when it comes.
/// Eight bytes an announcement instead of a whole id, tree and origin,
/// and one for the hops the sender's copy took, which tells a receiver
/// whether the sender is closer to the item's origin than its own parent
/// in the tree (see `broadcast`).
#[derive(Clone, PartialEq, Message)]
pub struct IHave {
    /// The announced items' short ids.
    #[prost(fixed64, repeated, tag = "1")]
    pub ids: Vec<u64>,
    /// For each id in turn, the hops the sender's copy took from its
    /// origin (at most 255). Entries past the end are unknown.
    #[prost(bytes = "vec", tag = "2")]
    pub hops: Vec<u8>,
}

/// Graft: send an announced item, and make the link eager in its tree.
#[derive(Clone, PartialEq, Message)]
pub struct Graft {
    /// The item's short id (see [`IHave`]).
    #[prost(fixed64, tag = "1")]
    pub id: u64,
    /// Only make the link eager: the grafter has the item already, and
    /// takes this link because it is fewer hops from the origin.
    #[prost(bool, tag = "2")]
    pub link_only: bool,
}

/// Prune.
#[derive(Clone, PartialEq, Message)]
pub struct Prune {
    /// The tree.
    #[prost(string, tag = "1")]
    pub tree: String,
    /// The origin whose tree it is.
    #[prost(bytes = "vec", tag = "2")]
    pub origin: Vec<u8>,
}

/// One reconciliation part (see `starling_trust::evidence::reconcile`).
///
/// Its codec is written out by hand, byte for byte what `#[derive(Message)]`
/// gives for the fields as documented (numbers and types in brackets), so
/// that a part's fingerprint and ids are read into arrays in place: a
/// vector of their own for each, as the derived codec makes, was the
/// largest single cost of a simulated node. A fingerprint or id of the
/// wrong length does not fail the decoding; it marks the part `malformed`,
/// for the receiver to refuse it as it refuses any bad range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangePart {
    /// Range prefix, left-aligned (1, fixed64).
    pub prefix: u64,
    /// Prefix length in bits (2, uint32).
    pub bits: u32,
    /// For a fingerprint part: the count (3, uint64).
    pub count: u64,
    /// For a fingerprint part, the fingerprint; absent (empty bytes) for an
    /// id list (4, bytes).
    pub fingerprint: Option<Fingerprint>,
    /// For an id list: the ids (5, repeated bytes).
    pub ids: Vec<RecordId>,
    /// A fingerprint or id of another length, or cut short, was read.
    pub malformed: bool,
}

/// Bytes of a range fingerprint.
pub const FINGERPRINT_BYTES: usize = size_of::<Fingerprint>();

/// Reads a length-delimited field into `out` if it is exactly as long, and
/// skips it otherwise; returns its length, or `None` if it runs past the
/// end of the buffer. That consumes the buffer, which the enclosing
/// message's length check then reports.
fn merge_array(
    wire_type: WireType,
    out: &mut [u8],
    buf: &mut impl prost::bytes::Buf,
) -> Result<Option<usize>, prost::DecodeError> {
    prost::encoding::check_wire_type(WireType::LengthDelimited, wire_type)?;
    let len = prost::encoding::decode_varint(buf)?;
    let Some(len) = usize::try_from(len).ok().filter(|l| *l <= buf.remaining()) else {
        buf.advance(buf.remaining());
        return Ok(None);
    };
    match len == out.len() {
        true => buf.copy_to_slice(out),
        false => buf.advance(len),
    }
    Ok(Some(len))
}

/// Writes `bytes` as length-delimited field `tag` (below 16).
fn encode_array(tag: u32, bytes: &[u8], buf: &mut impl prost::bytes::BufMut) {
    prost::encoding::encode_key(tag, WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(bytes.len() as u64, buf);
    buf.put_slice(bytes);
}

/// The encoded length of [`encode_array`]'s field.
fn array_len(bytes: &[u8]) -> usize {
    1 + prost::encoding::encoded_len_varint(bytes.len() as u64) + bytes.len()
}

impl Message for RangePart {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        use prost::encoding::{fixed64, uint32, uint64};
        if self.prefix != 0 {
            fixed64::encode(1, &self.prefix, buf);
        }
        if self.bits != 0 {
            uint32::encode(2, &self.bits, buf);
        }
        if self.count != 0 {
            uint64::encode(3, &self.count, buf);
        }
        if let Some(fingerprint) = &self.fingerprint {
            encode_array(4, fingerprint, buf);
        }
        for id in &self.ids {
            encode_array(5, id, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        use prost::encoding::{fixed64, skip_field, uint32, uint64};
        match tag {
            1 => fixed64::merge(wire_type, &mut self.prefix, buf, ctx),
            2 => uint32::merge(wire_type, &mut self.bits, buf, ctx),
            3 => uint64::merge(wire_type, &mut self.count, buf, ctx),
            4 => {
                let mut fingerprint = Fingerprint::default();
                let len = merge_array(wire_type, &mut fingerprint, buf)?;
                // Empty bytes are absence.
                self.fingerprint = (len == Some(FINGERPRINT_BYTES)).then_some(fingerprint);
                self.malformed |= len != Some(0) && self.fingerprint.is_none();
                Ok(())
            }
            5 => {
                let mut id = RecordId::default();
                match merge_array(wire_type, &mut id, buf)? == Some(id.len()) {
                    true => self.ids.push(id),
                    false => self.malformed = true,
                }
                Ok(())
            }
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        use prost::encoding::{fixed64, uint32, uint64};
        let unless_zero = |value: u64, len: usize| if value == 0 { 0 } else { len };
        unless_zero(self.prefix, fixed64::encoded_len(1, &self.prefix))
            + unless_zero(self.bits.into(), uint32::encoded_len(2, &self.bits))
            + unless_zero(self.count, uint64::encoded_len(3, &self.count))
            + self.fingerprint.as_ref().map_or(0, |f| array_len(f))
            + self.ids.iter().map(|id| array_len(id)).sum::<usize>()
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Evidence reconciliation step.
#[derive(Clone, PartialEq, Message)]
pub struct Reconcile {
    /// The parts.
    #[prost(message, repeated, tag = "1")]
    pub parts: Vec<RangePart>,
}

/// Request for records.
#[derive(Clone, PartialEq, Message)]
pub struct Want {
    /// Record ids.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub ids: Vec<Vec<u8>>,
}

/// Records.
#[derive(Clone, PartialEq, Message)]
pub struct Records {
    /// Signed records.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub records: Vec<Vec<u8>>,
}

/// Policy heads.
#[derive(Clone, PartialEq, Message)]
pub struct PolicyHeads {
    /// Change hashes.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub heads: Vec<Vec<u8>>,
}

/// Every policy change held.
#[derive(Clone, PartialEq, Message)]
pub struct PolicyHave {
    /// Change hashes.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub hashes: Vec<Vec<u8>>,
}

/// Policy change envelopes.
#[derive(Clone, PartialEq, Message)]
pub struct PolicyChanges {
    /// Signed envelopes.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub changes: Vec<Vec<u8>>,
}

/// Request for agent records by DID.
#[derive(Clone, PartialEq, Message)]
pub struct WantAgents {
    /// DID keys.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub dids: Vec<Vec<u8>>,
}

/// A liveness probe on an active link that carried nothing for a while;
/// a probe that is not a reply asks for one.
#[derive(Clone, PartialEq, Message)]
pub struct Probe {
    /// Whether this answers a probe.
    #[prost(bool, tag = "1")]
    pub reply: bool,
}

/// A direct message.
#[derive(Clone, PartialEq, Message)]
pub struct Direct {
    /// The signed direct message.
    #[prost(bytes = "vec", tag = "1")]
    pub message: Vec<u8>,
}

impl Frame {
    /// A frame of this body.
    pub fn new(body: Body) -> Self {
        Self {
            version: FRAME_VERSION,
            body: Some(body),
        }
    }

    /// Encodes the frame (without a length prefix).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Decodes one frame of at most `max` bytes.
    pub fn decode_capped(bytes: &[u8], max: usize) -> Result<Body, FrameError> {
        if bytes.len() > max {
            return Err(FrameError::TooLarge {
                len: bytes.len(),
                max,
            });
        }
        let frame = Frame::decode(bytes).map_err(|e| FrameError::Malformed(e.to_string()))?;
        if frame.version != FRAME_VERSION {
            return Err(FrameError::Version(frame.version));
        }
        frame.body.ok_or(FrameError::Empty)
    }
}

/// Prefixes a frame with its length (unsigned LEB128).
pub fn encode_delimited(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 5);
    prost::encoding::encode_varint(frame.len() as u64, &mut out);
    out.extend_from_slice(frame);
    out
}

/// Splits one length-prefixed frame off the front of `buf`: `Ok(None)` when
/// more bytes are needed, else the frame and how many bytes it used. A
/// declared length over `max` is an error before any of it is buffered.
pub fn decode_delimited(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let mut len: u64 = 0;
    for (i, byte) in buf.iter().take(10).enumerate() {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let len = usize::try_from(len).map_err(|_| FrameError::BadLength)?;
            if len > max {
                return Err(FrameError::TooLarge { len, max });
            }
            let start = i + 1;
            return Ok(buf
                .get(start..start + len)
                .map(|frame| (frame, start + len)));
        }
        if i == 9 {
            return Err(FrameError::BadLength);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body() -> impl Strategy<Value = Body> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..40);
        let peer_ref = (bytes(), bytes()).prop_map(|(peer, did)| PeerRef { peer, did });
        prop_oneof![
            (bytes(), bytes())
                .prop_map(|(mesh, agent_record)| Body::Hello(Hello { mesh, agent_record })),
            ".{0,20}".prop_map(|reason| Body::Refuse(Refuse { reason })),
            Just(Body::Join(Join {})),
            (peer_ref.clone(), any::<u32>())
                .prop_map(|(p, ttl)| Body::ForwardJoin(ForwardJoin { peer: Some(p), ttl })),
            any::<bool>().prop_map(|high_priority| Body::Neighbor(Neighbor { high_priority })),
            any::<bool>().prop_map(|reply| Body::Probe(Probe { reply })),
            (proptest::collection::vec(peer_ref, 0..4), any::<u32>()).prop_map(|(peers, ttl)| {
                Body::Shuffle(Shuffle {
                    origin: None,
                    ttl,
                    peers,
                })
            }),
            (0i32..3, any::<u32>(), bytes()).prop_map(|(kind, round, item)| Body::Gossip(Gossip {
                kind,
                round,
                item
            })),
            (
                proptest::collection::vec(any::<u64>(), 0..4),
                proptest::collection::vec(any::<u8>(), 0..4)
            )
                .prop_map(|(ids, hops)| Body::IHave(IHave { ids, hops })),
            (any::<u64>(), any::<bool>())
                .prop_map(|(id, link_only)| Body::Graft(Graft { id, link_only })),
            (
                any::<u64>(),
                any::<u32>(),
                any::<u64>(),
                any::<Option<Fingerprint>>(),
                proptest::collection::vec(any::<RecordId>(), 0..3)
            )
                .prop_map(|(prefix, bits, count, fingerprint, ids)| Body::Reconcile(
                    Reconcile {
                        parts: vec![RangePart {
                            prefix,
                            bits,
                            count,
                            fingerprint,
                            ids,
                            malformed: false,
                        }]
                    }
                )),
            proptest::collection::vec(bytes(), 0..4)
                .prop_map(|records| Body::Records(Records { records })),
        ]
    }

    /// What [`RangePart`] was before its codec was written out: the
    /// derived message its bytes must stay identical to.
    #[derive(Clone, PartialEq, Message)]
    struct DerivedRangePart {
        #[prost(fixed64, tag = "1")]
        prefix: u64,
        #[prost(uint32, tag = "2")]
        bits: u32,
        #[prost(uint64, tag = "3")]
        count: u64,
        #[prost(bytes = "vec", tag = "4")]
        fingerprint: Vec<u8>,
        #[prost(bytes = "vec", repeated, tag = "5")]
        ids: Vec<Vec<u8>>,
    }

    /// Lengths that are right for a fingerprint or id, and some that are not.
    fn field_bytes(right: usize) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), right),
            proptest::collection::vec(any::<u8>(), 0..40),
        ]
    }

    proptest! {
        #[test]
        fn range_parts_encode_as_derived(
            prefix in any::<u64>(),
            bits in any::<u32>(),
            count in any::<u64>(),
            fingerprint in any::<Option<Fingerprint>>(),
            ids in proptest::collection::vec(any::<RecordId>(), 0..4),
        ) {
            let part = RangePart { prefix, bits, count, fingerprint, ids: ids.clone(), malformed: false };
            let derived = DerivedRangePart {
                prefix,
                bits,
                count,
                fingerprint: fingerprint.map(|f| f.to_vec()).unwrap_or_default(),
                ids: ids.iter().map(|id| id.to_vec()).collect(),
            };
            prop_assert_eq!(part.encode_to_vec(), derived.encode_to_vec());
            prop_assert_eq!(part.encoded_len(), derived.encoded_len());
            prop_assert_eq!(RangePart::decode(derived.encode_to_vec().as_slice()).unwrap(), part);
        }

        #[test]
        fn range_parts_decode_as_derived(
            prefix in any::<u64>(),
            bits in any::<u32>(),
            count in any::<u64>(),
            fingerprint in field_bytes(FINGERPRINT_BYTES),
            ids in proptest::collection::vec(field_bytes(32), 0..4),
        ) {
            let derived = DerivedRangePart { prefix, bits, count, fingerprint, ids };
            let part = RangePart::decode(derived.encode_to_vec().as_slice()).unwrap();
            let fingerprint_ok = matches!(derived.fingerprint.len(), 0 | FINGERPRINT_BYTES);
            let ids_ok = derived.ids.iter().all(|id| id.len() == 32);
            prop_assert_eq!(part.malformed, !(fingerprint_ok && ids_ok));
            prop_assert_eq!((part.prefix, part.bits, part.count), (prefix, bits, count));
            if !part.malformed {
                prop_assert_eq!(part.fingerprint.map(|f| f.to_vec()).unwrap_or_default(), derived.fingerprint);
                let ids: Vec<Vec<u8>> = part.ids.iter().map(|id| id.to_vec()).collect();
                prop_assert_eq!(ids, derived.ids);
            }
        }

        #[test]
        fn truncated_range_parts_are_refused(
            ids in proptest::collection::vec(any::<RecordId>(), 1..4),
            cut in 1usize..32,
        ) {
            let part = RangePart { ids, ..RangePart::default() };
            let bytes = part.encode_to_vec();
            let truncated = &bytes[..bytes.len() - cut];
            prop_assert!(RangePart::decode(truncated).unwrap().malformed);
            let reconcile = Reconcile { parts: vec![part] }.encode_to_vec();
            prop_assert!(Reconcile::decode(&reconcile[..reconcile.len() - cut]).is_err());
        }

        #[test]
        fn frames_round_trip(body in body()) {
            let bytes = Frame::new(body.clone()).encode();
            prop_assert_eq!(Frame::decode_capped(&bytes, 1 << 20).unwrap(), body);
            let delimited = encode_delimited(&bytes);
            let (frame, used) = decode_delimited(&delimited, 1 << 20).unwrap().unwrap();
            prop_assert_eq!(frame, bytes.as_slice());
            prop_assert_eq!(used, delimited.len());
            prop_assert_eq!(decode_delimited(&delimited[..delimited.len() - 1], 1 << 20).unwrap(), None);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Frame::decode_capped(&bytes, 512);
            let _ = decode_delimited(&bytes, 512);
        }
    }

    #[test]
    fn oversize_and_foreign_versions_are_refused() {
        let bytes = Frame::new(Body::Join(Join {})).encode();
        assert_eq!(
            Frame::decode_capped(&bytes, 1),
            Err(FrameError::TooLarge {
                len: bytes.len(),
                max: 1
            })
        );
        let v1 = Frame {
            version: 1,
            body: Some(Body::Join(Join {})),
        }
        .encode();
        let refused = Frame::decode_capped(&v1, 100);
        assert_eq!(refused, Err(FrameError::Version(1)));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "frame has wire version 1; this node speaks version 2"
        );
        assert_eq!(
            decode_delimited(&[0xff; 11], 100),
            Err(FrameError::BadLength)
        );
        assert_eq!(
            decode_delimited(&[0x80, 0x80, 0x04], 100),
            Err(FrameError::TooLarge {
                len: 65536,
                max: 100
            })
        );
        let empty = Frame {
            version: FRAME_VERSION,
            body: None,
        }
        .encode();
        assert_eq!(Frame::decode_capped(&empty, 100), Err(FrameError::Empty));
        assert_eq!(Frame::decode_capped(&[], 100), Err(FrameError::Version(0)));
    }
}
