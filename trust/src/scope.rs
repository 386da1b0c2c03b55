//! What a mandate allows: capabilities over topic and tool patterns.
//!
//! A scope is a set of capabilities, written as text:
//! `publish:<pattern>`, `subscribe:<pattern>`, `call:<pattern>`, `vouch` and
//! `delegate(N)`. A pattern is either exact (`billing.invoices`) or a prefix
//! ending in `*` (`billing.*`, or `*` for everything). Attenuation is the
//! subset relation: a scope is within its parent's when each of its
//! capabilities is covered by one of the parent's.

use std::fmt;
use std::str::FromStr;

/// Longest pattern accepted, in bytes.
pub const PATTERN_BYTES_MAX: usize = 256;
/// Most capabilities in one scope.
pub const SCOPE_CAPABILITIES_MAX: usize = 64;
/// Deepest delegation a capability can grant.
pub const DELEGATE_DEPTH_MAX: u8 = 8;

/// Why a capability or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not one of the capability forms.
    #[error(
        "unknown capability `{0}`: use publish:<pattern>, subscribe:<pattern>, call:<pattern>, vouch or delegate(N)"
    )]
    Unknown(String),
    /// The pattern is empty, too long, has a `*` before its end or control characters.
    #[error("bad pattern `{0}`: patterns are 1..=256 printable bytes with `*` only at the end")]
    Pattern(String),
    /// `delegate(N)` with N outside 1..=8.
    #[error("delegate depth must be 1..=8, got `{0}`")]
    Depth(String),
    /// Too many capabilities.
    #[error("a scope holds at most 64 capabilities, got {0}")]
    TooMany(usize),
}

/// A topic or tool pattern: exact, or a prefix ending in `*`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pattern(String);

impl Pattern {
    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self.prefix() {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.0,
        }
    }

    /// Whether every name this pattern matches is also matched by `other`.
    pub fn is_within(&self, other: &Pattern) -> bool {
        match (self.prefix(), other.prefix()) {
            (_, Some(outer)) => self.literal().starts_with(outer),
            (None, None) => self.0 == other.0,
            (Some(_), None) => false,
        }
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For a prefix pattern (`billing.*`), the prefix (`billing.`).
    pub fn prefix(&self) -> Option<&str> {
        self.0.strip_suffix('*')
    }

    fn literal(&self) -> &str {
        self.prefix().unwrap_or(&self.0)
    }
}

impl FromStr for Pattern {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let star_inside = text.find('*').is_some_and(|at| at + 1 != text.len());
        let bad_char = text.chars().any(|c| c.is_control() || c.is_whitespace());
        if text.is_empty() || text.len() > PATTERN_BYTES_MAX || star_inside || bad_char {
            return Err(ScopeError::Pattern(text.chars().take(64).collect()));
        }
        Ok(Self(text.to_string()))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// One thing a mandate allows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Publish on topics matching the pattern.
    Publish(Pattern),
    /// Subscribe to topics matching the pattern.
    Subscribe(Pattern),
    /// Call tools matching the pattern.
    Call(Pattern),
    /// Vouch for other agents.
    Vouch,
    /// Issue mandates to sub-agents, up to this many further links.
    Delegate(u8),
}

impl Capability {
    /// Whether this capability grants no more than `other`.
    pub fn is_within(&self, other: &Capability) -> bool {
        match (self, other) {
            (Self::Publish(a), Self::Publish(b))
            | (Self::Subscribe(a), Self::Subscribe(b))
            | (Self::Call(a), Self::Call(b)) => a.is_within(b),
            (Self::Vouch, Self::Vouch) => true,
            (Self::Delegate(a), Self::Delegate(b)) => a <= b,
            _ => false,
        }
    }
}

impl FromStr for Capability {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(pattern) = text.strip_prefix("publish:") {
            return Ok(Self::Publish(pattern.parse()?));
        }
        if let Some(pattern) = text.strip_prefix("subscribe:") {
            return Ok(Self::Subscribe(pattern.parse()?));
        }
        if let Some(pattern) = text.strip_prefix("call:") {
            return Ok(Self::Call(pattern.parse()?));
        }
        if text == "vouch" {
            return Ok(Self::Vouch);
        }
        if let Some(depth) = text
            .strip_prefix("delegate(")
            .and_then(|t| t.strip_suffix(')'))
        {
            return match depth.parse::<u8>() {
                Ok(d) if (1..=DELEGATE_DEPTH_MAX).contains(&d) => Ok(Self::Delegate(d)),
                _ => Err(ScopeError::Depth(depth.chars().take(16).collect())),
            };
        }
        Err(ScopeError::Unknown(text.chars().take(64).collect()))
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Publish(p) => write!(f, "publish:{p}"),
            Self::Subscribe(p) => write!(f, "subscribe:{p}"),
            Self::Call(p) => write!(f, "call:{p}"),
            Self::Vouch => f.write_str("vouch"),
            Self::Delegate(d) => write!(f, "delegate({d})"),
        }
    }
}

/// A set of capabilities, kept sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope(Vec<Capability>);

impl Scope {
    /// A scope of these capabilities.
    pub fn new(mut capabilities: Vec<Capability>) -> Result<Self, ScopeError> {
        capabilities.sort();
        capabilities.dedup();
        // Exact: a mandate lives as long as the records that carry it.
        capabilities.shrink_to_fit();
        if capabilities.len() > SCOPE_CAPABILITIES_MAX {
            return Err(ScopeError::TooMany(capabilities.len()));
        }
        Ok(Self(capabilities))
    }

    /// Parses capability strings.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self, ScopeError> {
        if texts.len() > SCOPE_CAPABILITIES_MAX {
            return Err(ScopeError::TooMany(texts.len()));
        }
        Self::new(
            texts
                .iter()
                .map(|t| t.as_ref().parse())
                .collect::<Result<_, _>>()?,
        )
    }

    /// The capabilities.
    pub fn capabilities(&self) -> &[Capability] {
        &self.0
    }

    /// The capability strings, for encoding.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Whether every capability here is covered by one in `parent`.
    pub fn is_within(&self, parent: &Scope) -> bool {
        self.0
            .iter()
            .all(|c| parent.0.iter().any(|p| c.is_within(p)))
    }

    /// The first capability not covered by `parent`, if any.
    pub fn first_outside(&self, parent: &Scope) -> Option<&Capability> {
        self.0
            .iter()
            .find(|c| !parent.0.iter().any(|p| c.is_within(p)))
    }

    /// The deepest `delegate(N)` granted, 0 when none.
    pub fn delegate_depth(&self) -> u8 {
        self.0
            .iter()
            .filter_map(|c| match c {
                Capability::Delegate(d) => Some(*d),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether publishing on `topic` is allowed.
    pub fn permits_publish(&self, topic: &str) -> bool {
        self.0
            .iter()
            .any(|c| matches!(c, Capability::Publish(p) if p.matches(topic)))
    }

    /// Whether subscribing to `topic` is allowed.
    pub fn permits_subscribe(&self, topic: &str) -> bool {
        self.0
            .iter()
            .any(|c| matches!(c, Capability::Subscribe(p) if p.matches(topic)))
    }

    /// Whether calling `tool` is allowed.
    pub fn permits_call(&self, tool: &str) -> bool {
        self.0
            .iter()
            .any(|c| matches!(c, Capability::Call(p) if p.matches(tool)))
    }

    /// Whether vouching is allowed.
    pub fn permits_vouch(&self) -> bool {
        self.0.contains(&Capability::Vouch)
    }

    /// Whether this scope holds `capability` (or one that covers it).
    pub fn covers(&self, capability: &Capability) -> bool {
        self.0.iter().any(|c| capability.is_within(c))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_strings().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scope(texts: &[&str]) -> Scope {
        Scope::parse(texts).unwrap()
    }

    #[test]
    fn patterns_match_and_nest() {
        let all: Pattern = "*".parse().unwrap();
        let billing: Pattern = "billing.*".parse().unwrap();
        let invoices: Pattern = "billing.invoices".parse().unwrap();
        assert!(billing.matches("billing.invoices"));
        assert!(!billing.matches("hr.salaries"));
        assert!(invoices.is_within(&billing) && billing.is_within(&all));
        assert!(!billing.is_within(&invoices));
        assert!(!all.is_within(&billing));
        assert!(
            "billing.inv*"
                .parse::<Pattern>()
                .unwrap()
                .is_within(&billing)
        );
        for bad in ["", "a*b", "has space", "tab\t"] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn capabilities_parse_print_and_attenuate() {
        let parent = scope(&["publish:billing.*", "call:search", "vouch", "delegate(2)"]);
        assert_eq!(
            parent.to_string(),
            "publish:billing.* call:search vouch delegate(2)"
        );
        assert!(scope(&["publish:billing.invoices", "delegate(1)"]).is_within(&parent));
        let wider = scope(&["publish:*", "vouch"]);
        assert!(!wider.is_within(&parent));
        assert_eq!(
            wider
                .first_outside(&parent)
                .map(ToString::to_string)
                .as_deref(),
            Some("publish:*")
        );
        assert!(!scope(&["delegate(3)"]).is_within(&parent));
        assert_eq!(parent.delegate_depth(), 2);
        assert!(parent.permits_publish("billing.x") && !parent.permits_subscribe("billing.x"));
        assert_eq!(
            "delegate(0)".parse::<Capability>(),
            Err(ScopeError::Depth("0".into()))
        );
        assert_eq!(
            "write:x".parse::<Capability>(),
            Err(ScopeError::Unknown("write:x".into()))
        );
    }

    fn capability() -> impl Strategy<Value = Capability> {
        let pattern = prop_oneof![Just("*"), Just("a*"), Just("a.b"), Just("a.b*"), Just("b")]
            .prop_map(|p| p.parse::<Pattern>().unwrap());
        prop_oneof![
            pattern.clone().prop_map(Capability::Publish),
            pattern.clone().prop_map(Capability::Subscribe),
            pattern.prop_map(Capability::Call),
            Just(Capability::Vouch),
            (1u8..=8).prop_map(Capability::Delegate),
        ]
    }

    proptest! {
        #[test]
        fn capability_text_round_trips(c in capability()) {
            prop_assert_eq!(c.to_string().parse::<Capability>().unwrap(), c);
        }

        #[test]
        fn within_is_reflexive_and_transitive(a in capability(), b in capability(), c in capability()) {
            prop_assert!(a.is_within(&a));
            if a.is_within(&b) && b.is_within(&c) {
                prop_assert!(a.is_within(&c));
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = text.parse::<Capability>();
        }
    }
}
