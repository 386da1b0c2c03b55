//! Group commits, off the event loop.
//!
//! The loop never waits for the disk. Writes gather in `Driver::batch`;
//! when a commit is due (a request waits for its answer, a read of the
//! store waits, or `COMMIT_EVERY_MS` has passed) and none is running, the
//! batch is sealed and committed on tokio's blocking pool while the loop
//! goes on forwarding frames. Writes made meanwhile gather for the next
//! commit. One commit at a time keeps them in order and the audit chain
//! whole, and bounds what waits to what arrives during one commit.
//!
//! Before, the loop committed in place. A busy disk then stalled every
//! node's forwarding, and a frame the loop had just handed to a writer
//! task waited for the disk too, in the worker's LIFO slot where no other
//! worker may take it: that was most of Starling's p99 in
//! `bench vs-gossipsub`.
//!
//! A request is answered once the commit holding its writes is durable; a
//! read of the store once every write before it is committed. Writes
//! nobody waits for are committed durably every `COMMIT_EVERY_MS`.

use serde_json::Value;
use tokio::task::JoinHandle;

use super::Driver;
use crate::audit::AuditLog;
use crate::handle::{ApiError, Query, Reply};
use crate::store::{Batch, StoreError};

/// Most writes gathered while a commit runs. Past it the loop waits for
/// the commit, so a stalled disk slows the node (its inbound queues fill
/// and its peers are read no faster) instead of filling its memory.
pub const PENDING_WRITES_MAX: usize = 10_000;

/// A request's answer, sent once its writes are durable.
pub(crate) type Ack = (Reply<Value>, Result<Value, ApiError>);

/// A read of the store, answered once the writes before it are committed.
pub(crate) type Read = (Query, Reply<Value>);

/// The commit running on the blocking pool, and who waits for it.
#[derive(Debug)]
pub(crate) struct Commit {
    task: JoinHandle<Result<(), StoreError>>,
    acks: Vec<Ack>,
    reads: Vec<Read>,
}

/// Resolves when the running commit ends; never, if none runs.
pub(crate) async fn commit_done(running: &mut Option<Commit>) -> Result<(), StoreError> {
    match running {
        Some(commit) => (&mut commit.task)
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(e.to_string()))),
        None => std::future::pending().await,
    }
}

/// What waits on the store when the loop looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    /// Writes are gathered in the batch.
    writes: bool,
    /// Requests wait for their writes to be durable.
    acks: bool,
    /// Reads wait for the writes before them.
    reads: bool,
    /// `COMMIT_EVERY_MS` has passed since the last commit started.
    due: bool,
}

impl Pending {
    /// Whether to commit now, and whether durably (`Some(true)`). An
    /// acknowledgement and the periodic commit need the disk; a read only
    /// needs the writes before it in the store, so commits without waiting
    /// for the disk. Redb keeps such a commit only until the process ends
    /// unless a durable one follows, which the next periodic commit is.
    fn commit(self) -> Option<bool> {
        match self {
            Self { acks: true, .. } => Some(true),
            Self {
                writes: true,
                due: true,
                ..
            } => Some(true),
            Self {
                writes: true,
                reads: true,
                ..
            } => Some(false),
            _ => None,
        }
    }
}

impl Driver {
    /// Answers `query` once every write made before it is in the store.
    pub(crate) fn read_after_writes(&mut self, query: Query, reply: Reply<Value>) {
        self.reads.push((query, reply));
    }

    /// Starts a commit if one is due and none runs; answers the reads
    /// that wait for nothing.
    pub(crate) fn maybe_commit(&mut self) {
        if self.committing.is_some() {
            return;
        }
        let now = Pending {
            writes: !self.batch.is_empty(),
            acks: !self.acks.is_empty(),
            reads: !self.reads.is_empty(),
            due: self.now_ms >= self.commit_due_ms(),
        };
        match now.commit() {
            Some(durable) => self.start_commit(durable),
            None if !now.writes && !now.acks => {
                for (query, reply) in std::mem::take(&mut self.reads) {
                    let _ = reply.send(self.query(query));
                }
            }
            None => {}
        }
    }

    /// Waits for the running commit if the writes gathered since it
    /// started reach [`PENDING_WRITES_MAX`], then starts the next.
    pub(crate) async fn hold_back(&mut self) -> Result<(), StoreError> {
        if self.committing.is_none() || self.batch.len() < PENDING_WRITES_MAX {
            return Ok(());
        }
        self.wait_commit().await?;
        self.maybe_commit();
        Ok(())
    }

    /// Waits for the running commit and takes its result (see
    /// [`Driver::on_committed`]).
    async fn wait_commit(&mut self) -> Result<(), StoreError> {
        let done = commit_done(&mut self.committing).await;
        self.on_committed(done)
    }

    /// Seals the batch and commits it on the blocking pool (`durable` waits
    /// for the disk), with the requests and reads waiting for it.
    fn start_commit(&mut self, durable: bool) {
        self.committed_at_ms = self.now_ms;
        self.audit.seal(&mut self.batch);
        let batch = std::mem::take(&mut self.batch);
        let store = std::sync::Arc::clone(&self.store);
        self.committing = Some(Commit {
            task: tokio::task::spawn_blocking(move || store.commit(&batch, durable)),
            acks: std::mem::take(&mut self.acks),
            reads: std::mem::take(&mut self.reads),
        });
    }

    /// The running commit ended. On success its requests and reads are
    /// answered. On failure what was not written is dropped: every record
    /// and policy change is queued again (rewriting one is harmless), the
    /// audit log resumes from what is on disk (entries since were chained
    /// on the lost ones), and every waiting request is told its write was
    /// not stored. A failed commit nobody waited for is returned: the node
    /// stops rather than run without its disk.
    pub(crate) fn on_committed(
        &mut self,
        result: Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some(commit) = self.committing.take() else {
            return Ok(());
        };
        self.metrics.commits += 1;
        let Err(e) = result else {
            for (reply, answer) in commit.acks {
                let _ = reply.send(answer);
            }
            for (query, reply) in commit.reads {
                let _ = reply.send(self.query(query));
            }
            return Ok(());
        };
        self.batch = Batch::default();
        self.persisted_evidence.clear();
        self.persisted_policy.clear();
        self.scanned_generation = u64::MAX;
        if let Ok(log) = AuditLog::resume(self.key.clone(), &self.store) {
            self.audit = log;
        }
        let waited = !commit.acks.is_empty() || !commit.reads.is_empty();
        let acks = commit
            .acks
            .into_iter()
            .chain(std::mem::take(&mut self.acks));
        for (reply, _) in acks {
            let _ = reply.send(Err(ApiError::unavailable(format!(
                "not stored, try again: {e}"
            ))));
        }
        for (_, reply) in commit.reads {
            let _ = reply.send(Err(ApiError::unavailable(e.to_string())));
        }
        match waited {
            true => Ok(()),
            false => Err(e),
        }
    }

    /// Waits for the running commit, then commits what is left, durably
    /// (which makes the commits before it durable too).
    pub(crate) async fn finish_commits(&mut self) {
        if self.committing.is_some() && self.wait_commit().await.is_err() {
            return;
        }
        self.start_commit(true);
        let _ = self.wait_commit().await;
    }
}

#[cfg(test)]
mod tests {
    use super::Pending;

    #[test]
    fn acknowledgements_and_the_periodic_commit_are_durable_reads_are_not() {
        // (writes, acks, reads, due) -> commit now, and durably?
        let cases = [
            ((false, false, false, false), None),
            ((false, false, false, true), None),
            ((false, false, true, false), None),
            ((true, false, false, false), None),
            ((false, true, false, false), Some(true)),
            ((true, false, false, true), Some(true)),
            ((true, false, true, false), Some(false)),
            ((true, false, true, true), Some(true)),
            ((true, true, true, false), Some(true)),
        ];
        for ((writes, acks, reads, due), want) in cases {
            let pending = Pending {
                writes,
                acks,
                reads,
                due,
            };
            assert_eq!(pending.commit(), want, "{pending:?}");
        }
    }
}
