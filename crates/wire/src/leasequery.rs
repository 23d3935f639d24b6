//! Leasequery on the wire: its message types (option 53 values 10–18), options, status codes,
//! binding states and the TCP framing of bulk and active leasequery (RFC 4388, RFC 6926,
//! RFC 7724).
//!
//! Why here and not in [`crate::MessageType`]: leasequery messages never take part in a
//! client's exchange, so the client-facing enum stays closed (its matches stay exhaustive) and
//! leasequery code reads option 53 as a raw byte against these constants. The framing lives
//! here so that the server's driver and the sans-IO test requestor split a stream the same way.

/// Option 53 values of leasequery (IANA "DHCP Message Type 53 Values").
pub mod msg {
    /// A requestor asks about one binding (RFC 4388).
    pub const LEASEQUERY: u8 = 10;
    /// The server is authoritative for the address but it is not bound (RFC 4388).
    pub const LEASEUNASSIGNED: u8 = 11;
    /// The server knows nothing of what was asked (RFC 4388).
    pub const LEASEUNKNOWN: u8 = 12;
    /// A binding that is active (RFC 4388).
    pub const LEASEACTIVE: u8 = 13;
    /// A bulk query over TCP (RFC 6926).
    pub const BULKLEASEQUERY: u8 = 14;
    /// The end of a bulk (or active) query's answers (RFC 6926).
    pub const LEASEQUERYDONE: u8 = 15;
    /// A query that stays open and streams every binding change (RFC 7724).
    pub const ACTIVELEASEQUERY: u8 = 16;
    /// A status of a TCP query: an error, or the end of an active query's catch-up (RFC 6926).
    pub const LEASEQUERYSTATUS: u8 = 17;
    /// Starts TLS on a leasequery TCP connection (RFC 7724 §5.2).
    pub const DHCPTLS: u8 = 18;

    /// True for the message types only leasequery uses (10–18).
    pub fn is_leasequery(code: u8) -> bool {
        (LEASEQUERY..=DHCPTLS).contains(&code)
    }

    /// The upper-case name for log lines.
    pub fn name(code: u8) -> &'static str {
        match code {
            LEASEQUERY => "LEASEQUERY",
            LEASEUNASSIGNED => "LEASEUNASSIGNED",
            LEASEUNKNOWN => "LEASEUNKNOWN",
            LEASEACTIVE => "LEASEACTIVE",
            BULKLEASEQUERY => "BULKLEASEQUERY",
            LEASEQUERYDONE => "LEASEQUERYDONE",
            ACTIVELEASEQUERY => "ACTIVELEASEQUERY",
            LEASEQUERYSTATUS => "LEASEQUERYSTATUS",
            DHCPTLS => "DHCPTLS",
            _ => "OTHER",
        }
    }
}

/// Leasequery option codes.
pub mod opt {
    /// Seconds since the client last talked to the server (RFC 4388 §6.1).
    pub const CLIENT_LAST_TRANSACTION_TIME: u8 = 91;
    /// Every address the client holds (RFC 4388 §6.1).
    pub const ASSOCIATED_IP: u8 = 92;
    /// One status byte and a UTF-8 message (RFC 6926 §6.2.2).
    pub const STATUS_CODE: u8 = 151;
    /// The server's absolute time the other times are relative to (RFC 6926 §6.2.3).
    pub const BASE_TIME: u8 = 152;
    /// Seconds before base-time the binding entered its state (RFC 6926 §6.2.4).
    pub const START_TIME_OF_STATE: u8 = 153;
    /// Only bindings changed at or after this absolute time (RFC 6926 §6.2.5).
    pub const QUERY_START_TIME: u8 = 154;
    /// Only bindings changed at or before this absolute time (RFC 6926 §6.2.6).
    pub const QUERY_END_TIME: u8 = 155;
    /// The binding's state, see [`super::DhcpState`] (RFC 6926 §6.2.7).
    pub const DHCP_STATE: u8 = 156;
    /// Bit 0x01: the data came from a partner, not this server (RFC 6926 §6.2.8).
    pub const DATA_SOURCE: u8 = 157;
}

/// Option 82 sub-options a bulk query may carry as its query (RFC 6926 §6.2.1).
pub mod sub {
    /// Circuit-id (RFC 3046).
    pub const CIRCUIT_ID: u8 = 1;
    /// Remote-id (RFC 3046).
    pub const REMOTE_ID: u8 = 2;
    /// Relay-id (RFC 6925).
    pub const RELAY_ID: u8 = 12;
}

/// Status-code values (RFC 6926 §6.2.2, RFC 7724 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Success = 0,
    /// Failure, reason unspecified.
    UnspecFail = 1,
    /// The server ended the query (shutting down, or a query it will not finish).
    QueryTerminated = 2,
    /// The query could not be understood.
    MalformedQuery = 3,
    /// The requestor may not ask this (or the query type is not offered).
    NotAllowed = 4,
    /// The server cannot supply every change asked for (an active query fell behind).
    DataMissing = 5,
    /// An active query is already open on this connection.
    ConnectionActive = 6,
    /// An active query's catch-up is complete; changes follow as they happen.
    CatchUpComplete = 7,
    /// The server will not start TLS.
    TlsConnectionRefused = 8,
}

impl Status {
    /// The status byte.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The status of a byte, `None` for values no RFC defines.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Success,
            1 => Self::UnspecFail,
            2 => Self::QueryTerminated,
            3 => Self::MalformedQuery,
            4 => Self::NotAllowed,
            5 => Self::DataMissing,
            6 => Self::ConnectionActive,
            7 => Self::CatchUpComplete,
            8 => Self::TlsConnectionRefused,
            _ => return None,
        })
    }
}

/// A status-code option's value: the status byte and its message.
pub fn status_option(status: Status, message: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + message.len());
    v.push(status.code());
    v.extend_from_slice(message.as_bytes());
    v
}

/// dhcp-state values (RFC 6926 §6.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpState {
    /// Free to be assigned.
    Available = 1,
    /// Bound to a client.
    Active = 2,
    /// Its lease ran out.
    Expired = 3,
    /// Its client gave it back.
    Released = 4,
    /// Not usable (a conflict: declined by a client).
    Abandoned = 5,
    /// Reset by an administrator.
    Reset = 6,
    /// Served by the failover partner.
    Remote = 7,
    /// Between states (e.g. offered).
    Transitioning = 8,
}

impl DhcpState {
    /// The state byte.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Largest leasequery message over TCP: the 2-byte length prefix (RFC 6926 §6.1).
pub const MAX_FRAME: usize = u16::MAX as usize;

/// Why a TCP stream could not be split into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A length of 0: no DHCP message is empty.
    #[error("zero-length message")]
    Empty,
    /// More bytes buffered than one message can need: the peer sends faster than it is read.
    #[error("receive buffer full")]
    Overrun,
}

/// Prefixes `msg` with its 2-byte length; `None` when it is longer than [`MAX_FRAME`].
pub fn frame(msg: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(msg.len()).ok()?;
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    Some(out)
}

/// Splits a byte stream into length-prefixed messages, holding at most one message's worth
/// (plus one read) of bytes, so a peer cannot make it grow without bound.
#[derive(Debug, Default, Clone)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    /// Most bytes held at once: one whole frame and a 64 KiB read beyond it.
    pub const CAP: usize = 2 + MAX_FRAME + 65_536;

    /// A deframer holding nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the stream; [`FrameError::Overrun`] when more than [`Self::CAP`]
    /// would be held (call [`Deframer::next_frame`] between reads).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        if self.buf.len().saturating_add(bytes.len()) > Self::CAP {
            return Err(FrameError::Overrun);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next whole message, `Ok(None)` until one is complete.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(&[hi, lo]) = self.buf.get(..2) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            return Err(FrameError::Empty);
        }
        let Some(body) = self.buf.get(2..2 + len) else {
            return Ok(None);
        };
        let body = body.to_vec();
        self.buf.drain(..2 + len);
        Ok(Some(body))
    }

    /// Bytes held that do not make a whole message yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads() {
        let a = frame(b"hello").unwrap();
        let b = frame(&[7u8; 300]).unwrap();
        let mut all = a.clone();
        all.extend_from_slice(&b);
        let mut d = Deframer::new();
        let mut got = Vec::new();
        for chunk in all.chunks(3) {
            d.push(chunk).unwrap();
            while let Some(m) = d.next_frame().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![b"hello".to_vec(), vec![7u8; 300]]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn bad_streams_are_errors() {
        let mut d = Deframer::new();
        d.push(&[0, 0, 1]).unwrap();
        assert_eq!(d.next_frame(), Err(FrameError::Empty));
        let mut d = Deframer::new();
        assert_eq!(
            d.push(&vec![0xff; Deframer::CAP + 1]),
            Err(FrameError::Overrun)
        );
        assert!(frame(&vec![0; MAX_FRAME + 1]).is_none());
        assert!(msg::is_leasequery(10) && msg::is_leasequery(18) && !msg::is_leasequery(9));
        assert_eq!(Status::from_code(7), Some(Status::CatchUpComplete));
        assert_eq!(Status::from_code(9), None);
    }
}
