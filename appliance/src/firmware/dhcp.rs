//! DHCPv4 client (RFC 2131; options RFC 2132; packets by the `dhcproto` crate): DISCOVER,
//! OFFER, REQUEST, ACK to get a lease, then REQUEST again at T1 (renewing: unicast to the
//! server that granted it) and at T2 (rebinding: broadcast to any server), and back to
//! DISCOVER once the lease has expired. The lease's subnet mask, router, DNS servers and NTP
//! servers are what the appliance uses.
//!
//! The state machine ([`Client`]) is pure: it is handed the time and the packets and says what
//! to send and when to wake; [`exchange`] drives it over a UDP socket bound to the interface
//! ([`socket`]: port 68, `SO_BINDTODEVICE`, broadcast allowed), and `host::Network` applies
//! each lease with `net`.
//!
//! Must not import the store or the S3 server.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};

/// The client's and the server's UDP ports (RFC 2131 §4.1).
pub const CLIENT_PORT: u16 = 68;
/// The server's UDP port.
pub const SERVER_PORT: u16 = 67;
/// First retransmission delay; it doubles to [`MAX_RETRANSMIT`] (RFC 2131 §4.1: 4 s doubling
/// to 64 s; shorter here, the appliance has nothing else to do while it waits).
pub const FIRST_RETRANSMIT: Duration = Duration::from_secs(1);
/// Longest retransmission delay.
pub const MAX_RETRANSMIT: Duration = Duration::from_secs(16);
/// Least time between renewal attempts (RFC 2131 §4.4.5: half the remaining time, down to
/// 60 s).
pub const MIN_RENEW_RETRY: Duration = Duration::from_secs(60);

/// A lease as the server granted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Our address (`yiaddr`).
    pub address: Ipv4Addr,
    /// From the subnet mask option (24 when the server sent none).
    pub prefix_len: u8,
    /// The first router, if any.
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// NTP servers (option 42).
    pub ntp: Vec<Ipv4Addr>,
    /// The server that granted it (option 54).
    pub server: Ipv4Addr,
    /// Lease time (option 51).
    pub lease: Duration,
    /// Renewal time T1 (option 58; default half the lease).
    pub t1: Duration,
    /// Rebinding time T2 (option 59; default 7/8 of the lease).
    pub t2: Duration,
    /// When the ACK arrived.
    pub acquired: Instant,
}

impl Lease {
    /// Reads a lease from an ACK (`now`: when it arrived).
    ///
    /// Errors: no server identifier, or no lease time.
    pub fn from_ack(ack: &Message, now: Instant) -> Result<Lease, String> {
        let opts = ack.opts();
        let server = match opts.get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => *s,
            _ => return Err("the ACK has no server identifier (option 54)".into()),
        };
        let lease_s = match opts.get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(s)) => *s,
            _ => return Err("the ACK has no lease time (option 51)".into()),
        };
        let prefix_len = match opts.get(OptionCode::SubnetMask) {
            Some(DhcpOption::SubnetMask(m)) => u32::from(*m).count_ones() as u8,
            _ => 24,
        };
        let addresses = |code| match opts.get(code) {
            Some(
                DhcpOption::Router(v) | DhcpOption::DomainNameServer(v) | DhcpOption::NtpServers(v),
            ) => v.clone(),
            _ => Vec::new(),
        };
        let seconds = |code, default: u64| match opts.get(code) {
            Some(DhcpOption::Renewal(s) | DhcpOption::Rebinding(s)) => u64::from(*s),
            _ => default,
        };
        let lease = u64::from(lease_s);
        let t1 = seconds(OptionCode::Renewal, lease / 2).min(lease);
        let t2 = seconds(OptionCode::Rebinding, lease * 7 / 8).clamp(t1, lease);
        Ok(Lease {
            address: ack.yiaddr(),
            prefix_len,
            gateway: addresses(OptionCode::Router).first().copied(),
            dns: addresses(OptionCode::DomainNameServer),
            ntp: addresses(OptionCode::NtpServers),
            server,
            lease: Duration::from_secs(lease),
            t1: Duration::from_secs(t1),
            t2: Duration::from_secs(t2),
            acquired: now,
        })
    }

    /// The time left of the lease at `now`.
    pub fn remaining(&self, now: Instant) -> Duration {
        (self.acquired + self.lease).saturating_duration_since(now)
    }
}

/// Where the client is (RFC 2131 Figure 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Broadcasting DISCOVERs, waiting for an OFFER.
    Selecting,
    /// Broadcast a REQUEST for this offer (address, server), waiting for the ACK.
    Requesting {
        /// The offered address.
        offered: Ipv4Addr,
        /// The offering server.
        server: Ipv4Addr,
    },
    /// Holding a lease; nothing to send until T1.
    Bound(Lease),
    /// Past T1: unicasting REQUESTs to the lease's server.
    Renewing(Lease),
    /// Past T2: broadcasting REQUESTs to any server.
    Rebinding(Lease),
}

/// A packet to send and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    /// The encoded message.
    pub packet: Vec<u8>,
    /// 255.255.255.255:67, or the server's address when renewing.
    pub to: SocketAddrV4,
}

/// What happened on [`Client::receive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Not for us, or not what this state waits for: ignored.
    Ignored,
    /// An OFFER was taken; a REQUEST goes out.
    Offered(Ipv4Addr),
    /// A lease was granted (first, renewed or rebound): apply it.
    Bound(Lease),
    /// The server refused (NAK): the address must be dropped and discovery starts again.
    Refused,
}

/// The DHCP client's state machine for one interface.
#[derive(Clone, Debug)]
pub struct Client {
    mac: [u8; 6],
    hostname: Option<String>,
    xid: u32,
    state: State,
    /// When to send again, and the current retransmission delay.
    next_send: Instant,
    delay: Duration,
}

impl Client {
    /// A client for the interface with hardware address `mac`, starting in Selecting
    /// (`now`: the first DISCOVER is due at once). `hostname` goes in option 12.
    pub fn new(mac: [u8; 6], hostname: Option<String>, now: Instant) -> Client {
        Client {
            mac,
            hostname,
            xid: rand_xid(),
            state: State::Selecting,
            next_send: now,
            delay: FIRST_RETRANSMIT,
        }
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The lease held, if any (Bound, Renewing, Rebinding).
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound(l) | State::Renewing(l) | State::Rebinding(l) => Some(l),
            _ => None,
        }
    }

    /// When [`Client::poll`] has something to do next.
    pub fn wake_at(&self) -> Instant {
        self.next_send
    }

    /// Advances timers at `now`: moves Bound → Renewing at T1, → Rebinding at T2, and drops
    /// an expired lease (returned, so its address is removed) back to Selecting. Returns the
    /// packet due now, if any, and the lease that expired, if one did.
    pub fn poll(&mut self, now: Instant) -> (Option<Send>, Option<Lease>) {
        let mut expired = None;
        if let Some(lease) = self.lease().cloned() {
            let since = now.saturating_duration_since(lease.acquired);
            if since >= lease.lease {
                expired = Some(lease);
                self.restart(now);
            } else if since >= lease.t2 && !matches!(self.state, State::Rebinding(_)) {
                self.state = State::Rebinding(lease);
                self.next_send = now;
            } else if since >= lease.t1 && matches!(self.state, State::Bound(_)) {
                self.state = State::Renewing(lease);
                self.next_send = now;
            }
        }
        if now < self.next_send {
            return (None, expired);
        }
        if matches!(self.state, State::Requesting { .. }) && self.delay >= MAX_RETRANSMIT {
            // The offer was not confirmed after every retransmission: discover again.
            self.restart(now);
        }
        let broadcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
        let (message, to) = match self.state.clone() {
            State::Selecting => (self.message(MessageType::Discover, None, None), broadcast),
            State::Requesting { offered, server } => (
                self.message(MessageType::Request, Some((offered, server)), None),
                broadcast,
            ),
            State::Bound(lease) => {
                self.next_send = lease.acquired + lease.t1;
                return (None, expired);
            }
            State::Renewing(lease) => (
                self.message(MessageType::Request, None, Some(lease.address)),
                SocketAddrV4::new(lease.server, SERVER_PORT),
            ),
            State::Rebinding(lease) => (
                self.message(MessageType::Request, None, Some(lease.address)),
                broadcast,
            ),
        };
        self.next_send = now + self.retry_delay(now);
        (
            Some(Send {
                packet: message.to_vec().expect("a DHCP message encodes"),
                to,
            }),
            expired,
        )
    }

    /// Takes a received datagram at `now`.
    pub fn receive(&mut self, datagram: &[u8], now: Instant) -> Event {
        let Ok(message) = Message::decode(&mut Decoder::new(datagram)) else {
            return Event::Ignored;
        };
        if message.opcode() != Opcode::BootReply
            || message.xid() != self.xid
            || message.chaddr().get(..6) != Some(&self.mac[..])
        {
            return Event::Ignored;
        }
        let kind = message.opts().msg_type();
        match (&self.state, kind) {
            (State::Selecting, Some(MessageType::Offer)) => {
                let Some(DhcpOption::ServerIdentifier(server)) =
                    message.opts().get(OptionCode::ServerIdentifier)
                else {
                    return Event::Ignored;
                };
                let offered = message.yiaddr();
                self.state = State::Requesting {
                    offered,
                    server: *server,
                };
                self.next_send = now;
                self.delay = FIRST_RETRANSMIT;
                Event::Offered(offered)
            }
            (
                State::Requesting { .. } | State::Renewing(_) | State::Rebinding(_),
                Some(MessageType::Ack),
            ) => match Lease::from_ack(&message, now) {
                Ok(lease) => {
                    self.next_send = now + lease.t1;
                    self.state = State::Bound(lease.clone());
                    self.delay = FIRST_RETRANSMIT;
                    Event::Bound(lease)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DHCP ACK ignored");
                    Event::Ignored
                }
            },
            (
                State::Requesting { .. } | State::Renewing(_) | State::Rebinding(_),
                Some(MessageType::Nak),
            ) => {
                self.restart(now);
                Event::Refused
            }
            _ => Event::Ignored,
        }
    }

    fn restart(&mut self, now: Instant) {
        self.state = State::Selecting;
        self.xid = rand_xid();
        self.next_send = now;
        self.delay = FIRST_RETRANSMIT;
    }

    /// The next retransmission delay: doubling while selecting or requesting; while renewing
    /// or rebinding, half the time to T2 or to the lease's end, at least [`MIN_RENEW_RETRY`].
    fn retry_delay(&mut self, now: Instant) -> Duration {
        match &self.state {
            State::Renewing(l) | State::Rebinding(l) => {
                let end = if matches!(self.state, State::Renewing(_)) {
                    l.acquired + l.t2
                } else {
                    l.acquired + l.lease
                };
                (end.saturating_duration_since(now) / 2).max(MIN_RENEW_RETRY)
            }
            _ => {
                let d = self.delay;
                self.delay = (self.delay * 2).min(MAX_RETRANSMIT);
                d
            }
        }
    }

    /// A client message: `request` names the offer being requested (Requesting),
    /// `ciaddr` the address being renewed (Renewing, Rebinding).
    fn message(
        &self,
        kind: MessageType,
        request: Option<(Ipv4Addr, Ipv4Addr)>,
        ciaddr: Option<Ipv4Addr>,
    ) -> Message {
        let mut m = Message::new_with_id(
            self.xid,
            ciaddr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &self.mac,
        );
        if ciaddr.is_none() {
            // Without an address we cannot take a unicast reply (RFC 2131 §4.1).
            m.set_flags(Flags::default().set_broadcast());
        }
        let opts = m.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        let mut id = vec![1u8];
        id.extend_from_slice(&self.mac);
        opts.insert(DhcpOption::ClientIdentifier(id));
        opts.insert(DhcpOption::MaxMessageSize(1500));
        opts.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::NtpServers,
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ]));
        if let Some(name) = &self.hostname {
            opts.insert(DhcpOption::Hostname(name.clone()));
        }
        if let Some((offered, server)) = request {
            opts.insert(DhcpOption::RequestedIpAddress(offered));
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
        m
    }
}

fn rand_xid() -> u32 {
    let mut b = [0u8; 4];
    if getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.subsec_nanos() ^ std::process::id();
    }
    u32::from_ne_bytes(b)
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// The hardware address of `interface` (`/sys/class/net/<if>/address`).
///
/// Errors: the file is missing or is not six hex bytes.
pub fn mac_address(interface: &str) -> Result<[u8; 6], String> {
    let path = format!("/sys/class/net/{interface}/address");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_mac(text.trim()).ok_or_else(|| format!("{path}: {text:?} is not a MAC address"))
}

/// Parses `52:54:00:12:34:56`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    bytes.try_into().ok()
}

/// A UDP socket on port 68 of `interface`, allowed to broadcast.
///
/// Errors: the socket calls, naming the interface.
pub fn socket(interface: &str) -> std::io::Result<UdpSocket> {
    use nix::sys::socket::{setsockopt, sockopt};
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT))?;
    let named =
        |e: nix::errno::Errno| std::io::Error::other(format!("{interface}: DHCP socket: {e}"));
    setsockopt(
        &socket,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(interface),
    )
    .map_err(named)?;
    socket.set_broadcast(true)?;
    Ok(socket)
}

/// Sends what `client` has due and waits for answers until `until` or until `client` has a
/// new lease or lost its own; returns the events that changed something.
///
/// Errors: the socket failed.
pub fn exchange(
    client: &mut Client,
    socket: &UdpSocket,
    until: Instant,
) -> std::io::Result<Vec<Event>> {
    let mut events = Vec::new();
    loop {
        let now = Instant::now();
        let (send, expired) = client.poll(now);
        if let Some(lease) = expired {
            tracing::warn!(address = %lease.address, "DHCP lease expired");
            events.push(Event::Refused);
            return Ok(events);
        }
        if let Some(send) = send {
            socket.send_to(&send.packet, send.to)?;
        }
        let wake = client.wake_at().min(until);
        let wait = wake.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            if Instant::now() >= until {
                return Ok(events);
            }
            continue;
        }
        socket.set_read_timeout(Some(wait))?;
        let mut buf = [0u8; 1500];
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => match client.receive(&buf[..n], Instant::now()) {
                Event::Ignored => {}
                e @ Event::Offered(_) => events.push(e),
                e @ (Event::Bound(_) | Event::Refused) => {
                    events.push(e);
                    return Ok(events);
                }
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        if Instant::now() >= until {
            return Ok(events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::Encoder;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const OFFERED: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    /// A server's reply to `request` (decoded from the client's bytes), as RFC 2131 §4.3
    /// builds it: BOOTREPLY, the client's xid and chaddr, yiaddr, options.
    fn reply(request: &[u8], kind: MessageType, lease_s: u32, extra: &[DhcpOption]) -> Vec<u8> {
        let req = Message::decode(&mut Decoder::new(request)).unwrap();
        let mut m = Message::new_with_id(
            req.xid(),
            Ipv4Addr::UNSPECIFIED,
            OFFERED,
            SERVER,
            Ipv4Addr::UNSPECIFIED,
            &req.chaddr()[..6],
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier(SERVER));
        o.insert(DhcpOption::AddressLeaseTime(lease_s));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        o.insert(DhcpOption::Router(vec![SERVER]));
        o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            10, 0, 2, 3,
        )]));
        for e in extra {
            o.insert(e.clone());
        }
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).unwrap();
        buf
    }

    fn decode(packet: &[u8]) -> Message {
        Message::decode(&mut Decoder::new(packet)).unwrap()
    }

    #[test]
    fn discover_offer_request_ack_binds_then_renews_at_t1_rebinds_at_t2_and_expires() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, Some("hoard".into()), t0);
        let (discover, _) = c.poll(t0);
        let discover = discover.unwrap();
        assert_eq!(discover.to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67));
        let d = decode(&discover.packet);
        assert_eq!(d.opts().msg_type(), Some(MessageType::Discover));
        assert!(
            d.flags().broadcast(),
            "no address yet: replies must be broadcast"
        );
        assert!(
            matches!(d.opts().get(OptionCode::Hostname), Some(DhcpOption::Hostname(h)) if h == "hoard")
        );
        // Nothing more until the retransmission is due; then again, later each time.
        assert_eq!(c.poll(t0 + Duration::from_millis(500)).0, None);
        assert!(c.poll(t0 + FIRST_RETRANSMIT).0.is_some());
        assert_eq!(c.wake_at(), t0 + FIRST_RETRANSMIT * 3);

        // Another client's offer (other xid) is ignored.
        let mut other = decode(&discover.packet);
        other.set_xid(d.xid().wrapping_add(1));
        let other = reply(&other.to_vec().unwrap(), MessageType::Offer, 600, &[]);
        assert_eq!(c.receive(&other, t0), Event::Ignored);
        assert_eq!(c.receive(b"not dhcp", t0), Event::Ignored);

        let t1 = t0 + Duration::from_secs(2);
        let offer = reply(&discover.packet, MessageType::Offer, 600, &[]);
        assert_eq!(c.receive(&offer, t1), Event::Offered(OFFERED));
        let (request, _) = c.poll(t1);
        let request = decode(&request.unwrap().packet);
        assert_eq!(request.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(
            request.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(OFFERED))
        );
        assert_eq!(
            request.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(SERVER))
        );

        let ntp = DhcpOption::NtpServers(vec![Ipv4Addr::new(10, 0, 2, 2)]);
        let ack = reply(&request.to_vec().unwrap(), MessageType::Ack, 600, &[ntp]);
        let Event::Bound(lease) = c.receive(&ack, t1) else {
            panic!("not bound: {:?}", c.state())
        };
        assert_eq!(lease.address, OFFERED);
        assert_eq!(lease.prefix_len, 24);
        assert_eq!(lease.gateway, Some(SERVER));
        assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 0, 2, 3)]);
        assert_eq!(lease.ntp, vec![Ipv4Addr::new(10, 0, 2, 2)]);
        assert_eq!(
            (lease.t1.as_secs(), lease.t2.as_secs()),
            (300, 525),
            "RFC 2131 defaults"
        );
        assert_eq!(c.wake_at(), t1 + Duration::from_secs(300));
        assert_eq!(c.poll(t1 + Duration::from_secs(299)).0, None);

        // T1: a unicast REQUEST to the server, with our address in ciaddr.
        let at_t1 = t1 + Duration::from_secs(300);
        let renew = c.poll(at_t1).0.unwrap();
        assert_eq!(renew.to, SocketAddrV4::new(SERVER, 67));
        let r = decode(&renew.packet);
        assert_eq!(r.ciaddr(), OFFERED);
        assert!(
            r.opts().get(OptionCode::ServerIdentifier).is_none(),
            "RFC 2131 §4.3.2"
        );
        assert!(matches!(c.state(), State::Renewing(_)));
        // Retried at half the time to T2 (112 s), not sooner than 60 s.
        assert_eq!(c.wake_at(), at_t1 + Duration::from_millis(112_500));

        // T2 without an answer: broadcast.
        let at_t2 = t1 + Duration::from_secs(525);
        let rebind = c.poll(at_t2).0.unwrap();
        assert_eq!(rebind.to.ip(), &Ipv4Addr::BROADCAST);
        assert!(matches!(c.state(), State::Rebinding(_)));
        // An ACK now renews the lease from now.
        let ack = reply(&rebind.packet, MessageType::Ack, 600, &[]);
        let Event::Bound(renewed) = c.receive(&ack, at_t2) else {
            panic!()
        };
        assert_eq!(renewed.acquired, at_t2);

        // No answer at all: the lease expires and discovery starts again.
        let end = at_t2 + Duration::from_secs(600);
        let (send, expired) = c.poll(end);
        assert_eq!(expired.unwrap().address, OFFERED);
        assert_eq!(
            decode(&send.unwrap().packet).opts().msg_type(),
            Some(MessageType::Discover)
        );
        assert_eq!(c.state(), &State::Selecting);
    }

    #[test]
    fn a_nak_starts_over_and_server_times_are_taken() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, None, t0);
        let discover = c.poll(t0).0.unwrap();
        c.receive(&reply(&discover.packet, MessageType::Offer, 3600, &[]), t0);
        let request = c.poll(t0).0.unwrap();
        assert_eq!(
            c.receive(&reply(&request.packet, MessageType::Nak, 0, &[]), t0),
            Event::Refused
        );
        assert_eq!(c.state(), &State::Selecting);

        let discover = c.poll(t0).0.unwrap();
        c.receive(&reply(&discover.packet, MessageType::Offer, 3600, &[]), t0);
        let request = c.poll(t0).0.unwrap();
        let times = [DhcpOption::Renewal(100), DhcpOption::Rebinding(200)];
        let Event::Bound(lease) =
            c.receive(&reply(&request.packet, MessageType::Ack, 3600, &times), t0)
        else {
            panic!()
        };
        assert_eq!((lease.t1.as_secs(), lease.t2.as_secs()), (100, 200));
        assert_eq!(
            lease.remaining(t0 + Duration::from_secs(600)).as_secs(),
            3000
        );
        // An ACK without a server identifier is no lease.
        let mut bare = decode(&reply(&request.packet, MessageType::Ack, 60, &[]));
        bare.opts_mut().remove(OptionCode::ServerIdentifier);
        assert!(Lease::from_ack(&bare, t0)
            .unwrap_err()
            .contains("option 54"));
        assert_eq!(parse_mac("52:54:00:12:34:56"), Some(MAC));
        assert_eq!(parse_mac("52:54:00:12:34"), None);
    }
}
