//! [`PartnerMessage`]: what two HA servers say to each other, and its compact binary encoding.
//!
//! Every message is one frame: `"LHA"`, the protocol version (one byte), the kind (one byte),
//! then the body. The transport delimits frames (a length prefix on its stream); a frame is at
//! most [`MAX_FRAME`] bytes. Integers are big-endian; byte strings carry a 16-bit length, lists a
//! 32-bit count that is checked against the bytes left before anything is allocated. Decoding
//! never panics: anything short, long, unknown or out of range is a [`DecodeError`], and a
//! partner speaking another protocol version is refused by name.

use std::net::Ipv4Addr;

use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};

use crate::state::HaState;

/// The partner protocol's version: a partner with another one is refused.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest frame either side sends or accepts (a sync page of 10,000 leases fits easily).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
const MAGIC: &[u8; 3] = b"LHA";

/// One message between the two servers of a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnerMessage {
    /// First on every new link: who we are, which pair config we run, and whether the partner
    /// must fetch our table before it serves (we served alone, or dropped updates for it).
    Hello {
        /// The sender's name, which must be the receiver's configured partner.
        server: String,
        /// [`crate::HaConfig::config_version`] of the sender.
        config_version: u32,
        /// The sender's state.
        state: HaState,
        /// The receiver is behind the sender and must sync.
        behind: bool,
    },
    /// Sent every `heartbeat_delay` and at once on every state change: the partner's state, and
    /// its wall clock (seconds) for the clock-skew check.
    Heartbeat {
        /// The sender's state.
        state: HaState,
        /// The sender's wall clock.
        wall: Timestamp,
    },
    /// Lease changes to store, in order; answered by [`PartnerMessage::LeaseAck`] once durable.
    LeaseUpdates {
        /// The batch's name, echoed in the ack.
        batch: u64,
        /// The leases as they now are.
        leases: Vec<Lease>,
    },
    /// Every lease of this batch is durable on the sender, except those at `rejected`: the
    /// sender holds them bound to another client, more recently.
    LeaseAck {
        /// The batch acknowledged.
        batch: u64,
        /// Addresses refused; their replies must never leave.
        rejected: Vec<Ipv4Addr>,
    },
    /// Asks for the next page of the partner's table: leases at addresses above `after`.
    SyncRequest {
        /// The last address of the previous page; `None` for the first.
        after: Option<Ipv4Addr>,
        /// Most leases wanted.
        limit: u32,
    },
    /// One page of the sender's table, in address order.
    SyncPage {
        /// The leases.
        leases: Vec<Lease>,
        /// True when leases above the last one remain.
        more: bool,
    },
    /// The sender's operator starts (`true`) or ends (`false`) a maintenance: the receiver
    /// serves alone meanwhile, with no takeover delay.
    Maintenance {
        /// Start or end.
        start: bool,
    },
    /// The sender dropped updates meant for the receiver: the receiver must sync.
    Resync,
}

/// Why bytes are not a partner message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the message needs.
    Truncated,
    /// Bytes left over after the message.
    Trailing,
    /// Not a leased HA frame at all.
    BadMagic,
    /// Another protocol version.
    Version {
        /// Ours.
        ours: u8,
        /// The partner's.
        theirs: u8,
    },
    /// A message kind this version does not know.
    UnknownKind(u8),
    /// A field out of its range (a state, a lease state, text that is not UTF-8, …).
    Invalid(&'static str),
    /// More than [`MAX_FRAME`] bytes.
    TooLong,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated => f.write_str("partner message truncated"),
            Self::Trailing => f.write_str("bytes after the partner message"),
            Self::BadMagic => f.write_str("not a leased HA message"),
            Self::Version { ours, theirs } => write!(
                f,
                "the partner speaks HA protocol version {theirs}, this server {ours}: upgrade \
                 both servers to the same leased release"
            ),
            Self::UnknownKind(k) => write!(f, "unknown partner message kind {k}"),
            Self::Invalid(what) => write!(f, "invalid partner message: {what}"),
            Self::TooLong => write!(f, "partner message longer than {MAX_FRAME} bytes"),
        }
    }
}

impl std::error::Error for DecodeError {}

const K_HELLO: u8 = 1;
const K_HEARTBEAT: u8 = 2;
const K_UPDATES: u8 = 3;
const K_ACK: u8 = 4;
const K_SYNC_REQ: u8 = 5;
const K_SYNC_PAGE: u8 = 6;
const K_MAINT: u8 = 7;
const K_RESYNC: u8 = 8;

/// The smallest encoded lease: ip, three timestamps, state, and five empty length fields.
const MIN_LEASE: usize = 4 + 24 + 1 + 2 + 2 + 1 + 3;

impl PartnerMessage {
    /// The frame's bytes (without the transport's length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(64);
        w.extend_from_slice(MAGIC);
        w.push(PROTOCOL_VERSION);
        match self {
            Self::Hello {
                server,
                config_version,
                state,
                behind,
            } => {
                w.push(K_HELLO);
                put_bytes(&mut w, server.as_bytes());
                w.extend_from_slice(&config_version.to_be_bytes());
                w.push(state.code());
                w.push(u8::from(*behind));
            }
            Self::Heartbeat { state, wall } => {
                w.push(K_HEARTBEAT);
                w.push(state.code());
                w.extend_from_slice(&wall.0.to_be_bytes());
            }
            Self::LeaseUpdates { batch, leases } => {
                w.push(K_UPDATES);
                w.extend_from_slice(&batch.to_be_bytes());
                put_leases(&mut w, leases);
            }
            Self::LeaseAck { batch, rejected } => {
                w.push(K_ACK);
                w.extend_from_slice(&batch.to_be_bytes());
                let n = rejected.len().min(u16::MAX as usize);
                // Cut at u16::MAX just above.
                w.extend_from_slice(&(n as u16).to_be_bytes());
                for ip in rejected.iter().take(n) {
                    w.extend_from_slice(&ip.octets());
                }
            }
            Self::SyncRequest { after, limit } => {
                w.push(K_SYNC_REQ);
                match after {
                    Some(ip) => {
                        w.push(1);
                        w.extend_from_slice(&ip.octets());
                    }
                    None => w.push(0),
                }
                w.extend_from_slice(&limit.to_be_bytes());
            }
            Self::SyncPage { leases, more } => {
                w.push(K_SYNC_PAGE);
                w.push(u8::from(*more));
                put_leases(&mut w, leases);
            }
            Self::Maintenance { start } => {
                w.push(K_MAINT);
                w.push(u8::from(*start));
            }
            Self::Resync => w.push(K_RESYNC),
        }
        w
    }

    /// Reads one frame. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_FRAME {
            return Err(DecodeError::TooLong);
        }
        let mut r = Reader(bytes);
        if r.take(3)? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8()?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::Version {
                ours: PROTOCOL_VERSION,
                theirs: version,
            });
        }
        let msg = match r.u8()? {
            K_HELLO => Self::Hello {
                server: r.text()?,
                config_version: r.u32()?,
                state: r.state()?,
                behind: r.flag()?,
            },
            K_HEARTBEAT => Self::Heartbeat {
                state: r.state()?,
                wall: Timestamp(r.u64()?),
            },
            K_UPDATES => Self::LeaseUpdates {
                batch: r.u64()?,
                leases: r.leases()?,
            },
            K_ACK => {
                let batch = r.u64()?;
                let n = usize::from(r.u16()?);
                let rejected = (0..n).map(|_| r.ip()).collect::<Result<_, _>>()?;
                Self::LeaseAck { batch, rejected }
            }
            K_SYNC_REQ => {
                let after = match r.u8()? {
                    0 => None,
                    1 => Some(r.ip()?),
                    _ => return Err(DecodeError::Invalid("sync request flag")),
                };
                Self::SyncRequest {
                    after,
                    limit: r.u32()?,
                }
            }
            K_SYNC_PAGE => Self::SyncPage {
                more: r.flag()?,
                leases: r.leases()?,
            },
            K_MAINT => Self::Maintenance { start: r.flag()? },
            K_RESYNC => Self::Resync,
            other => return Err(DecodeError::UnknownKind(other)),
        };
        if !r.0.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(msg)
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Heartbeat { .. } => "heartbeat",
            Self::LeaseUpdates { .. } => "lease-updates",
            Self::LeaseAck { .. } => "lease-ack",
            Self::SyncRequest { .. } => "sync-request",
            Self::SyncPage { .. } => "sync-page",
            Self::Maintenance { .. } => "maintenance",
            Self::Resync => "resync",
        }
    }
}

/// Writes a 16-bit length and the bytes, cut at 65,535 (no field leased keeps is longer).
fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    let b = b.get(..usize::from(u16::MAX)).unwrap_or(b);
    // The cut above keeps the length within u16.
    w.extend_from_slice(&(b.len() as u16).to_be_bytes());
    w.extend_from_slice(b);
}

fn put_opt(w: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => w.push(0),
        Some(b) => {
            w.push(1);
            put_bytes(w, b);
        }
    }
}

fn put_leases(w: &mut Vec<u8>, leases: &[Lease]) {
    w.extend_from_slice(
        &u32::try_from(leases.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for l in leases.iter().take(u32::MAX as usize) {
        w.extend_from_slice(&l.ip.octets());
        put_bytes(w, &l.client_id.0);
        put_bytes(w, &l.hwaddr.0);
        put_opt(w, l.hostname.as_deref().map(str::as_bytes));
        w.push(lease_state_code(l.state));
        w.extend_from_slice(&l.starts.0.to_be_bytes());
        w.extend_from_slice(&l.expires.0.to_be_bytes());
        w.extend_from_slice(&l.first_seen.0.to_be_bytes());
        put_opt(w, l.circuit_id.as_deref());
        put_opt(w, l.remote_id.as_deref());
        put_opt(w, l.subscriber_id.as_deref());
    }
}

fn lease_state_code(s: LeaseState) -> u8 {
    match s {
        LeaseState::Offered => 0,
        LeaseState::Bound => 1,
        LeaseState::Released => 2,
        LeaseState::Expired => 3,
        LeaseState::Declined => 4,
    }
}

/// A checked reader over the frame's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let b = self.take(N)?;
        b.try_into().map_err(|_| DecodeError::Truncated)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn ip(&mut self) -> Result<Ipv4Addr, DecodeError> {
        Ok(Ipv4Addr::from(self.array::<4>()?))
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid("flag")),
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u16()?;
        Ok(self.take(usize::from(n))?.to_vec())
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?).map_err(|_| DecodeError::Invalid("text is not UTF-8"))
    }

    fn opt(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.bytes().map(Some),
            _ => Err(DecodeError::Invalid("option flag")),
        }
    }

    fn state(&mut self) -> Result<HaState, DecodeError> {
        HaState::from_code(self.u8()?).ok_or(DecodeError::Invalid("HA state"))
    }

    fn leases(&mut self) -> Result<Vec<Lease>, DecodeError> {
        let n = self.u32()? as usize;
        // Checked before allocating: a count the bytes cannot hold is a lie.
        if n > self.0.len() / MIN_LEASE {
            return Err(DecodeError::Truncated);
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let ip = self.ip()?;
            let client_id = ClientId(self.bytes()?);
            let hwaddr = HwAddr(self.bytes()?);
            let hostname = match self.opt()? {
                None => None,
                Some(b) => {
                    Some(String::from_utf8(b).map_err(|_| DecodeError::Invalid("host name"))?)
                }
            };
            let state = match self.u8()? {
                0 => LeaseState::Offered,
                1 => LeaseState::Bound,
                2 => LeaseState::Released,
                3 => LeaseState::Expired,
                4 => LeaseState::Declined,
                _ => return Err(DecodeError::Invalid("lease state")),
            };
            out.push(Lease {
                ip,
                client_id,
                hwaddr,
                hostname,
                state,
                starts: Timestamp(self.u64()?),
                expires: Timestamp(self.u64()?),
                first_seen: Timestamp(self.u64()?),
                circuit_id: self.opt()?,
                remote_id: self.opt()?,
                subscriber_id: self.opt()?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn lease_strategy() -> impl Strategy<Value = Lease> {
        (
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::collection::vec(any::<u8>(), 0..16),
            proptest::option::of("[a-z0-9-]{0,20}"),
            0u8..5,
            any::<(u64, u64, u64)>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        )
            .prop_map(|(ip, cid, hw, host, st, (s, e, f), c, r, sub)| Lease {
                ip: Ipv4Addr::from(ip),
                client_id: ClientId(cid),
                hwaddr: HwAddr(hw),
                hostname: host,
                state: [
                    LeaseState::Offered,
                    LeaseState::Bound,
                    LeaseState::Released,
                    LeaseState::Expired,
                    LeaseState::Declined,
                ][usize::from(st)],
                starts: Timestamp(s),
                expires: Timestamp(e),
                first_seen: Timestamp(f),
                circuit_id: c,
                remote_id: r,
                subscriber_id: sub,
            })
    }

    fn message_strategy() -> impl Strategy<Value = PartnerMessage> {
        let state = (0u8..9).prop_map(|c| HaState::from_code(c).unwrap());
        prop_oneof![
            ("[a-z]{0,12}", any::<u32>(), state.clone(), any::<bool>()).prop_map(
                |(server, config_version, state, behind)| PartnerMessage::Hello {
                    server,
                    config_version,
                    state,
                    behind
                }
            ),
            (state, any::<u64>()).prop_map(|(state, w)| PartnerMessage::Heartbeat {
                state,
                wall: Timestamp(w)
            }),
            (
                any::<u64>(),
                proptest::collection::vec(lease_strategy(), 0..5)
            )
                .prop_map(|(batch, leases)| PartnerMessage::LeaseUpdates { batch, leases }),
            (any::<u64>(), proptest::collection::vec(any::<u32>(), 0..4)).prop_map(|(batch, r)| {
                PartnerMessage::LeaseAck {
                    batch,
                    rejected: r.into_iter().map(Ipv4Addr::from).collect(),
                }
            }),
            (proptest::option::of(any::<u32>()), any::<u32>()).prop_map(|(a, limit)| {
                PartnerMessage::SyncRequest {
                    after: a.map(Ipv4Addr::from),
                    limit,
                }
            }),
            (
                proptest::collection::vec(lease_strategy(), 0..5),
                any::<bool>()
            )
                .prop_map(|(leases, more)| PartnerMessage::SyncPage { leases, more }),
            any::<bool>().prop_map(|start| PartnerMessage::Maintenance { start }),
            Just(PartnerMessage::Resync),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(m in message_strategy()) {
            let bytes = m.encode();
            prop_assert_eq!(PartnerMessage::decode(&bytes), Ok(m));
        }

        #[test]
        fn decode_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = PartnerMessage::decode(&bytes);
            let mut framed = b"LHA\x01".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = PartnerMessage::decode(&framed);
        }

        #[test]
        fn decode_never_panics_on_a_mutated_message(
            m in message_strategy(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
        ) {
            let mut bytes = m.encode();
            for (at, v) in flips {
                let n = bytes.len();
                bytes[at % n] = v;
            }
            let _ = PartnerMessage::decode(&bytes);
            let n = bytes.len();
            bytes.truncate(cut % (n + 1));
            let _ = PartnerMessage::decode(&bytes);
        }
    }

    #[test]
    fn another_protocol_version_is_refused_by_name() {
        let mut b = PartnerMessage::Resync.encode();
        b[3] = 2;
        let e = PartnerMessage::decode(&b).unwrap_err();
        assert_eq!(
            e,
            DecodeError::Version {
                ours: PROTOCOL_VERSION,
                theirs: 2
            }
        );
        assert!(e.to_string().contains("version 2"), "{e}");
        assert_eq!(
            PartnerMessage::decode(b"XYZ\x01\x08"),
            Err(DecodeError::BadMagic)
        );
    }

    #[test]
    fn a_lying_count_allocates_nothing() {
        let mut b = b"LHA\x01\x06\x00".to_vec();
        b.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(PartnerMessage::decode(&b), Err(DecodeError::Truncated));
    }
}
