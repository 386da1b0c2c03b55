//! Policy rules and rings: the typed form of what the policy document holds.
//!
//! Rules are stored as text fields so a governor (or a person reading a
//! dump) sees what they mean: the actor is `*`, a DID, `principal:<DID>`,
//! `tier>=<tier>` or `scope:<capability>`; the action one of `publish`,
//! `subscribe`, `call`, `vouch`, `delegate`, `join`; the resource a pattern.

use std::fmt;
use std::str::FromStr;

use crate::did::Did;
use crate::scope::{Capability, Pattern};
use crate::score::Tier;

/// Longest rule id, in bytes.
pub const RULE_ID_BYTES_MAX: usize = 64;
/// Highest rule priority.
pub const PRIORITY_MAX: u32 = 1000;
/// Longest reason, in bytes.
pub const REASON_BYTES_MAX: usize = 256;

/// Why a rule, ring or edit is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A field has a bad value.
    #[error("rule `{rule}`: {field}: {reason}")]
    Field {
        /// The rule id (or ring name).
        rule: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn field_error(rule: &str, field: &'static str, reason: impl Into<String>) -> RuleError {
    RuleError::Field {
        rule: rule.chars().take(RULE_ID_BYTES_MAX).collect(),
        field,
        reason: reason.into(),
    }
}

/// What an agent is trying to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Publish on a topic.
    Publish,
    /// Subscribe to a topic.
    Subscribe,
    /// Call a tool.
    Call,
    /// Vouch for an agent.
    Vouch,
    /// Delegate to a sub-agent.
    Delegate,
    /// Join the mesh.
    Join,
}

impl Action {
    /// All actions.
    pub const ALL: [Action; 6] = [
        Self::Publish,
        Self::Subscribe,
        Self::Call,
        Self::Vouch,
        Self::Delegate,
        Self::Join,
    ];

    /// The name used in policy documents.
    pub fn name(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Call => "call",
            Self::Vouch => "vouch",
            Self::Delegate => "delegate",
            Self::Join => "join",
        }
    }

    /// Dense index, for per-action tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown action `{s}`: use publish, subscribe, call, vouch, delegate or join"
                )
            })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// Deny (sorts first: at equal priority a deny wins).
    Deny,
    /// Allow.
    Allow,
}

impl Effect {
    /// The name used in policy documents.
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl FromStr for Effect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            _ => Err(format!("unknown effect `{s}`: use allow or deny")),
        }
    }
}

/// Which actors a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActorMatch {
    /// Everyone (`*`).
    Any,
    /// One identity.
    Did(Did),
    /// Every agent whose principal is this identity (`principal:<DID>`).
    Principal(Did),
    /// Agents at this tier or above (`tier>=<tier>`).
    TierAtLeast(Tier),
    /// Agents whose mandate holds this capability (`scope:<capability>`).
    Scope(Capability),
}

impl FromStr for ActorMatch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "*" {
            return Ok(Self::Any);
        }
        if let Some(p) = s.strip_prefix("principal:") {
            return p
                .parse()
                .map(Self::Principal)
                .map_err(|e: crate::did::DidError| e.to_string());
        }
        if let Some(t) = s.strip_prefix("tier>=") {
            return Tier::from_name(t).map(Self::TierAtLeast).ok_or_else(|| {
                format!(
                    "unknown tier `{t}`: use untrusted, probationary, standard, trusted or verified"
                )
            });
        }
        if let Some(c) = s.strip_prefix("scope:") {
            return c
                .parse()
                .map(Self::Scope)
                .map_err(|e: crate::scope::ScopeError| e.to_string());
        }
        if s.starts_with("did:") {
            return s
                .parse()
                .map(Self::Did)
                .map_err(|e: crate::did::DidError| e.to_string());
        }
        Err(format!(
            "unknown actor `{s}`: use *, a did:key, principal:<did>, tier>=<tier> or scope:<capability>"
        ))
    }
}

impl fmt::Display for ActorMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Did(d) => write!(f, "{d}"),
            Self::Principal(d) => write!(f, "principal:{d}"),
            Self::TierAtLeast(t) => write!(f, "tier>={t}"),
            Self::Scope(c) => write!(f, "scope:{c}"),
        }
    }
}

/// One policy rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Unique name, `[a-z0-9._-]`, 1..=64 bytes.
    pub id: String,
    /// Higher wins; at equal priority deny wins, then the lower id.
    pub priority: u32,
    /// Who it applies to.
    pub actor: ActorMatch,
    /// What it governs.
    pub action: Action,
    /// Which topics, tools or subjects.
    pub resource: Pattern,
    /// Allow or deny.
    pub effect: Effect,
    /// Told to whoever is refused (or allowed).
    pub reason: String,
}

impl Rule {
    /// Parses a rule from its text fields.
    pub fn parse(
        id: &str,
        priority: u64,
        actor: &str,
        action: &str,
        resource: &str,
        effect: &str,
        reason: &str,
    ) -> Result<Self, RuleError> {
        let rule = Self {
            id: id.to_string(),
            priority: u32::try_from(priority).unwrap_or(u32::MAX),
            actor: actor.parse().map_err(|e| field_error(id, "actor", e))?,
            action: action.parse().map_err(|e| field_error(id, "action", e))?,
            resource: resource.parse().map_err(|e: crate::scope::ScopeError| {
                field_error(id, "resource", e.to_string())
            })?,
            effect: effect.parse().map_err(|e| field_error(id, "effect", e))?,
            reason: reason.to_string(),
        };
        rule.validate()?;
        Ok(rule)
    }

    /// Checks the id, priority and reason.
    pub fn validate(&self) -> Result<(), RuleError> {
        validate_id(&self.id)?;
        if self.priority > PRIORITY_MAX {
            return Err(field_error(
                &self.id,
                "priority",
                format!("must be 0..={PRIORITY_MAX}"),
            ));
        }
        if self.reason.len() > REASON_BYTES_MAX {
            return Err(field_error(
                &self.id,
                "reason",
                format!("longer than {REASON_BYTES_MAX} bytes"),
            ));
        }
        Ok(())
    }
}

/// Checks a rule id.
pub(crate) fn validate_id(id: &str) -> Result<(), RuleError> {
    let ok = !id.is_empty()
        && id.len() <= RULE_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    match ok {
        true => Ok(()),
        false => Err(field_error(
            id,
            "id",
            "must be 1..=64 characters of a-z, 0-9, `.`, `_` or `-`",
        )),
    }
}

/// The privileges of a tier: how fast and how large its agents may publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ring {
    /// Sustained messages per second.
    pub rate_per_s: u32,
    /// Messages allowed in a burst.
    pub burst: u32,
    /// Largest message payload, in bytes.
    pub message_bytes_max: u32,
}

/// Highest rate a ring may set.
pub const RING_RATE_MAX: u32 = 1_000_000;

impl Ring {
    /// The built-in ring of a tier, used when the document names none.
    pub fn default_for(tier: Tier) -> Self {
        let (rate_per_s, burst, message_bytes_max) = match tier {
            Tier::Untrusted => (0, 0, 0),
            Tier::Probationary => (10, 20, 64 * 1024),
            Tier::Standard => (50, 100, 256 * 1024),
            Tier::Trusted => (200, 400, 1024 * 1024),
            Tier::Verified => (1000, 2000, 1024 * 1024),
        };
        Self {
            rate_per_s,
            burst,
            message_bytes_max,
        }
    }

    /// Checks the values.
    pub fn validate(&self, tier: Tier) -> Result<(), RuleError> {
        if self.rate_per_s > RING_RATE_MAX || self.burst > RING_RATE_MAX {
            return Err(field_error(
                tier.name(),
                "rate_per_s",
                format!("rates must be at most {RING_RATE_MAX}"),
            ));
        }
        if self.message_bytes_max > 16 * 1024 * 1024 {
            return Err(field_error(
                tier.name(),
                "message_bytes_max",
                "must be at most 16 MiB",
            ));
        }
        Ok(())
    }
}
