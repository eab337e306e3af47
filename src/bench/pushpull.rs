//! `zring bench pushpull`: PUSH senders into any PULL peer (a Zeek
//! logger, `zring logger`, another `zring bench pushpull --sink`), and the
//! sink itself: a PULL endpoint that counts and checks what arrives.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use zmtp_codec::SocketType;

use super::message::{Block, Shape};
use super::procstat::{Proc, RssSampler};
use super::report::Report;
use super::sequence::{Header, SequenceCheck};
use super::wire::{self, FrameWalker};
use super::BenchError;

/// PUSH senders.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// The PULL peer's endpoint.
    pub connect: String,
    /// Connections, one thread each.
    pub senders: usize,
    /// Bytes of each message's last frame.
    pub size: usize,
    /// Frames per message.
    pub frames: usize,
    /// Messages per sender, or `None` to run for `duration`.
    pub messages: Option<u64>,
    /// How long to send when `messages` is `None`.
    pub duration: Duration,
    /// Recorded Zeek `log-write` messages to replay instead (the format of
    /// perf/data: per message a big-endian u32 frame count, then each
    /// frame as a big-endian u32 length and its bytes).
    pub zeek_log_batches: Option<Vec<Vec<Vec<u8>>>>,
    /// How long to wait for the peer.
    pub timeout: Duration,
    /// The peer's process, for its CPU time and memory.
    pub peer_pid: Option<u32>,
}

/// A PULL sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Where to bind.
    pub bind: String,
    /// Stop after this many messages in all; `None`: when quiet.
    pub messages: Option<u64>,
    /// Senders' connections to wait for before the clock starts.
    pub senders: usize,
    /// Stop when nothing arrived for this long after the first message.
    pub timeout: Duration,
}

/// Reads messages recorded in perf/data's format.
pub fn read_recording(bytes: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let mut messages = Vec::new();
    let mut rest = bytes;
    let take = |n: usize, rest: &mut &[u8]| -> Result<Vec<u8>, String> {
        if rest.len() < n {
            return Err(format!(
                "recording cut short: {n} bytes wanted, {} left",
                rest.len()
            ));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head.to_vec())
    };
    while !rest.is_empty() {
        let count = u32::from_be_bytes(take(4, &mut rest)?.try_into().expect("4 bytes"));
        if count == 0 || count > 64 {
            return Err(format!(
                "message {}: {count} frames (1 to 64)",
                messages.len() + 1
            ));
        }
        let mut frames = Vec::new();
        for _ in 0..count {
            let len = u32::from_be_bytes(take(4, &mut rest)?.try_into().expect("4 bytes"));
            frames.push(take(len as usize, &mut rest)?);
        }
        messages.push(frames);
    }
    if messages.is_empty() {
        return Err("the recording holds no message".into());
    }
    Ok(messages)
}

/// The recorded messages whose batch goes to log `path` (`conn`, ...),
/// decoded with the logger's own decoder; `None` keeps them all.
pub fn only_path(
    messages: Vec<Vec<Vec<u8>>>,
    path: Option<&str>,
) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let Some(path) = path else {
        return Ok(messages);
    };
    let mut paths = std::collections::BTreeSet::new();
    let kept: Vec<_> = messages
        .into_iter()
        .filter(|frames| {
            let Some(batch) = frames.last() else {
                return false;
            };
            match crate::logger::batch::Batch::parse(bytes::Bytes::copy_from_slice(batch)) {
                Ok(b) => {
                    paths.insert(b.header().path.clone());
                    b.header().path == path
                }
                Err(_) => false,
            }
        })
        .collect();
    if kept.is_empty() {
        return Err(format!(
            "no batch for log path {path:?}; the recording has {}",
            paths.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(kept)
}

/// Runs PUSH senders; the report counts what was sent (the peer knows
/// what it received).
pub fn push(config: &PushConfig) -> Result<Report, BenchError> {
    if config.senders == 0 || config.messages == Some(0) || config.frames < 2 {
        return Err(BenchError::Usage(
            "--senders and --messages must be at least 1, --frames at least 2".into(),
        ));
    }
    let deadline = Instant::now() + config.timeout;
    let peer = config.peer_pid.map(Proc::pid).transpose()?;
    let mut conns = Vec::new();
    for _ in 0..config.senders {
        conns.push(wire::connect(&config.connect, SocketType::Push, deadline)?);
    }
    let rss = peer.clone().map(RssSampler::start);
    let me = Proc::this();
    let cpu0 = me.cpu_seconds()?;
    let peer_cpu0 = peer.as_ref().map(Proc::cpu_seconds).transpose()?;
    let barrier = Arc::new(Barrier::new(conns.len() + 1));
    let threads: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let config = config.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || -> Result<(u64, usize), BenchError> {
                let mut stream = conn.stream;
                let (block, replayed) = match &config.zeek_log_batches {
                    Some(recorded) => (Block::from_messages(recorded), true),
                    None => {
                        let shape = Shape {
                            frames: config.frames,
                            size: config.size,
                        };
                        let per = (64 * 1024 / (config.size + 64)).clamp(1, 4096);
                        (Block::new(&shape, &[b"bench".to_vec()], per), false)
                    }
                };
                let mut block = block;
                let total = config.messages.unwrap_or(u64::MAX);
                barrier.wait();
                let started = Instant::now();
                let mut sent = 0u64;
                while sent < total
                    && (config.messages.is_some() || started.elapsed() < config.duration)
                {
                    let n = (total - sent).min(block.len() as u64) as usize;
                    if !replayed {
                        for k in 0..n {
                            block.stamp(
                                k,
                                &Header {
                                    publisher: i as u32,
                                    topic: 0,
                                    seq: sent + k as u64,
                                    sent_ns: 0,
                                },
                            );
                        }
                    }
                    stream.write_all(block.range(0, n))?;
                    sent += n as u64;
                }
                stream.flush()?;
                Ok((sent, block.range(0, 1).len()))
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut sent = 0;
    let mut bytes_per_message = 0;
    for t in threads {
        let (n, bytes) = t.join().expect("sender thread")?;
        sent += n;
        bytes_per_message = bytes;
    }
    let elapsed = started.elapsed();
    let cpu = me.cpu_seconds()? - cpu0;
    let peer_cpu = match (&peer, peer_cpu0) {
        (Some(p), Some(c0)) => Some(p.cpu_seconds()? - c0),
        _ => None,
    };
    Ok(Report {
        kind: "push",
        sent,
        expected: sent,
        counts: super::sequence::SequenceCounts {
            delivered: sent,
            ..Default::default()
        },
        lost: 0,
        elapsed,
        wall: elapsed,
        generator_cpu_s: cpu,
        generator_threads: config.senders,
        broker_cpu_s: peer_cpu,
        broker_peak_rss_bytes: rss.map(RssSampler::finish),
        bytes_per_message,
        histogram: hdrhistogram::Histogram::new(3).expect("valid"),
        rate: 0,
        subscriptions_missing: 0,
    })
}

/// Runs a PULL sink until `messages` arrived or it was quiet for
/// `timeout`.
pub fn sink(config: &SinkConfig, on_bound: impl FnOnce(&str)) -> Result<Report, BenchError> {
    let listener = TcpListener::bind(wire::tcp_address(&config.bind)?)?;
    on_bound(&format!("tcp://{}", listener.local_addr()?));
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::OnceLock::<Instant>::new());
    let last = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let mut threads = Vec::new();
    let me = Proc::this();
    let mut cpu0 = None;
    let far = Instant::now() + Duration::from_secs(3600 * 24 * 365);
    while threads.len() < config.senders.max(1) {
        let conn = wire::accept(&listener, SocketType::Pull, far)?;
        let (stop, delivered, first, last, bytes) = (
            stop.clone(),
            delivered.clone(),
            first.clone(),
            last.clone(),
            bytes.clone(),
        );
        cpu0.get_or_insert(me.cpu_seconds()?);
        let (mut stream, unread) = conn.into_reader()?;
        threads.push(std::thread::spawn(move || {
            let mut walker = FrameWalker::new(1);
            let mut check = SequenceCheck::new(4096, 1);
            let mut take = |data: &[u8]| {
                bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                let before = check.counts.delivered + check.counts.foreign;
                walker.walk(data, |p| {
                    check.record(p);
                });
                let got = check.counts.delivered + check.counts.foreign - before;
                if got > 0 {
                    let now = Instant::now();
                    first.get_or_init(|| now);
                    *last.lock().expect("not poisoned") = Some(now);
                    delivered.fetch_add(got, Ordering::Relaxed);
                }
            };
            take(&unread);
            let mut buf = vec![0u8; 256 * 1024];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
            while !stop.load(Ordering::Relaxed) {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => take(&buf[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            check.counts
        }));
    }
    let cpu0 = cpu0.unwrap_or(0.0);
    let wall_start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(2));
        let got = delivered.load(Ordering::Relaxed);
        if config.messages.is_some_and(|m| got >= m) {
            break;
        }
        let quiet_since = last.lock().expect("not poisoned").unwrap_or(wall_start);
        if quiet_since.elapsed() >= config.timeout {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut counts = super::sequence::SequenceCounts::default();
    for t in threads {
        counts.add(&t.join().expect("sink thread"));
    }
    let cpu = me.cpu_seconds()? - cpu0;
    let first = first.get().copied().unwrap_or(wall_start);
    let last = last.lock().expect("not poisoned").unwrap_or(first);
    let expected = config.messages.unwrap_or(counts.delivered + counts.foreign);
    Ok(Report {
        kind: "sink",
        sent: 0,
        expected,
        counts,
        lost: counts.gaps,
        elapsed: last.saturating_duration_since(first),
        wall: wall_start.elapsed(),
        generator_cpu_s: cpu,
        generator_threads: config.senders.max(1),
        broker_cpu_s: None,
        broker_peak_rss_bytes: None,
        bytes_per_message: (bytes.load(Ordering::Relaxed)
            / (counts.delivered + counts.foreign).max(1)) as usize,
        histogram: hdrhistogram::Histogram::new(3).expect("valid"),
        rate: 0,
        subscriptions_missing: 0,
    })
}
