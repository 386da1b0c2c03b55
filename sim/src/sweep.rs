//! Parameter sweeps: a grid of `--set` overrides over a base scenario, run
//! on every core, one CSV row per run.
//!
//! A sweep file is TOML: `base` (a built-in name or a scenario file path),
//! optional `set` (overrides for every run), and `[grid]`, each key a
//! scenario field and each value a list; every combination runs.

use std::sync::Mutex;

use serde::Deserialize;

use crate::scenario::{Scenario, ScenarioError};

/// One run of a sweep: its `--set` overrides and its report.
type Row = (Vec<String>, crate::Report);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    base: String,
    #[serde(default)]
    set: Vec<String>,
    grid: toml::Table,
}

/// The runs of a sweep: each run's overrides and scenario.
pub fn plan(
    text: &str,
    read_base: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Vec<(Vec<String>, Scenario)>, ScenarioError> {
    let file: SweepFile = toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
    let mut combos: Vec<Vec<String>> = vec![file.set.clone()];
    for (key, values) in &file.grid {
        let toml::Value::Array(values) = values else {
            return Err(ScenarioError::Parse(format!(
                "grid.{key} must be a list of values"
            )));
        };
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values
                    .iter()
                    .map(move |v| [c.clone(), vec![format!("{key}={v}")]].concat())
            })
            .collect();
    }
    combos
        .into_iter()
        .map(|sets| {
            let scenario = match Scenario::built_in(&file.base) {
                Ok(_) => Scenario::built_in_with(&file.base, &sets)?,
                Err(_) => Scenario::from_toml(
                    &read_base(&file.base).map_err(ScenarioError::Parse)?,
                    &sets,
                )?,
            };
            Ok((sets, scenario))
        })
        .collect()
}

/// Runs every planned scenario on `threads` threads; rows come back in plan order.
pub fn run(runs: Vec<(Vec<String>, Scenario)>, threads: usize) -> Vec<Row> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Row>>> = Mutex::new(vec![None; runs.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = {
                        let Ok(mut n) = next.lock() else { return };
                        *n += 1;
                        *n - 1
                    };
                    let Some((sets, scenario)) = runs.get(i) else {
                        return;
                    };
                    let (_, report) = crate::run(scenario.clone(), &mut |_, _, _| {});
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some((sets.clone(), report));
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// The CSV header and a row for a report.
pub fn csv_row(sets: &[String], r: &crate::Report) -> (String, String) {
    let header = "params,nodes,seed,trace_hash,delivered_ratio,latency_ms_p50,latency_ms_p99,ldh_max,rmr,events,events_per_s,wall_s,peak_rss_mb";
    let row = format!(
        "\"{}\",{},{},{},{:.5},{},{},{},{:.4},{},{:.0},{:.2},{:.1}",
        sets.join(" "),
        r.nodes,
        r.seed,
        r.trace_hash,
        r.delivered_ratio,
        r.latency_ms_p50,
        r.latency_ms_p99,
        r.ldh_max,
        r.rmr,
        r.events,
        r.events_per_s,
        r.wall_s,
        r.peak_rss_mb
    );
    (header.to_string(), row)
}
