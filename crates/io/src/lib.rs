//! The tokio shell around the core: receive, decide, persist, send.
//!
//! Rooms: `sock` (all syscalls: IP_PKTINFO, SO_BINDTODEVICE, AF_PACKET send), `server` (the
//! engine task that owns the lease table and calls `leased_core::decide`), `commit` (the group
//! commit thread: an ACK leaves only after its lease is durable), `reload` (SIGHUP: validate,
//! swap or keep the old config).
