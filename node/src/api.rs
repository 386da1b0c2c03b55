//! The local HTTP API (axum) on a loopback address.
//!
//! Every handler parses and validates its input completely before it asks
//! the event loop for anything, so a bad request gets a `400` with a JSON
//! `{code, message}` and changes nothing. Refusals by the local mandate or
//! policy are `403`, rate limits `429`. Requests that change state answer
//! only after the change is durably committed.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::Value;
use starling_trust::Did;
use starling_trust::policy::{Edit, Rule};

use crate::handle::{AgentEvent, ApiError, EvidenceInput, NodeHandle, PolicyInput, Query};

/// Largest request body, in bytes.
pub const BODY_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Default vouch lifetime when none is given.
pub const VOUCH_DEFAULT_MS: u64 = 30 * 24 * 3_600_000;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(serde_json::json!({ "code": self.code, "message": self.message })),
        )
            .into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn body<T>(input: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    input.map(|Json(v)| v).map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE || e.body_text().contains("length limit") {
            return ApiError {
                status: 413,
                code: "too_large",
                message: format!("the request body is over {BODY_BYTES_MAX} bytes"),
            };
        }
        ApiError::bad(e.body_text())
    })
}

fn did(text: &str, field: &str) -> Result<Did, ApiError> {
    text.parse()
        .map_err(|e| ApiError::bad(format!("{field}: {e}")))
}

/// A payload given as UTF-8 text or as hex.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    payload: Option<String>,
    payload_hex: Option<String>,
}

impl Payload {
    fn bytes(self) -> Result<Vec<u8>, ApiError> {
        match (self.payload, self.payload_hex) {
            (Some(p), None) => Ok(p.into_bytes()),
            (None, Some(h)) => {
                hex::decode(h).map_err(|e| ApiError::bad(format!("payload_hex: {e}")))
            }
            _ => Err(ApiError::bad(
                "give exactly one of `payload` (text) or `payload_hex`",
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    topic: String,
    payload: Option<String>,
    payload_hex: Option<String>,
    /// DIDs who may read a message on a `private/` topic.
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    task: String,
}

async fn publish(
    State(node): State<NodeHandle>,
    input: Result<Json<PublishBody>, JsonRejection>,
) -> ApiResult {
    let b = body(input)?;
    let payload = Payload {
        payload: b.payload,
        payload_hex: b.payload_hex,
    }
    .bytes()?;
    let members = b
        .members
        .iter()
        .map(|m| {
            m.parse::<Did>()
                .map_err(|e| ApiError::bad(format!("member {m:?} is not a DID: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    node.publish_to(&b.topic, &payload, &members, &b.task)
        .await
        .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectBody {
    to: String,
    payload: Option<String>,
    payload_hex: Option<String>,
    #[serde(default)]
    task: String,
}

async fn direct(
    State(node): State<NodeHandle>,
    input: Result<Json<DirectBody>, JsonRejection>,
) -> ApiResult {
    let b = body(input)?;
    let to = did(&b.to, "to")?;
    let payload = Payload {
        payload: b.payload,
        payload_hex: b.payload_hex,
    }
    .bytes()?;
    node.direct(to, &payload, &b.task).await.map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceBody {
    record_hex: Option<String>,
    kind: Option<String>,
    subject: Option<String>,
    success: Option<bool>,
    severity: Option<u32>,
    #[serde(default)]
    task: String,
}

async fn evidence(
    State(node): State<NodeHandle>,
    input: Result<Json<EvidenceBody>, JsonRejection>,
) -> ApiResult {
    let b = body(input)?;
    let input = match (b.record_hex, b.kind.as_deref()) {
        (Some(h), None) => EvidenceInput::Signed(
            hex::decode(h).map_err(|e| ApiError::bad(format!("record_hex: {e}")))?,
        ),
        (None, Some("outcome")) => EvidenceInput::Outcome {
            subject: did(
                b.subject
                    .as_deref()
                    .ok_or_else(|| ApiError::bad("an outcome needs `subject`"))?,
                "subject",
            )?,
            success: b
                .success
                .ok_or_else(|| ApiError::bad("an outcome needs `success` (true or false)"))?,
            severity: b.severity.unwrap_or(0),
            task: b.task.clone(),
        },
        (None, Some(other)) => {
            return Err(ApiError::bad(format!(
                "unknown kind `{other}`: use `outcome`, or give a signed `record_hex`"
            )));
        }
        _ => {
            return Err(ApiError::bad(
                "give either `record_hex` (a signed record) or `kind: \"outcome\"` with subject and success",
            ));
        }
    };
    node.evidence(input, &b.task).await.map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VouchBody {
    subject: String,
    weight: u32,
    expires_ms: Option<u64>,
    #[serde(default)]
    task: String,
}

async fn vouch(
    State(node): State<NodeHandle>,
    input: Result<Json<VouchBody>, JsonRejection>,
) -> ApiResult {
    let b = body(input)?;
    let subject = did(&b.subject, "subject")?;
    if b.weight > starling_trust::evidence::record::VOUCH_WEIGHT_MAX {
        return Err(ApiError::bad("weight must be 0..=100 (0 withdraws)"));
    }
    let expires_ms = b
        .expires_ms
        .unwrap_or_else(|| crate::files::now_ms() + VOUCH_DEFAULT_MS);
    node.evidence(
        EvidenceInput::Vouch {
            subject,
            weight: b.weight,
            expires_ms,
        },
        &b.task,
    )
    .await
    .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectReason {
    subject: String,
    reason: String,
    #[serde(default)]
    task: String,
}

async fn revoke(
    State(node): State<NodeHandle>,
    input: Result<Json<SubjectReason>, JsonRejection>,
) -> ApiResult {
    let b = body(input)?;
    let subject = did(&b.subject, "subject")?;
    node.evidence(
        EvidenceInput::Revoke {
            subject,
            reason: b.reason,
        },
        &b.task,
    )
    .await
    .map(Json)
}

async fn terminate(
    State(node): State<NodeHandle>,
    input: Result<Json<SubjectReason>, JsonRejection>,
) -> ApiResult {
    let b = body(input)?;
    let subject = did(&b.subject, "subject")?;
    node.evidence(
        EvidenceInput::Terminate {
            subject,
            reason: b.reason,
        },
        &b.task,
    )
    .await
    .map(Json)
}

async fn trust(State(node): State<NodeHandle>, Path(d): Path<String>) -> ApiResult {
    node.query(Query::Trust(did(&d, "did")?)).await.map(Json)
}

async fn evidence_get(State(node): State<NodeHandle>, Path(id): Path<String>) -> ApiResult {
    let bytes = hex::decode(&id).map_err(|e| ApiError::bad(format!("id: {e}")))?;
    let id: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ApiError::bad("id: a record id is 32 bytes (64 hex digits)"))?;
    node.query(Query::Evidence(id)).await.map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    did: Option<String>,
    action: String,
    resource: String,
}

async fn decide(
    State(node): State<NodeHandle>,
    input: Result<Json<DecideBody>, JsonRejection>,
) -> ApiResult {
    let b = body(input)?;
    let action = b.action.parse().map_err(ApiError::bad)?;
    let did = b.did.as_deref().map(|d| did(d, "did")).transpose()?;
    node.query(Query::Decide {
        did,
        action,
        resource: b.resource,
    })
    .await
    .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    id: String,
    #[serde(default = "default_priority")]
    priority: u64,
    actor: String,
    action: String,
    resource: String,
    effect: String,
    #[serde(default)]
    reason: String,
}

fn default_priority() -> u64 {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    change_hex: Option<String>,
    #[serde(default)]
    put_rules: Vec<RuleBody>,
    #[serde(default)]
    remove_rules: Vec<String>,
}

async fn policy_change(
    State(node): State<NodeHandle>,
    input: Result<Json<PolicyBody>, JsonRejection>,
) -> ApiResult {
    let b = body(input)?;
    let input = match b.change_hex {
        Some(h) if b.put_rules.is_empty() && b.remove_rules.is_empty() => PolicyInput::Signed(
            hex::decode(h).map_err(|e| ApiError::bad(format!("change_hex: {e}")))?,
        ),
        Some(_) => return Err(ApiError::bad("give either `change_hex` or edits, not both")),
        None => {
            let mut edits = Vec::new();
            for r in b.put_rules {
                let rule = Rule::parse(
                    &r.id,
                    r.priority,
                    &r.actor,
                    &r.action,
                    &r.resource,
                    &r.effect,
                    &r.reason,
                )
                .map_err(|e| ApiError::bad(e.to_string()))?;
                edits.push(Edit::PutRule(rule));
            }
            edits.extend(b.remove_rules.into_iter().map(Edit::RemoveRule));
            if edits.is_empty() {
                return Err(ApiError::bad(
                    "no edits: give `put_rules`, `remove_rules` or `change_hex`",
                ));
            }
            PolicyInput::Edits(edits)
        }
    };
    node.policy(input).await.map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    #[serde(default)]
    from: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

async fn audit(
    State(node): State<NodeHandle>,
    params: Result<QueryParams<AuditParams>, QueryRejection>,
) -> ApiResult {
    let QueryParams(p) = params.map_err(|e| ApiError::bad(e.body_text()))?;
    node.query(Query::Audit {
        from: p.from,
        limit: p.limit,
    })
    .await
    .map(Json)
}

async fn simple(node: NodeHandle, q: Query) -> ApiResult {
    node.query(q).await.map(Json)
}

async fn metrics(State(node): State<NodeHandle>) -> Result<String, ApiError> {
    match node.query(Query::Metrics).await? {
        Value::String(s) => Ok(s),
        _ => Err(ApiError::unavailable("metrics unavailable")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeParams {
    topic: String,
}

async fn subscribe(
    State(node): State<NodeHandle>,
    params: Result<QueryParams<SubscribeParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let QueryParams(p) = params.map_err(|e| ApiError::bad(e.body_text()))?;
    // Subscribe to the receiver first so nothing published after the answer is missed.
    let rx = node.events();
    if p.topic != "_direct" && p.topic != "_events" {
        node.subscribe(&p.topic).await?;
    }
    let topic = p.topic;
    let stream = futures::stream::unfold((rx, topic), |(mut rx, topic)| async move {
        loop {
            match rx.recv().await {
                Ok(event) if event.topic() == topic => {
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    return Some((
                        Ok(SseEvent::default().event(kind(&event)).data(data)),
                        (rx, topic),
                    ));
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let e = SseEvent::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{n}}}"));
                    return Some((Ok(e), (rx, topic)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn kind(event: &AgentEvent) -> &'static str {
    match event {
        AgentEvent::Message { .. } => "message",
        AgentEvent::Sealed { .. } => "sealed",
        AgentEvent::Direct { .. } => "direct",
        AgentEvent::PeerAdmitted { .. } => "peer_admitted",
        AgentEvent::PeerRefused { .. } => "peer_refused",
        AgentEvent::Evidence { .. } => "evidence",
        AgentEvent::PolicyChanged { .. } => "policy_changed",
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see the README for the /v1 API")
}

/// The router.
pub fn router(node: NodeHandle) -> Router {
    Router::new()
        .route("/v1/publish", post(publish))
        .route("/v1/subscribe", get(subscribe))
        .route("/v1/direct", post(direct))
        .route("/v1/evidence", post(evidence))
        .route("/v1/evidence/{id}", get(evidence_get))
        .route("/v1/vouch", post(vouch))
        .route("/v1/revoke", post(revoke))
        .route("/v1/terminate", post(terminate))
        .route("/v1/trust/{did}", get(trust))
        .route("/v1/policy/decide", post(decide))
        .route("/v1/policy/change", post(policy_change))
        .route("/v1/audit", get(audit))
        .route(
            "/v1/peers",
            get(|State(n): State<NodeHandle>| simple(n, Query::Peers)),
        )
        .route(
            "/v1/graph",
            get(|State(n): State<NodeHandle>| simple(n, Query::Graph)),
        )
        .route(
            "/v1/status",
            get(|State(n): State<NodeHandle>| simple(n, Query::Status)),
        )
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(node)
}

/// Binds `addr` and serves the API in the background; returns the bound address.
pub async fn serve(addr: SocketAddr, node: NodeHandle) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(node);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("local API stopped: {e}");
        }
    });
    Ok(bound)
}
