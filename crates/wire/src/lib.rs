//! DHCPv4 wire format for leased.
//!
//! Why our own layer: dhcproto's owned decoder silently drops every option after the first one
//! it cannot type (see `shared/reference/rust-deps.md` §1), and the server must echo Option 82
//! byte for byte. This crate keeps options as raw bytes, bounded by their own lengths, and
//! leaves typing to the caller. Nothing here panics on input; every rejection is a
//! [`Malformed`] with a stable label for metrics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;
pub mod leasequery;
mod packet;

pub use codec::{
    CodecError, classless_routes, domain_search, ip_list, parse_hex, relay_suboptions,
};
pub use packet::{
    BOOTREPLY, BOOTREQUEST, DHCP_MIN_LEN, MAGIC_COOKIE, Malformed, MessageType, Options, Packet,
};

/// Well-known option codes, named so that call sites read as the RFCs do.
pub mod code {
    /// Padding, skipped by the decoder (RFC 2132 §3.1).
    pub const PAD: u8 = 0;
    /// Subnet mask (RFC 2132 §3.3).
    pub const SUBNET_MASK: u8 = 1;
    /// Default routers, a list of addresses (RFC 2132 §3.5).
    pub const ROUTER: u8 = 3;
    /// DNS servers, a list of addresses (RFC 2132 §3.8).
    pub const DNS: u8 = 6;
    /// Client host name (RFC 2132 §3.14).
    pub const HOSTNAME: u8 = 12;
    /// Domain name for resolution (RFC 2132 §3.17).
    pub const DOMAIN_NAME: u8 = 15;
    /// Interface MTU (RFC 2132 §5.1).
    pub const MTU: u8 = 26;
    /// Broadcast address (RFC 2132 §5.3).
    pub const BROADCAST: u8 = 28;
    /// NTP servers (RFC 2132 §8.3).
    pub const NTP: u8 = 42;
    /// Vendor-specific information, opaque here (RFC 2132 §8.4).
    pub const VENDOR_SPECIFIC: u8 = 43;
    /// NetBIOS name servers (RFC 2132 §8.5).
    pub const NETBIOS_NS: u8 = 44;
    /// Address the client asks for (RFC 2132 §9.1).
    pub const REQUESTED_IP: u8 = 50;
    /// Lease time in seconds (RFC 2132 §9.2).
    pub const LEASE_TIME: u8 = 51;
    /// `sname`/`file` carry options: 1 file, 2 sname, 3 both (RFC 2132 §9.3).
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type; see [`MessageType`] (RFC 2132 §9.6).
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier (RFC 2132 §9.7).
    pub const SERVER_ID: u8 = 54;
    /// Options the client wants, in its order of preference (RFC 2132 §9.8).
    pub const PARAM_REQUEST_LIST: u8 = 55;
    /// Human-readable error text, e.g. in a NAK (RFC 2132 §9.9).
    pub const MESSAGE: u8 = 56;
    /// Largest message the client accepts; feeds `max_len` of [`Packet::encode`] (RFC 2132 §9.10).
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// T1 in seconds (RFC 2132 §9.11).
    pub const RENEWAL_TIME: u8 = 58;
    /// T2 in seconds (RFC 2132 §9.12).
    pub const REBINDING_TIME: u8 = 59;
    /// Vendor class identifier, used for client classes (RFC 2132 §9.13).
    pub const VENDOR_CLASS: u8 = 60;
    /// Client identifier, the lease key when present (RFC 2132 §9.14).
    pub const CLIENT_ID: u8 = 61;
    /// TFTP server name, for PXE (RFC 2132 §9.4).
    pub const TFTP_SERVER: u8 = 66;
    /// Boot file name, for PXE (RFC 2132 §9.5).
    pub const BOOTFILE: u8 = 67;
    /// User class (RFC 3004).
    pub const USER_CLASS: u8 = 77;
    /// Rapid commit (RFC 4039): a DISCOVER carrying it may be answered with an ACK at once.
    pub const RAPID_COMMIT: u8 = 80;
    /// Client FQDN (RFC 4702).
    pub const CLIENT_FQDN: u8 = 81;
    /// Relay agent information, echoed byte for byte and written last (RFC 3046).
    pub const RELAY_AGENT_INFO: u8 = 82;
    /// IPv6-only preferred (RFC 8925): V6ONLY_WAIT in seconds, sent only when asked for.
    pub const IPV6_ONLY_PREFERRED: u8 = 108;
    /// Auto-configure (RFC 2563): whether a client given no address may use IPv4 link-local.
    pub const AUTO_CONFIGURE: u8 = 116;
    /// Subnet selection (RFC 3011).
    pub const SUBNET_SELECTION: u8 = 118;
    /// Domain search list; see [`domain_search`] (RFC 3397).
    pub const DOMAIN_SEARCH: u8 = 119;
    /// Classless static routes; see [`classless_routes`] (RFC 3442).
    pub const CLASSLESS_ROUTES: u8 = 121;
    /// Microsoft's pre-standard copy of option 121, same format.
    pub const MS_CLASSLESS_ROUTES: u8 = 249;
    /// Web proxy auto-discovery URL (draft-ietf-wrec-wpad).
    pub const WPAD: u8 = 252;
    /// End of an option area.
    pub const END: u8 = 255;
}
