//! Scenarios: what a run simulates, read from TOML or a built-in.
//!
//! Every field has a default, unknown fields are refused by name, and
//! [`Scenario::validate`] refuses impossible values naming the field and
//! what is allowed. `--set key=value` overrides any field by its dotted
//! path before the scenario is read, so overrides are checked the same way.

use serde::{Deserialize, Serialize};

/// Why a scenario cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// The TOML is malformed or names an unknown field.
    #[error("scenario: {0}")]
    Parse(String),
    /// A value is out of range.
    #[error("scenario field `{field}`: {allowed}")]
    Value {
        /// The dotted field path.
        field: &'static str,
        /// What is allowed.
        allowed: String,
    },
    /// No built-in has this name.
    #[error("no built-in scenario `{0}`; built-ins: {1}")]
    Unknown(String, String),
    /// A `--set` argument is not `key=value`.
    #[error("--set `{0}`: use key=value, for example nodes=100000")]
    Set(String),
}

/// Link latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Latency {
    /// Every link the same.
    Constant {
        /// One-way latency.
        ms: u64,
    },
    /// Uniform per frame.
    Uniform {
        /// Lowest.
        min_ms: u64,
        /// Highest.
        max_ms: u64,
    },
    /// Log-normal per frame.
    LogNormal {
        /// Median one-way latency.
        median_ms: f64,
        /// Shape (standard deviation of the log).
        sigma: f64,
    },
    /// Nodes at random points of a square; latency grows with distance.
    Coordinates {
        /// Latency between neighbours at the same point.
        base_ms: u64,
        /// Latency across the diagonal.
        max_ms: u64,
    },
}

/// The network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Latency model.
    pub latency: Latency,
    /// Probability a broadcast frame (gossip, IHAVE, graft) is lost.
    pub loss: f64,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            latency: Latency::Constant { ms: 50 },
            loss: 0.0,
        }
    }
}

/// Publishers on one topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Publishers {
    /// The topic (every node subscribes).
    pub topic: String,
    /// How many nodes publish.
    pub count: u32,
    /// Messages per second, each.
    pub rate_per_s: f64,
    /// Payload size.
    pub size_bytes: u32,
    /// When they start (simulated seconds).
    pub start_s: f64,
    /// When they stop.
    pub stop_s: f64,
}

impl Default for Publishers {
    fn default() -> Self {
        Self {
            topic: "news".into(),
            count: 10,
            rate_per_s: 1.0,
            size_bytes: 256,
            start_s: 0.0,
            stop_s: f64::MAX,
        }
    }
}

/// Session length distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Sessions {
    /// Weibull (shape < 1: many short sessions, a few long).
    Weibull {
        /// Shape.
        shape: f64,
        /// Scale, in seconds.
        scale_s: f64,
    },
    /// Log-normal.
    LogNormal {
        /// Median session, in seconds.
        median_s: f64,
        /// Shape.
        sigma: f64,
    },
}

/// Churn: nodes leave after a session, new ones arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Churn {
    /// Session lengths.
    pub sessions: Sessions,
    /// Arrivals per second (Poisson).
    pub arrivals_per_s: f64,
    /// Share of arrivals that are departed nodes coming back under their
    /// own identity (already known to the mesh); the rest are new agents,
    /// whose records must reach every node.
    pub returning: f64,
    /// When churn starts.
    pub start_s: f64,
}

impl Default for Churn {
    fn default() -> Self {
        Self {
            sessions: Sessions::Weibull {
                shape: 0.8,
                scale_s: 600.0,
            },
            arrivals_per_s: 0.0,
            returning: 0.0,
            start_s: 0.0,
        }
    }
}

/// A partition that splits the nodes in two and heals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// When it splits.
    pub at_s: f64,
    /// When it heals.
    pub heal_s: f64,
    /// Share of nodes on the smaller side.
    pub fraction: f64,
}

/// Many nodes failing at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MassFailure {
    /// When.
    pub at_s: f64,
    /// Share of live nodes that fail.
    pub fraction: f64,
}

/// A Sybil attack by a rogue principal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sybils {
    /// Share of nodes that are Sybils (all with mandates from one rogue principal).
    pub fraction: f64,
    /// Sybils vouch for each other in a ring.
    pub vouch_ring: bool,
    /// Sybils report false successes about each other and false failures about honest agents.
    pub false_reports: bool,
}

impl Default for Sybils {
    fn default() -> Self {
        Self {
            fraction: 0.0,
            vouch_ring: true,
            false_reports: true,
        }
    }
}

/// Outcome evidence from agents with a hidden honesty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Outcomes {
    /// Outcome summaries submitted per second, mesh-wide.
    pub rate_per_s: f64,
    /// Share of honest agents whose tasks succeed (the rest mostly fail).
    pub honest_fraction: f64,
    /// Agents the governor works with directly (its reports seed trust).
    pub governor_sample: u32,
}

impl Default for Outcomes {
    fn default() -> Self {
        Self {
            rate_per_s: 0.0,
            honest_fraction: 0.9,
            governor_sample: 20,
        }
    }
}

/// Adversaries that break the protocol (see the `adversary` module).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Attacks {
    /// When the attacks start (seconds after the workload starts).
    pub at_s: f64,
    /// Nodes flooding their neighbours with their own validly signed messages.
    pub spammers: u32,
    /// Messages per second each spammer sends.
    pub spam_rate_per_s: f64,
    /// Nodes injecting messages in an honest agent's name with a broken signature.
    pub forgers: u32,
    /// Nodes re-sending messages they captured on their links.
    pub replayers: u32,
    /// Sybils of the rogue principal that all dial one honest victim.
    pub eclipse_attackers: u32,
    /// Agents with a bad record that leave and return under a fresh identity.
    pub whitewashers: u32,
    /// Every node's replay window (the gossip core's `message_age_max_ms`,
    /// 60 s by default), in seconds: shortened, stale replays happen
    /// within a short run.
    pub replay_window_s: Option<f64>,
}

impl Default for Attacks {
    fn default() -> Self {
        Self {
            at_s: 5.0,
            spammers: 0,
            spam_rate_per_s: 200.0,
            forgers: 0,
            replayers: 0,
            eclipse_attackers: 0,
            whitewashers: 0,
            replay_window_s: None,
        }
    }
}

/// Stops a run early with a partial report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock seconds (0: none).
    pub wall_s_max: f64,
    /// Peak resident memory in MiB (0: none).
    pub memory_mb_max: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wall_s_max: 0.0,
            memory_mb_max: 0.0,
        }
    }
}

/// One simulated run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// A name for reports.
    pub name: String,
    /// Nodes at the start.
    pub nodes: u32,
    /// Root seed: every random choice derives from it.
    pub seed: u64,
    /// Simulated time after the mesh has formed.
    pub duration_s: f64,
    /// New nodes join this often while the mesh forms.
    pub join_interval_ms: u64,
    /// Quiet time after forming, before the workload.
    pub settle_s: f64,
    /// Frames go through the real codec (always on: frames are bytes).
    pub codec: bool,
    /// The initial nodes' agent records are already held by every node, as
    /// in a mesh that has converged on its roster: all simulated nodes
    /// share that one snapshot (each holds only what it adds later). Off:
    /// each record spreads by gossip as its node joins, and every node
    /// holds its own copy of every record (memory grows with nodes²).
    pub preloaded_records: bool,
    /// The network.
    pub network: Network,
    /// Publishers.
    pub publishers: Vec<Publishers>,
    /// Churn.
    pub churn: Option<Churn>,
    /// A partition.
    pub partition: Option<Partition>,
    /// A mass failure.
    pub mass_failure: Option<MassFailure>,
    /// Revoke an agent's mandate at this time (seconds after the workload starts).
    pub revoke_at_s: Option<f64>,
    /// Terminate an agent (kill switch) at this time.
    pub kill_at_s: Option<f64>,
    /// A governor changes the policy at this time.
    pub policy_change_at_s: Option<f64>,
    /// Sybils.
    pub sybils: Option<Sybils>,
    /// Outcome evidence.
    pub outcomes: Option<Outcomes>,
    /// Adversaries.
    pub attacks: Option<Attacks>,
    /// Where to stop early.
    pub limits: Limits,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "custom".into(),
            nodes: 1_000,
            seed: 1,
            duration_s: 30.0,
            join_interval_ms: 5,
            settle_s: 15.0,
            codec: true,
            preloaded_records: true,
            network: Network::default(),
            publishers: vec![Publishers::default()],
            churn: None,
            partition: None,
            mass_failure: None,
            revoke_at_s: None,
            kill_at_s: None,
            policy_change_at_s: None,
            sybils: None,
            outcomes: None,
            attacks: None,
            limits: Limits::default(),
        }
    }
}

/// The built-in scenarios, with what each shows.
pub const BUILT_INS: [(&str, &str); 9] = [
    (
        "steady",
        "10,000 nodes, 10 publishers, 50 ms links: delivery, latency, last delivery hop and redundancy of a settled tree",
    ),
    (
        "churn",
        "10,000 nodes with Weibull sessions and Poisson arrivals: delivery while a tenth of the mesh turns over",
    ),
    (
        "partition-heal",
        "a 40% partition for 20 s, a revocation issued on one side, and the time to converge after healing",
    ),
    (
        "mass-failure",
        "half the nodes fail at once: how fast the overlay repairs and delivery recovers",
    ),
    (
        "sybil-ring",
        "half the agents are Sybils of one rogue principal, vouching for and praising each other: the highest tier any reaches",
    ),
    (
        "kill-switch",
        "a governor terminates an agent and its mandate is revoked: time to reach 99.9% of 10,000 nodes, and its traffic stops",
    ),
    (
        "policy-rollout",
        "a governor's policy change: time for 99.9% of nodes to hold it",
    ),
    (
        "attacks",
        "1,000 nodes under spam, forged and replayed injection, an eclipse attempt and whitewashing: what gets through",
    ),
    (
        "million",
        "10^6 nodes with churn, a revocation, a kill switch and a policy rollout",
    ),
];

impl Scenario {
    /// A built-in scenario.
    pub fn built_in(name: &str) -> Result<Self, ScenarioError> {
        let base = Self {
            name: name.into(),
            nodes: 10_000,
            join_interval_ms: 2,
            ..Self::default()
        };
        let s = match name {
            "steady" => base,
            "churn" => Self {
                churn: Some(Churn {
                    sessions: Sessions::Weibull {
                        shape: 0.8,
                        scale_s: 300.0,
                    },
                    arrivals_per_s: 30.0,
                    returning: 0.5,
                    start_s: 0.0,
                }),
                duration_s: 60.0,
                ..base
            },
            "partition-heal" => Self {
                partition: Some(Partition {
                    at_s: 2.0,
                    heal_s: 22.0,
                    fraction: 0.4,
                }),
                revoke_at_s: Some(5.0),
                duration_s: 45.0,
                ..base
            },
            "mass-failure" => Self {
                mass_failure: Some(MassFailure {
                    at_s: 5.0,
                    fraction: 0.5,
                }),
                ..base
            },
            "sybil-ring" => Self {
                nodes: 2_000,
                publishers: vec![],
                sybils: Some(Sybils {
                    fraction: 0.5,
                    ..Sybils::default()
                }),
                outcomes: Some(Outcomes {
                    rate_per_s: 200.0,
                    ..Outcomes::default()
                }),
                duration_s: 60.0,
                ..base
            },
            "kill-switch" => Self {
                kill_at_s: Some(5.0),
                revoke_at_s: Some(5.0),
                duration_s: 15.0,
                ..base
            },
            "policy-rollout" => Self {
                policy_change_at_s: Some(5.0),
                duration_s: 15.0,
                ..base
            },
            "attacks" => Self {
                nodes: 1_000,
                outcomes: Some(Outcomes {
                    rate_per_s: 50.0,
                    honest_fraction: 0.8,
                    ..Outcomes::default()
                }),
                attacks: Some(Attacks {
                    at_s: 20.0,
                    spammers: 3,
                    spam_rate_per_s: 200.0,
                    forgers: 3,
                    replayers: 3,
                    eclipse_attackers: 20,
                    whitewashers: 5,
                    replay_window_s: Some(20.0),
                }),
                duration_s: 60.0,
                ..base
            },
            "million" => Self {
                nodes: 1_000_000,
                join_interval_ms: 0,
                settle_s: 30.0,
                publishers: vec![Publishers {
                    count: 4,
                    rate_per_s: 0.5,
                    ..Publishers::default()
                }],
                churn: Some(Churn {
                    sessions: Sessions::Weibull {
                        shape: 0.8,
                        scale_s: 3_600.0,
                    },
                    arrivals_per_s: 200.0,
                    returning: 0.99,
                    start_s: 0.0,
                }),
                revoke_at_s: Some(5.0),
                kill_at_s: Some(10.0),
                policy_change_at_s: Some(15.0),
                duration_s: 30.0,
                ..base
            },
            _ => {
                let names: Vec<&str> = BUILT_INS.iter().map(|(n, _)| *n).collect();
                return Err(ScenarioError::Unknown(name.into(), names.join(", ")));
            }
        };
        Ok(s)
    }

    /// Reads a scenario from TOML text, applying `--set` overrides first.
    pub fn from_toml(text: &str, sets: &[String]) -> Result<Self, ScenarioError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ScenarioError::Parse(e.to_string()))?;
        for (alias, path) in ALIASES {
            if let Some(value) = table.remove(alias) {
                set_path(&mut table, path, value).map_err(|()| {
                    let parent = path.rsplit_once('.').map_or(path, |(parent, _)| parent);
                    ScenarioError::Parse(format!(
                        "`{alias}` is short for `{path}`, but `{parent}` is not a table"
                    ))
                })?;
            }
        }
        apply_sets(&mut table, sets)?;
        let scenario: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| ScenarioError::Parse(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// A built-in with `--set` overrides.
    pub fn built_in_with(name: &str, sets: &[String]) -> Result<Self, ScenarioError> {
        let base = Self::built_in(name)?;
        let text = toml::to_string(&base).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        Self::from_toml(&text, sets)
    }

    /// Refuses impossible values.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let err = |field, allowed: &str| {
            Err(ScenarioError::Value {
                field,
                allowed: allowed.into(),
            })
        };
        if !(2..=2_000_000).contains(&self.nodes) {
            return err("nodes", "must be 2..=2000000");
        }
        if !(self.duration_s > 0.0 && self.duration_s <= 86_400.0) {
            return err("duration_s", "must be in (0, 86400]");
        }
        if !(0.0..=1.0).contains(&self.network.loss) || self.network.loss >= 1.0 {
            return err("network.loss", "must be in [0, 1)");
        }
        match self.network.latency {
            Latency::Uniform { min_ms, max_ms } if min_ms > max_ms => {
                return err("network.latency.min_ms", "must not exceed max_ms");
            }
            Latency::LogNormal { median_ms, sigma }
                if !(median_ms > 0.0 && (0.0..=3.0).contains(&sigma)) =>
            {
                return err(
                    "network.latency",
                    "log-normal needs median_ms > 0 and sigma in [0, 3]",
                );
            }
            Latency::Coordinates { base_ms, max_ms } if base_ms > max_ms => {
                return err("network.latency.base_ms", "must not exceed max_ms");
            }
            _ => {}
        }
        for p in &self.publishers {
            if p.count > self.nodes {
                return err("publishers.count", "must not exceed nodes");
            }
            if !(p.rate_per_s > 0.0 && p.rate_per_s <= 10_000.0) {
                return err("publishers.rate_per_s", "must be in (0, 10000]");
            }
            if p.topic.is_empty() || p.topic.starts_with("_starling/") || p.topic.len() > 256 {
                return err(
                    "publishers.topic",
                    "1..=256 bytes, not starting with _starling/",
                );
            }
            if p.size_bytes > 64 * 1024 {
                return err(
                    "publishers.size_bytes",
                    "at most 65536 (the probationary ring's limit)",
                );
            }
        }
        if let Some(p) = &self.partition {
            if !(p.at_s >= 0.0 && p.heal_s > p.at_s) {
                return err("partition.heal_s", "must be after partition.at_s");
            }
            if !(p.fraction > 0.0 && p.fraction < 1.0) {
                return err("partition.fraction", "must be in (0, 1)");
            }
        }
        if let Some(m) = &self.mass_failure
            && !(m.fraction > 0.0 && m.fraction < 1.0)
        {
            return err("mass_failure.fraction", "must be in (0, 1)");
        }
        if let Some(s) = &self.sybils
            && !(0.0..1.0).contains(&s.fraction)
        {
            return err("sybils.fraction", "must be in [0, 1)");
        }
        if let Some(c) = &self.churn {
            let ok = match c.sessions {
                Sessions::Weibull { shape, scale_s } => shape > 0.0 && scale_s > 0.0,
                Sessions::LogNormal { median_s, sigma } => median_s > 0.0 && sigma >= 0.0,
            };
            if !ok || c.arrivals_per_s < 0.0 || !(0.0..=1.0).contains(&c.returning) {
                return err(
                    "churn",
                    "sessions need positive parameters, arrivals_per_s >= 0 and returning in [0, 1]",
                );
            }
        }
        if let Some(a) = &self.attacks {
            if !(a.at_s >= 0.0 && a.at_s < self.duration_s) {
                return err("attacks.at_s", "must be in [0, duration_s)");
            }
            if !(a.spam_rate_per_s > 0.0 && a.spam_rate_per_s <= 10_000.0) {
                return err("attacks.spam_rate_per_s", "must be in (0, 10000]");
            }
            if a.replay_window_s
                .is_some_and(|w| !(1.0..=3_600.0).contains(&w))
            {
                return err("attacks.replay_window_s", "must be in [1, 3600]");
            }
            if u64::from(a.spammers) + u64::from(a.forgers) + u64::from(a.replayers) + 1
                > u64::from(self.nodes)
            {
                return err(
                    "attacks",
                    "spammers + forgers + replayers + a victim must not exceed nodes",
                );
            }
        }
        if let Some(o) = &self.outcomes
            && !(o.rate_per_s >= 0.0 && (0.0..=1.0).contains(&o.honest_fraction))
        {
            return err("outcomes", "rate_per_s >= 0 and honest_fraction in [0, 1]");
        }
        Ok(())
    }
}

/// Short names for fields deep in the scenario, accepted at the top level
/// of a file and by `--set` (`fail_fraction=0.8`).
const ALIASES: [(&str, &str); 2] = [
    ("fail_fraction", "mass_failure.fraction"),
    ("fail_at_s", "mass_failure.at_s"),
];

fn apply_sets(table: &mut toml::Table, sets: &[String]) -> Result<(), ScenarioError> {
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| ScenarioError::Set(set.clone()))?;
        let value: toml::Value = match format!("v = {value}").parse::<toml::Table>() {
            Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
            Err(_) => toml::Value::String(value.into()),
        };
        let key = key.trim();
        let path = ALIASES
            .iter()
            .find(|(alias, _)| *alias == key)
            .map_or(key, |(_, path)| path);
        set_path(table, path, value).map_err(|()| ScenarioError::Set(set.clone()))?;
    }
    Ok(())
}

/// Puts `value` at the dotted `path`, making the tables on the way; fails
/// on an empty last part or a part that is not a table.
fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), ()> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().filter(|l| !l.is_empty()).ok_or(())?;
    let mut at = table;
    for part in parts {
        let entry = at
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(()),
        };
    }
    at.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_is_valid_and_round_trips() {
        for (name, _) in BUILT_INS {
            let s = Scenario::built_in_with(name, &[]).unwrap();
            assert_eq!(s, Scenario::built_in(name).unwrap());
        }
    }

    #[test]
    fn sets_override_and_bad_input_names_the_field() {
        let s = Scenario::built_in_with("steady", &["nodes=123".into(), "network.loss=0.1".into()])
            .unwrap();
        assert_eq!((s.nodes, s.network.loss), (123, 0.1));
        let e = Scenario::built_in_with("steady", &["nodez=5".into()]).unwrap_err();
        assert!(e.to_string().contains("unknown field `nodez`"), "{e}");
        let e = Scenario::built_in_with("steady", &["network.loss=1.5".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario field `network.loss`: must be in [0, 1)"
        );
        let e =
            Scenario::built_in_with("partition-heal", &["partition.heal_s=1".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario field `partition.heal_s`: must be after partition.at_s"
        );
        assert!(
            Scenario::built_in("nope")
                .unwrap_err()
                .to_string()
                .contains("steady")
        );
        assert!(matches!(
            Scenario::built_in_with("steady", &["novalue".into()]),
            Err(ScenarioError::Set(_))
        ));
    }

    #[test]
    fn fail_fraction_is_the_mass_failures_fraction() {
        let s = Scenario::built_in_with("mass-failure", &["fail_fraction=0.8".into()]).unwrap();
        assert_eq!(s.mass_failure.map(|m| m.fraction), Some(0.8));
        let s = Scenario::from_toml("fail_fraction = 0.3\nfail_at_s = 4.0\n", &[]).unwrap();
        assert_eq!(
            s.mass_failure,
            Some(MassFailure {
                at_s: 4.0,
                fraction: 0.3
            })
        );
        let e = Scenario::built_in_with("mass-failure", &["fail_fraction=1.5".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario field `mass_failure.fraction`: must be in (0, 1)"
        );
        let e = Scenario::built_in_with("steady", &["fail_fraction=0.5".into()]).unwrap_err();
        assert!(e.to_string().contains("missing field `at_s`"), "{e}");
        let e = Scenario::from_toml("mass_failure = 1\nfail_fraction = 0.5\n", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario: `fail_fraction` is short for `mass_failure.fraction`, but `mass_failure` is not a table"
        );
    }
}
