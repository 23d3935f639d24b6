//! The DHCID RR's data (RFC 4701 §3.3): which client owns a name, without saying who it is.
//! RFC 4703 compares it before touching a name, so two clients never take each other's.

use sha2::{Digest, Sha256};

/// RFC 4701 §3.3 identifier type: htype and chaddr (a client without option 61).
const ID_CHADDR: u16 = 0x0000;
/// RFC 4701 §3.3 identifier type: the DHCPv4 client identifier (option 61).
const ID_CLIENT_ID: u16 = 0x0001;
/// RFC 4701 §3.5: digest type 1 is SHA-256.
const DIGEST_SHA256: u8 = 1;
/// Ethernet's htype, assumed for hardware addresses (the lease keeps the address only).
const HTYPE_ETHERNET: u8 = 1;

/// The DHCID RDATA for a client with client identifier `client_id` (the lease's key: option
/// 61, or htype and chaddr when the client sent none) and hardware address `hwaddr`, owning
/// `fqdn` (no final dot).
///
/// A key that is exactly Ethernet's htype followed by `hwaddr` is what leased keys a client
/// without option 61 by, so it is hashed as RFC 4701's htype+chaddr identifier.
pub fn dhcid(client_id: &[u8], hwaddr: &[u8], fqdn: &str) -> Vec<u8> {
    let derived = client_id.split_first() == Some((&HTYPE_ETHERNET, hwaddr));
    let (kind, id) = if derived || client_id.is_empty() {
        let mut v = Vec::with_capacity(hwaddr.len() + 1);
        v.push(HTYPE_ETHERNET);
        v.extend_from_slice(hwaddr);
        (ID_CHADDR, v)
    } else {
        (ID_CLIENT_ID, client_id.to_vec())
    };
    let mut h = Sha256::new();
    h.update(&id);
    h.update(canonical_wire(fqdn));
    let mut out = Vec::with_capacity(35);
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(DIGEST_SHA256);
    out.extend_from_slice(&h.finalize());
    out
}

/// A name in canonical wire form (RFC 4034 §6.2: lower case, uncompressed), root-terminated.
fn canonical_wire(fqdn: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(fqdn.len() + 2);
    for label in fqdn
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let bytes = label.as_bytes();
        let len = bytes.len().min(63);
        out.push(u8::try_from(len).unwrap_or(63));
        out.extend(bytes.iter().take(len).map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use base64::Engine as _;

    use super::dhcid;

    fn b64(v: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(v)
    }

    /// RFC 4701 §3.6.2: htype 1, chaddr 01:02:03:04:05:06, `client.example.com`.
    #[test]
    fn rfc4701_chaddr_vector() {
        let mac = [1, 2, 3, 4, 5, 6];
        let mut key = vec![1];
        key.extend_from_slice(&mac);
        assert_eq!(
            b64(&dhcid(&key, &mac, "client.example.com")),
            "AAABxLmlskllE0MVjd57zHcWmEH3pCQ6VytcKD//7es/deY="
        );
    }

    /// RFC 4701 §3.6.3: client identifier 01:07:08:09:0a:0b:0c, `chi.example.com`.
    #[test]
    fn rfc4701_client_id_vector() {
        assert_eq!(
            b64(&dhcid(
                &[1, 7, 8, 9, 0x0a, 0x0b, 0x0c],
                &[2, 0, 0, 0, 0, 1],
                "Chi.Example.Com."
            )),
            "AAEBOSD+XR3Os/0LozeXVqcNc7FwCfQdWL3b/NaiUDlW2No="
        );
    }
}
