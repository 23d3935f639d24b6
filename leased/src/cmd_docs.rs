//! `leased completions SHELL` and the hidden `leased man --out DIR`: shell completions and man
//! pages generated from the clap definitions in `cli`, so they can never disagree with the
//! command line they describe. The Debian package runs both at build time.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs, Shell};

/// Prints the completion script for one shell.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "leased", &mut out);
    crate::emit(&String::from_utf8_lossy(&out))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `leased.1` and one page per visible verb and sub-verb (`leased-serve.1`,
/// `leased-export-status.1`, …) into `--out`.
pub fn man(args: &ManArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Built once, so every sub-command knows its full name (`leased-export-status`).
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, &args.out, &mut written)?;
    written.sort();
    crate::emit(&format!(
        "wrote {} man pages to {}: {}\n",
        written.len(),
        args.out.display(),
        written.join(" ")
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<String>) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    let page = clap_mangen::Man::new(cmd.clone())
        .source(format!("leased {}", env!("CARGO_PKG_VERSION")))
        .manual("leased manual");
    let name = page.get_filename();
    let mut text = Vec::new();
    page.render(&mut text)
        .with_context(|| format!("cannot render {name}"))?;
    let path = dir.join(&name);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(name);
    Ok(())
}
