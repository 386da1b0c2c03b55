//! Decoding of the local API's POST bodies: bytes in, a checked request
//! out, or a `400` with the reason. Pure (the clock is an argument), so a
//! fuzz target drives the very function the server runs, and nothing is
//! asked of the node until a body has been decoded completely.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use starling_trust::policy::{Edit, Rule};
use starling_trust::{Action, Did};

use crate::handle::{ApiError, EvidenceInput, PolicyInput};

/// Default vouch lifetime when none is given.
pub const VOUCH_DEFAULT_MS: u64 = 30 * 24 * 3_600_000;

/// The POST endpoints, each decoded by `decode`.
pub const POST_PATHS: [&str; 8] = [
    "/v1/publish",
    "/v1/direct",
    "/v1/evidence",
    "/v1/vouch",
    "/v1/revoke",
    "/v1/terminate",
    "/v1/policy/decide",
    "/v1/policy/change",
];

/// A decoded POST body.
#[derive(Debug, Clone)]
pub enum ApiRequest {
    /// `/v1/publish`.
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        payload: Vec<u8>,
        /// Who may read it, on a `private/` topic.
        members: Vec<Did>,
        /// The task id.
        task: String,
    },
    /// `/v1/direct`.
    Direct {
        /// The recipient.
        to: Did,
        /// The payload, sealed by the node.
        payload: Vec<u8>,
        /// The task id.
        task: String,
    },
    /// `/v1/evidence`, `/v1/vouch`, `/v1/revoke`, `/v1/terminate`.
    Evidence {
        /// What to sign or submit.
        input: EvidenceInput,
        /// The task id.
        task: String,
    },
    /// `/v1/policy/decide`.
    Decide {
        /// The agent, or this node's.
        did: Option<Did>,
        /// The action.
        action: Action,
        /// The resource.
        resource: String,
    },
    /// `/v1/policy/change`.
    Policy(PolicyInput),
}

/// Decodes the body of a POST to `path` at `now_ms` (a vouch's default
/// expiry counts from it).
///
/// # Errors
/// A `400` naming what is wrong, or a `404` for a path that is not in
/// `POST_PATHS`.
pub fn decode(path: &str, body: &[u8], now_ms: u64) -> Result<ApiRequest, ApiError> {
    match path {
        "/v1/publish" => publish(json(body)?),
        "/v1/direct" => direct(json(body)?),
        "/v1/evidence" => evidence(json(body)?),
        "/v1/vouch" => vouch(json(body)?, now_ms),
        "/v1/revoke" | "/v1/terminate" => {
            let b: SubjectReason = json(body)?;
            let (subject, reason) = (did(&b.subject, "subject")?, b.reason);
            let input = match path {
                "/v1/revoke" => EvidenceInput::Revoke { subject, reason },
                _ => EvidenceInput::Terminate { subject, reason },
            };
            Ok(ApiRequest::Evidence {
                input,
                task: b.task,
            })
        }
        "/v1/policy/decide" => decide(json(body)?),
        "/v1/policy/change" => policy_change(json(body)?),
        _ => Err(ApiError::not_found(format!("no POST endpoint {path}"))),
    }
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("the JSON body: {e}")))
}

/// `text` as a DID, or a `400` naming `field`.
pub(super) fn did(text: &str, field: &str) -> Result<Did, ApiError> {
    text.parse()
        .map_err(|e| ApiError::bad(format!("{field}: {e}")))
}

/// Exactly one of `payload` (text) or `payload_hex`.
fn payload(text: Option<String>, hex_text: Option<String>) -> Result<Vec<u8>, ApiError> {
    match (text, hex_text) {
        (Some(p), None) => Ok(p.into_bytes()),
        (None, Some(h)) => hex::decode(h).map_err(|e| ApiError::bad(format!("payload_hex: {e}"))),
        _ => Err(ApiError::bad(
            "give exactly one of `payload` (text) or `payload_hex`",
        )),
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

fn publish(b: PublishBody) -> Result<ApiRequest, ApiError> {
    let payload = payload(b.payload, b.payload_hex)?;
    let members = b
        .members
        .iter()
        .map(|m| {
            m.parse::<Did>()
                .map_err(|e| ApiError::bad(format!("member {m:?} is not a DID: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ApiRequest::Publish {
        topic: b.topic,
        payload,
        members,
        task: b.task,
    })
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

fn direct(b: DirectBody) -> Result<ApiRequest, ApiError> {
    Ok(ApiRequest::Direct {
        to: did(&b.to, "to")?,
        payload: payload(b.payload, b.payload_hex)?,
        task: b.task,
    })
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

fn evidence(b: EvidenceBody) -> Result<ApiRequest, ApiError> {
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
    Ok(ApiRequest::Evidence {
        input,
        task: b.task,
    })
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

fn vouch(b: VouchBody, now_ms: u64) -> Result<ApiRequest, ApiError> {
    let subject = did(&b.subject, "subject")?;
    if b.weight > starling_trust::evidence::record::VOUCH_WEIGHT_MAX {
        return Err(ApiError::bad("weight must be 0..=100 (0 withdraws)"));
    }
    let expires_ms = b
        .expires_ms
        .unwrap_or_else(|| now_ms.saturating_add(VOUCH_DEFAULT_MS));
    let input = EvidenceInput::Vouch {
        subject,
        weight: b.weight,
        expires_ms,
    };
    Ok(ApiRequest::Evidence {
        input,
        task: b.task,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectReason {
    subject: String,
    reason: String,
    #[serde(default)]
    task: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    did: Option<String>,
    action: String,
    resource: String,
}

fn decide(b: DecideBody) -> Result<ApiRequest, ApiError> {
    Ok(ApiRequest::Decide {
        action: b.action.parse().map_err(ApiError::bad)?,
        did: b.did.as_deref().map(|d| did(d, "did")).transpose()?,
        resource: b.resource,
    })
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

fn policy_change(b: PolicyBody) -> Result<ApiRequest, ApiError> {
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
    Ok(ApiRequest::Policy(input))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_800_000_000_000;
    const DID: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";

    fn error(path: &str, body: &str) -> (u16, String) {
        let e = decode(path, body.as_bytes(), NOW_MS).expect_err(body);
        (e.status, e.message)
    }

    #[test]
    fn good_bodies_decode_to_their_requests() {
        let body = format!(r#"{{"topic":"news","payload_hex":"00ff","members":["{DID}"]}}"#);
        let Ok(ApiRequest::Publish {
            topic,
            payload,
            members,
            task,
        }) = decode("/v1/publish", body.as_bytes(), NOW_MS)
        else {
            panic!("not a publish");
        };
        assert_eq!(
            (topic.as_str(), payload, members.len(), task.as_str()),
            ("news", vec![0, 255], 1, "")
        );
        let body = format!(r#"{{"subject":"{DID}","weight":40}}"#);
        let Ok(ApiRequest::Evidence {
            input: EvidenceInput::Vouch { expires_ms, .. },
            ..
        }) = decode("/v1/vouch", body.as_bytes(), NOW_MS)
        else {
            panic!("not a vouch");
        };
        assert_eq!(expires_ms, NOW_MS + VOUCH_DEFAULT_MS);
    }

    #[test]
    fn bad_bodies_get_the_reason() {
        assert_eq!(
            error("/v1/publish", r#"{"topic":"news"}"#),
            (
                400,
                "give exactly one of `payload` (text) or `payload_hex`".into()
            )
        );
        assert_eq!(
            error("/v1/direct", r#"{"to":"did:web:x","payload":"hi"}"#).0,
            400
        );
        assert!(
            error("/v1/revoke", r#"{"subject":"x","reason":"r","extra":1}"#)
                .1
                .contains("unknown field `extra`")
        );
        let over = format!(r#"{{"subject":"{DID}","weight":101}}"#);
        assert_eq!(
            error("/v1/vouch", &over),
            (400, "weight must be 0..=100 (0 withdraws)".into())
        );
        assert_eq!(
            error("/v1/policy/change", "{}"),
            (
                400,
                "no edits: give `put_rules`, `remove_rules` or `change_hex`".into()
            )
        );
        assert_eq!(error("/v1/nothing", "{}").0, 404);
        assert!(
            error("/v1/evidence", "not json")
                .1
                .starts_with("the JSON body: ")
        );
    }
}
