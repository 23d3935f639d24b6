//! `leased db init`: creates the shared SQL store's tables (idempotent), so an operator can
//! prepare the database once, with a privileged account, before any server starts with a
//! less privileged one.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use leased_store::sql::{Db, expand_env};

/// `leased db`.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DbCommand,
}

/// The verbs of `leased db`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create leased's tables (leases, history) in the `[store]` SQL database when missing.
    Init {
        /// Config file whose `[store]` names a PostgreSQL or MySQL/MariaDB database.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: std::path::PathBuf,
    },
}

/// Runs `leased db …`.
pub fn run(args: &DbArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        DbCommand::Init { config } => {
            let cfg = leased_config::load(config)?;
            let Some(sql) = cfg.store.sql else {
                return Err(anyhow!(
                    "{}: [store] uses the embedded journal; `db init` is for backend = \
                     \"postgres\" or \"mysql\"",
                    config.display()
                ));
            };
            let url = expand_env(&sql.url).map_err(|e| anyhow!(e))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime")?;
            rt.block_on(async {
                let db = Db::connect_lazy(&url, 1)?;
                db.init_schema().await
            })
            .context("creating the schema")?;
            crate::emit(&format!(
                "OK: schema ready in the {:?} database\n",
                sql.backend
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
