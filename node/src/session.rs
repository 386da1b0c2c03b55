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
//! peer through yamux flow control.

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use starling_gossip::wire::{decode_delimited, encode_delimited};
use tokio::sync::mpsc;

use crate::net::GOSSIP_PROTOCOL;

/// Frames queued per peer writer.
pub const WRITER_QUEUE_MAX: usize = 512;

/// What a writer is asked to do.
#[derive(Debug)]
pub enum WriterMsg {
    /// Send a frame (without its length prefix).
    Frame(Vec<u8>),
    /// Flush, close the stream, then report [`SessionEvent::Closed`].
    Close,
}

/// What sessions report to the event loop.
#[derive(Debug)]
pub enum SessionEvent {
    /// A frame arrived.
    Frame(PeerId, Vec<u8>),
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
                        let frame = frame.to_vec();
                        used_total += used;
                        if events.send(SessionEvent::Frame(peer, frame)).await.is_err() {
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
