//! Harness of leased's system tests: private network namespaces, the real `leased` binary,
//! real DHCP peers. See `lab.rs` for the topology and `gate.rs` for skip/fail rules.
#![allow(dead_code)]

pub mod bed;
pub mod clients;
pub mod config;
pub mod gate;
pub mod lab;
pub mod leases;
pub mod proc;
pub mod raw;
pub mod server;
pub mod sonar;

pub use clients::{Dhclient, Dhcpcd, Udhcpc};
pub use config::Cfg;
pub use lab::Lab;
pub use server::Server;
