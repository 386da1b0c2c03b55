//! The local HTTP API (axum) on a loopback address.
//!
//! Every handler parses and validates its input completely (POST bodies in
//! `request`) before it asks the event loop for anything, so a bad request
//! gets a `400` with a JSON `{code, message}` and changes nothing.
//! Refusals by the local mandate or policy are `403`, rate limits `429`.
//! Requests that change state answer only after the change is durably
//! committed.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query as QueryParams, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::Value;

pub mod request;

use crate::handle::{AgentEvent, ApiError, NodeHandle, Query};
use request::ApiRequest;

/// Largest request body, in bytes.
pub const BODY_BYTES_MAX: usize = 2 * 1024 * 1024;

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

/// Every POST endpoint: the body decoded completely by `request::decode`,
/// then handed to the node. A JSON content type is required, so a web page
/// cannot post here without the browser asking first (CORS).
async fn post_request(
    State(node): State<NodeHandle>,
    path: MatchedPath,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError {
            status: 413,
            code: "too_large",
            message: format!("the request body is over {BODY_BYTES_MAX} bytes"),
        },
        _ => ApiError::bad(e.body_text()),
    })?;
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::bad("expected `Content-Type: application/json`"));
    }
    let answer = match request::decode(path.as_str(), &body, crate::files::now_ms())? {
        ApiRequest::Publish {
            topic,
            payload,
            members,
            task,
        } => node.publish_to(&topic, &payload, &members, &task).await,
        ApiRequest::Direct { to, payload, task } => node.direct(to, &payload, &task).await,
        ApiRequest::Evidence { input, task } => node.evidence(input, &task).await,
        ApiRequest::Decide {
            did,
            action,
            resource,
        } => {
            node.query(Query::Decide {
                did,
                action,
                resource,
            })
            .await
        }
        ApiRequest::Policy(input) => node.policy(input).await,
    };
    answer.map(Json)
}

async fn trust(State(node): State<NodeHandle>, Path(d): Path<String>) -> ApiResult {
    node.query(Query::Trust(request::did(&d, "did")?))
        .await
        .map(Json)
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
    let mut router = Router::new();
    for path in request::POST_PATHS {
        router = router.route(path, post(post_request));
    }
    router
        .route("/v1/subscribe", get(subscribe))
        .route("/v1/evidence/{id}", get(evidence_get))
        .route("/v1/trust/{did}", get(trust))
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
