//! Option 82 (RFC 3046) as data: every sub-option parsed once per packet, plus the key
//! extractors that turn relay data into reservation keys (switch MAC, port, VLAN, …).
//!
//! Relay data is untrusted input from the access network, so nothing here trusts a length:
//! a malformed Option 82 yields a [`RelayInfo`] with no keys (still echoed byte for byte).

use std::net::Ipv4Addr;

use leased_wire::relay_suboptions;

/// Sub-option codes leased understands.
pub mod sub {
    /// RFC 3046 agent circuit-id.
    pub const CIRCUIT_ID: u8 = 1;
    /// RFC 3046 agent remote-id.
    pub const REMOTE_ID: u8 = 2;
    /// RFC 3527 link selection.
    pub const LINK_SELECTION: u8 = 5;
    /// RFC 3993 subscriber-id.
    pub const SUBSCRIBER_ID: u8 = 6;
    /// RFC 5107 server identifier override.
    pub const SERVER_ID_OVERRIDE: u8 = 11;
    /// RFC 8357 relay source port.
    pub const RELAY_PORT: u8 = 19;
}

/// Everything a relay told us in Option 82, typed. Built by [`RelayInfo::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayInfo {
    /// The option's value exactly as received: what replies echo (RFC 3046 §2.2).
    pub raw: Vec<u8>,
    /// False when a sub-option header or length was cut short; then every key below is `None`
    /// (a half-parsed option must not pick a reservation) but the option is still echoed.
    pub well_formed: bool,
    /// Sub-option 1; a zero-length value counts as absent.
    pub circuit_id: Option<Vec<u8>>,
    /// Sub-option 2; a zero-length value counts as absent.
    pub remote_id: Option<Vec<u8>>,
    /// Sub-option 5 (RFC 3527), when exactly 4 bytes.
    pub link_selection: Option<Ipv4Addr>,
    /// Sub-option 6 (RFC 3993); a zero-length value counts as absent.
    pub subscriber_id: Option<Vec<u8>>,
    /// Sub-option 11 (RFC 5107), when exactly 4 bytes: we speak as this address (option 54).
    pub server_id_override: Option<Ipv4Addr>,
    /// Sub-option 19 (RFC 8357) present: the relay listens on the source port it sent from.
    pub relay_port: bool,
}

impl RelayInfo {
    /// Parses an Option 82 value. Never fails: see [`RelayInfo::well_formed`]. The first
    /// occurrence of a repeated sub-option wins.
    pub fn parse(value: &[u8]) -> Self {
        let mut info = RelayInfo {
            raw: value.to_vec(),
            ..Self::default()
        };
        let Ok(subs) = relay_suboptions(value) else {
            return info;
        };
        info.well_formed = true;
        let bytes = |v: &[u8]| (!v.is_empty()).then(|| v.to_vec());
        let addr = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
        for (code, v) in subs {
            match code {
                sub::CIRCUIT_ID if info.circuit_id.is_none() => info.circuit_id = bytes(v),
                sub::REMOTE_ID if info.remote_id.is_none() => info.remote_id = bytes(v),
                sub::SUBSCRIBER_ID if info.subscriber_id.is_none() => {
                    info.subscriber_id = bytes(v);
                }
                sub::LINK_SELECTION if info.link_selection.is_none() => {
                    info.link_selection = addr(v);
                }
                sub::SERVER_ID_OVERRIDE if info.server_id_override.is_none() => {
                    info.server_id_override = addr(v);
                }
                sub::RELAY_PORT => info.relay_port = true,
                _ => {}
            }
        }
        info
    }

    /// The relay data a lease remembers, for renewals that arrive without Option 82.
    pub fn keys(&self) -> RelayKeys {
        RelayKeys {
            circuit_id: self.circuit_id.clone(),
            remote_id: self.remote_id.clone(),
            subscriber_id: self.subscriber_id.clone(),
            raw: self.well_formed.then(|| self.raw.clone()),
        }
    }
}

/// The relay fields that identify where a client is plugged in: from the packet's Option 82,
/// or, for a unicast renewal without it, from the client's lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayKeys {
    /// Agent circuit-id (sub-option 1).
    pub circuit_id: Option<Vec<u8>>,
    /// Agent remote-id (sub-option 2).
    pub remote_id: Option<Vec<u8>>,
    /// Subscriber-id (sub-option 6).
    pub subscriber_id: Option<Vec<u8>>,
    /// The whole Option 82 value (for `option_82` / `option_82_hex` slices), when known.
    pub raw: Option<Vec<u8>>,
}

impl RelayKeys {
    /// True when no field is known.
    pub fn is_empty(&self) -> bool {
        self.circuit_id.is_none() && self.remote_id.is_none() && self.subscriber_id.is_none()
    }
}

/// Where a slice extractor reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceSource {
    /// Circuit-id value bytes.
    CircuitId,
    /// Remote-id value bytes.
    RemoteId,
    /// Subscriber-id value bytes.
    SubscriberId,
    /// The whole Option 82 value (sub-option headers included, no option length).
    Option82,
}

/// A named way to take a value out of relay data. Values are bytes; see `docs/config.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extractor {
    /// The whole circuit-id.
    CircuitId,
    /// The whole remote-id.
    RemoteId,
    /// The whole subscriber-id.
    SubscriberId,
    /// The last byte of the circuit-id (pydhcpdb's `option_82_AgentCircuitId_port_hex`).
    CircuitIdLastBytePort,
    /// The last two bytes of the circuit-id (switches that number ports in 16 bits).
    CircuitIdLast2BytesPort,
    /// D-Link/Edge-Core style circuit-id `00 04 VLAN(2) MODULE(1) PORT(1)`: the VLAN.
    CircuitIdVlan,
    /// Same format: the module (unit) byte.
    CircuitIdModule,
    /// Same format: the port byte.
    CircuitIdPort,
    /// The switch MAC in the remote-id: the 6 bytes of a bare MAC, or of `00 06 MAC`.
    RemoteIdMac,
    /// A user-defined slice, `start..end` (end exclusive). With `hex`, the indexes count hex
    /// characters of the source rendered as lowercase hex, as pydhcpdb's `*_hex` variables do
    /// (and `option_82_hex` then starts with the option's length byte, as in pydhcpdb).
    Slice {
        /// What is sliced.
        source: SliceSource,
        /// Index the hex rendering instead of the bytes.
        hex: bool,
        /// First index.
        start: usize,
        /// One past the last index.
        end: usize,
    },
}

impl Extractor {
    /// The built-in extractors by the name used in the config.
    pub fn builtin(name: &str) -> Option<Self> {
        Some(match name {
            "circuit_id" => Self::CircuitId,
            "remote_id" => Self::RemoteId,
            "subscriber_id" => Self::SubscriberId,
            "circuit_id_last_byte_port" => Self::CircuitIdLastBytePort,
            "circuit_id_last_2_bytes_port" => Self::CircuitIdLast2BytesPort,
            "circuit_id_vlan" => Self::CircuitIdVlan,
            "circuit_id_module" => Self::CircuitIdModule,
            "circuit_id_port" => Self::CircuitIdPort,
            "remote_id_mac" => Self::RemoteIdMac,
            _ => return None,
        })
    }

    /// Names of the built-ins, for error messages and docs.
    pub const BUILTINS: [&'static str; 9] = [
        "circuit_id",
        "remote_id",
        "subscriber_id",
        "circuit_id_last_byte_port",
        "circuit_id_last_2_bytes_port",
        "circuit_id_vlan",
        "circuit_id_module",
        "circuit_id_port",
        "remote_id_mac",
    ];

    /// Parses a slice in pydhcpdb's `src:dst:start:end` form (`dst` is the name, returned) or
    /// leased's `src:start:end`. Sources: `circuit_id`, `remote_id`, `subscriber_id`,
    /// `option_82`, each also with `_hex`; pydhcpdb's `option_82_AgentCircuitId_hex` and
    /// `option_82_AgentRemoteId_hex` are accepted as `circuit_id_hex` / `remote_id_hex`.
    pub fn parse_slice(spec: &str) -> Result<(Option<String>, Self), String> {
        let parts: Vec<&str> = spec.split(':').map(str::trim).collect();
        let (src, dst, start, end) = match parts.as_slice() {
            [s, d, a, b] => (*s, Some((*d).to_string()), *a, *b),
            [s, a, b] => (*s, None, *a, *b),
            _ => {
                return Err(format!(
                    "{spec:?}: expected \"source:name:start:end\" or \"source:start:end\""
                ));
            }
        };
        let (base, hex) = match src.strip_suffix("_hex") {
            Some(b) => (b, true),
            None => (src, false),
        };
        let source = match base {
            "circuit_id" | "option_82_AgentCircuitId" => SliceSource::CircuitId,
            "remote_id" | "option_82_AgentRemoteId" => SliceSource::RemoteId,
            "subscriber_id" => SliceSource::SubscriberId,
            "option_82" => SliceSource::Option82,
            _ => {
                return Err(format!(
                    "{spec:?}: unknown source {src:?}; expected circuit_id, remote_id, \
                     subscriber_id or option_82, optionally with _hex"
                ));
            }
        };
        let num = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| format!("{spec:?}: {s:?} is not a non-negative index"))
        };
        let (start, end) = (num(start)?, num(end)?);
        if end <= start {
            return Err(format!("{spec:?}: end must be greater than start"));
        }
        if hex && (end - start) % 2 != 0 {
            return Err(format!(
                "{spec:?}: a hex slice must cover whole bytes (an even number of hex digits)"
            ));
        }
        if let Some(d) = &dst
            && d.is_empty()
        {
            return Err(format!("{spec:?}: empty name"));
        }
        Ok((
            dst,
            Self::Slice {
                source,
                hex,
                start,
                end,
            },
        ))
    }

    /// The value this extractor finds in `keys`, or `None` when the field is absent, too short,
    /// or not in the expected format. Never panics.
    pub fn extract(&self, keys: &RelayKeys) -> Option<Vec<u8>> {
        let cid = keys.circuit_id.as_deref();
        let rid = keys.remote_id.as_deref();
        match self {
            Self::CircuitId => cid.map(<[u8]>::to_vec),
            Self::RemoteId => rid.map(<[u8]>::to_vec),
            Self::SubscriberId => keys.subscriber_id.clone(),
            Self::CircuitIdLastBytePort => cid?.last_chunk::<1>().map(|b| b.to_vec()),
            Self::CircuitIdLast2BytesPort => cid?.last_chunk::<2>().map(|b| b.to_vec()),
            Self::CircuitIdVlan => dlink(cid?).map(|(v, _, _)| v.to_vec()),
            Self::CircuitIdModule => dlink(cid?).map(|(_, m, _)| vec![m]),
            Self::CircuitIdPort => dlink(cid?).map(|(_, _, p)| vec![p]),
            Self::RemoteIdMac => match rid? {
                [0, 6, mac @ ..] if mac.len() == 6 => Some(mac.to_vec()),
                mac if mac.len() == 6 => Some(mac.to_vec()),
                _ => None,
            },
            Self::Slice {
                source,
                hex,
                start,
                end,
            } => {
                let src: Vec<u8> = match source {
                    SliceSource::CircuitId => cid?.to_vec(),
                    SliceSource::RemoteId => rid?.to_vec(),
                    SliceSource::SubscriberId => keys.subscriber_id.clone()?,
                    SliceSource::Option82 => {
                        let raw = keys.raw.as_deref()?;
                        if *hex {
                            // pydhcpdb's option_82_hex starts with the length byte.
                            let len = u8::try_from(raw.len()).ok()?;
                            std::iter::once(len).chain(raw.iter().copied()).collect()
                        } else {
                            raw.to_vec()
                        }
                    }
                };
                if *hex {
                    let text = to_hex(&src);
                    leased_wire::parse_hex(text.get(*start..*end)?).ok()
                } else {
                    src.get(*start..*end).map(<[u8]>::to_vec)
                }
            }
        }
    }
}

impl Extractor {
    /// The value as an SQL variable (lowercase hex text), with pydhcpdb's slicing: a slice
    /// whose end lies past the value ends at the value's end, as a Python slice does, so
    /// pydhcpdb's own `option_82_hex:sw_mac:26:40` still gives the 12 hex digits of the switch
    /// MAC from a 38-digit value; a `*_hex` slice may then hold an odd number of digits, as in
    /// Python. An absent source or an empty slice is `None` (bound as NULL, which no `=`
    /// matches), never `''`. Reservation keys keep [`Extractor::extract`]'s strict rule: a
    /// value too short for its slice identifies nobody there.
    pub fn variable(&self, keys: &RelayKeys) -> Option<String> {
        let Self::Slice {
            source,
            hex,
            start,
            end,
        } = self
        else {
            return self
                .extract(keys)
                .filter(|v| !v.is_empty())
                .map(|v| to_hex(&v));
        };
        let src: Vec<u8> = match source {
            SliceSource::CircuitId => keys.circuit_id.clone()?,
            SliceSource::RemoteId => keys.remote_id.clone()?,
            SliceSource::SubscriberId => keys.subscriber_id.clone()?,
            SliceSource::Option82 => {
                let raw = keys.raw.as_deref()?;
                if *hex {
                    let len = u8::try_from(raw.len()).ok()?;
                    std::iter::once(len).chain(raw.iter().copied()).collect()
                } else {
                    raw.to_vec()
                }
            }
        };
        let text = if *hex {
            let t = to_hex(&src);
            let e = (*end).min(t.len());
            t.get(*start..e).map(str::to_string)
        } else {
            let e = (*end).min(src.len());
            src.get(*start..e).map(to_hex)
        };
        text.filter(|t| !t.is_empty())
    }
}

/// `00 04 VLAN(2) MODULE(1) PORT(1)`: D-Link, Edge-Core and other switches' circuit-id.
fn dlink(cid: &[u8]) -> Option<([u8; 2], u8, u8)> {
    match cid {
        [0, 4, v1, v2, m, p] => Some(([*v1, *v2], *m, *p)),
        _ => None,
    }
}

/// Lowercase hex without separators.
pub fn to_hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// Big-endian unsigned value of up to 8 bytes (a port number taken out of a circuit-id).
pub fn as_number(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 8 {
        return None;
    }
    Some(b.iter().fold(0u64, |n, x| n << 8 | u64::from(*x)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// pydhcpdb's own Option 82: circuit-id 00 04 00 01 00 04, remote-id 00 06 + MAC.
    const SEED: [u8; 18] = [
        0x01, 0x06, 0x00, 0x04, 0x00, 0x01, 0x00, 0x04, 0x02, 0x08, 0x00, 0x06, 0xc8, 0xbe, 0x19,
        0x93, 0x11, 0x48,
    ];

    fn pydhcpdb_sample() -> RelayKeys {
        RelayInfo::parse(&SEED).keys()
    }

    #[test]
    fn parses_every_suboption() {
        let mut v = SEED.to_vec();
        v.extend([
            5, 4, 198, 18, 1, 0, 6, 3, b's', b'u', b'b', 11, 4, 198, 18, 0, 9, 19, 0,
        ]);
        let r = RelayInfo::parse(&v);
        assert!(r.well_formed);
        assert_eq!(r.raw, v);
        assert_eq!(r.circuit_id.as_deref(), Some(&[0, 4, 0, 1, 0, 4][..]));
        assert_eq!(
            r.remote_id.as_deref(),
            Some(&[0, 6, 0xc8, 0xbe, 0x19, 0x93, 0x11, 0x48][..])
        );
        assert_eq!(r.link_selection, Some(Ipv4Addr::new(198, 18, 1, 0)));
        assert_eq!(r.subscriber_id.as_deref(), Some(&b"sub"[..]));
        assert_eq!(r.server_id_override, Some(Ipv4Addr::new(198, 18, 0, 9)));
        assert!(r.relay_port);
    }

    #[test]
    fn malformed_has_no_keys_but_keeps_raw() {
        for bad in [&[1u8, 9, 1, 2][..], &[1], &[1, 2, 3, 4, 2]] {
            let r = RelayInfo::parse(bad);
            assert!(!r.well_formed);
            assert_eq!(r.raw, bad);
            assert!(r.keys().is_empty());
            assert_eq!(r.link_selection, None);
        }
        // Zero-length circuit-id: absent, the rest still parsed.
        let r = RelayInfo::parse(&[1, 0, 2, 1, 7, 5, 3, 1, 2, 3]);
        assert!(r.well_formed);
        assert_eq!(r.circuit_id, None);
        assert_eq!(r.remote_id, Some(vec![7]));
        assert_eq!(
            r.link_selection, None,
            "link selection of 3 bytes is ignored"
        );
    }

    #[test]
    fn first_occurrence_wins() {
        let r = RelayInfo::parse(&[1, 1, 7, 1, 1, 8]);
        assert_eq!(r.circuit_id, Some(vec![7]));
    }

    #[test]
    fn builtins_on_pydhcpdbs_sample() {
        let k = pydhcpdb_sample();
        let x = |n: &str| Extractor::builtin(n).unwrap().extract(&k);
        assert_eq!(x("circuit_id"), Some(vec![0, 4, 0, 1, 0, 4]));
        assert_eq!(x("remote_id"), Some(SEED[10..].to_vec()));
        assert_eq!(x("subscriber_id"), None);
        assert_eq!(x("circuit_id_last_byte_port"), Some(vec![4]));
        assert_eq!(x("circuit_id_last_2_bytes_port"), Some(vec![0, 4]));
        assert_eq!(x("circuit_id_vlan"), Some(vec![0, 1]));
        assert_eq!(x("circuit_id_module"), Some(vec![0]));
        assert_eq!(x("circuit_id_port"), Some(vec![4]));
        assert_eq!(
            x("remote_id_mac"),
            Some(vec![0xc8, 0xbe, 0x19, 0x93, 0x11, 0x48])
        );
        for n in Extractor::BUILTINS {
            assert!(Extractor::builtin(n).is_some(), "{n}");
        }
        assert_eq!(Extractor::builtin("nope"), None);
    }

    #[test]
    fn builtins_refuse_other_formats() {
        let k = RelayKeys {
            circuit_id: Some(b"Gi0/1".to_vec()),
            remote_id: Some(vec![1, 2, 3]),
            ..RelayKeys::default()
        };
        let x = |n: &str| Extractor::builtin(n).unwrap().extract(&k);
        assert_eq!(x("circuit_id_vlan"), None);
        assert_eq!(x("circuit_id_port"), None);
        assert_eq!(x("circuit_id_last_byte_port"), Some(b"1".to_vec()));
        assert_eq!(x("remote_id_mac"), None);
        let bare = RelayKeys {
            remote_id: Some(vec![1, 2, 3, 4, 5, 6]),
            ..RelayKeys::default()
        };
        assert_eq!(
            Extractor::RemoteIdMac.extract(&bare),
            Some(vec![1, 2, 3, 4, 5, 6])
        );
        assert_eq!(
            Extractor::CircuitIdLast2BytesPort.extract(&RelayKeys::default()),
            None
        );
        let one = RelayKeys {
            circuit_id: Some(vec![9]),
            ..RelayKeys::default()
        };
        assert_eq!(Extractor::CircuitIdLast2BytesPort.extract(&one), None);
    }

    #[test]
    fn slices_pydhcpdb_compatible() {
        let k = pydhcpdb_sample();
        // option_82_hex = "12" + "0106000400010004" + "0208" + "0006c8be19931148"
        let (name, e) = Extractor::parse_slice("option_82_hex:sw_port1:20:22").unwrap();
        assert_eq!(name.as_deref(), Some("sw_port1"));
        // Char 20-21 of this packet is the remote-id length byte (pydhcpdb's indexes fit its
        // own switches' layout, not every one).
        assert_eq!(e.extract(&k), Some(vec![0x08]));
        let (_, e) = Extractor::parse_slice("option_82_hex:sw_port2:16:18").unwrap();
        assert_eq!(
            e.extract(&k),
            Some(vec![0x04]),
            "port: last byte of the circuit-id"
        );
        let (_, e) = Extractor::parse_slice("option_82_hex:sw_mac:26:38").unwrap();
        assert_eq!(
            e.extract(&k),
            Some(vec![0xc8, 0xbe, 0x19, 0x93, 0x11, 0x48])
        );
        let (name, e) = Extractor::parse_slice("circuit_id:2:4").unwrap();
        assert_eq!(name, None);
        assert_eq!(e.extract(&k), Some(vec![0, 1]));
        let (_, e) = Extractor::parse_slice("remote_id_hex:4:16").unwrap();
        assert_eq!(
            e.extract(&k),
            Some(vec![0xc8, 0xbe, 0x19, 0x93, 0x11, 0x48])
        );
        let (_, e) = Extractor::parse_slice("option_82_AgentRemoteId_hex:x:0:4").unwrap();
        assert_eq!(e.extract(&k), Some(vec![0, 6]));
        let (_, e) = Extractor::parse_slice("option_82:0:2").unwrap();
        assert_eq!(e.extract(&k), Some(vec![1, 6]));
        // docs/config.md: stacked switch, unit 2 port 4 → port number 516.
        let stacked = RelayKeys {
            circuit_id: Some(vec![0, 4, 0, 1, 2, 4]),
            ..RelayKeys::default()
        };
        let (_, e) = Extractor::parse_slice("circuit_id:unit_port:4:6").unwrap();
        assert_eq!(
            e.extract(&stacked).as_deref().and_then(as_number),
            Some(516)
        );
        // Out of range: no value (not a truncated one).
        let (_, e) = Extractor::parse_slice("circuit_id:4:9").unwrap();
        assert_eq!(e.extract(&k), None);
        let (_, e) = Extractor::parse_slice("subscriber_id:0:1").unwrap();
        assert_eq!(e.extract(&k), None);
    }

    #[test]
    fn slice_spec_errors() {
        for bad in [
            "circuit_id",
            "circuit_id:1",
            "bogus:0:1",
            "circuit_id:2:2",
            "circuit_id:3:1",
            "circuit_id:-1:2",
            "circuit_id_hex:0:3",
            "circuit_id::0:2",
            "a:b:c:d:e",
        ] {
            assert!(Extractor::parse_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(as_number(&[0, 4]), Some(4));
        assert_eq!(as_number(&[1, 0]), Some(256));
        assert_eq!(as_number(&[]), None);
        assert_eq!(as_number(&[0; 9]), None);
        assert_eq!(to_hex(&[0, 0xab]), "00ab");
    }
}
