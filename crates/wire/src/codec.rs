//! Encoders for option payloads whose wire form is not a plain list, and small parsers.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Why an option value could not be encoded or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("invalid hex: {0}")]
    Hex(String),
    #[error("invalid domain name {name:?}: {why}")]
    DomainName { name: String, why: &'static str },
    #[error("malformed relay agent information: {0}")]
    RelayInfo(&'static str),
}

/// Concatenated IPv4 addresses (options 3, 6, 42, 44, …).
pub fn ip_list(addrs: &[Ipv4Addr]) -> Vec<u8> {
    addrs.iter().flat_map(|a| a.octets()).collect()
}

/// Option 119 payload (RFC 3397): names in DNS wire format, with compression pointers.
pub fn domain_search(names: &[String]) -> Result<Vec<u8>, CodecError> {
    let _ = names;
    unimplemented!("wire helper implements this")
}

/// Option 121 / 249 payload (RFC 3442): compact destination descriptors, then the router.
pub fn classless_routes(routes: &[(Ipv4Net, Ipv4Addr)]) -> Vec<u8> {
    let _ = routes;
    unimplemented!("wire helper implements this")
}

/// Parses hex in the usual spellings: `01:04:de:ad`, `01-04-de-ad`, `0104dead`, `0x0104dead`,
/// `01 04 de ad`. An empty string is an empty value.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, CodecError> {
    let _ = s;
    unimplemented!("wire helper implements this")
}

/// Splits an Option 82 value into its sub-options `(code, value)`, in order, without copying.
pub fn relay_suboptions(value: &[u8]) -> Result<Vec<(u8, &[u8])>, CodecError> {
    let _ = value;
    unimplemented!("wire helper implements this")
}
