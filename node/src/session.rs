//! Gossip frames over libp2p streams.
//!
//! Each side sends on a stream it opened itself and reads from the stream
//! the other side opened: two unidirectional streams per peer, so there is
//! no race over who opens "the" stream and frames in each direction stay in
//! order. Frames are length-prefixed with the core's own helpers and capped
//! at the core's `frame_bytes_max` before any of a frame is buffered.
//!
//! Writers take frames from a bounded channel; when it is full the event loop
//! drops the frame (Plumtree repairs the loss with IHAVE/GRAFT) rather than
//! block everyone else behind a slow peer. Readers push into the event
//! loop's bounded channel and wait when it is full, which back-pressures the
//! peer through yamux flow control. The channel is bounded in bytes as well
//! as in frames: each queued frame holds permits of a shared
//! [`InboundBudget`] worth its size until the loop has handled it, so a
//! peer sending large frames faster than the loop handles them can hold at
//! most `INBOUND_BYTES_MAX` of queued frames, not `SESSION_QUEUE_MAX`
//! frames of up to `frame_bytes_max` each.

use std::sync::Arc;

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use starling_gossip::wire::{decode_delimited, encode_delimited};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::net::GOSSIP_PROTOCOL;

/// Frames queued per peer writer.
pub const WRITER_QUEUE_MAX: usize = 512;

/// Most bytes of received frames queued for the event loop, all peers together.
pub const INBOUND_BYTES_MAX: usize = 16 << 20;

/// The byte budget of frames queued for the event loop.
#[derive(Debug, Clone)]
pub struct InboundBudget {
    permits: Arc<Semaphore>,
    bytes_max: usize,
}

impl InboundBudget {
    /// A budget of `INBOUND_BYTES_MAX`, raised to one largest frame if that
    /// is larger (a frame must always fit, or its reader would wait forever).
    pub fn new(frame_bytes_max: usize) -> Self {
        let bytes_max = INBOUND_BYTES_MAX.max(frame_bytes_max);
        Self {
            permits: Arc::new(Semaphore::new(bytes_max)),
            bytes_max,
        }
    }

    /// Bytes held by queued frames now.
    pub fn queued_bytes(&self) -> usize {
        self.bytes_max
            .saturating_sub(self.permits.available_permits())
    }

    /// Waits until `bytes` fit; `None` if they never can.
    async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(bytes.max(1)).ok()?;
        Arc::clone(&self.permits).acquire_many_owned(n).await.ok()
    }
}

/// What a writer is asked to do.
#[derive(Debug)]
pub enum WriterMsg {
    /// Send a frame (without its length prefix).
    Frame(Bytes),
    /// Flush, close the stream, then report [`SessionEvent::Closed`].
    Close,
}

/// What sessions report to the event loop.
#[derive(Debug)]
pub enum SessionEvent {
    /// A frame arrived; the permit returns its bytes to the budget when dropped.
    Frame(PeerId, Vec<u8>, OwnedSemaphorePermit),
    /// A peer sent an oversize or malformed length prefix; its stream was dropped.
    BadStream(PeerId, String),
    /// The outbound stream could not be opened or written.
    WriteFailed(PeerId, String),
    /// The writer closed after [`WriterMsg::Close`]: now disconnect.
    Closed(PeerId),
}

/// Starts the writer for `peer`.
pub fn spawn_writer(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut rx: mpsc::Receiver<WriterMsg>,
    events: mpsc::Sender<SessionEvent>,
) {
    tokio::spawn(async move {
        let mut stream = match control.open_stream(peer, GOSSIP_PROTOCOL).await {
            Ok(s) => s,
            Err(e) => {
                let _ = events
                    .send(SessionEvent::WriteFailed(peer, e.to_string()))
                    .await;
                return;
            }
        };
        while let Some(msg) = rx.recv().await {
            match msg {
                WriterMsg::Frame(frame) => {
                    let result = async {
                        stream.write_all(&encode_delimited(&frame)).await?;
                        // Coalesce: only flush when nothing else is queued.
                        if rx.is_empty() {
                            stream.flush().await?;
                        }
                        Ok::<_, std::io::Error>(())
                    }
                    .await;
                    if let Err(e) = result {
                        let _ = events
                            .send(SessionEvent::WriteFailed(peer, e.to_string()))
                            .await;
                        return;
                    }
                }
                WriterMsg::Close => {
                    let _ = stream.flush().await;
                    let _ = stream.close().await;
                    let _ = events.send(SessionEvent::Closed(peer)).await;
                    return;
                }
            }
        }
        let _ = stream.close().await;
    });
}

/// Starts the reader of an inbound stream from `peer`.
pub fn spawn_reader(
    peer: PeerId,
    mut stream: Stream,
    frame_bytes_max: usize,
    budget: InboundBudget,
    events: mpsc::Sender<SessionEvent>,
) {
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut used_total = 0;
            loop {
                match decode_delimited(&buf[used_total..], frame_bytes_max) {
                    Ok(Some((frame, used))) => {
                        let Some(permit) = budget.reserve(frame.len()).await else {
                            return;
                        };
                        let frame = frame.to_vec();
                        used_total += used;
                        let event = SessionEvent::Frame(peer, frame, permit);
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = events
                            .send(SessionEvent::BadStream(peer, e.to_string()))
                            .await;
                        return;
                    }
                }
            }
            buf.drain(..used_total);
        }
    });
}
