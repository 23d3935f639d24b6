//! RFC 2136 update messages for the RFC 4703 steps, signed with TSIG (RFC 8945), and the
//! checks a response must pass before it is believed: its id, a TSIG made with our key over
//! our request's MAC, and a signing time within the key's fudge.
//!
//! hickory-proto builds and parses the messages and computes the TSIG MAC (its TSIG is
//! sans-IO: the time is a parameter); the time check is ours, as its docs ask.

use std::net::Ipv4Addr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm as HickoryAlg;
use hickory_proto::rr::rdata::{A, NULL, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};

/// RFC 4701: the DHCID RR type.
pub const DHCID: RecordType = RecordType::Unknown(49);
/// How far the signer's clock may be from the server's, seconds (RFC 8945 §10 recommends 300).
const FUDGE: u16 = 300;

/// Why a message could not be built or a response was not believed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    /// A name leased was to use is not a domain name (never from config: it was checked).
    #[error("bad name {0:?}")]
    Name(String),
    /// The wire encoding failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The response is not a DNS message.
    #[error("malformed response")]
    Malformed,
    /// The response answers another message.
    #[error("response id {got} does not match {want}")]
    WrongId {
        /// What came.
        got: u16,
        /// What we sent.
        want: u16,
    },
    /// No TSIG, another key, or a MAC that does not verify: possibly forged.
    #[error("response not signed with our key")]
    BadSignature,
    /// Signed too far from our clock (a replay, or a clock off by more than the fudge).
    #[error("response signed at {signed}, outside the fudge of now ({now})")]
    BadTime {
        /// The response's signing time.
        signed: u64,
        /// Ours.
        now: u64,
    },
}

/// The TSIG algorithms (RFC 8945 §6) leased signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// hmac-sha256, the one every server must support.
    HmacSha256,
    /// hmac-sha384.
    HmacSha384,
    /// hmac-sha512.
    HmacSha512,
}

/// A TSIG key as the DNS server knows it.
#[derive(Clone)]
pub struct Key {
    signer: TSigner,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "Key({})", self.signer.signer_name())
    }
}

impl Key {
    /// The key `name` (no final dot needed) with `secret` (already decoded).
    pub fn new(name: &str, algorithm: Algorithm, secret: Vec<u8>) -> Result<Self, MessageError> {
        let alg = match algorithm {
            Algorithm::HmacSha256 => HickoryAlg::HmacSha256,
            Algorithm::HmacSha384 => HickoryAlg::HmacSha384,
            Algorithm::HmacSha512 => HickoryAlg::HmacSha512,
        };
        let signer = TSigner::new(secret, alg, name_of(name)?, FUDGE)
            .map_err(|e| MessageError::Encode(e.to_string()))?;
        Ok(Self { signer })
    }
}

/// One update to send: the wire bytes and what checking its response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The message id.
    pub id: u16,
    /// The bytes to send.
    pub bytes: Vec<u8>,
    /// The request's TSIG MAC: a response's MAC covers it (RFC 8945 §4.3.1).
    pub mac: Vec<u8>,
}

/// `name` as an absolute DNS name.
pub(crate) fn name_of(name: &str) -> Result<Name, MessageError> {
    let n = name.trim_end_matches('.');
    Name::from_ascii(format!("{n}.")).map_err(|_| MessageError::Name(name.to_string()))
}

/// The reverse name of `ip`: `d.c.b.a.in-addr.arpa`.
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// A prerequisite or deletion record: no data, `class`, TTL 0 (RFC 2136 §2.4, §2.5).
fn empty(name: &Name, rtype: RecordType, class: DNSClass) -> Record {
    let mut r = Record::update0(name.clone(), 0, rtype).into_record_of_rdata();
    r.dns_class = class;
    r
}

fn with_data(name: &Name, ttl: u32, class: DNSClass, data: RData) -> Record {
    let mut r = Record::from_rdata(name.clone(), ttl, data);
    r.dns_class = class;
    r
}

fn dhcid_rdata(dhcid: &[u8]) -> RData {
    RData::Unknown {
        code: DHCID,
        rdata: NULL::with(dhcid.to_vec()),
    }
}

/// One RFC 4703 step, as an update message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update<'a> {
    /// §5.3.1: the name is not in use → add A and DHCID.
    AddForward {
        /// The client's name.
        fqdn: &'a str,
        /// Its address.
        ip: Ipv4Addr,
        /// Its DHCID RDATA.
        dhcid: &'a [u8],
        /// Of the records added.
        ttl: u32,
    },
    /// §5.3.2: the name is in use and its DHCID is ours → replace the A.
    ReplaceForward {
        /// See [`Update::AddForward`].
        fqdn: &'a str,
        /// See [`Update::AddForward`].
        ip: Ipv4Addr,
        /// See [`Update::AddForward`].
        dhcid: &'a [u8],
        /// See [`Update::AddForward`].
        ttl: u32,
    },
    /// §5.4: replace the PTR of the address.
    AddReverse {
        /// The address's reverse name.
        rev: &'a str,
        /// What it points to.
        fqdn: &'a str,
        /// Of the record added.
        ttl: u32,
    },
    /// §5.5: the DHCID is still ours → delete our A.
    RemoveA {
        /// See [`Update::AddForward`].
        fqdn: &'a str,
        /// See [`Update::AddForward`].
        ip: Ipv4Addr,
        /// See [`Update::AddForward`].
        dhcid: &'a [u8],
    },
    /// §5.5: the DHCID is still ours and no address record is left → delete the DHCID.
    RemoveDhcid {
        /// See [`Update::AddForward`].
        fqdn: &'a str,
        /// See [`Update::AddForward`].
        dhcid: &'a [u8],
    },
    /// §5.5: delete the PTR of the address.
    RemoveReverse {
        /// See [`Update::AddReverse`].
        rev: &'a str,
    },
}

/// Builds `update` for `zone` with message id `id`, signed with `key` at `now` (Unix seconds).
pub fn build(
    update: &Update<'_>,
    zone: &str,
    id: u16,
    key: &Key,
    now: u64,
) -> Result<Signed, MessageError> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Update);
    let mut q = Query::query(name_of(zone)?, RecordType::SOA);
    q.set_query_class(DNSClass::IN);
    m.add_zone(q);
    match *update {
        Update::AddForward {
            fqdn,
            ip,
            dhcid,
            ttl,
        } => {
            let n = name_of(fqdn)?;
            m.add_pre_requisite(empty(&n, RecordType::ANY, DNSClass::NONE));
            m.add_update(with_data(&n, ttl, DNSClass::IN, RData::A(A(ip))));
            m.add_update(with_data(&n, ttl, DNSClass::IN, dhcid_rdata(dhcid)));
        }
        Update::ReplaceForward {
            fqdn,
            ip,
            dhcid,
            ttl,
        } => {
            let n = name_of(fqdn)?;
            m.add_pre_requisite(with_data(&n, 0, DNSClass::IN, dhcid_rdata(dhcid)));
            m.add_update(empty(&n, RecordType::A, DNSClass::ANY));
            m.add_update(with_data(&n, ttl, DNSClass::IN, RData::A(A(ip))));
        }
        Update::AddReverse { rev, fqdn, ttl } => {
            let r = name_of(rev)?;
            m.add_update(empty(&r, RecordType::PTR, DNSClass::ANY));
            m.add_update(with_data(
                &r,
                ttl,
                DNSClass::IN,
                RData::PTR(PTR(name_of(fqdn)?)),
            ));
        }
        Update::RemoveA { fqdn, ip, dhcid } => {
            let n = name_of(fqdn)?;
            m.add_pre_requisite(with_data(&n, 0, DNSClass::IN, dhcid_rdata(dhcid)));
            m.add_update(with_data(&n, 0, DNSClass::NONE, RData::A(A(ip))));
        }
        Update::RemoveDhcid { fqdn, dhcid } => {
            let n = name_of(fqdn)?;
            m.add_pre_requisite(with_data(&n, 0, DNSClass::IN, dhcid_rdata(dhcid)));
            m.add_pre_requisite(empty(&n, RecordType::A, DNSClass::NONE));
            m.add_pre_requisite(empty(&n, RecordType::AAAA, DNSClass::NONE));
            m.add_update(empty(&n, DHCID, DNSClass::ANY));
        }
        Update::RemoveReverse { rev } => {
            let r = name_of(rev)?;
            m.add_update(empty(&r, RecordType::PTR, DNSClass::ANY));
        }
    }
    let (sig, _) = key
        .signer
        .sign_message(&m, now)
        .map_err(|e| MessageError::Encode(e.to_string()))?;
    let mac = sig.data.mac.clone();
    m.set_signature(sig);
    let bytes = m
        .to_vec()
        .map_err(|e| MessageError::Encode(e.to_string()))?;
    Ok(Signed { id, bytes, mac })
}

/// What a believed response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The server's RCODE.
    Code(ResponseCode),
    /// The answer did not fit a UDP datagram: ask again over TCP.
    Truncated,
}

/// Checks a response to `sent` at `now` (Unix seconds): a truncated answer is believed without
/// a signature (it only makes us ask again over TCP); any other must carry a valid TSIG.
pub fn check_response(
    bytes: &[u8],
    sent: &Signed,
    key: &Key,
    now: u64,
) -> Result<Answer, MessageError> {
    let m = Message::from_vec(bytes).map_err(|_| MessageError::Malformed)?;
    if m.metadata.id != sent.id {
        return Err(MessageError::WrongId {
            got: m.metadata.id,
            want: sent.id,
        });
    }
    if m.metadata.message_type != MessageType::Response {
        return Err(MessageError::Malformed);
    }
    if m.metadata.truncation {
        return Ok(Answer::Truncated);
    }
    let (_, signed, window) = key
        .signer
        .verify_message_byte(bytes, Some(&sent.mac), true)
        .map_err(|_| MessageError::BadSignature)?;
    if !window.contains(&now) && window.end != now {
        return Err(MessageError::BadTime { signed, now });
    }
    Ok(Answer::Code(m.metadata.response_code))
}

/// A response as a server signs it: the request MAC first (RFC 8945 §4.3.1). For tests of
/// the checks and of the machine.
#[cfg(test)]
pub(crate) fn sign_response(
    signer: &Key,
    request_mac: &[u8],
    id: u16,
    at: u64,
    rcode: ResponseCode,
) -> Vec<u8> {
    #![allow(clippy::unwrap_used)]
    let mut r = Message::new(id, MessageType::Response, OpCode::Update);
    r.metadata.response_code = rcode;
    let mut stub = hickory_proto::rr::rdata::TSIG::new(
        signer.signer.algorithm().clone(),
        at,
        signer.signer.fudge(),
        Vec::new(),
        id,
        None,
        Vec::new(),
    );
    let unsigned = r.to_vec().unwrap();
    let tbs = signer
        .signer
        .encode_response_tbs(request_mac, &unsigned, &stub)
        .unwrap();
    stub = stub.set_mac(signer.signer.sign(&tbs).unwrap());
    r.set_signature(Box::new(hickory_proto::rr::rdata::tsig::make_tsig_record(
        signer.signer.signer_name().clone(),
        stub,
    )));
    r.to_vec().unwrap()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    use super::*;

    fn key() -> Key {
        Key::new(
            "ddns-key",
            Algorithm::HmacSha256,
            b"0123456789abcdef".to_vec(),
        )
        .unwrap()
    }

    const IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    /// The add step's sections, as RFC 2136 and RFC 4703 §5.3.1 lay them out.
    #[test]
    fn add_forward_has_its_prerequisite_and_records() {
        let s = build(
            &Update::AddForward {
                fqdn: "host.example.test",
                ip: IP,
                dhcid: &[0, 0, 1, 9],
                ttl: 300,
            },
            "example.test",
            0x1234,
            &key(),
            1_700_000_000,
        )
        .unwrap();
        let m = Message::from_vec(&s.bytes).unwrap();
        assert_eq!(m.metadata.op_code, OpCode::Update);
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.queries[0].name().to_string(), "example.test.");
        assert_eq!(m.queries[0].query_type(), RecordType::SOA);
        // Prerequisites ride in the answer section, updates in the authority section.
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].dns_class, DNSClass::NONE);
        assert_eq!(m.answers[0].record_type(), RecordType::ANY);
        assert_eq!(m.authorities.len(), 2);
        assert_eq!(m.authorities[0].data, RData::A(A(IP)));
        assert_eq!(m.authorities[1].record_type(), DHCID);
        assert!(m.signature().is_some());
        assert_eq!(s.mac.len(), 32);
    }

    /// The TSIG MAC is RFC 8945 §4.3.3's HMAC-SHA256 over the unsigned message and the TSIG
    /// variables, computed here byte by byte with an independent HMAC.
    #[test]
    fn tsig_mac_matches_an_independent_computation() {
        let now = 1_700_000_000u64;
        let s = build(
            &Update::RemoveReverse {
                rev: "10.0.18.198.in-addr.arpa",
            },
            "18.198.in-addr.arpa",
            7,
            &key(),
            now,
        )
        .unwrap();
        // The unsigned message: the signed one less its last record, ARCOUNT back to 0.
        let m = Message::from_vec(&s.bytes).unwrap();
        let mut unsigned = m.clone();
        unsigned.signature = None;
        let mut tbs = unsigned.to_vec().unwrap();
        // TSIG variables: key name, class ANY, TTL 0, algorithm name, time (48 bits),
        // fudge, error, other len (RFC 8945 §4.3.3), names in canonical wire form.
        tbs.push(8);
        tbs.extend_from_slice(b"ddns-key");
        tbs.push(0);
        tbs.extend_from_slice(&255u16.to_be_bytes());
        tbs.extend_from_slice(&0u32.to_be_bytes());
        tbs.push(11);
        tbs.extend_from_slice(b"hmac-sha256");
        tbs.push(0);
        tbs.extend_from_slice(&now.to_be_bytes()[2..]);
        tbs.extend_from_slice(&300u16.to_be_bytes());
        tbs.extend_from_slice(&0u16.to_be_bytes());
        tbs.extend_from_slice(&0u16.to_be_bytes());
        let mut h = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef").unwrap();
        h.update(&tbs);
        assert_eq!(h.finalize().into_bytes().to_vec(), s.mac);
    }

    /// A response signed by the peer with our key over our MAC is believed; one with another
    /// key, unsigned, with another id or out of time is not.
    #[test]
    fn responses_must_be_signed_answers_to_us() {
        let now = 1_700_000_000u64;
        let k = key();
        let sent = build(
            &Update::RemoveReverse {
                rev: "10.0.18.198.in-addr.arpa",
            },
            "18.198.in-addr.arpa",
            99,
            &k,
            now,
        )
        .unwrap();
        let respond = |signer: &Key, id: u16, at: u64, rcode: ResponseCode| {
            sign_response(signer, &sent.mac, id, at, rcode)
        };
        let ok = respond(&k, 99, now, ResponseCode::NoError);
        assert_eq!(
            check_response(&ok, &sent, &k, now),
            Ok(Answer::Code(ResponseCode::NoError))
        );
        let other = Key::new("ddns-key", Algorithm::HmacSha256, b"not-the-key".to_vec()).unwrap();
        let forged = respond(&other, 99, now, ResponseCode::NoError);
        assert_eq!(
            check_response(&forged, &sent, &k, now),
            Err(MessageError::BadSignature)
        );
        let mut unsigned = Message::new(99, MessageType::Response, OpCode::Update);
        unsigned.metadata.response_code = ResponseCode::NoError;
        assert_eq!(
            check_response(&unsigned.to_vec().unwrap(), &sent, &k, now),
            Err(MessageError::BadSignature)
        );
        let wrong_id = respond(&k, 98, now, ResponseCode::NoError);
        assert!(matches!(
            check_response(&wrong_id, &sent, &k, now),
            Err(MessageError::WrongId { .. })
        ));
        let late = respond(&k, 99, now - 1000, ResponseCode::NoError);
        assert!(matches!(
            check_response(&late, &sent, &k, now),
            Err(MessageError::BadTime { .. })
        ));
        assert_eq!(
            check_response(b"\x00", &sent, &k, now),
            Err(MessageError::Malformed)
        );
    }
}
