//! shakedown-netem: packet delay, jitter, reordering and duplication on a
//! node whose kernel has no netem, through NFQUEUE.
//!
//! The `delay` fault sends the node's outgoing packets to other nodes into
//! queue `--queue` (an iptables rule in shakedown's own chain
//! `SHAKEDOWN_OUT`, marked packets excepted). This daemon holds each packet
//! `--delay-ms` +- `--jitter-ms` (uniform), then lets it go (ACCEPT): jitter
//! reorders packets; `--reorder P` lets a packet go at once with
//! probability P (netem's reorder); `--duplicate P` also sends a copy (a
//! raw socket, marked so it is not queued again). At most `--max-held`
//! packets are held: past that a packet goes at once (counted), so memory
//! is bounded. SIGTERM releases every held packet and exits.
//!
//! Usage: shakedown-netem --queue N --delay-ms D [--jitter-ms J]
//!        [--reorder P] [--duplicate P] [--max-held N] [--seed S]

use nfq::{Queue, Verdict};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Packets with this mark are not queued (the rule says `! --mark`).
const MARK: u32 = 0x5d;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

struct Opts {
    queue: u16,
    delay_ms: f64,
    jitter_ms: f64,
    reorder: f64,
    duplicate: f64,
    max_held: usize,
    seed: u64,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        queue: 0,
        delay_ms: 100.0,
        jitter_ms: 0.0,
        reorder: 0.0,
        duplicate: 0.0,
        max_held: 20_000,
        seed: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.chunks(2);
    for pair in &mut it {
        let [flag, value] = pair else {
            return Err(format!("{}: a value is needed", pair[0]));
        };
        let num = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("{flag} {value:?}: a non-negative number is needed"))
        };
        match flag.as_str() {
            "--queue" => o.queue = value.parse().map_err(|_| format!("--queue {value:?}"))?,
            "--delay-ms" => o.delay_ms = num()?,
            "--jitter-ms" => o.jitter_ms = num()?,
            "--reorder" => o.reorder = num()?.min(1.0),
            "--duplicate" => o.duplicate = num()?.min(1.0),
            "--max-held" => o.max_held = num()? as usize,
            "--seed" => o.seed = value.parse().map_err(|_| format!("--seed {value:?}"))?,
            _ => return Err(format!("{flag}: unknown flag")),
        }
    }
    Ok(o)
}

/// xorshift64*: small, seeded, good enough for delays.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The one's-complement sum of `data` as 16-bit words.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Recomputes an IPv4 TCP or UDP packet's checksum (queued packets may
/// carry a partial one, left to the NIC).
fn fix_checksum(p: &mut [u8]) {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    let off = match p[9] {
        6 => 16,
        17 => 6,
        _ => return,
    };
    if total < ihl + off + 2 {
        return;
    }
    let (hdr, l4) = p[..total].split_at_mut(ihl);
    l4[off] = 0;
    l4[off + 1] = 0;
    let mut acc = sum16(&hdr[12..20], 0);
    acc += u32::from(hdr[9]) + l4.len() as u32;
    let c = fold(sum16(l4, acc));
    let c = if c == 0 && hdr[9] == 17 { 0xffff } else { c };
    l4[off..off + 2].copy_from_slice(&c.to_be_bytes());
}

/// Sends a copy of an IPv4 packet through a raw socket (marked).
fn send_copy(raw: libc::c_int, packet: &[u8]) {
    if packet.len() < 20 {
        return;
    }
    let mut copy = packet.to_vec();
    fix_checksum(&mut copy);
    // SAFETY: a plain sockaddr_in filled in here; `copy` outlives the call.
    unsafe {
        let mut to: libc::sockaddr_in = std::mem::zeroed();
        to.sin_family = libc::AF_INET as _;
        to.sin_addr.s_addr = u32::from_ne_bytes([copy[16], copy[17], copy[18], copy[19]]);
        libc::sendto(
            raw,
            copy.as_ptr() as *const libc::c_void,
            copy.len(),
            0,
            &to as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
    }
}

fn raw_socket() -> Result<libc::c_int, String> {
    // SAFETY: plain socket calls; the result is checked.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
        if fd < 0 {
            return Err(format!("raw socket: {}", std::io::Error::last_os_error()));
        }
        let mark = MARK;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MARK,
            &mark as *const u32 as *const libc::c_void,
            4,
        );
        Ok(fd)
    }
}

fn run(o: &Opts) -> Result<(), String> {
    let mut q = Queue::open().map_err(|e| format!("NFQUEUE: {e}"))?;
    q.bind(o.queue)
        .map_err(|e| format!("NFQUEUE bind {}: {e}", o.queue))?;
    let copy = if o.duplicate > 0.0 { 65535 } else { 64 };
    q.set_copy_range(o.queue, copy)
        .map_err(|e| format!("copy range: {e}"))?;
    let _ = q.set_queue_max_len(o.queue, (o.max_held as u32).max(1024));
    let _ = q.set_fail_open(o.queue, true);
    q.set_nonblocking(true);
    let raw = if o.duplicate > 0.0 {
        Some(raw_socket()?)
    } else {
        None
    };
    let mut rng = Rng(o.seed.max(1));
    // Held packets by release time (and arrival, for equal times).
    let mut held: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut slots: std::collections::HashMap<u64, nfq::Message> = Default::default();
    let (mut seq, mut passed_at_once, mut total) = (0u64, 0u64, 0u64);
    eprintln!(
        "shakedown-netem: queue {} delay {} ms +- {} ms, reorder {}, duplicate {}",
        o.queue, o.delay_ms, o.jitter_ms, o.reorder, o.duplicate
    );
    while !STOP.load(Ordering::Relaxed) {
        let mut got = false;
        loop {
            match q.recv() {
                Ok(mut msg) => {
                    got = true;
                    total += 1;
                    if let (Some(fd), true) = (raw, rng.unit() < o.duplicate) {
                        send_copy(fd, msg.get_payload());
                    }
                    if held.len() >= o.max_held || rng.unit() < o.reorder {
                        passed_at_once += 1;
                        msg.set_verdict(Verdict::Accept);
                        let _ = q.verdict(msg);
                        continue;
                    }
                    let jitter = (rng.unit() * 2.0 - 1.0) * o.jitter_ms;
                    let ms = (o.delay_ms + jitter).max(0.0);
                    let at = Instant::now() + Duration::from_secs_f64(ms / 1000.0);
                    seq += 1;
                    held.push(Reverse((at, seq)));
                    slots.insert(seq, msg);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("NFQUEUE recv: {e}")),
            }
        }
        let now = Instant::now();
        while let Some(Reverse((at, id))) = held.peek().copied() {
            if at > now {
                break;
            }
            held.pop();
            if let Some(mut msg) = slots.remove(&id) {
                msg.set_verdict(Verdict::Accept);
                let _ = q.verdict(msg);
            }
        }
        if !got {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    for (_, mut msg) in slots.drain() {
        msg.set_verdict(Verdict::Accept);
        let _ = q.verdict(msg);
    }
    eprintln!("shakedown-netem: stopped; {total} packets, {passed_at_once} let through at once");
    Ok(())
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("shakedown-netem: {e}");
            std::process::exit(3);
        }
    };
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
    if let Err(e) = run(&o) {
        eprintln!("shakedown-netem: {e}");
        std::process::exit(4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_checksum_matches_a_known_packet() {
        // 10.0.0.1:1234 -> 10.0.0.2:9, payload "x", checksum zeroed.
        let mut p = vec![
            0x45, 0, 0, 29, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x04, 0xd2,
            0x00, 0x09, 0x00, 0x09, 0xAB, 0xCD, b'x',
        ];
        fix_checksum(&mut p);
        // Verifying: the sum over pseudo-header and segment folds to 0.
        let mut acc = sum16(&p[12..20], 0) + 17 + 9;
        acc = sum16(&p[20..], acc);
        assert_eq!(fold(acc), 0);
    }

    #[test]
    fn the_rng_is_seeded_and_in_range() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        for _ in 0..1000 {
            let x = a.unit();
            assert_eq!(x, b.unit());
            assert!((0.0..1.0).contains(&x));
        }
    }
}
