//! The policy compiled into flat lookup tables for `decide`.
//!
//! Rules are ranked once by precedence (priority, then deny before allow,
//! then id). For each action they are indexed four ways: rules naming one
//! DID (by DID), rules naming a principal (by principal), and the rest by
//! resource: exact resources in one map, prefix patterns in another keyed
//! by prefix, with the set of prefix lengths in use. `decide` looks up the
//! actor's DID and principal, the resource, and the resource's prefixes of
//! each length in use, takes the first rule whose actor matches from each
//! candidate list, and keeps the best rank: no allocation, a handful of
//! hash lookups and short scans. No rule matching means deny.

use std::collections::HashMap;

use crate::did::Did;
use crate::scope::{Capability, Scope};
use crate::score::Tier;

use super::rule::{Action, ActorMatch, Effect, Ring, Rule};

/// The agent asking, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Its identity.
    pub did: &'a Did,
    /// Who authorised it (the issuer of its mandate).
    pub principal: &'a Did,
    /// Its current tier.
    pub tier: Tier,
    /// Its mandate's scope.
    pub scope: &'a Scope,
}

/// The answer of `decide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Allow or deny.
    pub effect: Effect,
    /// The rule that decided, or `None` for the mandate check or the default.
    pub rule: Option<&'a str>,
    /// Why.
    pub reason: &'a str,
}

impl Decision<'_> {
    /// Whether the action is allowed.
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}

const DEFAULT_DENY: &str = "no policy rule allows this (default deny)";
const OUTSIDE_MANDATE: &str = "outside the agent's mandate scope";

#[derive(Debug, Default)]
struct ActionTable {
    by_did: HashMap<Did, Vec<u32>>,
    by_principal: HashMap<Did, Vec<u32>>,
    exact: HashMap<Box<str>, Vec<u32>>,
    prefixes: HashMap<Box<str>, Vec<u32>>,
    prefix_lengths: Vec<usize>,
}

/// Flat, immutable, shareable decision tables.
#[derive(Debug)]
pub struct Compiled {
    /// Rules in precedence order; indices in the tables are ranks.
    rules: Vec<Rule>,
    tables: [ActionTable; 6],
    rings: [Ring; 5],
    problems: Vec<String>,
}

impl Compiled {
    /// Builds the tables.
    pub fn new(mut rules: Vec<Rule>, rings: [Ring; 5], problems: Vec<String>) -> Self {
        rules.sort_by(|a, b| {
            (std::cmp::Reverse(a.priority), a.effect, &a.id).cmp(&(
                std::cmp::Reverse(b.priority),
                b.effect,
                &b.id,
            ))
        });
        let mut tables: [ActionTable; 6] = Default::default();
        for (rank, rule) in rules.iter().enumerate() {
            let table = &mut tables[rule.action.index()];
            let rank = rank as u32;
            match (&rule.actor, rule.resource.prefix()) {
                (ActorMatch::Did(d), _) => table.by_did.entry(*d).or_default().push(rank),
                (ActorMatch::Principal(p), _) => {
                    table.by_principal.entry(*p).or_default().push(rank)
                }
                (_, None) => table
                    .exact
                    .entry(rule.resource.as_str().into())
                    .or_default()
                    .push(rank),
                (_, Some(prefix)) => {
                    table.prefixes.entry(prefix.into()).or_default().push(rank);
                    table.prefix_lengths.push(prefix.len());
                }
            }
        }
        for table in &mut tables {
            table.prefix_lengths.sort_unstable();
            table.prefix_lengths.dedup();
        }
        Self {
            rules,
            tables,
            rings,
            problems,
        }
    }

    /// Whether `actor` may do `action` on `resource`.
    pub fn decide(&self, actor: &Actor<'_>, action: Action, resource: &str) -> Decision<'_> {
        if !within_mandate(actor.scope, action, resource) {
            return Decision {
                effect: Effect::Deny,
                rule: None,
                reason: OUTSIDE_MANDATE,
            };
        }
        let table = &self.tables[action.index()];
        let first_match = |ranks: &Vec<u32>| {
            ranks
                .iter()
                .copied()
                .find(|&r| self.matches(&self.rules[r as usize], actor, resource))
        };
        let named = [
            table.by_did.get(actor.did),
            table.by_principal.get(actor.principal),
            table.exact.get(resource),
        ];
        let prefixed = table
            .prefix_lengths
            .iter()
            .take_while(|&&len| len <= resource.len())
            .filter_map(|&len| {
                resource
                    .get(..len)
                    .and_then(|prefix| table.prefixes.get(prefix))
            });
        let best = named
            .into_iter()
            .flatten()
            .chain(prefixed)
            .filter_map(first_match)
            .min();
        match best {
            Some(rank) => {
                let rule = &self.rules[rank as usize];
                Decision {
                    effect: rule.effect,
                    rule: Some(&rule.id),
                    reason: &rule.reason,
                }
            }
            None => Decision {
                effect: Effect::Deny,
                rule: None,
                reason: DEFAULT_DENY,
            },
        }
    }

    fn matches(&self, rule: &Rule, actor: &Actor<'_>, resource: &str) -> bool {
        let who = match &rule.actor {
            ActorMatch::Any | ActorMatch::Did(_) | ActorMatch::Principal(_) => true,
            ActorMatch::TierAtLeast(t) => actor.tier >= *t,
            ActorMatch::Scope(c) => actor.scope.covers(c),
        };
        who && rule.resource.matches(resource)
    }

    /// The ring (rate limits) of a tier.
    pub fn ring(&self, tier: Tier) -> Ring {
        self.rings[tier as usize]
    }

    /// Rules in precedence order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Rules in the document that could not be read and were ignored.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

fn within_mandate(scope: &Scope, action: Action, resource: &str) -> bool {
    match action {
        Action::Publish => scope.permits_publish(resource),
        Action::Subscribe => scope.permits_subscribe(resource),
        Action::Call => scope.permits_call(resource),
        Action::Vouch => scope.permits_vouch(),
        Action::Delegate => scope.covers(&Capability::Delegate(1)),
        Action::Join => true,
    }
}
