//! The node's embedded ACID store (redb) under `--data-dir`.
//!
//! One file, `starling.redb`, with these tables:
//!
//! | table      | key                | value                               |
//! |------------|--------------------|-------------------------------------|
//! | `meta`     | name               | genesis, key, KEM seed, mandate, audit head |
//! | `evidence` | record id (32)     | the signed record, as received      |
//! | `policy`   | change hash (32)   | the signed change envelope          |
//! | `audit`    | sequence number    | the signed, hash-chained entry      |
//! | `peers`    | PeerId bytes       | known multiaddrs, newline-separated |
//!
//! Writes go through a [`Batch`] committed in one transaction. Anything the
//! local API acknowledges is committed with `Durability::Immediate` (fsync)
//! before the HTTP answer; what only arrived from the network is committed
//! with `Durability::None` (it becomes durable with the next immediate
//! commit, and a crash loses nothing that anti-entropy cannot fetch again).

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const EVIDENCE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("evidence");
const POLICY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("policy");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const PEERS: TableDefinition<&[u8], &str> = TableDefinition::new("peers");

/// The store's file name inside the data dir.
pub const DB_FILE: &str = "starling.redb";

/// Why the store failed. The node stops rather than run without its disk.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data dir cannot be created.
    #[error("cannot create data dir {path}: {source}")]
    Dir {
        /// The dir.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database cannot be opened (corrupt, locked, or not a redb file).
    #[error("cannot open the store {path} (corrupt, or in use by another node?): {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<redb::DatabaseError>,
    },
    /// A read or write failed.
    #[error("store: {0}")]
    Io(String),
    /// A batch with audit entries but no signed head for the last of them
    /// (see `AuditLog::seal`): committing it would lose the chain's head.
    #[error("store: audit entries without their signed head")]
    UnsealedAudit,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// A known peer: its PeerId bytes and multiaddrs.
pub type KnownPeer = (Vec<u8>, Vec<String>);

/// Writes to commit together.
#[derive(Debug, Default)]
pub struct Batch {
    /// Records to add, by id.
    pub evidence: Vec<([u8; 32], Vec<u8>)>,
    /// Policy change envelopes to add, by hash.
    pub policy: Vec<(Vec<u8>, Vec<u8>)>,
    /// Audit entries to append, by sequence number.
    pub audit: Vec<(u64, Vec<u8>)>,
    /// Meta values to set.
    pub meta: Vec<(&'static str, Vec<u8>)>,
    /// Known peers and their addresses.
    pub peers: Vec<(Vec<u8>, String)>,
}

impl Batch {
    /// How many writes it holds.
    pub fn len(&self) -> usize {
        self.evidence.len()
            + self.policy.len()
            + self.audit.len()
            + self.meta.len()
            + self.peers.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the batch may commit as far as the audit log goes: it has no
    /// audit entries, or the signed head of the last (`AuditLog::seal`).
    pub fn is_sealed(&self) -> bool {
        self.audit.is_empty() || self.meta.iter().any(|(k, _)| *k == crate::audit::HEAD_KEY)
    }
}

/// The node's database.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path).map_err(|e| StoreError::Open {
            path: path.clone(),
            source: Box::new(e),
        })?;
        let tx = db.begin_write().map_err(io)?;
        {
            tx.open_table(META).map_err(io)?;
            tx.open_table(EVIDENCE).map_err(io)?;
            tx.open_table(POLICY).map_err(io)?;
            tx.open_table(AUDIT).map_err(io)?;
            tx.open_table(PEERS).map_err(io)?;
        }
        tx.commit().map_err(io)?;
        Ok(Self { db })
    }

    /// Opens an existing store only (for `audit verify`).
    pub fn open_existing(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Io(format!(
                "no store at {} (is this a node's data dir?)",
                path.display()
            )));
        }
        Self::open(dir)
    }

    /// A meta value.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(META).map_err(io)?;
        Ok(table.get(name).map_err(io)?.map(|v| v.value().to_vec()))
    }

    /// Every stored evidence record.
    pub fn evidence(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.values(EVIDENCE)
    }

    /// Whether a record is stored.
    pub fn has_evidence(&self, id: &[u8; 32]) -> Result<bool, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(EVIDENCE).map_err(io)?;
        Ok(table.get(id.as_slice()).map_err(io)?.is_some())
    }

    /// Every stored policy change envelope.
    pub fn policy_changes(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.values(POLICY)
    }

    fn values(&self, def: TableDefinition<&[u8], &[u8]>) -> Result<Vec<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(def).map_err(io)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(io)? {
            let (_, v) = row.map_err(io)?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// Known peers: PeerId bytes and their addresses.
    pub fn peers(&self) -> Result<Vec<KnownPeer>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(PEERS).map_err(io)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(io)? {
            let (k, v) = row.map_err(io)?;
            let addrs = v
                .value()
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            out.push((k.value().to_vec(), addrs));
        }
        Ok(out)
    }

    /// Audit entries with sequence numbers in `from..`, at most `limit`.
    pub fn audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(AUDIT).map_err(io)?;
        let mut out = Vec::new();
        for row in table.range(from..).map_err(io)?.take(limit) {
            let (k, v) = row.map_err(io)?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The number of audit entries stored.
    pub fn audit_len(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(AUDIT).map_err(io)?;
        Ok(table
            .last()
            .map_err(io)?
            .map(|(k, _)| k.value() + 1)
            .unwrap_or(0))
    }

    /// Removes evidence records (superseded ones, at start).
    pub fn remove_evidence(&self, ids: &[[u8; 32]]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut table = tx.open_table(EVIDENCE).map_err(io)?;
            for id in ids {
                table.remove(id.as_slice()).map_err(io)?;
            }
        }
        tx.commit().map_err(io)
    }

    /// Commits a batch in one transaction; `durable` waits for the disk.
    pub fn commit(&self, batch: &Batch, durable: bool) -> Result<(), StoreError> {
        if !batch.is_sealed() {
            return Err(StoreError::UnsealedAudit);
        }
        let mut tx = self.db.begin_write().map_err(io)?;
        if !durable {
            tx.set_durability(Durability::None).map_err(io)?;
        }
        {
            let mut meta = tx.open_table(META).map_err(io)?;
            for (k, v) in &batch.meta {
                meta.insert(*k, v.as_slice()).map_err(io)?;
            }
            let mut evidence = tx.open_table(EVIDENCE).map_err(io)?;
            for (id, bytes) in &batch.evidence {
                evidence
                    .insert(id.as_slice(), bytes.as_slice())
                    .map_err(io)?;
            }
            let mut policy = tx.open_table(POLICY).map_err(io)?;
            for (hash, bytes) in &batch.policy {
                policy
                    .insert(hash.as_slice(), bytes.as_slice())
                    .map_err(io)?;
            }
            let mut audit = tx.open_table(AUDIT).map_err(io)?;
            for (seq, bytes) in &batch.audit {
                audit.insert(*seq, bytes.as_slice()).map_err(io)?;
            }
            let mut peers = tx.open_table(PEERS).map_err(io)?;
            for (peer, addrs) in &batch.peers {
                peers.insert(peer.as_slice(), addrs.as_str()).map_err(io)?;
            }
        }
        tx.commit().map_err(io)
    }

    /// Test and tooling hook: overwrite or delete one audit entry, as an
    /// attacker with the disk would.
    pub fn tamper_audit(&self, seq: u64, bytes: Option<&[u8]>) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut table = tx.open_table(AUDIT).map_err(io)?;
            match bytes {
                Some(b) => {
                    table.insert(seq, b).map_err(io)?;
                }
                None => {
                    table.remove(seq).map_err(io)?;
                }
            }
        }
        tx.commit().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut batch = Batch::default();
            batch.meta.push(("genesis", vec![1, 2, 3]));
            batch.evidence.push(([9; 32], vec![4, 5]));
            batch.audit.push((0, vec![6]));
            batch.audit.push((1, vec![7]));
            batch.meta.push((crate::audit::HEAD_KEY, vec![10]));
            batch.peers.push((
                vec![8],
                "/ip4/127.0.0.1/tcp/1\n/ip4/127.0.0.1/udp/2/quic-v1".into(),
            ));
            store.commit(&batch, true).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.meta("genesis").unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(store.meta("other").unwrap(), None);
        assert_eq!(store.evidence().unwrap(), vec![vec![4, 5]]);
        assert!(store.has_evidence(&[9; 32]).unwrap());
        assert_eq!(store.audit(1, 10).unwrap(), vec![(1, vec![7])]);
        assert_eq!(store.audit_len().unwrap(), 2);
        assert_eq!(store.peers().unwrap()[0].1.len(), 2);
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DB_FILE),
            b"this is not a database, just some bytes".repeat(200),
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cannot open the store"), "{err}");
    }
}
