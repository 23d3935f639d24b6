//! Warnings a valid config still deserves: what `leased check`, start-up and reload say
//! about settings that work but leave a door open.

use leased_core::model::ReservationKey;

use crate::model::Config;

/// What in `config` is keyed by relay data while every relay is believed (no
/// `trusted_relays`): `leased check` and start-up say so, because then anyone who can reach the
/// server with giaddr set can pick those reservations, caps and classes. Empty when a list is
/// configured or nothing is relay-keyed.
pub fn relay_trust_warnings(config: &Config) -> Vec<String> {
    let net = &config.network;
    if !net.relay_trust.trusted_relays.is_empty() {
        return Vec::new();
    }
    let mut uses = Vec::new();
    let reservations = net
        .subnets
        .iter()
        .flat_map(|s| &s.reservations)
        .filter(|r| !matches!(r.key, ReservationKey::Mac(_) | ReservationKey::ClientId(_)))
        .count();
    if reservations > 0 {
        uses.push(format!("{reservations} relay-keyed reservations"));
    }
    let caps = net.server.max_leases_per_circuit_id.is_some()
        || net.server.max_leases_per_remote_id.is_some()
        || net
            .subnets
            .iter()
            .any(|s| s.max_leases_per_circuit_id.is_some() || s.max_leases_per_remote_id.is_some());
    if caps {
        uses.push("per-circuit lease caps".to_owned());
    }
    let limits = &config.limits;
    if limits.per_circuit_id.is_some() || limits.per_remote_id.is_some() {
        uses.push("per-circuit rate limits".to_owned());
    }
    let classes: Vec<&str> = net
        .classes
        .iter()
        .filter(|c| c.matcher.circuit_id.is_some() || c.matcher.remote_id.is_some())
        .map(|c| c.name.as_str())
        .collect();
    if !classes.is_empty() {
        uses.push(format!(
            "classes matching relay data ({})",
            classes.join(", ")
        ));
    }
    if uses.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "server.trusted_relays is not set, so every relay's Option 82 is believed, and {} \
         can be chosen by anyone who sends a request with giaddr set; list your relays",
        uses.join(", ")
    )]
}

/// Subnets with `rapid_commit = true` and no per-port lease cap: under RFC 4039 every DISCOVER
/// carrying option 80 becomes a binding for a whole lease (not an offer held for seconds), and
/// `[limits] max_offers_in_flight` counts offers, not bindings, so without
/// `max_leases_per_circuit_id` or `max_leases_per_remote_id` one subscriber port sending
/// DISCOVERs from random MACs can bind the whole pool. `leased check` and start-up say so.
pub fn rapid_commit_warnings(config: &Config) -> Vec<String> {
    let server = &config.network.server;
    config
        .network
        .subnets
        .iter()
        .filter(|s| s.rapid_commit)
        .filter(|s| {
            s.max_leases_per_circuit_id
                .or(server.max_leases_per_circuit_id)
                .is_none()
                && s.max_leases_per_remote_id
                    .or(server.max_leases_per_remote_id)
                    .is_none()
        })
        .map(|s| {
            format!(
                "subnet {} has rapid_commit = true but no max_leases_per_circuit_id or \
                 max_leases_per_remote_id: every DISCOVER with option 80 binds an address for a \
                 whole lease, so one port sending from random MACs can bind the pool; cap the \
                 leases per port (and rate-limit per circuit in [limits])",
                s.network
            )
        })
        .collect()
}
