//! `leased demo` (being written).
use std::process::ExitCode;
/// Runs the demo.
pub fn run(_args: &crate::cli::DemoArgs) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
