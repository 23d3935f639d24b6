//! Encoders for option payloads whose wire form is not a plain list, and small parsers.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Why an option value could not be encoded or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A hex string (client id, raw option value) that does not parse; the text says why.
    #[error("invalid hex: {0}")]
    Hex(String),
    /// A domain name that cannot be written in DNS wire format.
    #[error("invalid domain name {name:?}: {why}")]
    DomainName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An Option 82 value whose sub-options do not parse.
    #[error("malformed relay agent information: {0}")]
    RelayInfo(&'static str),
}

/// Concatenated IPv4 addresses (options 3, 6, 42, 44, …).
pub fn ip_list(addrs: &[Ipv4Addr]) -> Vec<u8> {
    addrs.iter().flat_map(|a| a.octets()).collect()
}

/// Option 119 payload (RFC 3397): names in DNS wire format, with compression pointers.
///
/// Each name may end with a dot or not; labels must be 1..=63 bytes and a name at most 255 bytes
/// in wire form. A name (or its tail) already written is replaced by a pointer to it; offsets
/// count from the start of the whole value, as RFC 3397 §2 says for the concatenated option.
/// The result may exceed 255 bytes: the packet encoder splits it.
pub fn domain_search(names: &[String]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    // Every name suffix written so far (dotted, without trailing dot) and its offset.
    let mut written: Vec<(&str, usize)> = Vec::new();
    for name in names {
        let bad = |why| CodecError::DomainName {
            name: name.clone(),
            why,
        };
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        if trimmed.is_empty() {
            return Err(bad("empty name"));
        }
        let mut wire_len = 1;
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(bad("empty label"));
            }
            if label.len() > 63 {
                return Err(bad("label longer than 63 bytes"));
            }
            wire_len += 1 + label.len();
        }
        if wire_len > 255 {
            return Err(bad("name longer than 255 bytes"));
        }

        let mut rest = trimmed;
        loop {
            if let Some(&(_, offset)) = written.iter().find(|(s, _)| *s == rest) {
                // Offsets are recorded only below 0x4000, so this fits the 14-bit pointer.
                let [hi, lo] = u16::try_from(offset).unwrap_or(0).to_be_bytes();
                out.extend_from_slice(&[0xc0 | hi, lo]);
                break;
            }
            if out.len() < 0x4000 {
                written.push((rest, out.len()));
            }
            let (label, tail) = rest.split_once('.').unwrap_or((rest, ""));
            // Validated above: 1..=63 bytes.
            out.push(u8::try_from(label.len()).unwrap_or(0));
            out.extend_from_slice(label.as_bytes());
            if tail.is_empty() {
                out.push(0);
                break;
            }
            rest = tail;
        }
    }
    Ok(out)
}

/// Option 121 / 249 payload (RFC 3442): compact destination descriptors, then the router.
///
/// Each route is written as the prefix length, the `ceil(len / 8)` significant octets of the
/// network address (host bits are cleared first, so `10.1.2.3/8` is `10.0.0.0/8`), then the
/// router.
pub fn classless_routes(routes: &[(Ipv4Net, Ipv4Addr)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(routes.len() * 9);
    for (net, router) in routes {
        let prefix = net.prefix_len();
        let significant = usize::from(prefix).div_ceil(8);
        let octets = net.network().octets();
        out.push(prefix);
        out.extend_from_slice(octets.get(..significant).unwrap_or(&octets));
        out.extend_from_slice(&router.octets());
    }
    out
}

/// Parses hex in the usual spellings: `01:04:de:ad`, `01-04-de-ad`, `0104dead`, `0x0104dead`,
/// `01 04 de ad`. An empty string is an empty value.
///
/// Separators (`:`, `-`, whitespace) may only stand between whole bytes, and digits are
/// case-insensitive. An odd number of digits or any other character is an error naming the
/// problem, since the string comes from a config file that a person has to fix.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, CodecError> {
    let trimmed = s.trim();
    let body = match trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
    {
        Some("") => return Err(CodecError::Hex(format!("{s:?}: no digits after 0x"))),
        Some(rest) => rest,
        None => trimmed,
    };
    let mut out = Vec::with_capacity(body.len() / 2);
    let mut high: Option<u8> = None;
    for (pos, ch) in body.char_indices() {
        if let Some(nibble) = ch.to_digit(16) {
            // `to_digit(16)` is below 16.
            let nibble = u8::try_from(nibble).unwrap_or(0);
            match high.take() {
                Some(h) => out.push(h << 4 | nibble),
                None => high = Some(nibble),
            }
        } else if ch == ':' || ch == '-' || ch.is_whitespace() {
            if high.is_some() {
                return Err(CodecError::Hex(format!(
                    "{s:?}: separator {ch:?} splits a byte (odd number of digits before it)"
                )));
            }
        } else {
            return Err(CodecError::Hex(format!(
                "{s:?}: invalid character {ch:?} at position {pos}"
            )));
        }
    }
    if high.is_some() {
        return Err(CodecError::Hex(format!("{s:?}: odd number of hex digits")));
    }
    Ok(out)
}

/// Splits an Option 82 value into its sub-options `(code, value)`, in order, without copying.
///
/// Zero-length sub-options are returned as they are; whether one is acceptable is the caller's
/// call. A sub-option header or value cut short is [`CodecError::RelayInfo`].
pub fn relay_suboptions(value: &[u8]) -> Result<Vec<(u8, &[u8])>, CodecError> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some((&code, tail)) = rest.split_first() {
        let (&len, tail) = tail
            .split_first()
            .ok_or(CodecError::RelayInfo("sub-option without a length byte"))?;
        let (sub, tail) = tail
            .split_at_checked(usize::from(len))
            .ok_or(CodecError::RelayInfo(
                "sub-option length overruns the option",
            ))?;
        out.push((code, sub));
        rest = tail;
    }
    Ok(out)
}
