//! The in-process face of a running node: requests into its event loop and
//! events out of it. The HTTP API, the demo and the tests all go through
//! [`NodeHandle`]; every request carries its own reply channel.

use serde::Serialize;
use starling_trust::Did;
use tokio::sync::{broadcast, mpsc, oneshot};

/// Requests queued for the event loop.
pub const REQUEST_QUEUE_MAX: usize = 256;
/// Agent events buffered per subscriber before the slowest misses some.
pub const EVENT_QUEUE_MAX: usize = 4096;

/// A refused or failed request: an HTTP status, a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn bad(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: "bad_request",
            message: message.into(),
        }
    }
    /// 403: local mandate or policy refuses it.
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            status: 403,
            code: "refused",
            message: message.into(),
        }
    }
    /// 404: not known.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: 404,
            code: "not_found",
            message: message.into(),
        }
    }
    /// 429: over the agent's rate.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self {
            status: 429,
            code: "rate_limited",
            message: message.into(),
        }
    }
    /// 503/500: the node cannot do it now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: 503,
            code: "unavailable",
            message: message.into(),
        }
    }
    /// 504: the peer did not become reachable in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self {
            status: 504,
            code: "timeout",
            message: message.into(),
        }
    }
}

/// How to make an evidence record.
#[derive(Debug, Clone)]
pub enum EvidenceInput {
    /// A record someone already signed (a governor's kill switch, say).
    Signed(Vec<u8>),
    /// This node's agent reports a task outcome about `subject`.
    Outcome {
        /// Who it is about.
        subject: Did,
        /// Whether the task succeeded.
        success: bool,
        /// 1..=10 for failures.
        severity: u32,
        /// The task id.
        task: String,
    },
    /// This node's agent vouches for `subject` (weight 0 withdraws).
    Vouch {
        /// Who.
        subject: Did,
        /// 0..=100.
        weight: u32,
        /// When it lapses (Unix ms).
        expires_ms: u64,
    },
    /// This node's agent revokes the mandate it (or, as governor, anyone) issued to `subject`.
    Revoke {
        /// Whose mandate.
        subject: Did,
        /// Why.
        reason: String,
    },
    /// Kill switch on `subject`, signed by this node's agent (a governor or the subject's principal).
    Terminate {
        /// Who.
        subject: Did,
        /// Why.
        reason: String,
    },
}

/// A policy change request.
#[derive(Debug, Clone)]
pub enum PolicyInput {
    /// An envelope a governor signed elsewhere.
    Signed(Vec<u8>),
    /// Edits this node signs (its agent must be a governor).
    Edits(Vec<starling_trust::policy::Edit>),
}

/// Read-only questions.
#[derive(Debug, Clone)]
pub enum Query {
    /// Score, tier and standing of an identity.
    Trust(Did),
    /// Whether an agent (default: this one) may do something.
    Decide {
        /// The agent, or this node's.
        did: Option<Did>,
        /// The action.
        action: starling_trust::Action,
        /// The resource.
        resource: String,
    },
    /// Audit entries from `from`, at most `limit`.
    Audit {
        /// First sequence number.
        from: u64,
        /// Most entries.
        limit: usize,
    },
    /// Connections and views.
    Peers,
    /// Who talks to whom.
    Graph,
    /// Prometheus text.
    Metrics,
    /// A stored evidence record by id.
    Evidence([u8; 32]),
    /// Identity, addresses and policy heads.
    Status,
}

/// Result of a request.
pub type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// What the event loop is asked to do.
#[derive(Debug)]
pub enum Request {
    /// Publish on a topic.
    Publish {
        /// Topic.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
        /// For a `private/` topic, who may read it (besides this agent).
        members: Vec<Did>,
        /// Task id for the audit log.
        task: String,
        /// Answer: the message id (hex).
        reply: Reply<serde_json::Value>,
    },
    /// Start delivering a topic.
    Subscribe {
        /// Topic.
        topic: String,
        /// Answer.
        reply: Reply<serde_json::Value>,
    },
    /// Send a sealed direct message.
    Direct {
        /// Recipient.
        to: Did,
        /// Plaintext.
        payload: Vec<u8>,
        /// Task id.
        task: String,
        /// Answer.
        reply: Reply<serde_json::Value>,
    },
    /// Add evidence.
    Evidence {
        /// What.
        input: EvidenceInput,
        /// Task id.
        task: String,
        /// Answer: the record id, kept or not.
        reply: Reply<serde_json::Value>,
    },
    /// Change policy.
    Policy {
        /// What.
        input: PolicyInput,
        /// Answer.
        reply: Reply<serde_json::Value>,
    },
    /// Ask something.
    Query {
        /// What.
        query: Query,
        /// Answer.
        reply: Reply<serde_json::Value>,
    },
    /// Stop the node (its store is closed cleanly).
    Shutdown,
}

/// Something the agent hears about.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// A topic message.
    Message {
        /// Topic.
        topic: String,
        /// Publisher.
        origin: String,
        /// Message id (hex).
        id: String,
        /// Publisher's send time.
        sent_ms: u64,
        /// Hops travelled.
        hops: u32,
        /// Payload (UTF-8 lossy, for display).
        payload: String,
        /// Payload (hex, exact).
        payload_hex: String,
    },
    /// A message on a private topic this agent cannot open: not a member,
    /// or tampered. Nothing of its content is shown.
    Sealed {
        /// Topic.
        topic: String,
        /// Publisher.
        origin: String,
        /// Message id (hex).
        id: String,
        /// Size of the sealed envelope.
        sealed_bytes: usize,
        /// Why it did not open.
        reason: String,
    },
    /// A direct message, opened.
    Direct {
        /// Sender.
        from: String,
        /// Plaintext (UTF-8 lossy).
        payload: String,
        /// Plaintext (hex).
        payload_hex: String,
        /// Size of the sealed form that crossed the wire.
        sealed_bytes: usize,
    },
    /// A peer was admitted.
    PeerAdmitted {
        /// Its DID.
        did: String,
    },
    /// A peer was refused or cut off.
    PeerRefused {
        /// Its PeerId.
        peer: String,
        /// Why.
        reason: String,
    },
    /// Evidence was applied.
    Evidence {
        /// Kind.
        kind: String,
        /// Author.
        author: String,
        /// Subject.
        subject: String,
    },
    /// A policy change was applied.
    PolicyChanged {
        /// Its governor.
        author: String,
    },
}

impl AgentEvent {
    /// The SSE topic it belongs to: a message's topic, `_direct` or `_events`.
    pub fn topic(&self) -> &str {
        match self {
            Self::Message { topic, .. } | Self::Sealed { topic, .. } => topic,
            Self::Direct { .. } => "_direct",
            _ => "_events",
        }
    }
}

/// A cheap, cloneable handle to a running node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    pub(crate) requests: mpsc::Sender<Request>,
    pub(crate) events: broadcast::Sender<AgentEvent>,
    /// This node's agent.
    pub did: Did,
}

impl NodeHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| ApiError::unavailable("the node has stopped"))?;
        rx.await
            .map_err(|_| ApiError::unavailable("the node stopped before answering"))?
    }

    /// Publishes; answers `{"id": hex}`.
    pub async fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        task: &str,
    ) -> Result<serde_json::Value, ApiError> {
        self.publish_to(topic, payload, &[], task).await
    }

    /// Publishes on a `private/` topic, sealed for `members` (this agent
    /// reads it too); on other topics `members` must be empty.
    pub async fn publish_to(
        &self,
        topic: &str,
        payload: &[u8],
        members: &[Did],
        task: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let (topic, payload, task) = (topic.to_string(), payload.to_vec(), task.to_string());
        let members = members.to_vec();
        self.ask(|reply| Request::Publish {
            topic,
            payload,
            members,
            task,
            reply,
        })
        .await
    }

    /// Subscribes the node to a topic (events arrive on [`NodeHandle::events`]).
    pub async fn subscribe(&self, topic: &str) -> Result<serde_json::Value, ApiError> {
        let topic = topic.to_string();
        self.ask(|reply| Request::Subscribe { topic, reply }).await
    }

    /// Sends a sealed direct message.
    pub async fn direct(
        &self,
        to: Did,
        payload: &[u8],
        task: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let (payload, task) = (payload.to_vec(), task.to_string());
        self.ask(|reply| Request::Direct {
            to,
            payload,
            task,
            reply,
        })
        .await
    }

    /// Adds evidence; answers once it is durably stored.
    pub async fn evidence(
        &self,
        input: EvidenceInput,
        task: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let task = task.to_string();
        self.ask(|reply| Request::Evidence { input, task, reply })
            .await
    }

    /// Changes policy.
    pub async fn policy(&self, input: PolicyInput) -> Result<serde_json::Value, ApiError> {
        self.ask(|reply| Request::Policy { input, reply }).await
    }

    /// Asks a question.
    pub async fn query(&self, query: Query) -> Result<serde_json::Value, ApiError> {
        self.ask(|reply| Request::Query { query, reply }).await
    }

    /// Agent events from now on.
    pub fn events(&self) -> broadcast::Receiver<AgentEvent> {
        self.events.subscribe()
    }

    /// Resolves when the node's event loop has stopped.
    pub async fn requests_closed(&self) {
        self.requests.closed().await;
    }

    /// Stops the node.
    pub async fn shutdown(&self) {
        let _ = self.requests.send(Request::Shutdown).await;
    }
}
