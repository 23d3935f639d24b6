//! RFC 3074 load balancing: which server of a load-balancing pair a client belongs to.
//!
//! The client's key (option 61's data when sent and non-empty, else chaddr) is hashed with the
//! Pearson hash of RFC 3074 §6 into one of 256 buckets. Buckets are split as Kea splits them
//! (the hash modulo the number of active servers: even buckets are the primary's, odd ones the
//! secondary's), so a pair moved from Kea keeps sending each client to the same server.

use leased_core::Request;
use leased_wire::code;

/// The "mixing table" of RFC 3074 §6: 256 distinct values in pseudo-random order.
const MIX: [u8; 256] = [
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0, 232, 31, 32, 55, 60, 152,
    58, 17, 237, 174, 70, 160, 144, 220, 90, 57, 223, 59, 3, 18, 140, 111, 166, 203, 196, 134, 243,
    124, 95, 222, 179, 197, 65, 180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23, 97,
    16, 40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108, 244, 67, 207, 9, 178, 204,
    74, 98, 126, 249, 167, 116, 34, 77, 193, 200, 121, 5, 20, 113, 71, 35, 128, 13, 182, 94, 25,
    226, 227, 199, 75, 27, 41, 245, 230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115, 241,
    73, 88, 105, 39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122, 12, 84, 82,
    163, 44, 139, 228, 236, 205, 242, 217, 11, 187, 146, 159, 64, 86, 239, 195, 42, 106, 198, 118,
    112, 184, 172, 87, 2, 173, 117, 176, 229, 247, 253, 137, 185, 99, 164, 102, 147, 45, 66, 231,
    52, 141, 211, 194, 206, 246, 238, 56, 110, 78, 248, 63, 240, 189, 93, 92, 51, 53, 183, 19, 171,
    72, 50, 33, 104, 101, 69, 8, 252, 83, 120, 76, 135, 85, 54, 202, 125, 188, 213, 96, 235, 136,
    208, 162, 129, 190, 132, 156, 38, 47, 1, 7, 254, 24, 4, 216, 131, 89, 21, 28, 133, 37, 153,
    149, 80, 170, 68, 6, 169, 234, 151,
];

/// The RFC 3074 §6 hash of `key`: start from the key's length (mod 256), then mix in the bytes
/// from the last to the first.
pub fn bucket_of(key: &[u8]) -> u8 {
    // The length is taken modulo 256, as the RFC's C code does with its unsigned char.
    let mut hash = (key.len() & 0xff) as u8;
    for b in key.iter().rev() {
        hash = MIX[usize::from(hash ^ b)];
    }
    hash
}

/// The key RFC 3074 hashes for `req`: the client identifier's data, else the hardware address
/// (`None` when the request has neither, which no server's bucket claims).
pub fn client_key(req: &Request) -> Option<&[u8]> {
    match req.packet.options.get(code::CLIENT_ID) {
        Some(id) if !id.is_empty() => Some(id),
        _ => Some(req.packet.chaddr()).filter(|c| !c.is_empty()),
    }
}

/// The bucket of `req`, when it has a key.
pub fn request_bucket(req: &Request) -> Option<u8> {
    client_key(req).map(bucket_of)
}

/// True when `bucket` is the primary's in a load-balancing pair (Kea's split: hash mod 2).
pub fn primary_bucket(bucket: u8) -> bool {
    bucket.is_multiple_of(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mixing_table_is_a_permutation() {
        let mut seen = [false; 256];
        for v in MIX {
            assert!(!seen[usize::from(v)], "{v} twice");
            seen[usize::from(v)] = true;
        }
    }

    #[test]
    fn hash_follows_the_rfc_algorithm() {
        // Empty key: the hash is the length, 0, unmixed.
        assert_eq!(bucket_of(&[]), 0);
        // One byte: MIX[len ^ b].
        assert_eq!(bucket_of(&[0]), MIX[1]);
        assert_eq!(bucket_of(&[1]), MIX[0]);
        // Two bytes, last first: MIX[MIX[2 ^ b1] ^ b0].
        let k = [0x12, 0x34];
        assert_eq!(
            bucket_of(&k),
            MIX[usize::from(MIX[usize::from(2u8 ^ 0x34)] ^ 0x12)]
        );
    }

    #[test]
    fn buckets_split_about_evenly_over_macs() {
        let mut primary = 0;
        for i in 0..10_000u32 {
            let b = i.to_be_bytes();
            let mac = [0x02, 0x00, b[0], b[1], b[2], b[3]];
            if primary_bucket(bucket_of(&mac)) {
                primary += 1;
            }
        }
        assert!((4_500..=5_500).contains(&primary), "{primary}");
    }
}
