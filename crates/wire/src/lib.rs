//! DHCPv4 wire format for leased.
//!
//! Why our own layer: dhcproto's owned decoder silently drops every option after the first one
//! it cannot type (see `shared/reference/rust-deps.md` §1), and the server must echo Option 82
//! byte for byte. This crate keeps options as raw bytes, bounded by their own lengths, and
//! leaves typing to the caller. Nothing here panics on input; every rejection is a
//! [`Malformed`] with a stable label for metrics.
#![forbid(unsafe_code)]

mod codec;
mod packet;

pub use codec::{
    CodecError, classless_routes, domain_search, ip_list, parse_hex, relay_suboptions,
};
pub use packet::{
    BOOTREPLY, BOOTREQUEST, DHCP_MIN_LEN, MAGIC_COOKIE, Malformed, MessageType, Options, Packet,
};

/// Well-known option codes, named so that call sites read as the RFCs do.
pub mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const MTU: u8 = 26;
    pub const BROADCAST: u8 = 28;
    pub const NTP: u8 = 42;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const NETBIOS_NS: u8 = 44;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAM_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    pub const USER_CLASS: u8 = 77;
    pub const CLIENT_FQDN: u8 = 81;
    pub const RELAY_AGENT_INFO: u8 = 82;
    pub const SUBNET_SELECTION: u8 = 118;
    pub const DOMAIN_SEARCH: u8 = 119;
    pub const CLASSLESS_ROUTES: u8 = 121;
    pub const MS_CLASSLESS_ROUTES: u8 = 249;
    pub const WPAD: u8 = 252;
    pub const END: u8 = 255;
}
