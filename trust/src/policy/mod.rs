//! Governance policy: an automerge document, changed only by governors.
//!
//! The document holds `rules` (a map from rule id to a map of text fields)
//! and `rings` (a map from tier name to rate limits). Both maps are created
//! in the genesis document, so concurrent changes by different governors
//! edit the same objects and merge (two governors creating `rules` at once
//! would otherwise leave one of them invisible). Every change arrives as a
//! [`PolicyChange`] signed by a governor; the document is replicated by
//! gossip of those envelopes and caught up by reconciliation, and converges
//! because automerge is a CRDT. After each applied change the document is
//! compiled into [`Compiled`] tables that `decide` reads.

mod change;
mod compiled;
mod rule;

use std::collections::BTreeMap;
use std::sync::Arc;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ChangeHash, ObjType, ROOT, ReadDoc};

pub use change::{CHANGE_BYTES_MAX, ChangeError, PolicyChange, actor_of};
pub use compiled::{Actor, Compiled, Decision};
pub use rule::{
    Action, ActorMatch, Effect, PRIORITY_MAX, REASON_BYTES_MAX, RING_RATE_MAX, RULE_ID_BYTES_MAX,
    Ring, Rule, RuleError,
};

use crate::did::Did;
use crate::genesis::Genesis;
use crate::keys::Keypair;
use crate::score::Tier;

const RULES: &str = "rules";
const RINGS: &str = "rings";

/// Why a policy operation failed. The document is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The envelope was refused.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// An edit is invalid.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The edit removes a rule that does not exist.
    #[error("there is no rule `{0}` to remove")]
    NoSuchRule(String),
    /// The edit changes nothing.
    #[error("the change is empty")]
    Empty,
    /// Only governors may propose changes.
    #[error("{0} is not a governor of this mesh and cannot change its policy")]
    NotGovernor(Did),
    /// The document bytes or change could not be used.
    #[error("policy document: {0}")]
    Document(String),
}

/// One edit a governor makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Add or replace a rule.
    PutRule(Rule),
    /// Remove a rule by id.
    RemoveRule(String),
    /// Set a tier's ring.
    PutRing(Tier, Ring),
}

/// What applying a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied; the compiled tables were rebuilt.
    Applied,
    /// Already held.
    Duplicate,
    /// Held until the changes it depends on arrive.
    Pending,
}

/// A replica of the policy document and its compiled form.
#[derive(Debug, Clone)]
pub struct Policy {
    doc: Automerge,
    changes: BTreeMap<ChangeHash, Arc<PolicyChange>>,
    compiled: Arc<Compiled>,
}

impl Policy {
    /// Loads the policy document from bytes (as carried in the genesis).
    pub fn load(bytes: &[u8]) -> Result<Self, PolicyError> {
        let doc = Automerge::load(bytes).map_err(|e| PolicyError::Document(e.to_string()))?;
        let compiled = Arc::new(compile(&doc));
        Ok(Self {
            doc,
            changes: BTreeMap::new(),
            compiled,
        })
    }

    /// The initial policy of a mesh.
    pub fn from_genesis(genesis: &Genesis) -> Self {
        Self::load(genesis.policy_bytes())
            .unwrap_or_else(|e| unreachable!("genesis policy was checked: {e}"))
    }

    /// The compiled tables (cheap to clone and share).
    pub fn compiled(&self) -> &Arc<Compiled> {
        &self.compiled
    }

    /// Whether `actor` may do `action` on `resource`.
    pub fn decide(&self, actor: &Actor<'_>, action: Action, resource: &str) -> Decision<'_> {
        self.compiled.decide(actor, action, resource)
    }

    /// The document's current heads, sorted.
    pub fn heads(&self) -> Vec<ChangeHash> {
        let mut heads = self.doc.get_heads();
        heads.sort();
        heads
    }

    /// Every change envelope held, by hash.
    pub fn changes(&self) -> &BTreeMap<ChangeHash, Arc<PolicyChange>> {
        &self.changes
    }

    /// The whole document, for storage.
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    /// Makes, signs and returns a change; apply it with [`Policy::apply`] like
    /// any other. The document itself is not touched.
    pub fn propose(
        &self,
        governor: &Keypair,
        genesis: &Genesis,
        now_ms: u64,
        edits: &[Edit],
    ) -> Result<PolicyChange, PolicyError> {
        if !genesis.is_governor(&governor.did()) {
            return Err(PolicyError::NotGovernor(governor.did()));
        }
        if edits.is_empty() {
            return Err(PolicyError::Empty);
        }
        for edit in edits {
            match edit {
                Edit::PutRule(rule) => rule.validate()?,
                Edit::PutRing(tier, ring) => ring.validate(*tier)?,
                Edit::RemoveRule(id) => {
                    if !rule_ids(&self.doc).any(|r| r == *id) {
                        return Err(PolicyError::NoSuchRule(id.clone()));
                    }
                }
            }
        }
        let mut fork = self.doc.fork().with_actor(actor_of(&governor.did()));
        let time_s = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        fork.transact_with(
            |_| CommitOptions::default().with_time(time_s),
            |tx| {
                for edit in edits {
                    write_edit(tx, edit)?;
                }
                Ok::<_, automerge::AutomergeError>(())
            },
        )
        .map_err(|f| PolicyError::Document(f.error.to_string()))?;
        let change = fork.get_last_local_change().ok_or(PolicyError::Empty)?;
        Ok(PolicyChange::seal(governor, genesis, &change)?)
    }

    /// Verifies and applies a change envelope received as bytes.
    pub fn apply_bytes(&mut self, bytes: &[u8], genesis: &Genesis) -> Result<Applied, PolicyError> {
        let change = PolicyChange::from_bytes(bytes, genesis)?;
        self.apply(Arc::new(change))
    }

    /// Applies a verified change.
    pub fn apply(&mut self, change: Arc<PolicyChange>) -> Result<Applied, PolicyError> {
        let hash = change.hash();
        if self.changes.contains_key(&hash) {
            return Ok(Applied::Duplicate);
        }
        let before = self.doc.get_heads();
        self.doc
            .apply_changes([change.change().clone()])
            .map_err(|e| PolicyError::Document(e.to_string()))?;
        self.changes.insert(hash, change);
        if self.doc.get_heads() == before {
            return Ok(Applied::Pending);
        }
        self.compiled = Arc::new(compile(&self.doc));
        Ok(Applied::Applied)
    }
}

/// The policy document a new mesh starts with: admitted agents may join,
/// publish, subscribe and call; vouching needs the standard tier and
/// delegating the trusted tier; rings as in [`Ring::default_for`].
pub fn initial_document(creator: &Did, created_ms: u64) -> Vec<u8> {
    let mut doc = Automerge::new().with_actor(actor_of(creator));
    let rule = |id: &str, tier: &str, action: &str, reason: &str| {
        Rule::parse(
            id,
            100,
            &format!("tier>={tier}"),
            action,
            "*",
            "allow",
            reason,
        )
        .unwrap_or_else(|e| unreachable!("built-in rule is valid: {e}"))
    };
    let rules = [
        rule("join", "probationary", "join", "admitted agents may join"),
        rule(
            "publish",
            "probationary",
            "publish",
            "admitted agents may publish within their mandate",
        ),
        rule(
            "subscribe",
            "probationary",
            "subscribe",
            "admitted agents may subscribe within their mandate",
        ),
        rule(
            "call",
            "probationary",
            "call",
            "admitted agents may call tools within their mandate",
        ),
        rule(
            "vouch",
            "standard",
            "vouch",
            "vouching needs the standard tier",
        ),
        rule(
            "delegate",
            "trusted",
            "delegate",
            "delegating needs the trusted tier",
        ),
    ];
    let time_s = i64::try_from(created_ms / 1000).unwrap_or(i64::MAX);
    doc.transact_with(
        |_| CommitOptions::default().with_time(time_s),
        |tx| {
            tx.put_object(ROOT, RULES, ObjType::Map)?;
            tx.put_object(ROOT, RINGS, ObjType::Map)?;
            for rule in rules {
                write_edit(tx, &Edit::PutRule(rule))?;
            }
            for tier in Tier::ALL {
                write_edit(tx, &Edit::PutRing(tier, Ring::default_for(tier)))?;
            }
            Ok::<_, automerge::AutomergeError>(())
        },
    )
    .unwrap_or_else(|f| unreachable!("writing a fresh document cannot fail: {}", f.error));
    doc.save()
}

fn map_at<R: ReadDoc>(doc: &R, key: &str) -> Option<automerge::ObjId> {
    match doc.get(ROOT, key).ok()?? {
        (automerge::Value::Object(ObjType::Map), id) => Some(id),
        _ => None,
    }
}

fn write_edit(tx: &mut impl Transactable, edit: &Edit) -> Result<(), automerge::AutomergeError> {
    let missing = || automerge::AutomergeError::InvalidOp(ObjType::Map);
    match edit {
        Edit::PutRule(rule) => {
            let rules = map_at(tx, RULES).ok_or_else(missing)?;
            let obj = tx.put_object(&rules, rule.id.as_str(), ObjType::Map)?;
            tx.put(&obj, "priority", u64::from(rule.priority))?;
            tx.put(&obj, "actor", rule.actor.to_string())?;
            tx.put(&obj, "action", rule.action.name())?;
            tx.put(&obj, "resource", rule.resource.as_str())?;
            tx.put(&obj, "effect", rule.effect.name())?;
            tx.put(&obj, "reason", rule.reason.as_str())?;
        }
        Edit::RemoveRule(id) => {
            let rules = map_at(tx, RULES).ok_or_else(missing)?;
            tx.delete(&rules, id.as_str())?;
        }
        Edit::PutRing(tier, ring) => {
            let rings = map_at(tx, RINGS).ok_or_else(missing)?;
            let obj = tx.put_object(&rings, tier.name(), ObjType::Map)?;
            tx.put(&obj, "rate_per_s", u64::from(ring.rate_per_s))?;
            tx.put(&obj, "burst", u64::from(ring.burst))?;
            tx.put(&obj, "message_bytes_max", u64::from(ring.message_bytes_max))?;
        }
    }
    Ok(())
}

fn rule_ids(doc: &Automerge) -> impl Iterator<Item = String> + '_ {
    map_at(doc, RULES)
        .into_iter()
        .flat_map(move |rules| doc.keys(rules))
}

fn scalar<R: ReadDoc>(
    doc: &R,
    obj: &automerge::ObjId,
    key: &str,
) -> Option<automerge::ScalarValue> {
    match doc.get(obj, key).ok()?? {
        (automerge::Value::Scalar(s), _) => Some(s.into_owned()),
        _ => None,
    }
}

fn text<R: ReadDoc>(doc: &R, obj: &automerge::ObjId, key: &str) -> String {
    scalar(doc, obj, key)
        .and_then(|s| s.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn number<R: ReadDoc>(doc: &R, obj: &automerge::ObjId, key: &str) -> Option<u64> {
    scalar(doc, obj, key).and_then(|s| s.as_u64())
}

fn compile(doc: &Automerge) -> Compiled {
    let mut rules = Vec::new();
    let mut problems = Vec::new();
    if let Some(map) = map_at(doc, RULES) {
        for id in doc.keys(&map) {
            let Some((automerge::Value::Object(ObjType::Map), obj)) =
                doc.get(&map, id.as_str()).ok().flatten()
            else {
                problems.push(format!("rule `{id}` is not a map"));
                continue;
            };
            let parsed = Rule::parse(
                &id,
                number(doc, &obj, "priority").unwrap_or(u64::MAX),
                &text(doc, &obj, "actor"),
                &text(doc, &obj, "action"),
                &text(doc, &obj, "resource"),
                &text(doc, &obj, "effect"),
                &text(doc, &obj, "reason"),
            );
            match parsed {
                Ok(rule) => rules.push(rule),
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    let rings_map = map_at(doc, RINGS);
    let rings = Tier::ALL.map(|tier| {
        let fallback = Ring::default_for(tier);
        let Some(Some((_, obj))) = rings_map
            .as_ref()
            .map(|m| doc.get(m, tier.name()).ok().flatten())
        else {
            return fallback;
        };
        let field = |key, default: u32| {
            number(doc, &obj, key)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(default)
        };
        let ring = Ring {
            rate_per_s: field("rate_per_s", fallback.rate_per_s),
            burst: field("burst", fallback.burst),
            message_bytes_max: field("message_bytes_max", fallback.message_bytes_max),
        };
        match ring.validate(tier) {
            Ok(()) => ring,
            Err(e) => {
                problems.push(e.to_string());
                fallback
            }
        }
    });
    Compiled::new(rules, rings, problems)
}

#[cfg(test)]
mod tests;
