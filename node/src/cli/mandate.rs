//! `starling mandate`: signed delegations.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;
use starling_trust::mandate::{NONCE_BYTES, NoRevocations};
use starling_trust::{Did, Mandate, MandateChain, MandateSpec, Scope};

use starling_node::files;

#[derive(Debug, Subcommand)]
pub(crate) enum MandateCommand {
    /// Issue a mandate to a subject and write the chain that ends with it.
    Issue {
        /// The mesh's genesis document.
        #[arg(long, value_name = "FILE")]
        genesis: PathBuf,
        /// The issuer's key file (a governor, or the holder of --parent).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Who receives the mandate.
        #[arg(long, value_name = "DID")]
        subject: String,
        /// A capability: publish:<pattern>, subscribe:<pattern>, call:<pattern>, vouch, delegate(N).
        #[arg(long = "scope", value_name = "CAPABILITY", required = true)]
        scope: Vec<String>,
        /// The issuer's own chain, when the issuer is not a governor.
        #[arg(long, value_name = "FILE")]
        parent: Option<PathBuf>,
        /// How long it is valid: a number with s, m, h or d (for example 30d).
        #[arg(long, default_value = "30d")]
        valid_for: String,
        /// Where to write the chain.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Verify a mandate chain against a genesis document, now or at --at-ms.
    Verify {
        /// The mesh's genesis document.
        #[arg(long, value_name = "FILE")]
        genesis: PathBuf,
        /// The chain to check.
        file: PathBuf,
        /// Check at this time (Unix ms) instead of now.
        #[arg(long, value_name = "MS")]
        at_ms: Option<u64>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: MandateCommand) -> Result<()> {
    match command {
        MandateCommand::Issue {
            genesis,
            key,
            subject,
            scope,
            parent,
            valid_for,
            out,
            json,
        } => {
            let genesis = files::read_genesis(&genesis)?;
            let issuer = files::read_key(&key)?;
            let subject: Did = subject.parse().context("--subject")?;
            let scope = Scope::parse(&scope).context("--scope")?;
            let parent_chain = parent.as_deref().map(files::read_chain).transpose()?;
            let now = files::now_ms();
            let spec = MandateSpec {
                mesh: genesis.id(),
                subject,
                scope,
                not_before_ms: now,
                expires_ms: now.saturating_add(parse_duration_ms(&valid_for)?),
                nonce: rand::random::<[u8; NONCE_BYTES]>(),
            };
            let chain = match &parent_chain {
                Some(chain) => {
                    let leaf = chain.leaf().context("the parent chain is empty")?;
                    if leaf.subject() != issuer.did() {
                        bail!(
                            "the parent chain was granted to {}, not to the issuer {}",
                            leaf.subject(),
                            issuer.did()
                        );
                    }
                    let spec = MandateSpec {
                        expires_ms: spec.expires_ms.min(leaf.expires_ms()),
                        ..spec
                    };
                    chain.extended(Mandate::issue(&issuer, &spec, Some(leaf)))
                }
                None => MandateChain::new(vec![Mandate::issue(&issuer, &spec, None)]),
            };
            let authority = chain
                .verify(&genesis, now, &NoRevocations)
                .context("the new mandate would not verify")?;
            files::write_bytes(&out, &chain.to_bytes())?;
            describe(&authority, json, Some(&out));
        }
        MandateCommand::Verify {
            genesis,
            file,
            at_ms,
            json,
        } => {
            let genesis = files::read_genesis(&genesis)?;
            let chain = files::read_chain(&file)?;
            let at = at_ms.unwrap_or_else(files::now_ms);
            let authority = chain
                .verify(&genesis, at, &NoRevocations)
                .with_context(|| format!("{} does not verify", file.display()))?;
            describe(&authority, json, None);
        }
    }
    Ok(())
}

fn describe(a: &starling_trust::Authority, json: bool, written: Option<&PathBuf>) {
    if json {
        files::say(json!({
            "valid": true,
            "agent": a.agent.to_string(),
            "principal": a.principal.to_string(),
            "governor": a.governor.to_string(),
            "scope": a.scope.to_strings(),
            "links": a.links.len(),
            "not_before_ms": a.not_before_ms,
            "expires_ms": a.expires_ms,
            "file": written,
        }));
        return;
    }
    files::say(format!("valid mandate chain ({} links)", a.links.len()));
    files::say(format!("agent:     {}", a.agent));
    files::say(format!("principal: {}", a.principal));
    files::say(format!("governor:  {}", a.governor));
    files::say(format!("scope:     {}", a.scope));
    files::say(format!("expires:   {} ms", a.expires_ms));
    if let Some(path) = written {
        files::say(format!("written:   {}", path.display()));
    }
}

/// Parses `90s`, `15m`, `12h` or `30d`.
fn parse_duration_ms(text: &str) -> Result<u64> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let scale = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("--valid-for `{text}`: use a number followed by s, m, h or d"),
    };
    let n: u64 = number
        .parse()
        .with_context(|| format!("--valid-for `{text}`: not a number"))?;
    if n == 0 {
        bail!("--valid-for must be more than zero");
    }
    n.checked_mul(scale).context("--valid-for is too long")
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_parse() {
        assert_eq!(super::parse_duration_ms("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(super::parse_duration_ms("90s").unwrap(), 90_000);
        assert!(super::parse_duration_ms("0h").is_err());
        assert!(super::parse_duration_ms("5y").is_err());
        assert!(super::parse_duration_ms("").is_err());
    }
}
