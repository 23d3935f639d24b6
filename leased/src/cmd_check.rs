//! `leased check`: validate a config file with the very loader serve and reload use.

use std::process::ExitCode;

use anyhow::Context;
use leased_config::Config;

use crate::cli::CheckArgs;

/// Validates `-c FILE`. Config errors come back as `ConfigErrors` (exit 1, one per line); a
/// file that cannot be read at all is a runtime failure (exit 2).
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    std::fs::metadata(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = leased_config::load(&args.config)?;
    for w in leased_config::relay_trust_warnings(&config)
        .into_iter()
        .chain(leased_config::rapid_commit_warnings(&config))
    {
        eprintln!("warning: {w}");
    }
    if let Some(sa) = &config.sql_assignment {
        for n in leased_core::sql::slice_notes(&sa.slices) {
            eprintln!("note: {n}");
        }
    }
    crate::emit(&format!(
        "{}\n",
        ok_line(&args.config.display().to_string(), &config)
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The success line: `OK: FILE (N subnets, M reservations)`.
pub fn ok_line(file: &str, config: &Config) -> String {
    let subnets = config.network.subnets.len();
    let reservations: usize = config
        .network
        .subnets
        .iter()
        .map(|s| s.reservations.len())
        .sum();
    // Always plural, so scripts can match one fixed pattern.
    format!("OK: {file} ({subnets} subnets, {reservations} reservations)")
}
