//! `zring bench pushpull`: PUSH senders into any PULL peer (a Zeek
//! logger, `zring logger`, another `zring bench pushpull --sink`), and the
//! sink itself: a PULL endpoint that counts and checks what arrives.

use std::borrow::Cow;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use zmtp_codec::SocketType;

use super::message::{block_len, Block, Shape};
use super::procstat::{Cost, Proc};
use super::report::Report;
use super::sequence::{Header, SequenceCheck, SequenceCounts};
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
    /// Stop after this many messages in all (fewer by the time it is quiet
    /// count as lost); `None`: when quiet.
    pub messages: Option<u64>,
    /// Senders' connections to wait for before the clock starts; a
    /// `zring bench pushpull --senders N` numbers its senders 0..N, so a
    /// sink waiting for N checks the numbers of each.
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
    let mut streams = Vec::new();
    for _ in 0..config.senders {
        streams.push(wire::connect(&config.connect, SocketType::Push, deadline)?.stream);
    }
    // Recorded messages are sent as they are, the same by every sender:
    // one block for all of them.
    let replay = config.zeek_log_batches.as_deref().map(Block::from_messages);
    let cost = Cost::start(peer)?;
    let barrier = Barrier::new(streams.len() + 1);
    let (results, elapsed) = std::thread::scope(|scope| {
        let threads: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, stream)| {
                let (barrier, replay) = (&barrier, replay.as_ref());
                scope.spawn(move || send(stream, i as u32, config, replay, barrier))
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("sender thread"))
            .collect();
        (results, started.elapsed())
    });
    let spent = cost.finish()?;
    let mut sent = 0;
    let mut bytes_per_message = 0;
    for result in results {
        let (n, bytes) = result?;
        sent += n;
        bytes_per_message = bytes;
    }
    Ok(Report {
        kind: "push",
        sent,
        expected: sent,
        counts: SequenceCounts {
            delivered: sent,
            ..Default::default()
        },
        lost: 0,
        elapsed,
        wall: elapsed,
        generator_cpu_s: spent.cpu_s,
        generator_threads: config.senders,
        broker_cpu_s: spent.peer_cpu_s,
        broker_peak_rss_bytes: spent.peer_peak_rss_bytes,
        bytes_per_message,
        histogram: hdrhistogram::Histogram::new(3).expect("valid"),
        rate: 0,
        subscriptions_missing: 0,
    })
}

/// One sender, publisher `id` of topic 0: `replay`'s messages as they
/// are, or else benchmark messages in a block of its own (each sender
/// stamps its own numbers into it). Returns the messages sent and the
/// size of the first.
fn send(
    mut stream: TcpStream,
    id: u32,
    config: &PushConfig,
    replay: Option<&Block>,
    barrier: &Barrier,
) -> Result<(u64, usize), BenchError> {
    let mut block = match replay {
        Some(recorded) => Cow::Borrowed(recorded),
        None => {
            let shape = Shape {
                frames: config.frames,
                size: config.size,
            };
            let per = block_len(&shape, 1);
            Cow::Owned(Block::new(&shape, &[b"bench".to_vec()], per))
        }
    };
    let total = config.messages.unwrap_or(u64::MAX);
    barrier.wait();
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < total && (config.messages.is_some() || started.elapsed() < config.duration) {
        let n = (total - sent).min(block.len() as u64) as usize;
        if let Cow::Owned(own) = &mut block {
            for k in 0..n {
                own.stamp(
                    k,
                    &Header {
                        publisher: id,
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
}

/// What one of the sink's connections received.
struct Received {
    counts: SequenceCounts,
    bytes: u64,
    /// When its first and its last message arrived.
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Runs a PULL sink until `messages` arrived or it was quiet for
/// `timeout`. Fewer messages than `messages` count as lost.
pub fn sink(config: &SinkConfig, on_bound: impl FnOnce(&str)) -> Result<Report, BenchError> {
    let listener = wire::bind(&config.bind)?;
    on_bound(&format!("tcp://{}", listener.local_addr()?));
    let senders = config.senders.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    // Messages received over all connections: the only figure shared, to
    // tell when to stop.
    let received = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let mut cost = None;
    let far = Instant::now() + Duration::from_secs(3600 * 24 * 365);
    while threads.len() < senders {
        let conn = wire::accept(&listener, SocketType::Pull, far)?;
        // From the first connection: what came before is waiting.
        if cost.is_none() {
            cost = Some(Cost::start(None)?);
        }
        let (stream, unread) = conn.into_reader()?;
        let (stop, received) = (stop.clone(), received.clone());
        threads.push(std::thread::spawn(move || {
            take_in(stream, &unread, senders, &stop, &received)
        }));
    }
    let wall_start = Instant::now();
    await_end(&received, config.messages, config.timeout);
    stop.store(true, Ordering::Relaxed);
    let mut counts = SequenceCounts::default();
    let mut bytes = 0;
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for t in threads {
        let r = t.join().expect("sink thread");
        counts.add(&r.counts);
        bytes += r.bytes;
        first = match (first, r.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // `None` orders before any instant.
        last = last.max(r.last);
    }
    let spent = cost.map(Cost::finish).transpose()?;
    let first = first.unwrap_or(wall_start);
    let last = last.unwrap_or(first);
    let arrived = counts.delivered + counts.foreign;
    let expected = config.messages.unwrap_or(arrived);
    Ok(Report {
        kind: "sink",
        sent: 0,
        expected,
        counts,
        // Gaps in the numbers, or fewer messages than expected (the last
        // ones leave no gap behind them).
        lost: counts.gaps.max(expected.saturating_sub(arrived)),
        elapsed: last.saturating_duration_since(first),
        wall: wall_start.elapsed(),
        generator_cpu_s: spent.map_or(0.0, |s| s.cpu_s),
        generator_threads: senders,
        broker_cpu_s: None,
        broker_peak_rss_bytes: None,
        bytes_per_message: (bytes / arrived.max(1)) as usize,
        histogram: hdrhistogram::Histogram::new(3).expect("valid"),
        rate: 0,
        subscriptions_missing: 0,
    })
}

/// Counts and checks what one connection brings: `unread` (read with the
/// handshake) first, then the stream, until `stop` or the sender closes.
/// `zring bench pushpull` numbers its senders 0..--senders, so a sink
/// waiting for as many connections checks each of them; a sender numbered
/// beyond counts as foreign.
fn take_in(
    mut stream: TcpStream,
    unread: &[u8],
    senders: usize,
    stop: &AtomicBool,
    received: &AtomicU64,
) -> Received {
    let mut walker = FrameWalker::new(1);
    let mut check = SequenceCheck::new(senders, 1);
    let mut bytes = 0;
    let (mut first, mut last) = (None, None);
    let take = |data: &[u8]| {
        bytes += data.len() as u64;
        let before = check.counts.delivered + check.counts.foreign;
        walker.walk(data, |p| {
            check.record(p);
        });
        let got = check.counts.delivered + check.counts.foreign - before;
        if got > 0 {
            let now = Instant::now();
            first.get_or_insert(now);
            last = Some(now);
            received.fetch_add(got, Ordering::Relaxed);
        }
    };
    // A sender that closes (or resets) its connection has finished; what
    // it sent is counted.
    let _ = wire::receive(&mut stream, unread, stop, take);
    Received {
        counts: check.counts,
        bytes,
        first,
        last,
    }
}

/// Waits until `received` reaches `messages`, or has not moved for
/// `timeout`.
fn await_end(received: &AtomicU64, messages: Option<u64>, timeout: Duration) {
    let mut last_total = 0;
    let mut last_change = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(2));
        let total = received.load(Ordering::Relaxed);
        if messages.is_some_and(|m| total >= m) {
            return;
        }
        if total != last_total {
            last_total = total;
            last_change = Instant::now();
        } else if last_change.elapsed() >= timeout {
            return;
        }
    }
}
