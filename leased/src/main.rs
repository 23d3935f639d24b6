//! `leased`: the binary. Thin: parses the command line and hands each verb to its module.
//!
//! Exit codes: 0 success; 1 invalid configuration (every error printed as
//! `file:line:col: key: message`); 2 any other failure; `probe` adds 3 (NAK) and 4 (timeout).
#![forbid(unsafe_code)]

mod cli;
mod cmd_check;
mod cmd_db;
mod cmd_docs;
mod cmd_export;
mod cmd_ha;
mod cmd_history;
mod cmd_import;
mod cmd_isc;
mod cmd_leases;
mod cmd_manage;
mod cmd_relay;
mod cmd_reload;
mod cmd_serve;
mod cmd_stats;
mod console;
mod demo;
mod demo_ha;
mod http;
mod logging;
mod probe;
mod rlimit;
mod sidecars;
mod timefmt;
mod view;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use leased_config::ConfigErrors;

use cli::{Cli, Command};

/// Exit code for a configuration that does not validate.
const EXIT_CONFIG: u8 = 1;
/// Exit code for any other failure.
pub(crate) const EXIT_FAILURE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd_serve::run(args),
        Command::Check(args) => cmd_check::run(&args),
        Command::Leases(args) => cmd_leases::run(&args),
        Command::Probe(args) => probe::run(&args),
        Command::Demo(args) if args.ha => demo_ha::run(),
        Command::Demo(args) => demo::run(&args),
        Command::Relay(args) => cmd_relay::run(&args),
        Command::Export(args) => cmd_export::run(args),
        Command::Db(args) => cmd_db::run(&args),
        Command::History(args) => cmd_history::run(&args),
        Command::Completions(args) => cmd_docs::completions(&args),
        Command::Man(args) => cmd_docs::man(&args),
        Command::Stats(args) => cmd_stats::run(&args),
        Command::Manage(args) => cmd_manage::run(&args),
        Command::Reload(args) => cmd_reload::run(&args),
        Command::Ha(args) => cmd_ha::run(&args),
        Command::Console(args) => match args.command {
            cli::ConsoleCommand::Attach(a) => console::attach(&a),
        },
        Command::Isc(args) => match args.command {
            cli::IscCommand::Serve(a) => cmd_isc::serve(&a),
        },
        Command::Import(args) => match args.command {
            cli::ImportCommand::Isc(a) => cmd_isc::import(&a),
            cli::ImportCommand::Kea(a) => cmd_import::kea(&a),
            cli::ImportCommand::Dnsmasq(a) => cmd_import::dnsmasq(&a),
            cli::ImportCommand::Dhcplane(a) => cmd_import::dhcplane(&a),
        },
    };
    match result {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

/// Writes command output to stdout. A reader that went away (`leased leases | head`) is not
/// an error worth a panic or a message.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => anyhow::Context::context(r, "cannot write to stdout"),
    }
}

/// Prints an error once and picks the exit code: config errors (one per line) exit 1, the rest 2.
fn report(err: &anyhow::Error) -> ExitCode {
    if let Some(errors) = err.downcast_ref::<ConfigErrors>() {
        for e in &errors.0 {
            eprintln!("{e}");
        }
        return ExitCode::from(EXIT_CONFIG);
    }
    eprintln!("error: {err:#}");
    ExitCode::from(EXIT_FAILURE)
}
