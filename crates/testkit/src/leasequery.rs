//! A leasequery requestor, sans IO: builds RFC 4388 queries (by address, MAC, client-id),
//! RFC 6926 bulk queries (by remote-id, circuit, relay-id, all), RFC 7724 active queries and
//! the DHCPTLS message, and reads the server's answers, from datagrams or from a TCP stream.
//!
//! Why in the test kit: the end-to-end tests and anyone checking a server by hand need a
//! requestor that reads every field the RFCs define, independent of the server's own code.

use std::net::Ipv4Addr;

use leased_wire::leasequery::{Deframer, FrameError, frame, msg, opt, sub};
use leased_wire::{BOOTREQUEST, Malformed, Options, Packet, code};

/// Builds queries from one requestor address (its giaddr, where UDP answers go).
#[derive(Debug, Clone)]
pub struct Requestor {
    /// The requestor's own address, sent as giaddr.
    pub addr: Ipv4Addr,
    next_xid: u32,
}

impl Requestor {
    /// A requestor at `addr` whose transaction ids start at `first_xid`.
    pub fn new(addr: Ipv4Addr, first_xid: u32) -> Self {
        Self {
            addr,
            next_xid: first_xid,
        }
    }

    fn base(&mut self, t: u8) -> Packet {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        let mut options = Options::new();
        options.set(code::MESSAGE_TYPE, vec![t]);
        Packet {
            op: BOOTREQUEST,
            htype: 0,
            hlen: 0,
            hops: 0,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: self.addr,
            chaddr: [0; 16],
            sname: Vec::new(),
            file: Vec::new(),
            options,
            option82_in_overload: false,
        }
    }

    /// Asks for every RFC 4388 / RFC 6926 option in option 55.
    fn ask_all(p: &mut Packet) {
        p.options.set(
            code::PARAM_REQUEST_LIST,
            vec![
                code::LEASE_TIME,
                code::CLIENT_ID,
                opt::CLIENT_LAST_TRANSACTION_TIME,
                opt::ASSOCIATED_IP,
                code::RELAY_AGENT_INFO,
                opt::BASE_TIME,
                opt::START_TIME_OF_STATE,
                opt::DHCP_STATE,
                opt::DATA_SOURCE,
            ],
        );
    }

    /// DHCPLEASEQUERY for the binding of `ip` (ciaddr).
    pub fn by_ip(&mut self, ip: Ipv4Addr) -> Packet {
        let mut p = self.base(msg::LEASEQUERY);
        p.ciaddr = ip;
        Self::ask_all(&mut p);
        p
    }

    /// DHCPLEASEQUERY for the bindings of an Ethernet MAC (chaddr).
    pub fn by_mac(&mut self, mac: [u8; 6]) -> Packet {
        let mut p = self.base(msg::LEASEQUERY);
        p.htype = 1;
        p.hlen = 6;
        if let Some(c) = p.chaddr.get_mut(..6) {
            c.copy_from_slice(&mac);
        }
        Self::ask_all(&mut p);
        p
    }

    /// DHCPLEASEQUERY for the bindings of a client-id (option 61).
    pub fn by_client_id(&mut self, id: &[u8]) -> Packet {
        let mut p = self.base(msg::LEASEQUERY);
        p.options.set(code::CLIENT_ID, id.to_vec());
        Self::ask_all(&mut p);
        p
    }

    /// DHCPBULKLEASEQUERY for the bindings made through `remote_id` (Option 82 sub-option 2),
    /// on `circuit_id` only when given.
    pub fn bulk_by_remote_id(&mut self, remote_id: &[u8], circuit_id: Option<&[u8]>) -> Packet {
        let mut p = self.base(msg::BULKLEASEQUERY);
        let mut o82 = Vec::new();
        push_sub(&mut o82, sub::REMOTE_ID, remote_id);
        if let Some(c) = circuit_id {
            push_sub(&mut o82, sub::CIRCUIT_ID, c);
        }
        p.options.set(code::RELAY_AGENT_INFO, o82);
        p
    }

    /// DHCPBULKLEASEQUERY for the bindings made through a relay-id (RFC 6925).
    pub fn bulk_by_relay_id(&mut self, relay_id: &[u8]) -> Packet {
        let mut p = self.base(msg::BULKLEASEQUERY);
        let mut o82 = Vec::new();
        push_sub(&mut o82, sub::RELAY_ID, relay_id);
        p.options.set(code::RELAY_AGENT_INFO, o82);
        p
    }

    /// DHCPBULKLEASEQUERY for every binding, changed within `start..=end` when given.
    pub fn bulk_all(&mut self, start: Option<u32>, end: Option<u32>) -> Packet {
        let mut p = self.base(msg::BULKLEASEQUERY);
        if let Some(s) = start {
            p.options
                .set(opt::QUERY_START_TIME, s.to_be_bytes().to_vec());
        }
        if let Some(e) = end {
            p.options.set(opt::QUERY_END_TIME, e.to_be_bytes().to_vec());
        }
        p
    }

    /// DHCPACTIVELEASEQUERY: a catch-up of the bindings changed since `start` (all without
    /// it), then every change.
    pub fn active(&mut self, start: Option<u32>) -> Packet {
        let mut p = self.base(msg::ACTIVELEASEQUERY);
        if let Some(s) = start {
            p.options
                .set(opt::QUERY_START_TIME, s.to_be_bytes().to_vec());
        }
        p
    }

    /// DHCPTLS: asks the server to start TLS on this connection (RFC 7724 §5.2).
    pub fn starttls(&mut self) -> Packet {
        self.base(msg::DHCPTLS)
    }
}

fn push_sub(out: &mut Vec<u8>, c: u8, v: &[u8]) {
    out.push(c);
    out.push(u8::try_from(v.len()).unwrap_or(u8::MAX));
    out.extend(v.iter().take(255));
}

/// A query as a datagram.
pub fn encode(p: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    p.encode(576, &mut out);
    out
}

/// A query as one TCP message (2-byte length first); `None` if longer than 65535 bytes.
pub fn encode_framed(p: &Packet) -> Option<Vec<u8>> {
    frame(&encode(p))
}

/// One answer, every leasequery field read out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Option 53 (e.g. [`msg::LEASEACTIVE`]).
    pub kind: u8,
    /// The query it answers.
    pub xid: u32,
    /// ciaddr: the address described.
    pub ip: Ipv4Addr,
    /// The client's hardware address (chaddr, hlen bytes).
    pub chaddr: Vec<u8>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 61.
    pub client_id: Option<Vec<u8>>,
    /// Option 51: seconds left.
    pub lease_time: Option<u32>,
    /// Option 91: seconds since the client's last transaction.
    pub last_transaction: Option<u32>,
    /// Option 92: the client's addresses.
    pub associated: Vec<Ipv4Addr>,
    /// Option 151: status byte and message.
    pub status: Option<(u8, String)>,
    /// Option 152.
    pub base_time: Option<u32>,
    /// Option 153.
    pub start_time_of_state: Option<u32>,
    /// Option 156.
    pub state: Option<u8>,
    /// Option 82 sub-option 1.
    pub circuit_id: Option<Vec<u8>>,
    /// Option 82 sub-option 2.
    pub remote_id: Option<Vec<u8>>,
}

fn u32_of(v: Option<&[u8]>) -> Option<u32> {
    v.and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
}

/// Reads an answer datagram (or a TCP message without its length).
pub fn parse_answer(bytes: &[u8]) -> Result<Answer, Malformed> {
    let p = Packet::decode(bytes)?;
    let o = &p.options;
    let o82 = o
        .get(code::RELAY_AGENT_INFO)
        .and_then(|v| leased_wire::relay_suboptions(v).ok())
        .unwrap_or_default();
    let sub_of = |c: u8| o82.iter().find(|(k, _)| *k == c).map(|(_, v)| v.to_vec());
    Ok(Answer {
        kind: o
            .get(code::MESSAGE_TYPE)
            .and_then(|v| v.first().copied())
            .unwrap_or(0),
        xid: p.xid,
        ip: p.ciaddr,
        chaddr: p.chaddr().to_vec(),
        server_id: o
            .get(code::SERVER_ID)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(Ipv4Addr::from),
        client_id: o.get(code::CLIENT_ID).map(<[u8]>::to_vec),
        lease_time: u32_of(o.get(code::LEASE_TIME)),
        last_transaction: u32_of(o.get(opt::CLIENT_LAST_TRANSACTION_TIME)),
        associated: o
            .get(opt::ASSOCIATED_IP)
            .unwrap_or_default()
            .chunks_exact(4)
            .filter_map(|c| <[u8; 4]>::try_from(c).ok())
            .map(Ipv4Addr::from)
            .collect(),
        status: o.get(opt::STATUS_CODE).and_then(|v| {
            let (s, m) = v.split_first()?;
            Some((*s, String::from_utf8_lossy(m).into_owned()))
        }),
        base_time: u32_of(o.get(opt::BASE_TIME)),
        start_time_of_state: u32_of(o.get(opt::START_TIME_OF_STATE)),
        state: o.get(opt::DHCP_STATE).and_then(|v| v.first().copied()),
        circuit_id: sub_of(sub::CIRCUIT_ID),
        remote_id: sub_of(sub::REMOTE_ID),
    })
}

/// Why a TCP stream of answers could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// The framing broke.
    Frame(FrameError),
    /// A message was no DHCP message.
    Malformed(Malformed),
}

/// Answers from a TCP stream: push what was read, take whole answers out.
#[derive(Debug, Default)]
pub struct AnswerStream {
    frames: Deframer,
    /// Every message taken out so far, raw (for a capture file).
    pub raw: Vec<Vec<u8>>,
}

impl AnswerStream {
    /// Bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        self.frames.push(bytes).map_err(StreamError::Frame)
    }

    /// The next whole answer, if one is in.
    pub fn next_answer(&mut self) -> Result<Option<Answer>, StreamError> {
        match self.frames.next_frame().map_err(StreamError::Frame)? {
            None => Ok(None),
            Some(m) => {
                let a = parse_answer(&m).map_err(StreamError::Malformed)?;
                self.raw.push(m);
                Ok(Some(a))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn queries_carry_what_they_ask() {
        let mut r = Requestor::new(Ipv4Addr::new(198, 18, 0, 2), 7);
        let q = Packet::decode(&encode(&r.by_ip(Ipv4Addr::new(198, 18, 0, 10)))).unwrap();
        assert_eq!(
            (q.xid, q.ciaddr, q.giaddr),
            (
                7,
                Ipv4Addr::new(198, 18, 0, 10),
                Ipv4Addr::new(198, 18, 0, 2)
            )
        );
        assert_eq!(q.options.get(code::MESSAGE_TYPE), Some(&[10u8][..]));
        let q = r.by_mac([2, 0, 0, 0, 0, 1]);
        assert_eq!((q.xid, q.chaddr()), (8, &[2u8, 0, 0, 0, 0, 1][..]));
        let q = r.bulk_by_remote_id(b"r1", Some(b"c1"));
        assert_eq!(
            q.options.get(code::RELAY_AGENT_INFO),
            Some(&[2u8, 2, b'r', b'1', 1, 2, b'c', b'1'][..])
        );
        let framed = encode_framed(&r.active(Some(5))).unwrap();
        let mut s = AnswerStream::default();
        s.push(&framed).unwrap();
        let a = s.next_answer().unwrap().unwrap();
        assert_eq!((a.kind, a.xid), (msg::ACTIVELEASEQUERY, 10));
        assert!(s.next_answer().unwrap().is_none());
    }
}
