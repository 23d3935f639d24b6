//! Runs the server from a config file, for trying it by hand (e.g. in a network namespace):
//! `cargo run -p leased-io --example serve -- leased.toml [server_port client_port]`.
//! The real entry point is `leased serve`; this one only sets up plain-text logging.
#![allow(clippy::unwrap_used)]

use leased_io::{ConfigSource, ServeParams, serve};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: serve CONFIG [SPORT CPORT]"))?;
    let server_port = args.next().map_or(Ok(67), |s| s.parse())?;
    let client_port = args.next().map_or(Ok(68), |s| s.parse())?;
    serve(ServeParams {
        source: ConfigSource::File(path.into()),
        server_port,
        client_port,
    })
    .await
}
