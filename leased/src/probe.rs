//! `leased probe`: a DHCP test client for operators and tests.
//!
//! It runs one exchange (DISCOVER → OFFER → REQUEST → ACK/NAK, or INFORM → ACK) against a
//! server and prints everything the server said, every option decoded. The client itself (what
//! it sends, which replies it takes, when it retransmits) is `leased_testkit::Client`, the
//! sans-IO client the engine's simulation drives too; this module owns its sockets, its clock
//! and its report. Packets are built and decoded with `leased_wire::Packet`, the server's own
//! codec, so the probe sees exactly what a client would. Nothing is configured on the host: the
//! probe never adds the address it got.
//!
//! Transports:
//! - broadcast (default): UDP 0.0.0.0:68 bound to `--interface`, sends to 255.255.255.255:67
//!   with the broadcast flag set, so the server broadcasts its reply too;
//! - `--no-broadcast-flag`: same sending socket, but the server then unicasts to an address the
//!   host does not have, so replies are read from an AF_PACKET socket on the interface (root);
//! - relay (`--giaddr G --server S`): UDP G:67, unicast to S:67, as a relay agent would;
//! - `--inform IP`: UDP IP:68, sends an INFORM with ciaddr IP.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ipnet::Ipv4Net;
use leased_testkit::{Client, ClientConfig, Event, Reply, Retransmit, State};
use leased_wire::{MessageType, Packet, code, parse_hex};
use serde_json::{Value, json};
use socket2::{Domain, Protocol, Socket, Type};

use crate::cli::{Option82Area, ProbeArgs};
use crate::timefmt::human_secs;

/// Exit code when the server NAKs the REQUEST.
const EXIT_NAK: u8 = 3;
/// Exit code when no answer came in time.
const EXIT_TIMEOUT: u8 = 4;
/// At most this many transmissions of one message (first send plus retries).
const MAX_SENDS: u32 = 5;
/// Largest reply we accept (and advertise with option 57).
const MAX_REPLY: usize = 1500;
/// Options asked for in option 55: the ones operators most often want to check.
const PARAM_REQUEST: [u8; 14] = [1, 3, 6, 12, 15, 28, 42, 43, 51, 54, 58, 59, 119, 121];

/// Runs the probe and maps the result to an exit code (0 ACK/OFFER, 3 NAK, 4 timeout).
pub fn run(args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let setup = Setup::from_args(args)?;
    let transport = Transport::open(args)?;
    let mut report = Report::new(&setup);
    let mut client = Client::new(setup.client.clone());
    let outcome = if let Some(ip) = args.inform {
        inform(
            &setup,
            &transport,
            &mut client,
            ip,
            args.server,
            &mut report,
        )?
    } else if let Some(ip) = args.renew {
        let server = args.server.context("--renew needs --server")?;
        renew(&setup, &transport, &mut client, ip, server, &mut report)?
    } else {
        dora(args, &setup, &transport, &mut client, &mut report)?
    };
    report.outcome = Some(outcome);
    if args.json {
        crate::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report.json())?
        ))?;
    } else {
        crate::emit(&report.text())?;
    }
    Ok(match outcome {
        Outcome::Acked | Outcome::Offered => ExitCode::SUCCESS,
        Outcome::Naked => ExitCode::from(EXIT_NAK),
        Outcome::Timeout => ExitCode::from(EXIT_TIMEOUT),
    })
}

/// How the exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acked,
    Offered,
    Naked,
    Timeout,
}

/// What the client sends, fixed for the whole exchange.
#[derive(Debug, Clone)]
struct Setup {
    /// The client's identity and options (its Option 82 only when it goes in the options area).
    client: ClientConfig,
    /// `--option82`, wherever it goes.
    option82: Option<Vec<u8>>,
    option82_in: Option82Area,
    /// How long to wait for each reply.
    timeout: Duration,
}

impl Setup {
    fn from_args(args: &ProbeArgs) -> anyhow::Result<Self> {
        let mac = match &args.mac {
            Some(m) => {
                let hw = leased_core::HwAddr::parse_mac(m)
                    .with_context(|| format!("--mac {m:?}: expected aa:bb:cc:dd:ee:ff"))?;
                <[u8; 6]>::try_from(hw.0.as_slice()).context("--mac: six bytes expected")?
            }
            None => random_mac(),
        };
        let client_id = args
            .client_id
            .as_deref()
            .map(parse_hex)
            .transpose()
            .context("--client-id")?;
        if client_id.as_ref().is_some_and(|c| c.len() < 2) {
            bail!("--client-id: at least two bytes (RFC 2132 §9.14)");
        }
        let option82 = args
            .option82
            .as_deref()
            .map(parse_hex)
            .transpose()
            .context("--option82")?;
        let extra = args
            .options
            .iter()
            .map(|o| parse_extra_option(o))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let timeout = Duration::from_secs(args.timeout.max(1));
        let every = args.retry_every.map(Duration::from_secs);
        let mut client = ClientConfig::new(mac);
        client.client_id = client_id;
        client.hostname = args.hostname.clone();
        client.requested_ip = args.request_ip;
        client.giaddr = args.giaddr;
        client.option82 = option82
            .clone()
            .filter(|_| args.option82_in == Option82Area::Options);
        client.broadcast_flag =
            !args.no_broadcast_flag && args.inform.is_none() && args.renew.is_none();
        client.param_request_list = PARAM_REQUEST.to_vec();
        client.max_message_size = Some(u16::try_from(MAX_REPLY).unwrap_or(u16::MAX));
        client.extra_options = extra;
        client.retransmit = retransmit(timeout, every);
        Ok(Self {
            client,
            option82,
            option82_in: args.option82_in,
            timeout,
        })
    }

    /// `p` as sent: encoded, with Option 82 hidden in `file`/`sname` when asked for. The wire
    /// encoder never writes option 52, so it is put in by hand right after the magic cookie,
    /// and the field holds the option and END.
    fn encode(&self, p: &Packet) -> Vec<u8> {
        let mut buf = Vec::with_capacity(MAX_REPLY);
        p.encode(MAX_REPLY, &mut buf);
        let (overload, at, len) = match self.option82_in {
            Option82Area::Options => return buf,
            Option82Area::File => (1u8, 108, 128),
            Option82Area::Sname => (2u8, 44, 64),
        };
        let Some(v) = &self.option82 else { return buf };
        let mut hidden = vec![
            code::RELAY_AGENT_INFO,
            u8::try_from(v.len()).unwrap_or(u8::MAX),
        ];
        hidden.extend_from_slice(v.get(..usize::from(u8::MAX)).unwrap_or(v));
        hidden.push(code::END);
        hidden.resize(len, 0);
        if let Some(field) = buf.get_mut(at..at + len) {
            // A value too long for the field is cut: the probe is a test client.
            let n = field.len();
            field.copy_from_slice(hidden.get(..n).unwrap_or_default());
        }
        let cookie_end = 240.min(buf.len());
        buf.splice(cookie_end..cookie_end, [code::OVERLOAD, 1, overload]);
        buf
    }
}

/// The probe's schedule: resent 1 s, 2 s, 4 s … apart, at most [`MAX_SENDS`] times, until a
/// reply comes or `timeout` has passed since the first send. With `every` (`--retry-every`),
/// resent that far apart with no cap on the count: `timeout` alone ends it.
fn retransmit(timeout: Duration, every: Option<Duration>) -> Retransmit {
    match every {
        Some(every) => Retransmit {
            first: every,
            max_wait: every,
            max_sends: u32::MAX,
            give_up_after: Some(timeout),
        },
        None => Retransmit {
            first: Duration::from_secs(1),
            max_wait: Duration::from_secs(64),
            max_sends: MAX_SENDS,
            give_up_after: Some(timeout),
        },
    }
}

/// `secs` for a message sent `elapsed` after the exchange began: whole seconds for DISCOVER,
/// REQUEST and INFORM (RFC 2131 §4.1, "seconds since the client began address acquisition or
/// renewal"), 0 for RELEASE and DECLINE (table 5). Servers read it: an HA server takes a
/// DISCOVER whose `secs` keeps growing as a client its partner leaves unanswered.
fn secs_field(p: &Packet, elapsed: Duration) -> u16 {
    match p.message_type() {
        Some(MessageType::Discover | MessageType::Request | MessageType::Inform) => {
            u16::try_from(elapsed.as_secs()).unwrap_or(u16::MAX)
        }
        _ => 0,
    }
}

/// Parses `--option CODE:HEX`.
fn parse_extra_option(text: &str) -> anyhow::Result<(u8, Vec<u8>)> {
    let (c, hex) = text
        .split_once(':')
        .with_context(|| format!("--option {text:?}: expected CODE:HEX, e.g. 60:6d7366742035"))?;
    let c: u8 = c
        .trim()
        .parse()
        .with_context(|| format!("--option {text:?}: code must be 1..=254"))?;
    if c == code::PAD || c == code::END || c == code::MESSAGE_TYPE {
        bail!("--option {text:?}: code {c} cannot be set this way");
    }
    let v = parse_hex(hex).with_context(|| format!("--option {text:?}"))?;
    Ok((c, v))
}

/// A random locally administered unicast MAC (`02:xx:xx:xx:xx:xx`).
fn random_mac() -> [u8; 6] {
    let r = random_u64().to_be_bytes();
    [0x02, r[0], r[1], r[2], r[3], r[4]]
}

/// Randomness good enough for xids and test MACs: std's per-process random hash keys over the
/// clock and pid, so no extra dependency and no file to read.
fn random_u64() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    RandomState::new().hash_one((nanos, std::process::id()))
}

fn random_xid() -> u32 {
    let r = random_u64();
    (r ^ (r >> 32)) as u32
}

/// Sockets for one probe run.
struct Transport {
    udp: UdpSocket,
    /// Where DISCOVER/REQUEST/DECLINE go (broadcast, or the server in relay mode).
    dest: SocketAddrV4,
    /// Replies come from here when the broadcast flag is clear.
    raw: Option<RawRx>,
}

impl Transport {
    fn open(args: &ProbeArgs) -> anyhow::Result<Self> {
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
            .context("cannot create UDP socket")?;
        sock.set_reuse_address(true).context("SO_REUSEADDR")?;
        sock.set_broadcast(true).context("SO_BROADCAST")?;
        if let Some(iface) = &args.interface {
            sock.bind_device(Some(iface.as_bytes())).with_context(|| {
                format!("SO_BINDTODEVICE {iface} (does it exist? are you root?)")
            })?;
        }
        let (bind, dest) = match (args.giaddr, args.inform) {
            (Some(g), _) => {
                let server = args.server.context("--giaddr needs --server")?;
                (
                    SocketAddrV4::new(g, args.server_port),
                    SocketAddrV4::new(server, args.server_port),
                )
            }
            (None, Some(ip)) => (
                SocketAddrV4::new(ip, args.client_port),
                SocketAddrV4::new(args.server.unwrap_or(Ipv4Addr::BROADCAST), args.server_port),
            ),
            (None, None) if args.renew.is_some() => {
                let (ip, server) = args
                    .renew
                    .zip(args.server)
                    .context("--renew needs --server")?;
                (
                    SocketAddrV4::new(ip, args.client_port),
                    SocketAddrV4::new(server, args.server_port),
                )
            }
            (None, None) => (
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, args.client_port),
                SocketAddrV4::new(Ipv4Addr::BROADCAST, args.server_port),
            ),
        };
        sock.bind(&SocketAddr::V4(bind).into())
            .with_context(|| format!("cannot bind {bind} (port in use? root needed below 1024)"))?;
        let raw = if args.no_broadcast_flag
            && args.giaddr.is_none()
            && args.inform.is_none()
            && args.renew.is_none()
        {
            let iface = args
                .interface
                .as_deref()
                .context("--no-broadcast-flag needs --interface")?;
            Some(RawRx::open(iface, args.client_port)?)
        } else if let (Some(_), Some(iface)) = (args.renew, args.interface.as_deref()) {
            // The ACK comes unicast to the address, but a NAK to a RENEWING client is
            // broadcast (RFC 2131 §4.3.2), which a socket bound to the address never sees.
            Some(RawRx::open(iface, args.client_port)?)
        } else {
            None
        };
        Ok(Self {
            udp: sock.into(),
            dest,
            raw,
        })
    }

    fn send(&self, datagram: &[u8], to: SocketAddrV4) -> anyhow::Result<()> {
        self.udp
            .send_to(datagram, to)
            .with_context(|| format!("cannot send to {to}"))?;
        Ok(())
    }

    /// The next datagram before `deadline`, with its sender, or `None` at the deadline.
    fn recv(&self, deadline: Instant) -> anyhow::Result<Option<(Vec<u8>, Ipv4Addr)>> {
        let now = Instant::now();
        let Some(left) = deadline
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
        else {
            return Ok(None);
        };
        if let Some(raw) = &self.raw {
            return raw.recv(left);
        }
        self.udp
            .set_read_timeout(Some(left))
            .context("SO_RCVTIMEO")?;
        let mut buf = vec![0u8; 65_536];
        match self.udp.recv_from(&mut buf) {
            Ok((n, from)) => {
                buf.truncate(n);
                let ip = match from {
                    SocketAddr::V4(a) => *a.ip(),
                    SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                };
                Ok(Some((buf, ip)))
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            // An interrupted read yields an empty datagram, which the caller skips.
            Err(e) if e.kind() == ErrorKind::Interrupted => {
                Ok(Some((Vec::new(), Ipv4Addr::UNSPECIFIED)))
            }
            Err(e) => Err(e).context("receive failed"),
        }
    }

    /// Runs `client` until nothing is under way: sends what it asks for (each message listed
    /// once in the report, retransmissions not), reads replies until its next timer, and
    /// records what it took. Every message goes to [`Transport::dest`], whatever an RFC client
    /// would pick: the server through the relay socket, else broadcast. A direct client would
    /// unicast its RELEASE from its new address, but the probe never configures that address,
    /// and Linux drops unicast from 0.0.0.0 as a martian; a broadcast from 0.0.0.0 is accepted
    /// and carries the same ciaddr and server id.
    fn drive(
        &self,
        setup: &Setup,
        client: &mut Client,
        clock: &Clock,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        loop {
            while let Some(mut tx) = client.poll_transmit(clock.now()) {
                tx.packet.secs = secs_field(&tx.packet, clock.now());
                self.send(&setup.encode(&tx.packet), self.dest)?;
                if tx.attempt == 1 {
                    report.sent(&tx.packet, self.dest);
                }
            }
            let Some(at) = client.poll_timeout().filter(|_| client.busy()) else {
                return Ok(());
            };
            match self.recv(clock.at(at))? {
                Some((buf, from)) => {
                    // Not a DHCP message, or not ours: the client ignores it and waits on.
                    if let Ok(reply) = Packet::decode(&buf) {
                        client.handle_reply(clock.now(), &reply, from);
                    }
                }
                None => client.handle_timeout(clock.now()),
            }
            while let Some(e) = client.poll_event() {
                report.event(e, setup.timeout);
            }
        }
    }
}

/// The client's time: a [`Duration`] since the run began.
struct Clock(Instant);

impl Clock {
    fn start() -> Self {
        Self(Instant::now())
    }

    fn now(&self) -> Duration {
        self.0.elapsed()
    }

    /// The instant `at` after the start (far ahead when that overflows).
    fn at(&self, at: Duration) -> Instant {
        self.0
            .checked_add(at)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400))
    }
}

/// Receives IPv4/UDP datagrams for the client port on one interface from an AF_PACKET socket,
/// for replies unicast to an address this host does not have.
struct RawRx {
    sock: Socket,
    ifindex: u32,
    port: u16,
}

impl RawRx {
    fn open(iface: &str, port: u16) -> anyhow::Result<Self> {
        let ifindex = nix::net::if_::if_nametoindex(iface)
            .with_context(|| format!("no interface named {iface}"))?;
        let eth_p_ip = i32::from(0x0800u16.to_be());
        let sock = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(eth_p_ip)))
            .context("cannot open an AF_PACKET socket (--no-broadcast-flag needs root)")?;
        Ok(Self {
            sock,
            ifindex,
            port,
        })
    }

    fn recv(&self, left: Duration) -> anyhow::Result<Option<(Vec<u8>, Ipv4Addr)>> {
        let deadline = Instant::now() + left;
        let mut buf = vec![0u8; 65_536];
        loop {
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                return Ok(None);
            };
            self.sock
                .set_read_timeout(Some(left))
                .context("SO_RCVTIMEO")?;
            let (n, from) = match nix::sys::socket::recvfrom::<nix::sys::socket::LinkAddr>(
                self.sock.as_raw_fd(),
                &mut buf,
            ) {
                Ok(r) => r,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("AF_PACKET receive failed"),
            };
            if from.map(|a| a.ifindex()) != Some(self.ifindex as usize) {
                continue;
            }
            if let Some((src, payload)) = buf.get(..n).and_then(|b| udp_payload(b, self.port)) {
                return Ok(Some((payload.to_vec(), src)));
            }
        }
    }
}

/// The UDP payload of an IPv4 datagram addressed to `port`, with the source address.
fn udp_payload(ip: &[u8], port: u16) -> Option<(Ipv4Addr, &[u8])> {
    let first = *ip.first()?;
    if first >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let udp = ip.get(ihl..)?;
    let dport = u16::from_be_bytes(udp.get(2..4)?.try_into().ok()?);
    let ulen = usize::from(u16::from_be_bytes(udp.get(4..6)?.try_into().ok()?));
    if dport != port || ulen < 8 {
        return None;
    }
    Some((Ipv4Addr::from(src), udp.get(8..ulen)?))
}

/// DISCOVER → OFFER → REQUEST → ACK/NAK, then RELEASE or DECLINE when asked.
fn dora(
    args: &ProbeArgs,
    setup: &Setup,
    t: &Transport,
    client: &mut Client,
    report: &mut Report,
) -> anyhow::Result<Outcome> {
    let clock = Clock::start();
    let xid = random_xid();
    report.xid = xid;
    if args.discover_only {
        client.start_discover(clock.now(), xid);
    } else {
        client.start_dora(clock.now(), xid);
    }
    t.drive(setup, client, &clock, report)?;
    let outcome = outcome(client, report);
    if outcome != Outcome::Acked {
        return Ok(outcome);
    }
    if args.release {
        client
            .release(clock.now(), random_xid())
            .context("--release: the ACK's lease has already ended")?;
        t.drive(setup, client, &clock, report)?;
        report.released = true;
    } else if args.decline {
        client
            .decline(clock.now(), random_xid())
            .context("--decline: the ACK's lease has already ended")?;
        t.drive(setup, client, &clock, report)?;
        report.declined = true;
    }
    Ok(outcome)
}

/// INFORM with ciaddr `ip` → ACK (options only, no lease).
fn inform(
    setup: &Setup,
    t: &Transport,
    client: &mut Client,
    ip: Ipv4Addr,
    server: Option<Ipv4Addr>,
    report: &mut Report,
) -> anyhow::Result<Outcome> {
    let clock = Clock::start();
    let xid = random_xid();
    report.xid = xid;
    client.start_inform(clock.now(), xid, ip, server);
    t.drive(setup, client, &clock, report)?;
    Ok(outcome(client, report))
}

/// A RENEWING client's REQUEST for `ip` (ciaddr set, no 50 and no 54, unicast) → ACK/NAK.
fn renew(
    setup: &Setup,
    t: &Transport,
    client: &mut Client,
    ip: Ipv4Addr,
    server: Ipv4Addr,
    report: &mut Report,
) -> anyhow::Result<Outcome> {
    let clock = Clock::start();
    let xid = random_xid();
    report.xid = xid;
    client.start_renew(clock.now(), xid, ip, server);
    t.drive(setup, client, &clock, report)?;
    Ok(outcome(client, report))
}

/// How the client's exchange ended; notes the address it got in the report.
fn outcome(client: &Client, report: &mut Report) -> Outcome {
    match client.state() {
        State::Bound(b) => {
            report.address = Some(b.ip);
            Outcome::Acked
        }
        State::Informed { ip } => {
            report.address = Some(ip);
            Outcome::Acked
        }
        State::Offered { .. } => Outcome::Offered,
        State::Naked => Outcome::Naked,
        _ => Outcome::Timeout,
    }
}

/// A single-address option (54, 1, 28 …) of a packet.
fn option_ip(p: &Packet, c: u8) -> Option<Ipv4Addr> {
    let b: [u8; 4] = p.options.get(c)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// Everything that happened, for text or JSON output.
#[derive(Debug)]
struct Report {
    mac: [u8; 6],
    xid: u32,
    sent: Vec<(String, SocketAddrV4)>,
    /// Text output, in the order things happened.
    lines: Vec<String>,
    offer: Option<Reply>,
    ack: Option<Reply>,
    nak: Option<Reply>,
    address: Option<Ipv4Addr>,
    released: bool,
    declined: bool,
    waited_for: Option<(&'static str, Duration)>,
    outcome: Option<Outcome>,
}

impl Report {
    fn new(setup: &Setup) -> Self {
        Self {
            mac: setup.client.mac,
            xid: 0,
            sent: Vec::new(),
            lines: Vec::new(),
            offer: None,
            ack: None,
            nak: None,
            address: None,
            released: false,
            declined: false,
            waited_for: None,
            outcome: None,
        }
    }

    fn sent(&mut self, p: &Packet, to: SocketAddrV4) {
        let name = p.message_type().map_or("?", MessageType::name);
        self.lines.push(format!("-> {name} to {to}\n"));
        self.sent.push((name.to_string(), to));
    }

    /// Records a reply for the text output and returns it for the typed slot.
    fn got(&mut self, r: Reply) -> Option<Reply> {
        self.lines.push(message_text(&r));
        Some(r)
    }

    /// Records what the client took, or what it gave up waiting for within `timeout`.
    fn event(&mut self, e: Event, timeout: Duration) {
        match e {
            Event::Offer(r) => self.offer = self.got(r),
            Event::Ack(r) => self.ack = self.got(r),
            Event::Nak(r) => self.nak = self.got(r),
            Event::TimedOut { waiting_for } => {
                self.waited_for = Some((waiting_for.name(), timeout));
            }
            Event::Expired { .. } => {}
        }
    }

    fn mac_text(&self) -> String {
        leased_core::HwAddr(self.mac.to_vec()).to_string()
    }

    fn result_name(&self) -> &'static str {
        match self.outcome {
            Some(Outcome::Acked) => "ack",
            Some(Outcome::Offered) => "offer",
            Some(Outcome::Naked) => "nak",
            Some(Outcome::Timeout) | None => "timeout",
        }
    }

    fn text(&self) -> String {
        let mut out = format!("client {} xid 0x{:08x}\n", self.mac_text(), self.xid);
        for line in &self.lines {
            out.push_str(line);
        }
        match self.outcome {
            Some(Outcome::Acked) => {
                if let Some(a) = self.address {
                    out.push_str(&format!("address: {a}\n"));
                }
                if self.released {
                    out.push_str("released: yes\n");
                }
                if self.declined {
                    out.push_str("declined: yes\n");
                }
            }
            Some(Outcome::Offered) => {
                if let Some(r) = &self.offer {
                    out.push_str(&format!("offered: {} (discover only)\n", r.packet.yiaddr));
                }
            }
            Some(Outcome::Naked) => {
                let msg = self
                    .nak
                    .as_ref()
                    .and_then(|r| r.packet.options.get(code::MESSAGE))
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default();
                out.push_str(&format!("NAK: {msg}\n"));
            }
            Some(Outcome::Timeout) | None => {
                let (what, t) = self.waited_for.unwrap_or(("reply", Duration::ZERO));
                out.push_str(&format!("timeout: no {what} within {}s\n", t.as_secs()));
            }
        }
        out
    }

    fn json(&self) -> Value {
        json!({
            "mac": self.mac_text(),
            "xid": format!("0x{:08x}", self.xid),
            "result": self.result_name(),
            "sent": self.sent.iter().map(|(n, to)| json!({"type": n, "to": to.to_string()})).collect::<Vec<_>>(),
            "offer": self.offer.as_ref().map(message_json),
            "ack": self.ack.as_ref().map(message_json),
            "nak": self.nak.as_ref().map(message_json),
            "address": self.address.map(|a| a.to_string()),
            "released": self.released,
            "declined": self.declined,
        })
    }
}

/// One received message as text: header fields that matter, then every option.
fn message_text(r: &Reply) -> String {
    let p = &r.packet;
    let name = p.message_type().map_or("?", MessageType::name);
    let mut out = format!("<- {name} from {}\n", r.from);
    if !p.yiaddr.is_unspecified() {
        out.push_str(&format!("   yiaddr            {}\n", p.yiaddr));
    }
    for (label, ip) in [
        ("siaddr", p.siaddr),
        ("giaddr", p.giaddr),
        ("ciaddr", p.ciaddr),
    ] {
        if !ip.is_unspecified() {
            out.push_str(&format!("   {label:<17} {ip}\n"));
        }
    }
    if !p.sname.is_empty() {
        out.push_str(&format!(
            "   sname             {}\n",
            String::from_utf8_lossy(&p.sname)
        ));
    }
    if !p.file.is_empty() {
        out.push_str(&format!(
            "   file              {}\n",
            String::from_utf8_lossy(&p.file)
        ));
    }
    for (c, v) in p.options.iter() {
        let pretty = pretty_option(c, v);
        let label = format!("{c} {}", pretty.name);
        out.push_str(&format!("   {label:<17} {}\n", pretty.text));
    }
    out
}

/// One received message as JSON.
fn message_json(r: &Reply) -> Value {
    let p = &r.packet;
    let options: Vec<Value> = p
        .options
        .iter()
        .map(|(c, v)| {
            let pretty = pretty_option(c, v);
            json!({"code": c, "name": pretty.name, "value": pretty.json, "text": pretty.text, "hex": hex(v)})
        })
        .collect();
    json!({
        "type": p.message_type().map(MessageType::name),
        "from": r.from.to_string(),
        "xid": format!("0x{:08x}", p.xid),
        "flags": p.flags,
        "yiaddr": p.yiaddr.to_string(),
        "siaddr": p.siaddr.to_string(),
        "giaddr": p.giaddr.to_string(),
        "ciaddr": p.ciaddr.to_string(),
        "chaddr": leased_core::HwAddr(p.chaddr().to_vec()).to_string(),
        "sname": String::from_utf8_lossy(&p.sname),
        "file": String::from_utf8_lossy(&p.file),
        "server_id": option_ip(p, code::SERVER_ID).map(|a| a.to_string()),
        "lease_time": p.options.get(code::LEASE_TIME).and_then(be_u32),
        "options": options,
    })
}

/// Lowercase hex, no separators.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An option decoded for people: a short name, a readable text and a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct Pretty {
    /// snake_case option name (`subnet_mask`), or `option_N` when unknown.
    pub name: String,
    /// Readable value for the text output.
    pub text: String,
    /// The same value for JSON (string, number or array).
    pub json: Value,
}

/// How a code's value is laid out.
enum Kind {
    Ip,
    IpList,
    Seconds,
    U16,
    Text,
    Names,
    Routes,
    MsgType,
    Codes,
    RelayInfo,
    Hex,
}

fn describe(c: u8) -> (&'static str, Kind) {
    use Kind::*;
    match c {
        1 => ("subnet_mask", Ip),
        3 => ("router", IpList),
        4 => ("time_server", IpList),
        6 => ("dns", IpList),
        12 => ("hostname", Text),
        15 => ("domain_name", Text),
        16 => ("swap_server", Ip),
        17 => ("root_path", Text),
        26 => ("mtu", U16),
        28 => ("broadcast", Ip),
        40 => ("nis_domain", Text),
        41 => ("nis_servers", IpList),
        42 => ("ntp", IpList),
        43 => ("vendor_specific", Hex),
        44 => ("netbios_ns", IpList),
        50 => ("requested_ip", Ip),
        51 => ("lease_time", Seconds),
        53 => ("message_type", MsgType),
        54 => ("server_id", Ip),
        55 => ("parameter_request_list", Codes),
        56 => ("message", Text),
        57 => ("max_message_size", U16),
        58 => ("renewal_time", Seconds),
        59 => ("rebinding_time", Seconds),
        60 => ("vendor_class", Text),
        61 => ("client_id", Hex),
        66 => ("tftp_server", Text),
        67 => ("bootfile", Text),
        82 => ("relay_agent_info", RelayInfo),
        118 => ("subnet_selection", Ip),
        119 => ("domain_search", Names),
        121 => ("classless_routes", Routes),
        150 => ("tftp_server_address", IpList),
        249 => ("ms_classless_routes", Routes),
        252 => ("wpad", Text),
        _ => ("", Hex),
    }
}

/// Decodes option `c` for display. A value that does not fit its layout is shown as hex with
/// a note, never an error: the probe exists to show what the server really sent.
pub fn pretty_option(c: u8, v: &[u8]) -> Pretty {
    let (name, kind) = describe(c);
    let name = if name.is_empty() {
        format!("option_{c}")
    } else {
        name.to_string()
    };
    let decoded: Option<(String, Value)> = match kind {
        Kind::Ip => ip(v).map(|a| (a.to_string(), json!(a.to_string()))),
        Kind::IpList => ip_list(v).map(|l| {
            let s: Vec<String> = l.iter().map(ToString::to_string).collect();
            (s.join(", "), json!(s))
        }),
        Kind::Seconds => {
            be_u32(v).map(|s| (format!("{s}s ({})", human_secs(u64::from(s))), json!(s)))
        }
        Kind::U16 => <[u8; 2]>::try_from(v)
            .ok()
            .map(u16::from_be_bytes)
            .map(|n| (n.to_string(), json!(n))),
        Kind::Text => {
            let s = String::from_utf8_lossy(v).into_owned();
            Some((format!("{s:?}"), json!(s)))
        }
        Kind::Names => dns_names(v).map(|n| (n.join(", "), json!(n))),
        Kind::Routes => routes(v).map(|r| {
            let s: Vec<String> = r
                .iter()
                .map(|(net, gw)| format!("{net} via {gw}"))
                .collect();
            (s.join(", "), json!(s))
        }),
        Kind::MsgType => match v {
            [t] => Some(
                MessageType::from_code(*t)
                    .map(|m| (m.name().to_string(), json!(m.name())))
                    .unwrap_or_else(|| (format!("unknown ({t})"), json!(t))),
            ),
            _ => None,
        },
        Kind::Codes => Some((
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            json!(v),
        )),
        Kind::RelayInfo => Some(relay_info(v)),
        Kind::Hex => Some((hex_spaced(v), json!(hex(v)))),
    };
    match decoded {
        Some((text, json)) => Pretty { name, text, json },
        None => Pretty {
            name,
            text: format!("{} (malformed)", hex_spaced(v)),
            json: json!(hex(v)),
        },
    }
}

/// `0x` hex with a space between bytes, or `(empty)`.
fn hex_spaced(v: &[u8]) -> String {
    if v.is_empty() {
        return "(empty)".to_string();
    }
    v.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ip(v: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from)
}

fn be_u32(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes)
}

fn ip_list(v: &[u8]) -> Option<Vec<Ipv4Addr>> {
    if v.is_empty() || !v.len().is_multiple_of(4) {
        return None;
    }
    v.chunks_exact(4).map(ip).collect()
}

/// Option 82 as hex plus its sub-options (1 circuit-id, 2 remote-id, …) when they parse.
fn relay_info(v: &[u8]) -> (String, Value) {
    let whole = hex(v);
    match leased_wire::relay_suboptions(v) {
        Ok(subs) => {
            let parts: Vec<String> = subs
                .iter()
                .map(|(c, b)| format!("{c}={}", hex(b)))
                .collect();
            let json_subs: Vec<Value> = subs
                .iter()
                .map(|(c, b)| json!({"code": c, "hex": hex(b)}))
                .collect();
            (
                format!("{} [{}]", hex_spaced(v), parts.join(" ")),
                json!({"hex": whole, "suboptions": json_subs}),
            )
        }
        Err(_) => (
            format!("{} (sub-options do not parse)", hex_spaced(v)),
            json!({"hex": whole, "suboptions": null}),
        ),
    }
}

/// Option 119: names in DNS wire format with compression pointers (RFC 3397). Pointers must
/// point backwards, so decoding always ends.
fn dns_names(v: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut pos = 0;
    while pos < v.len() {
        let (name, next) = dns_name(v, pos)?;
        names.push(name);
        pos = next;
    }
    (!names.is_empty()).then_some(names)
}

/// One name starting at `start`; returns it and the offset after it.
fn dns_name(v: &[u8], start: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut pos = start;
    let mut end = None;
    loop {
        let len = *v.get(pos)?;
        match len {
            0 => {
                let after = end.unwrap_or(pos + 1);
                return Some((labels.join("."), after));
            }
            l if l & 0xc0 == 0xc0 => {
                let lo = *v.get(pos + 1)?;
                let target = (usize::from(l & 0x3f) << 8) | usize::from(lo);
                if target >= pos {
                    return None;
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            l if l & 0xc0 != 0 => return None,
            l => {
                let l = usize::from(l);
                let label = v.get(pos + 1..pos + 1 + l)?;
                labels.push(String::from_utf8_lossy(label).into_owned());
                if labels.len() > 128 {
                    return None;
                }
                pos += 1 + l;
            }
        }
    }
}

/// Option 121/249: (prefix length, significant octets, router) triples (RFC 3442).
fn routes(v: &[u8]) -> Option<Vec<(Ipv4Net, Ipv4Addr)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < v.len() {
        let width = *v.get(pos)?;
        if width > 32 {
            return None;
        }
        let n = usize::from(width).div_ceil(8);
        let sig = v.get(pos + 1..pos + 1 + n)?;
        let mut octets = [0u8; 4];
        octets.get_mut(..n)?.copy_from_slice(sig);
        let gw = ip(v.get(pos + 1 + n..pos + 5 + n)?)?;
        let net = Ipv4Net::new(Ipv4Addr::from(octets), width).ok()?;
        out.push((net, gw));
        pos += 5 + n;
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_and_lists() {
        let p = pretty_option(1, &[255, 255, 255, 0]);
        assert_eq!(p.name, "subnet_mask");
        assert_eq!(p.text, "255.255.255.0");
        let p = pretty_option(6, &[198, 18, 0, 53, 198, 18, 0, 54]);
        assert_eq!(p.name, "dns");
        assert_eq!(p.text, "198.18.0.53, 198.18.0.54");
        assert_eq!(p.json, json!(["198.18.0.53", "198.18.0.54"]));
        let p = pretty_option(3, &[198, 18, 0]);
        assert!(p.text.ends_with("(malformed)"), "{}", p.text);
    }

    #[test]
    fn times() {
        let p = pretty_option(51, &3600u32.to_be_bytes());
        assert_eq!(p.name, "lease_time");
        assert_eq!(p.text, "3600s (1h)");
        assert_eq!(p.json, json!(3600));
        assert_eq!(
            pretty_option(58, &1800u32.to_be_bytes()).text,
            "1800s (30m)"
        );
        assert_eq!(
            pretty_option(59, &3150u32.to_be_bytes()).name,
            "rebinding_time"
        );
    }

    #[test]
    fn text_and_message_type() {
        assert_eq!(pretty_option(15, b"lab.example").text, "\"lab.example\"");
        assert_eq!(pretty_option(15, b"lab.example").json, json!("lab.example"));
        assert_eq!(pretty_option(53, &[2]).text, "OFFER");
        assert_eq!(pretty_option(53, &[99]).text, "unknown (99)");
    }

    #[test]
    fn domain_search_with_pointers() {
        let names = vec!["lab.example".to_string(), "corp.example".to_string()];
        let v = leased_wire::domain_search(&names).unwrap();
        let p = pretty_option(119, &v);
        assert_eq!(p.name, "domain_search");
        assert_eq!(p.text, "lab.example, corp.example");
        // A pointer to itself (or forward) is refused, not looped on.
        assert!(
            pretty_option(119, &[0xc0, 0x00])
                .text
                .ends_with("(malformed)")
        );
        assert!(
            pretty_option(119, &[3, b'a', b'b'])
                .text
                .ends_with("(malformed)")
        );
    }

    #[test]
    fn classless_routes_decode() {
        let routes_in = vec![
            ("0.0.0.0/0".parse().unwrap(), Ipv4Addr::new(198, 18, 0, 1)),
            ("10.1.0.0/16".parse().unwrap(), Ipv4Addr::new(198, 18, 0, 2)),
            (
                "198.19.3.0/25".parse().unwrap(),
                Ipv4Addr::new(198, 18, 0, 3),
            ),
        ];
        let v = leased_wire::classless_routes(&routes_in);
        let p = pretty_option(121, &v);
        assert_eq!(
            p.text,
            "0.0.0.0/0 via 198.18.0.1, 10.1.0.0/16 via 198.18.0.2, 198.19.3.0/25 via 198.18.0.3"
        );
        assert!(
            pretty_option(121, &[33, 0, 0, 0, 0])
                .text
                .ends_with("(malformed)")
        );
        assert!(
            pretty_option(121, &[24, 10, 0])
                .text
                .ends_with("(malformed)")
        );
    }

    #[test]
    fn hex_options() {
        let p = pretty_option(43, &[1, 2, 0xab]);
        assert_eq!(p.text, "01 02 ab");
        assert_eq!(p.json, json!("0102ab"));
        let p = pretty_option(200, &[0xff]);
        assert_eq!(p.name, "option_200");
        assert_eq!(p.text, "ff");
        assert_eq!(pretty_option(43, &[]).text, "(empty)");
    }

    #[test]
    fn relay_info_suboptions() {
        let p = pretty_option(82, &[1, 2, 0xaa, 0xbb, 2, 1, 0x07]);
        assert_eq!(p.text, "01 02 aa bb 02 01 07 [1=aabb 2=07]");
        assert_eq!(p.json["hex"], json!("0102aabb020107"));
        let bad = pretty_option(82, &[1, 5, 0xaa]);
        assert!(bad.text.contains("do not parse"), "{}", bad.text);
    }

    #[test]
    fn extra_option_parsing() {
        assert_eq!(
            parse_extra_option("60:6d73").unwrap(),
            (60, vec![0x6d, 0x73])
        );
        assert_eq!(parse_extra_option("77:").unwrap(), (77, vec![]));
        assert!(parse_extra_option("53:01").is_err());
        assert!(parse_extra_option("300:01").is_err());
        assert!(parse_extra_option("60").is_err());
        assert!(parse_extra_option("60:zz").is_err());
    }

    #[test]
    fn random_mac_is_local_unicast() {
        let m = random_mac();
        assert_eq!(m[0], 0x02);
    }

    /// The setup `leased probe ARGS` would run with.
    fn setup(args: &[&str]) -> Setup {
        use clap::Parser;
        let argv = ["leased", "probe"].iter().chain(args);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Probe(a) = cli.command else {
            panic!("not a probe")
        };
        Setup::from_args(&a).unwrap()
    }

    /// The first message a client with `setup` sends for a DORA, as bytes.
    fn first_discover(setup: &Setup, xid: u32) -> (Client, Vec<u8>) {
        let mut client = Client::new(setup.client.clone());
        client.start_dora(Duration::ZERO, xid);
        let tx = client.poll_transmit(Duration::ZERO).unwrap();
        let buf = setup.encode(&tx.packet);
        (client, buf)
    }

    #[test]
    fn packets_round_trip_through_the_wire_codec() {
        let setup = setup(&[
            "-i",
            "veth0",
            "--mac",
            "02:00:00:00:00:10",
            "--client-id",
            "01:02:00:00:00:00:10",
            "--hostname",
            "probe",
            "--option82",
            "010109",
            "--option",
            "60:74657374",
            "--timeout",
            "7",
        ]);
        assert_eq!(setup.timeout, Duration::from_secs(7));
        assert_eq!(setup.client.retransmit.give_up_after, Some(setup.timeout));
        assert_eq!(setup.client.retransmit.max_sends, MAX_SENDS);
        let (mut client, buf) = first_discover(&setup, 0x1234_5678);
        let d = Packet::decode(&buf).unwrap();
        assert_eq!(d.message_type(), Some(MessageType::Discover));
        assert!(d.broadcast());
        assert_eq!(d.xid, 0x1234_5678);
        assert_eq!(d.chaddr(), &[2, 0, 0, 0, 0, 0x10]);
        assert_eq!(d.options.get(code::HOSTNAME), Some(&b"probe"[..]));
        assert_eq!(
            d.options.get(code::CLIENT_ID),
            Some(&[1, 2, 0, 0, 0, 0, 0x10][..])
        );
        assert_eq!(
            d.options.get(code::PARAM_REQUEST_LIST),
            Some(&PARAM_REQUEST[..])
        );
        assert_eq!(d.options.get(code::MAX_MESSAGE_SIZE), Some(&[5, 0xdc][..]));
        assert_eq!(d.options.get(60), Some(&b"test"[..]));
        assert_eq!(d.options.get(code::RELAY_AGENT_INFO), Some(&[1, 1, 9][..]));
        let mut reply = d.clone();
        reply.op = leased_wire::BOOTREPLY;
        reply
            .options
            .set(code::MESSAGE_TYPE, vec![MessageType::Offer.code()]);
        let mut other = reply.clone();
        other.xid = 1;
        let server = Ipv4Addr::new(198, 18, 0, 1);
        assert!(!client.handle_reply(Duration::ZERO, &other, server));
        assert!(
            !client.handle_reply(Duration::ZERO, &d, server),
            "a request is not a reply"
        );
        assert!(client.handle_reply(Duration::ZERO, &reply, server));
    }

    #[test]
    fn renew_and_inform_clear_the_broadcast_flag() {
        let renew = setup(&["--renew", "198.18.0.50", "--server", "198.18.0.1"]);
        assert!(!renew.client.broadcast_flag);
        let inform = setup(&["--inform", "198.18.0.50"]);
        assert!(!inform.client.broadcast_flag);
        let relay = setup(&["--giaddr", "198.18.1.1", "--server", "198.18.0.1"]);
        assert_eq!(relay.client.giaddr, Some(Ipv4Addr::new(198, 18, 1, 1)));
        let (_, buf) = first_discover(&relay, 1);
        assert_eq!(Packet::decode(&buf).unwrap().hops, 1);
    }

    #[test]
    fn udp_payload_parsing() {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 100]);
        ip.extend_from_slice(&[0, 67, 0, 68, 0, 11, 0, 0, b'a', b'b', b'c']);
        assert_eq!(
            udp_payload(&ip, 68),
            Some((Ipv4Addr::new(198, 18, 0, 1), &b"abc"[..]))
        );
        assert_eq!(udp_payload(&ip, 67), None);
        assert_eq!(udp_payload(&ip[..20], 68), None);
        assert_eq!(udp_payload(&[], 68), None);
    }

    #[test]
    fn option82_hidden_in_file_or_sname() {
        for (area, name, overload) in [
            (Option82Area::File, "file", 1u8),
            (Option82Area::Sname, "sname", 2u8),
        ] {
            let setup = setup(&[
                "-i",
                "veth0",
                "--mac",
                "02:00:00:00:00:11",
                "--option82",
                "010109",
                "--option82-in",
                name,
            ]);
            assert_eq!(setup.option82_in, area);
            assert_eq!(setup.client.option82, None, "not in the options area");
            let (_, buf) = first_discover(&setup, 7);
            assert_eq!(buf[240..243], [code::OVERLOAD, 1, overload]);
            let d = Packet::decode(&buf).unwrap();
            assert!(d.option82_in_overload, "{area:?}");
            assert_eq!(d.options.get(code::RELAY_AGENT_INFO), None);
            assert_eq!(d.message_type(), Some(MessageType::Discover));
        }
    }

    #[test]
    fn retry_every_resends_at_a_fixed_interval_until_the_timeout() {
        let s = setup(&["-i", "veth0", "--retry-every", "1", "--timeout", "30"]);
        let r = s.client.retransmit;
        assert_eq!((r.first, r.max_wait), (secs(1), secs(1)));
        assert_eq!(r.give_up_after, Some(secs(30)));
        let mut client = Client::new(s.client.clone());
        client.start_dora(Duration::ZERO, 9);
        let mut at = Duration::ZERO;
        let mut sends = 0;
        while let Some(tx) = client.poll_transmit(at) {
            assert_eq!(tx.packet.message_type(), Some(MessageType::Discover));
            sends += 1;
            at = client.poll_timeout().unwrap();
            client.handle_timeout(at);
        }
        assert_eq!(sends, 30, "one a second for 30 s, not five doubling");
        assert!(
            <crate::cli::Cli as clap::Parser>::try_parse_from([
                "leased",
                "probe",
                "-i",
                "x",
                "--retry-every",
                "0"
            ])
            .is_err()
        );
    }

    #[test]
    fn secs_counts_the_exchange_for_requests_only() {
        let s = setup(&["-i", "veth0"]);
        let (_, buf) = first_discover(&s, 3);
        let d = Packet::decode(&buf).unwrap();
        assert_eq!(secs_field(&d, Duration::from_millis(2_900)), 2);
        assert_eq!(secs_field(&d, secs(1 << 20)), u16::MAX);
        let mut release = d.clone();
        release
            .options
            .set(code::MESSAGE_TYPE, vec![MessageType::Release.code()]);
        assert_eq!(secs_field(&release, secs(5)), 0);
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }
}
