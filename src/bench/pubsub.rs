//! `zring bench pubsub` and `latency`: publishers (XPUB, as Zeek's nodes)
//! and subscribers (XSUB) through a broker, or straight to each other.
//!
//! One thread per active connection, blocking I/O: each thread's work is
//! one large write or read per block of messages, so a reactor would add
//! cost and nothing else, and the kernel's scheduling is the same for
//! zring's broker and libzmq's. Idle nodes (`--connections`) share one
//! thread that only drains what the broker sends them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use zmtp_codec::{Event, SocketType, SubscriptionAction};

use super::message::{block_len, Block, Shape};
use super::procstat::{Cost, Proc};
use super::report::Report;
use super::sequence::{Header, SequenceCheck, SequenceCounts};
use super::wire::{self, Ended, FrameWalker, Handshaken, WireError};
use super::BenchError;

/// What a pub/sub run does.
#[derive(Debug, Clone)]
pub struct PubSubConfig {
    /// Where publishers (XPUB) connect: the broker's XSUB side (Zeek's
    /// `connect_xpub_endpoint`).
    pub connect_xpub_endpoint: String,
    /// Where subscribers (XSUB) connect: the broker's XPUB side (Zeek's
    /// `connect_xsub_endpoint`).
    pub connect_xsub_endpoint: String,
    /// No broker: subscribers connect to the publisher, which binds here.
    pub direct: Option<String>,
    /// Publishing nodes.
    pub publishers: usize,
    /// Subscribing nodes.
    pub subscribers: usize,
    /// Bytes of each message's last frame.
    pub size: usize,
    /// Frames per message (Zeek's events: 4).
    pub frames: usize,
    /// Topics the publishers cycle through (see
    /// [`PubSubConfig::subscribes`]).
    pub topics: usize,
    /// Prefixes each subscriber (and idle node) subscribes to: its share of
    /// the topics, then prefixes nothing is published on.
    pub subscriptions_per_subscriber: usize,
    /// Messages per publisher, or `None` to run for `duration`.
    pub messages: Option<u64>,
    /// How long to publish when `messages` is `None`.
    pub duration: Duration,
    /// Messages per second over all publishers; 0 = as fast as the broker
    /// takes them (blocking sends: nothing is dropped by the generator).
    pub rate: u64,
    /// Extra idle nodes (an XPUB and an XSUB each), with their own
    /// subscriptions.
    pub connections: usize,
    /// How long to wait for connections, and for the last messages.
    pub timeout: Duration,
    /// The broker's process, for its CPU time and memory.
    pub broker_pid: Option<u32>,
    /// A progress line each second (stderr).
    pub progress: bool,
}

impl Default for PubSubConfig {
    fn default() -> Self {
        PubSubConfig {
            connect_xpub_endpoint: "tcp://127.0.0.1:5556".into(),
            connect_xsub_endpoint: "tcp://127.0.0.1:5555".into(),
            direct: None,
            publishers: 2,
            subscribers: 4,
            size: 64,
            frames: 4,
            topics: 1,
            subscriptions_per_subscriber: 1,
            messages: Some(1_000_000),
            duration: Duration::from_secs(10),
            rate: 0,
            connections: 0,
            timeout: Duration::from_secs(10),
            broker_pid: None,
            progress: false,
        }
    }
}

/// The topic prefixes, shaped like Zeek's node topics.
fn topic(t: usize) -> Vec<u8> {
    format!("zeek/cluster/node/bench-{t:05}/").into_bytes()
}

/// A prefix nothing is published on (a node's other subscriptions).
fn idle_prefix(node: &str, j: usize) -> Vec<u8> {
    format!("zeek/cluster/node/{node}/idle-{j:05}/").into_bytes()
}

impl PubSubConfig {
    /// Whether subscriber `s` subscribes to topic `t`: with one topic,
    /// every subscriber takes it (fan-out); with more, each takes its share,
    /// `t % subscribers == s`.
    pub fn subscribes(&self, s: usize, t: usize) -> bool {
        self.topics == 1 || t % self.subscribers == s
    }

    fn prefixes_of(&self, s: usize) -> Vec<Vec<u8>> {
        let mut prefixes: Vec<Vec<u8>> = (0..self.topics)
            .filter(|&t| self.subscribes(s, t))
            .map(topic)
            .collect();
        let name = format!("sub-{s}");
        let mut j = 0;
        while prefixes.len() < self.subscriptions_per_subscriber {
            prefixes.push(idle_prefix(&name, j));
            j += 1;
        }
        prefixes
    }

    /// Checks combinations a run cannot do.
    pub fn validate(&self) -> Result<(), String> {
        if self.publishers == 0 || self.subscribers == 0 {
            return Err("--publishers and --subscribers must be at least 1".into());
        }
        if self.frames < 2 {
            return Err("--frames must be at least 2 (topic and header)".into());
        }
        if self.topics == 0 {
            return Err("--topics must be at least 1".into());
        }
        // Each subscriber keeps a sequence stream per publisher and topic.
        if self.publishers.saturating_mul(self.topics) > MAX_STREAMS {
            return Err(format!(
                "--publishers {} × --topics {} is more than {MAX_STREAMS} streams for each \
                 subscriber to check: use fewer publishers or topics",
                self.publishers, self.topics
            ));
        }
        if self.topics > 1 && self.topics < self.subscribers {
            return Err(format!(
                "--topics {} leaves subscribers without a share: use 1 (every subscriber gets \
                 every message) or at least --subscribers ({})",
                self.topics, self.subscribers
            ));
        }
        if self.subscriptions_per_subscriber > 1_000_000 {
            return Err("--subscriptions-per-subscriber is at most 1000000".into());
        }
        if self.messages == Some(0) {
            return Err("--messages must be at least 1".into());
        }
        if self.direct.is_some() && (self.publishers != 1 || self.connections > 0) {
            return Err("--direct runs one publisher and no idle connections".into());
        }
        Ok(())
    }
}

/// Publishers × topics at most: every subscriber keeps the numbers of each
/// such stream (a few dozen bytes each), so this bounds their memory.
const MAX_STREAMS: usize = 1_000_000;

/// What every thread shares.
struct Shared {
    t0: Instant,
    stop: AtomicBool,
    delivered: Vec<AtomicU64>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

/// A subscriber's result.
struct SubResult {
    counts: SequenceCounts,
    histogram: Histogram<u64>,
    last_at: Option<Instant>,
}

/// A publisher's result: messages sent per topic, and its connection,
/// kept open until the subscribers are done.
struct PubResult {
    sent: Vec<u64>,
    started: Instant,
    stream: TcpStream,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds")
}

/// Runs a pub/sub benchmark.
pub fn run(config: &PubSubConfig) -> Result<Report, BenchError> {
    config.validate().map_err(BenchError::Usage)?;
    let deadline = Instant::now() + config.timeout;
    let broker = config.broker_pid.map(Proc::pid).transpose()?;

    let direct = match &config.direct {
        Some(endpoint) => Some(wire::bind(endpoint)?),
        None => None,
    };
    // Every subscription each publisher must see forwarded before it
    // starts: until then the broker would not route to every subscriber,
    // and it would still be busy with subscriptions while the clock runs.
    let mut needed: Vec<Vec<u8>> = (0..config.subscribers)
        .flat_map(|s| config.prefixes_of(s))
        .collect();
    if direct.is_none() {
        for n in 0..config.connections {
            let name = format!("idle-{n}");
            needed.extend(
                (0..config.subscriptions_per_subscriber.max(1)).map(|j| idle_prefix(&name, j)),
            );
        }
    }
    let needed = Arc::new(needed);
    let mut publishers = Vec::new();
    let mut subscribers = Vec::new();
    let mut idle = Vec::new();
    let mut subscriptions_missing = 0;
    if let Some(listener) = &direct {
        let endpoint = format!("tcp://{}", listener.local_addr()?);
        // The subscriber connects while the publisher accepts.
        let (sub, publisher) = std::thread::scope(|scope| {
            let sub = scope.spawn(|| wire::connect(&endpoint, SocketType::XSub, deadline));
            let publisher = wire::accept(listener, SocketType::XPub, deadline);
            (sub.join().expect("connect thread"), publisher)
        });
        let mut sub = sub?;
        for prefix in config.prefixes_of(0) {
            sub.stream.write_all(&wire::subscribe_frame(&prefix))?;
        }
        subscribers.push(sub);
        let mut publisher = publisher?;
        subscriptions_missing = await_subscriptions(&mut publisher, &needed, 1, deadline)?;
        publishers.push(publisher);
    } else {
        // Publishers first, reading what is forwarded to them while the
        // subscriptions are made, as Zeek's nodes read theirs. A publisher
        // that joins after thousands of subscriptions would depend on the
        // broker replaying them all: libzmq's XSUB drops what exceeds its
        // pipe's high-water mark (1000) in that replay.
        let mut waiting = Vec::new();
        for _ in 0..config.publishers {
            let mut publisher =
                wire::connect(&config.connect_xpub_endpoint, SocketType::XPub, deadline)?;
            let needed = needed.clone();
            let topics = config.topics;
            waiting.push(std::thread::spawn(move || {
                await_subscriptions(&mut publisher, &needed, topics, deadline)
                    .map(|missing| (publisher, missing))
            }));
        }
        // Idle nodes next: their subscriptions are in place before the
        // measured ones, as a cluster's are.
        idle = connect_idle(config, deadline)?;
        for s in 0..config.subscribers {
            let mut sub = wire::connect(&config.connect_xsub_endpoint, SocketType::XSub, deadline)?;
            for prefix in config.prefixes_of(s) {
                sub.stream.write_all(&wire::subscribe_frame(&prefix))?;
            }
            subscribers.push(sub);
        }
        for w in waiting {
            let (publisher, missing) = w.join().expect("a publisher's setup")?;
            subscriptions_missing = subscriptions_missing.max(missing);
            publishers.push(publisher);
        }
    }

    let shared = Arc::new(Shared {
        t0: Instant::now(),
        stop: AtomicBool::new(false),
        delivered: (0..subscribers.len()).map(|_| AtomicU64::new(0)).collect(),
    });
    let idle_stop = Arc::new(AtomicBool::new(false));
    let idle_thread = {
        let stop = idle_stop.clone();
        std::thread::spawn(move || drain_idle(idle, &stop))
    };
    let cost = Cost::start(broker)?;
    let start = Instant::now();
    let barrier = Arc::new(Barrier::new(publishers.len() + 1));

    let sub_threads: Vec<_> = subscribers
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let shared = shared.clone();
            let publishers = config.publishers;
            let topics = config.topics;
            std::thread::Builder::new()
                .name(format!("bench-sub-{i}"))
                .spawn(move || {
                    let (stream, unread) = conn.into_reader()?;
                    subscribe(stream, &unread, i, publishers, topics, &shared)
                })
                .expect("a thread")
        })
        .collect();
    let pub_threads: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let barrier = barrier.clone();
            let config = config.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("bench-pub-{i}"))
                .spawn(move || publish(conn.stream, i as u32, &config, &barrier, &shared))
                .expect("a thread")
        })
        .collect();
    barrier.wait();
    let published_at = Instant::now();
    let progress = config.progress.then(|| {
        let shared = shared.clone();
        std::thread::spawn(move || show_progress(&shared))
    });
    let mut sent: Vec<Vec<u64>> = Vec::new();
    let mut first_send: Option<Instant> = None;
    let mut open = Vec::new();
    for t in pub_threads {
        let result = t.join().expect("publisher thread")?;
        first_send = Some(first_send.map_or(result.started, |f| f.min(result.started)));
        sent.push(result.sent);
        open.push(result.stream);
    }
    // What each subscriber should get: every message on its topics.
    let expected: Vec<u64> = (0..shared.delivered.len())
        .map(|s| {
            sent.iter()
                .map(|per_topic| {
                    per_topic
                        .iter()
                        .enumerate()
                        .filter(|&(t, _)| config.direct.is_some() || config.subscribes(s, t))
                        .map(|(_, n)| n)
                        .sum::<u64>()
                })
                .sum()
        })
        .collect();
    let quiet_deadline = config.timeout;
    let mut last_progress = Instant::now();
    let mut last_total = 0;
    loop {
        let done = shared
            .delivered
            .iter()
            .zip(&expected)
            .all(|(d, e)| d.load(Ordering::Relaxed) >= *e);
        let total: u64 = shared
            .delivered
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum();
        if total != last_total {
            last_total = total;
            last_progress = Instant::now();
        }
        if done || last_progress.elapsed() >= quiet_deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut counts = SequenceCounts::default();
    let mut merged = histogram();
    let mut last_at = published_at;
    for t in sub_threads {
        let r = t.join().expect("subscriber thread")?;
        counts.add(&r.counts);
        merged.add(&r.histogram).expect("same bounds");
        if let Some(at) = r.last_at {
            last_at = last_at.max(at);
        }
    }
    // The publishers' connections close only now: closing them earlier
    // could make a broker drop what it still held for the subscribers.
    for stream in &mut open {
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    drop(open);
    let wall = start.elapsed();
    let spent = cost.finish()?;
    idle_stop.store(true, Ordering::Relaxed);
    let _ = idle_thread.join();
    if let Some(p) = progress {
        let _ = p.join();
    }
    let expected_total: u64 = expected.iter().sum();
    let elapsed = last_at.saturating_duration_since(first_send.unwrap_or(published_at));
    Ok(Report {
        kind: if config.direct.is_some() {
            "direct"
        } else {
            "pubsub"
        },
        sent: sent.iter().flatten().sum(),
        expected: expected_total,
        counts,
        lost: expected_total.saturating_sub(counts.delivered),
        elapsed,
        wall,
        generator_cpu_s: spent.cpu_s,
        generator_threads: config.publishers + config.subscribers,
        broker_cpu_s: spent.peer_cpu_s,
        broker_peak_rss_bytes: spent.peer_peak_rss_bytes,
        bytes_per_message: Block::new(
            &Shape {
                frames: config.frames,
                size: config.size,
            },
            &[topic(0)],
            1,
        )
        .bytes
        .len(),
        histogram: merged,
        rate: config.rate,
        subscriptions_missing,
    })
}

/// Idle nodes' connections, each XPUB and XSUB with its subscriptions.
fn connect_idle(config: &PubSubConfig, deadline: Instant) -> Result<Vec<TcpStream>, WireError> {
    let mut streams = Vec::new();
    for n in 0..config.connections {
        let name = format!("idle-{n}");
        let mut xsub = wire::connect(&config.connect_xsub_endpoint, SocketType::XSub, deadline)?;
        for j in 0..config.subscriptions_per_subscriber.max(1) {
            xsub.stream
                .write_all(&wire::subscribe_frame(&idle_prefix(&name, j)))?;
        }
        let xpub = wire::connect(&config.connect_xpub_endpoint, SocketType::XPub, deadline)?;
        for conn in [xsub, xpub] {
            conn.stream.set_nonblocking(true)?;
            streams.push(conn.stream);
        }
    }
    Ok(streams)
}

/// Reads and drops what idle nodes are sent (subscriptions forwarded to
/// their XPUBs), so that the broker never waits on them.
fn drain_idle(mut streams: Vec<TcpStream>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut any = false;
        for s in &mut streams {
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                any = true;
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Unread data would turn the close into a reset.
    for s in &mut streams {
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

/// Reads subscription messages until every prefix in `needed` was seen.
fn await_subscriptions(
    conn: &mut Handshaken,
    needed: &[Vec<u8>],
    topics: usize,
    deadline: Instant,
) -> Result<usize, BenchError> {
    let mut missing: std::collections::HashSet<&[u8]> = needed.iter().map(Vec::as_slice).collect();
    let routed: Vec<Vec<u8>> = (0..topics).map(topic).collect();
    let mut last_news = Instant::now();
    while !missing.is_empty() {
        let topics_seen = routed.iter().all(|t| !missing.contains(t.as_slice()));
        // Once every published topic is routed, a broker that forwards no
        // more for a second has dropped the rest: go on, and say so.
        let wait_until = if topics_seen {
            deadline.min(last_news + QUIET)
        } else {
            deadline
        };
        match conn.next_event(wait_until)? {
            Some(Event::Subscription(s)) if s.action == SubscriptionAction::Subscribe => {
                if missing.remove(s.topic.as_ref()) {
                    last_news = Instant::now();
                }
            }
            Some(_) => {}
            None if topics_seen => return Ok(missing.len()),
            None => {
                return Err(BenchError::Setup(format!(
                    "the publishers never saw the subscriptions to the published topics \
                     forwarded ({} of {} subscriptions missing; is the broker forwarding \
                     subscriptions?)",
                    missing.len(),
                    needed.len()
                )))
            }
        }
    }
    Ok(0)
}

/// Blocks written between two reads of what the broker sends a publisher.
const DRAIN_EVERY: u64 = 16;

/// How long a broker may pause forwarding subscriptions before those not
/// yet seen count as dropped.
const QUIET: Duration = Duration::from_secs(1);

fn publish(
    mut stream: TcpStream,
    id: u32,
    config: &PubSubConfig,
    barrier: &Barrier,
    shared: &Shared,
) -> Result<PubResult, BenchError> {
    let shape = Shape {
        frames: config.frames,
        size: config.size,
    };
    let topics: Vec<Vec<u8>> = (0..config.topics).map(topic).collect();
    let per_block = block_len(&shape, config.topics);
    // Two blocks' worth, so a window may start at any topic.
    let mut block = Block::new(&shape, &topics, per_block + config.topics);
    let rate = config.rate as f64 / config.publishers as f64;
    let total = config.messages.unwrap_or(u64::MAX);
    let t = config.topics as u64;
    let mut sent: u64 = 0;
    let mut drain = vec![0u8; 16 * 1024];
    let mut writes: u64 = 0;
    stream.set_nonblocking(false)?;
    if rate > 0.0 {
        // Sleeps end on time, not up to 50 µs late (the default slack).
        let _ = crate::sys::set_timer_slack_ns(1);
    }
    barrier.wait();
    let started = Instant::now();
    let start_ns = shared.now_ns();
    let end = config.messages.is_none().then(|| started + config.duration);
    while sent < total && !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        let due = if rate > 0.0 {
            // Message m is due at m / rate: message 0 at once.
            let by_now = ((now - started).as_secs_f64() * rate) as u64 + 1;
            if by_now <= sent {
                // Sleep until the next message is due. Never spin: on a
                // small machine a spinning sender takes the core the
                // broker needs, and the broker's latency would be the
                // scheduler's. Whatever became due meanwhile goes in one
                // write, each message with its own intended time.
                let next = started + Duration::from_secs_f64(sent as f64 / rate);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                continue;
            }
            by_now - sent
        } else {
            total - sent
        };
        let n = due.min(total - sent).min(per_block as u64) as usize;
        let first = (sent % t) as usize;
        let now_ns = shared.now_ns();
        for k in 0..n {
            let m = sent + k as u64;
            let sent_ns = if rate > 0.0 {
                // The intended time: a backlog keeps its schedule, so the
                // wait shows as latency (coordinated omission corrected).
                start_ns + (m as f64 * 1e9 / rate) as u64
            } else {
                now_ns
            };
            block.stamp(
                first + k,
                &Header {
                    publisher: id,
                    topic: (m % t) as u32,
                    seq: m / t,
                    sent_ns,
                },
            );
        }
        stream.write_all(block.range(first, n))?;
        sent += n as u64;
        writes += 1;
        if writes.is_multiple_of(DRAIN_EVERY) {
            // What the broker sends back (subscriptions of late nodes,
            // heartbeats) must not pile up; it is little, so a look every
            // few blocks keeps the system calls per message down.
            stream.set_nonblocking(true)?;
            while matches!(stream.read(&mut drain), Ok(n) if n > 0) {}
            stream.set_nonblocking(false)?;
        }
    }
    let per_topic = (0..t)
        .map(|topic| sent / t + u64::from(topic < sent % t))
        .collect();
    // Read what the broker sent last, so that closing the connection does
    // not reset it (unread data turns a close into a reset).
    stream.set_nonblocking(true)?;
    while matches!(stream.read(&mut drain), Ok(n) if n > 0) {}
    Ok(PubResult {
        sent: per_topic,
        started,
        stream,
    })
}

/// Counts and checks what one subscriber receives: `unread` (bytes read
/// with the handshake) first, then the stream.
fn subscribe(
    mut stream: TcpStream,
    unread: &[u8],
    index: usize,
    publishers: usize,
    topics: usize,
    shared: &Shared,
) -> Result<SubResult, BenchError> {
    let mut walker = FrameWalker::new(1);
    let mut check = SequenceCheck::new(publishers, topics);
    let mut histogram = histogram();
    let mut last_at = None;
    let take = |data: &[u8]| {
        // One clock read per read: these messages arrived together.
        let now_ns = shared.now_ns();
        let before = check.counts.delivered;
        walker.walk(data, |probe| {
            if let Some(h) = check.record(probe) {
                let _ = histogram.record(now_ns.saturating_sub(h.sent_ns).max(1));
            }
        });
        if check.counts.delivered != before {
            last_at = Some(Instant::now());
            shared.delivered[index].store(check.counts.delivered, Ordering::Relaxed);
        }
    };
    if wire::receive(&mut stream, unread, &shared.stop, take)? == Ended::Closed {
        return Err(BenchError::Setup(
            "the broker closed a subscriber's connection".into(),
        ));
    }
    Ok(SubResult {
        counts: check.counts,
        histogram,
        last_at,
    })
}

/// One line a second on stderr while the run lasts.
fn show_progress(shared: &Shared) {
    let started = Instant::now();
    let mut last = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let total: u64 = shared
            .delivered
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum();
        eprint!(
            "\r{:>6.1} s  delivered {total:>12}  {:>12.0} msg/s   ",
            started.elapsed().as_secs_f64(),
            (total - last) as f64
        );
        last = total;
    }
    eprintln!();
}
