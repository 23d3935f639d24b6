//! One (re)load's result, swapped in as a whole: the plan decisions read, the engine's
//! settings, and the rest of the configuration for the rooms that read it (API, monitors, SQL
//! side). One swap, so no reader ever sees a new plan with the old settings.

use std::sync::Arc;

use arc_swap::ArcSwap;
use leased_config::Config;
use leased_core::Plan;
use leased_engine::EngineSettings;

/// What a load put in place.
#[derive(Debug)]
pub struct Loaded {
    /// The plan decisions read (the protocol model and its indexes; no secrets).
    pub plan: Arc<Plan>,
    /// What the engine enforces around decisions.
    pub engine: Arc<EngineSettings>,
    /// The whole configuration, for the rooms' own settings.
    pub config: Config,
}

impl Loaded {
    /// Builds the plan and the engine's settings from `config`.
    pub fn new(config: Config) -> Self {
        Self {
            plan: Arc::new(Plan::new(config.network.clone())),
            engine: Arc::new(config.engine_settings()),
            config,
        }
    }
}

/// The current load, shared by every task that reads it.
pub(crate) type Current = Arc<ArcSwap<Loaded>>;

/// A shared current load of `config`.
pub(crate) fn current(config: Config) -> Current {
    Arc::new(ArcSwap::from_pointee(Loaded::new(config)))
}
