//! Packet captures (tcpdump's pcap or pcapng) to TCP segments, grouped per
//! 4-tuple into conversations in capture order: what the TCP-level checks
//! (`diagnose::tcp`, a scenario's packet-sequence check, a ladder diagram)
//! read. Only TCP over IPv4/IPv6 is kept; other packets are counted.
//!
//! Link types: Ethernet (`tcpdump -i eth0`, and Linux `lo`), Linux cooked
//! v1 and v2 (`tcpdump -i any`), raw IP, BSD loopback.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, TsResolution};

/// TCP flags, as the header carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    /// ACK and nothing else (PSH aside): a bare or data-carrying ACK.
    pub fn only_ack(self) -> bool {
        self.ack() && self.0 & (Self::SYN | Self::FIN | Self::RST) == 0
    }
}

/// tcpdump's spelling: `S`, `S.`, `P.`, `F.`, `R`, `R.`, `.`.
impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        for (bit, c) in [
            (Self::SYN, 'S'),
            (Self::FIN, 'F'),
            (Self::PSH, 'P'),
            (Self::RST, 'R'),
        ] {
            if self.0 & bit != 0 {
                s.push(c);
            }
        }
        if self.ack() {
            s.push('.');
        }
        if s.is_empty() {
            s.push_str("none");
        }
        f.write_str(&s)
    }
}

/// One TCP segment as captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Capture time, ns since the epoch.
    pub t_ns: u64,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub flags: Flags,
    pub seq: u32,
    pub ack: u32,
    /// Payload bytes.
    pub len: u32,
    pub window: u16,
}

/// tcpdump-like: `1.000123 10.0.0.1:40000 > 10.0.0.2:80 [S] seq 1 ack 0 len 0`.
impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06} {} > {} [{}] seq {} ack {} win {} len {}",
            self.t_ns / 1_000_000_000,
            self.t_ns % 1_000_000_000 / 1000,
            self.from,
            self.to,
            self.flags,
            self.seq,
            self.ack,
            self.window,
            self.len
        )
    }
}

/// A capture's TCP segments in capture order.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub segments: Vec<Segment>,
    /// Packets that are not TCP over IP, or could not be parsed.
    pub skipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a pcap or pcapng capture: {0}")]
    Format(String),
}

/// Reads a capture file (pcap or pcapng, detected by its magic number).
pub fn read(path: &Path) -> Result<Capture, PcapError> {
    let file = std::fs::File::open(path).map_err(|source| PcapError::Io {
        path: path.display().to_string(),
        source,
    })?;
    read_from(std::io::BufReader::new(file)).map_err(|e| match e {
        PcapError::Format(why) => PcapError::Format(format!("{}: {why}", path.display())),
        other => other,
    })
}

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Reads a capture from any reader.
pub fn read_from(mut reader: impl Read) -> Result<Capture, PcapError> {
    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .map_err(|e| PcapError::Format(format!("too short ({e})")))?;
    let chained = std::io::Cursor::new(magic).chain(reader);
    let mut capture = Capture::default();
    if magic == PCAPNG_MAGIC {
        read_pcapng(chained, &mut capture)?;
    } else {
        read_pcap(chained, &mut capture)?;
    }
    Ok(capture)
}

fn read_pcap(reader: impl Read, capture: &mut Capture) -> Result<(), PcapError> {
    let mut pcap = PcapReader::new(reader).map_err(|e| PcapError::Format(e.to_string()))?;
    let header = pcap.header();
    let frac_ns: u64 = match header.ts_resolution {
        TsResolution::MicroSecond => 1_000,
        TsResolution::NanoSecond => 1,
    };
    // Raw packets: pcap-file 2.0 rejects a packet longer on the wire than
    // the snap length (`tcpdump -s 96`), which is every truncated packet.
    while let Some(packet) = pcap.next_raw_packet() {
        // A truncated last packet (a capture still being written) ends it.
        let Ok(packet) = packet else { break };
        let t_ns = u64::from(packet.ts_sec) * 1_000_000_000 + u64::from(packet.ts_frac) * frac_ns;
        capture.push(t_ns, header.datalink, &packet.data);
    }
    Ok(())
}

fn read_pcapng(reader: impl Read, capture: &mut Capture) -> Result<(), PcapError> {
    let mut pcapng = PcapNgReader::new(reader).map_err(|e| PcapError::Format(e.to_string()))?;
    let mut links: Vec<DataLink> = Vec::new();
    while let Some(block) = pcapng.next_block() {
        let Ok(block) = block else { break };
        match block {
            Block::InterfaceDescription(idb) => links.push(idb.linktype),
            Block::EnhancedPacket(epb) => {
                let link = links
                    .get(epb.interface_id as usize)
                    .copied()
                    .unwrap_or(DataLink::ETHERNET);
                capture.push(epb.timestamp.as_nanos() as u64, link, &epb.data);
            }
            Block::SimplePacket(spb) => {
                let link = links.first().copied().unwrap_or(DataLink::ETHERNET);
                capture.push(0, link, &spb.data);
            }
            _ => {}
        }
    }
    Ok(())
}

impl Capture {
    fn push(&mut self, t_ns: u64, link: DataLink, data: &[u8]) {
        match segment(t_ns, link, data) {
            Some(s) => self.segments.push(s),
            None => self.skipped += 1,
        }
    }

    /// The segments grouped per 4-tuple, in order of each conversation's
    /// first segment.
    pub fn conversations(&self) -> Vec<Conversation> {
        conversations(&self.segments)
    }
}

/// The IP packet inside a frame of `link`.
fn ip_payload(link: DataLink, data: &[u8]) -> Option<&[u8]> {
    match link {
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => Some(data),
        // Linux cooked v1: 16-byte header, protocol in the last two bytes.
        DataLink::LINUX_SLL => data.get(16..),
        // Linux cooked v2: 20-byte header, protocol in the first two.
        DataLink::LINUX_SLL2 => data.get(20..),
        // BSD loopback: a 4-byte address family.
        DataLink::NULL | DataLink::LOOP => data.get(4..),
        _ => None,
    }
}

/// One TCP segment from a frame; lax parsing, so a frame cut short by the
/// snap length still gives its headers, and the payload length comes from
/// the IP header (what was on the wire, not what was captured).
fn segment(t_ns: u64, link: DataLink, data: &[u8]) -> Option<Segment> {
    let sliced = if link == DataLink::ETHERNET {
        LaxSlicedPacket::from_ethernet(data).ok()?
    } else {
        LaxSlicedPacket::from_ip(ip_payload(link, data)?).ok()?
    };
    let (src, dst, ip_payload_len): (IpAddr, IpAddr, u32) = match sliced.net? {
        LaxNetSlice::Ipv4(ip) => {
            let h = ip.header();
            let len = u32::from(h.total_len()).saturating_sub(u32::from(h.ihl()) * 4);
            (h.source_addr().into(), h.destination_addr().into(), len)
        }
        LaxNetSlice::Ipv6(ip) => {
            let h = ip.header();
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                u32::from(h.payload_length()),
            )
        }
        _ => return None,
    };
    let TransportSlice::Tcp(tcp) = sliced.transport? else {
        return None;
    };
    let mut flags = 0;
    for (set, bit) in [
        (tcp.fin(), Flags::FIN),
        (tcp.syn(), Flags::SYN),
        (tcp.rst(), Flags::RST),
        (tcp.psh(), Flags::PSH),
        (tcp.ack(), Flags::ACK),
    ] {
        if set {
            flags |= bit;
        }
    }
    Some(Segment {
        t_ns,
        from: SocketAddr::new(src, tcp.source_port()),
        to: SocketAddr::new(dst, tcp.destination_port()),
        flags: Flags(flags),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        len: ip_payload_len.saturating_sub(u32::from(tcp.data_offset()) * 4),
        window: tcp.window_size(),
    })
}

/// Every segment between two endpoints, both directions, in capture order.
/// One 4-tuple can carry several connections one after the other (port
/// reuse, TIME_WAIT): they stay in one conversation, which is what a
/// TIME_WAIT check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The side that sent the first SYN (else received the first SYN-ACK,
    /// else has the higher port).
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub segments: Vec<Segment>,
}

impl Conversation {
    pub fn from_client(&self, s: &Segment) -> bool {
        s.from == self.client
    }

    /// `client -> server` with the segments' flags, e.g. `S .A P. F.`.
    pub fn flags_line(&self) -> String {
        self.segments
            .iter()
            .map(|s| {
                let arrow = if self.from_client(s) { ">" } else { "<" };
                format!("{arrow}{}", s.flags)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn roles(segments: &[Segment]) -> (SocketAddr, SocketAddr) {
    let first = segments[0];
    if let Some(syn) = segments.iter().find(|s| s.flags.syn() && !s.flags.ack()) {
        return (syn.from, syn.to);
    }
    if let Some(synack) = segments.iter().find(|s| s.flags.syn() && s.flags.ack()) {
        return (synack.to, synack.from);
    }
    if first.from.port() >= first.to.port() {
        (first.from, first.to)
    } else {
        (first.to, first.from)
    }
}

pub fn conversations(segments: &[Segment]) -> Vec<Conversation> {
    let mut index: HashMap<(SocketAddr, SocketAddr), usize> = HashMap::new();
    let mut groups: Vec<Vec<Segment>> = Vec::new();
    for s in segments {
        let key = if s.from <= s.to {
            (s.from, s.to)
        } else {
            (s.to, s.from)
        };
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(*s);
    }
    groups
        .into_iter()
        .map(|segments| {
            let (client, server) = roles(&segments);
            Conversation {
                client,
                server,
                segments,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_like_tcpdump() {
        assert_eq!(Flags(Flags::SYN).to_string(), "S");
        assert_eq!(Flags(Flags::SYN | Flags::ACK).to_string(), "S.");
        assert_eq!(Flags(Flags::PSH | Flags::ACK).to_string(), "P.");
        assert_eq!(Flags(Flags::RST | Flags::ACK).to_string(), "R.");
        assert_eq!(Flags(Flags::ACK).to_string(), ".");
        assert!(Flags(Flags::ACK | Flags::PSH).only_ack());
        assert!(!Flags(Flags::ACK | Flags::SYN).only_ack());
    }

    #[test]
    fn not_a_capture_is_an_error() {
        assert!(matches!(
            read_from(&b"hello world, not pcap"[..]),
            Err(PcapError::Format(_))
        ));
        assert!(matches!(read_from(&b"ab"[..]), Err(PcapError::Format(_))));
    }
}
