//! `zring broker` against libzmq's `zmq_proxy`, configured as Zeek runs it,
//! driven by the same libzmq 4.3.4 clients in the same run.
//!
//! Each broker is a child process (this program re-run with `--role`), so
//! its CPU time and peak RSS come from `/proc/PID/{stat,status}` and
//! nothing but the loopback is shared. The clients are threads of the
//! orchestrator, configured as Zeek's nodes: publishers are XPUB (NODROP,
//! VERBOSE, SNDHWM 1000) sending 4-frame events with blocking sends (so
//! the count is exact), subscribers are XSUB (RCVHWM 1000).
//!
//! - throughput: P publishers × N messages to S subscribers, all matching;
//!   delivered = P × N × S, timed from the start to the last delivery;
//! - latency: one publisher at a fixed rate (default 10k msg/s), one
//!   subscriber, one-way latency from a timestamp in the payload;
//! - soak: the broker's RSS, sampled each second during a long run;
//! - capacity, scale and generator latency: the same brokers driven by
//!   `zring bench` (target/release/zring, built first), a generator that
//!   costs less per message than the broker, so the broker is what is
//!   measured (docs/benchmarking.md).
//!
//! ```text
//! cargo run --release --example broker                      # the full table
//! cargo run --release --example broker -- --runs 1 --count 100000 --sizes 64
//! cargo run --release --example broker -- --soak 60
//! cargo build --release && cargo run --release --example broker -- \
//!     --throughput off --latency off --capacity on --scale on --bench-latency on
//! ```

#[path = "support/measure.rs"]
mod measure;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use measure::{median, process_cpu_seconds};
use zring::bench::procstat::Proc;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    ZmqProxy,
    /// On the backend named (`--backends`), or its default.
    Zring(Option<&'static str>),
}

impl Impl {
    fn name(self) -> String {
        match self {
            Impl::ZmqProxy => "zmq_proxy (libzmq 4.3.4)".into(),
            Impl::Zring(None) => "zring broker".into(),
            Impl::Zring(Some(backend)) => format!("zring broker ({backend})"),
        }
    }

    fn role(self) -> &'static str {
        match self {
            Impl::ZmqProxy => "zmq-proxy",
            Impl::Zring(_) => "zring",
        }
    }
}

const TOPIC: &[u8] = b"zeek.cluster.manager";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |k: &str| -> Option<String> {
        args.iter()
            .position(|a| a == &format!("--{k}"))
            .and_then(|i| args.get(i + 1).cloned())
    };
    match arg("role").as_deref() {
        Some("zmq-proxy") => serve_zmq_proxy(),
        Some("zring") => serve_zring(arg("reactors").and_then(|v| v.parse().ok()).unwrap_or(1)),
        _ => orchestrate(&arg),
    }
}

/// libzmq's proxy as Zeek's manager runs it (ZeroMQ-Proxy.cc): its own
/// context with 2 I/O threads, XPUB with VERBOSER and NODROP, default HWMs.
fn serve_zmq_proxy() {
    let ctx = zmq::Context::new();
    ctx.set_io_threads(2).unwrap();
    let mut xpub = ctx.socket(zmq::XPUB).unwrap();
    let xsub = ctx.socket(zmq::XSUB).unwrap();
    for option in [zmq_sys::ZMQ_XPUB_VERBOSER, zmq_sys::ZMQ_XPUB_NODROP] {
        let one: i32 = 1;
        // SAFETY: a live socket and a live c_int of the size passed.
        let rc = unsafe {
            zmq_sys::zmq_setsockopt(
                xpub.as_mut_ptr(),
                option as i32,
                (&one as *const i32).cast(),
                4,
            )
        };
        assert_eq!(rc, 0);
    }
    xpub.bind("tcp://127.0.0.1:*").unwrap();
    xsub.bind("tcp://127.0.0.1:*").unwrap();
    println!(
        "ready {} {}",
        xpub.get_last_endpoint().unwrap().unwrap(),
        xsub.get_last_endpoint().unwrap().unwrap()
    );
    zmq::proxy(&xsub, &xpub).unwrap();
}

fn serve_zring(reactors: usize) {
    let broker = zring::broker::Broker::start(zring::broker::BrokerConfig {
        listen_xpub_endpoint: "tcp://127.0.0.1:*".into(),
        listen_xsub_endpoint: "tcp://127.0.0.1:*".into(),
        reactors,
        ..Default::default()
    })
    .unwrap();
    println!(
        "ready {} {}",
        broker.xpub_endpoint(),
        broker.xsub_endpoint()
    );
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A broker child process.
struct Server {
    child: Child,
    /// Its `/proc` entry, for its CPU time and memory.
    proc: Proc,
    xpub: String,
    xsub: String,
}

impl Server {
    fn start(imp: Impl, reactors: usize) -> Server {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--role", imp.role(), "--reactors", &reactors.to_string()])
            .stdout(Stdio::piped());
        if let Impl::Zring(Some(backend)) = imp {
            command.env("ZRING_BACKEND", backend);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut parts = line.split_whitespace().skip(1);
        let xpub = parts.next().expect("xpub endpoint").to_owned();
        let xsub = parts.next().expect("xsub endpoint").to_owned();
        let proc = Proc::pid(child.id()).expect("the broker's /proc entry");
        Server {
            child,
            proc,
            xpub,
            xsub,
        }
    }

    /// CPU seconds (user + system) the broker used so far.
    fn cpu(&self) -> f64 {
        self.proc.cpu_seconds().expect("the broker's stat")
    }

    /// (current RSS, peak RSS) in KiB.
    fn rss(&self) -> (u64, u64) {
        let kib = |bytes: std::io::Result<u64>| bytes.expect("the broker's status") / 1024;
        (kib(self.proc.rss_bytes()), kib(self.proc.peak_rss_bytes()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publisher(ctx: &zmq::Context, server: &Server) -> zmq::Socket {
    let s = publisher_socket(ctx);
    s.connect(&server.xsub).unwrap();
    s
}

/// An XPUB configured as a Zeek node's, not yet connected.
fn publisher_socket(ctx: &zmq::Context) -> zmq::Socket {
    let mut s = ctx.socket(zmq::XPUB).unwrap();
    s.set_linger(0).unwrap();
    s.set_xpub_verbose(true).unwrap();
    let one: i32 = 1;
    // SAFETY: a live socket and a live c_int of the size passed.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            s.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_NODROP as i32,
            (&one as *const i32).cast(),
            4,
        )
    };
    assert_eq!(rc, 0);
    s
}

/// Subscriber `i`: subscribes to TOPIC, then to `sync.i`, which tells the
/// publishers it is in place (a replay to a late publisher carries each
/// topic once, so TOPIC alone cannot be counted).
fn subscriber(ctx: &zmq::Context, server: &Server, i: usize) -> zmq::Socket {
    subscriber_to(ctx, &server.xpub, i)
}

fn subscriber_to(ctx: &zmq::Context, endpoint: &str, i: usize) -> zmq::Socket {
    let s = ctx.socket(zmq::XSUB).unwrap();
    s.set_linger(0).unwrap();
    s.connect(endpoint).unwrap();
    s.send([&[1u8][..], TOPIC].concat(), 0).unwrap();
    s.send(format!("\x01sync.{i}").into_bytes(), 0).unwrap();
    s
}

/// Waits until a publisher's XPUB knows subscribers 0..n.
fn await_subscribers(xpub: &zmq::Socket, n: usize) {
    xpub.set_rcvtimeo(10_000).unwrap();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < n {
        let m = xpub.recv_bytes(0).expect("subscription report");
        if m.first() == Some(&1) && m[1..].starts_with(b"sync.") {
            seen.insert(m);
        }
    }
}

struct Throughput {
    rate: f64,
    cpu_s_per_m: f64,
    /// The clients' CPU (this process) per million delivered.
    clients_s_per_m: f64,
    peak_rss_kib: u64,
}

fn throughput(imp: Impl, reactors: usize, p: usize, s: usize, size: usize, n: u64) -> Throughput {
    let server = Server::start(imp, reactors);
    // One context (one libzmq I/O thread) per client, as each Zeek node is
    // a process of its own. In a shared context libzmq puts every socket
    // on the same I/O thread, which then caps both brokers alike.
    let subs: Vec<zmq::Socket> = (0..s)
        .map(|i| subscriber(&zmq::Context::new(), &server, i))
        .collect();
    let pubs: Vec<zmq::Socket> = (0..p)
        .map(|_| publisher(&zmq::Context::new(), &server))
        .collect();
    for xpub in &pubs {
        await_subscribers(xpub, s);
    }
    let start = Arc::new(Barrier::new(p + s + 1));
    let payload = vec![0x5a; size];
    let pub_threads: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(i, xpub)| {
            let (start, payload) = (start.clone(), payload.clone());
            std::thread::spawn(move || {
                let id = format!("zeromq_worker-{i}_host_4242_NwrZBf1q3FkxySjt2a");
                start.wait();
                for _ in 0..n {
                    let frames: [&[u8]; 4] = [TOPIC, id.as_bytes(), b"broker-bin-v1", &payload];
                    xpub.send_multipart(frames, 0).unwrap();
                }
                xpub
            })
        })
        .collect();
    let sub_threads: Vec<_> = subs
        .into_iter()
        .map(|xsub| {
            let start = start.clone();
            std::thread::spawn(move || {
                xsub.set_rcvtimeo(30_000).unwrap();
                // One reused message: the client's own costs stay small
                // beside the broker's.
                let mut frame = zmq::Message::new();
                start.wait();
                for _ in 0..n * p as u64 {
                    xsub.recv(&mut frame, 0).expect("delivery within 30 s");
                    while frame.get_more() {
                        xsub.recv(&mut frame, 0).expect("the rest of the message");
                    }
                }
                Instant::now()
            })
        })
        .collect();
    let cpu_before = server.cpu();
    let clients_before = process_cpu_seconds();
    start.wait();
    let t0 = Instant::now();
    let ends: Vec<Instant> = sub_threads.into_iter().map(|t| t.join().unwrap()).collect();
    let elapsed = ends.iter().max().unwrap().duration_since(t0).as_secs_f64();
    let cpu = server.cpu() - cpu_before;
    let clients = process_cpu_seconds() - clients_before;
    for t in pub_threads {
        drop(t.join().unwrap());
    }
    let delivered = (n * p as u64 * s as u64) as f64;
    Throughput {
        rate: delivered / elapsed,
        cpu_s_per_m: cpu / (delivered / 1e6),
        clients_s_per_m: clients / (delivered / 1e6),
        peak_rss_kib: server.rss().1,
    }
}

/// One-way latency in microseconds at a fixed rate: (p50, p99, p99.9),
/// through `imp`, or with `None` from the publisher straight to the
/// subscriber: the clients' own floor, one TCP hop instead of two and no
/// broker between.
fn latency(imp: Option<Impl>, reactors: usize, rate: u64, seconds: u64) -> (f64, f64, f64) {
    let server = imp.map(|imp| Server::start(imp, reactors));
    let ctx = zmq::Context::new();
    let (xsub, xpub) = match &server {
        Some(server) => (subscriber(&ctx, server, 0), publisher(&ctx, server)),
        None => {
            let xpub = publisher_socket(&ctx);
            xpub.bind("tcp://127.0.0.1:*").unwrap();
            let endpoint = xpub.get_last_endpoint().unwrap().unwrap();
            (subscriber_to(&ctx, &endpoint, 0), xpub)
        }
    };
    await_subscribers(&xpub, 1);
    let n = rate * seconds;
    let base = Instant::now();
    let receiver = std::thread::spawn(move || {
        xsub.set_rcvtimeo(10_000).unwrap();
        let mut hist = Histogram::<u64>::new(3).unwrap();
        for _ in 0..n {
            let m = xsub.recv_multipart(0).expect("delivery");
            let sent = u64::from_be_bytes(m[3][..8].try_into().unwrap());
            let now = base.elapsed().as_nanos() as u64;
            hist.record(now.saturating_sub(sent) / 1000).unwrap();
        }
        hist
    });
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let mut payload = vec![0u8; 64];
    for i in 0..n {
        // Sleep, do not spin: on 2 cores a spinning sender would take a
        // whole core from the broker and the subscriber. Each message
        // carries its actual send time, so late wake-ups do not count as
        // broker latency.
        let due = base + interval * (i as u32);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let stamp = (base.elapsed().as_nanos() as u64).to_be_bytes();
        payload[..8].copy_from_slice(&stamp);
        let frames: [&[u8]; 4] = [TOPIC, b"node", b"fmt", &payload];
        xpub.send_multipart(frames, 0).unwrap();
    }
    let hist = receiver.join().unwrap();
    if let Some(server) = &server {
        eprintln!(
            "  {}: broker CPU {:.1} µs per message at {rate} msg/s",
            imp.map_or(String::new(), |i| i.name()),
            server.cpu() * 1e6 / n as f64
        );
    }
    (
        hist.value_at_quantile(0.50) as f64,
        hist.value_at_quantile(0.99) as f64,
        hist.value_at_quantile(0.999) as f64,
    )
}

/// RSS in KiB sampled each second while two publishers stream 512 B events
/// to one subscriber for `seconds`: (at 5 s, at the end, peak).
fn soak(imp: Impl, reactors: usize, seconds: u64) -> (u64, u64, u64) {
    let server = Server::start(imp, reactors);
    let ctx = zmq::Context::new();
    let xsub = subscriber(&ctx, &server, 0);
    let pubs: Vec<zmq::Socket> = (0..2).map(|_| publisher(&ctx, &server)).collect();
    for xpub in &pubs {
        await_subscribers(xpub, 1);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = pubs
        .into_iter()
        .map(|xpub| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let payload = vec![1u8; 512];
                xpub.set_sndtimeo(100).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let frames: [&[u8]; 4] = [TOPIC, b"node", b"fmt", &payload];
                    let _ = xpub.send_multipart(frames, 0);
                }
            })
        })
        .collect();
    let reader_stop = stop.clone();
    let reader = std::thread::spawn(move || {
        xsub.set_rcvtimeo(100).unwrap();
        while !reader_stop.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = xsub.recv_multipart(0);
        }
    });
    let mut at5 = 0;
    for second in 1..=seconds {
        std::thread::sleep(Duration::from_secs(1));
        let (rss, _) = server.rss();
        if second == 5 {
            at5 = rss;
        }
        eprintln!("  {} s: RSS {} KiB", second, rss);
    }
    let (end, peak) = server.rss();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    reader.join().unwrap();
    (at5, end, peak)
}

/// One cell of the table: its label, then (msg/s, CPU s per M, peak RSS)
/// for each broker, zmq_proxy first.
type Cell = (String, Vec<(f64, f64, f64)>);

/// One chart of an SVG: its title, the figure of a cell it draws, how that
/// figure is written beside its bar, and whether each broker's bars have a
/// scale of their own (to show each one's growth rather than compare them).
struct Chart {
    title: &'static str,
    value: fn(&(f64, f64, f64)) -> f64,
    label: fn(f64) -> String,
    per_broker: bool,
}

/// Delivered msg/s, on one scale.
const RATE_CHART: Chart = Chart {
    title: "delivered messages/s",
    value: |v| v.0,
    label: |rate| format!("{:.0}k", rate / 1000.0),
    per_broker: false,
};

/// Broker CPU per delivered message, on one scale.
const CPU_CHART: Chart = Chart {
    title: "broker CPU seconds per million delivered",
    value: |v| v.1,
    label: |cpu| format!("{cpu:.2}"),
    per_broker: false,
};

/// Broker CPU per delivered message, each broker on its own scale (the
/// scale table: how each one's cost grows).
const CPU_GROWTH_CHART: Chart = Chart {
    title: "broker CPU seconds per million delivered (bars scaled per broker)",
    value: |v| v.1,
    label: |cpu| format!("{cpu:.3}"),
    per_broker: true,
};

/// The brokers' names, for a legend.
fn names(impls: &[Impl]) -> Vec<String> {
    impls.iter().map(|imp| imp.name()).collect()
}

/// Bar charts side by side, one per entry of `charts`, with a row per
/// cell and in each row a bar per broker (`names`, in order), so a row is
/// as tall as the brokers compared.
fn svg(cells: &[Cell], names: &[String], charts: &[Chart]) -> String {
    use std::fmt::Write as _;
    const COLOURS: [&str; 4] = ["#999", "#2a7", "#27a", "#a72"];
    let colour = |j: usize| COLOURS[j % COLOURS.len()];
    // Label column, bar length, chart width with its numbers, bar height.
    let (left, width, span, bar) = (200.0, 300.0, 390.0, 13.0);
    let row = bar * names.len() as f64 + 8.0;
    let top = 30.0 + 14.0 * names.len() as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n",
        left + span * charts.len() as f64,
        top + row * cells.len() as f64 + 10.0
    );
    for (k, chart) in charts.iter().enumerate() {
        let x = left + span * k as f64;
        let _ = writeln!(out, "<text x=\"{x}\" y=\"18\">{}</text>", chart.title);
    }
    for (j, name) in names.iter().enumerate() {
        let y = 26.0 + 14.0 * j as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{left}\" y=\"{y}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{name}</text>",
            colour(j),
            left + 15.0,
            y + 9.0
        );
    }
    // A chart's scale: its largest figure, over all brokers or broker j's.
    let max = |chart: &Chart, j: usize| {
        cells
            .iter()
            .flat_map(|c| c.1.iter().enumerate())
            .filter(|&(b, _)| !chart.per_broker || b == j)
            .map(|(_, v)| (chart.value)(v))
            .fold(1e-9, f64::max)
    };
    for (i, (label, values)) in cells.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = writeln!(
            out,
            "<text x=\"4\" y=\"{:.1}\">{label}</text>",
            y + (row - 8.0) / 2.0 + 4.0
        );
        for (j, v) in values.iter().enumerate() {
            let yy = y + bar * j as f64;
            for (k, chart) in charts.iter().enumerate() {
                let x = left + span * k as f64;
                let value = (chart.value)(v);
                let w = width * value / max(chart, j);
                let _ = writeln!(
                    out,
                    "<rect x=\"{x}\" y=\"{yy}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
                    bar - 1.0,
                    colour(j),
                    x + w + 4.0,
                    yy + bar - 3.0,
                    (chart.label)(value)
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

fn orchestrate(arg: &dyn Fn(&str) -> Option<String>) {
    let runs: usize = arg("runs").and_then(|v| v.parse().ok()).unwrap_or(3);
    let reactors: usize = arg("reactors").and_then(|v| v.parse().ok()).unwrap_or(1);
    let count: u64 = arg("count").and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let sizes: Vec<usize> = arg("sizes")
        .map(|v| v.split(',').map(|s| s.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![64, 512, 4096]);
    // `--backends io_uring,epoll`: one zring broker per backend, each
    // against the same zmq_proxy runs.
    let zrings: Vec<Impl> = match arg("backends") {
        None => vec![Impl::Zring(None)],
        Some(list) => list
            .split(',')
            .map(|b| match b {
                "io_uring" => Impl::Zring(Some("io_uring")),
                "epoll" => Impl::Zring(Some("epoll")),
                other => panic!("--backends takes io_uring and epoll, not {other}"),
            })
            .collect(),
    };
    let impls: Vec<Impl> = std::iter::once(Impl::ZmqProxy)
        .chain(zrings.iter().copied())
        .collect();
    // Profiling aid: run one broker only (no ratios).
    let only = arg("only").map(|v| match v.as_str() {
        "zring" => zrings[0],
        "zmq-proxy" => Impl::ZmqProxy,
        other => panic!("--only is zring or zmq-proxy, not {other}"),
    });
    let fanouts: Vec<usize> = arg("subscribers")
        .map(|v| v.split(',').map(|s| s.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1, 4]);
    if let Some(seconds) = arg("soak").and_then(|v| v.parse().ok()) {
        println!("| broker | RSS at 5 s | RSS at {seconds} s | peak RSS |");
        println!("|---|---|---|---|");
        for &imp in &impls {
            eprintln!("soak: {}", imp.name());
            let (at5, end, peak) = soak(imp, reactors, seconds);
            println!(
                "| {} | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
                imp.name(),
                at5 as f64 / 1024.0,
                end as f64 / 1024.0,
                peak as f64 / 1024.0
            );
        }
        return;
    }
    println!("P=2 publishers, {count} messages each, 4 frames; {runs} alternating runs, medians.");
    println!();
    println!(
        "| S | payload | broker | delivered msg/s | broker CPU s per M delivered | \
         clients' CPU s per M delivered | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut ratios = Vec::new();
    let mut cells: Vec<Cell> = Vec::new();
    let fanouts = if arg("throughput").as_deref() == Some("off") {
        Vec::new()
    } else {
        fanouts
    };
    for &s in &fanouts {
        for &size in &sizes {
            let n = if size >= 4096 { count / 4 } else { count };
            let mut samples: Vec<Vec<Throughput>> = impls.iter().map(|_| Vec::new()).collect();
            for _ in 0..runs {
                for (i, &imp) in impls.iter().enumerate() {
                    if only.is_some_and(|o| o != imp) {
                        continue;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                    samples[i].push(throughput(imp, reactors, 2, s, size, n));
                }
            }
            if only.is_some() {
                for t in samples.iter().flatten() {
                    println!(
                        "| {s} | {size} B | {:.0} msg/s | {:.2} s/M | clients {:.2} s/M |",
                        t.rate, t.cpu_s_per_m, t.clients_s_per_m
                    );
                }
                continue;
            }
            let mut cell = Vec::new();
            let mut clients = Vec::new();
            for (imp, samples) in impls.iter().zip(&samples) {
                let rate = median(samples.iter().map(|t| t.rate).collect());
                let cpu = median(samples.iter().map(|t| t.cpu_s_per_m).collect());
                let client_cpu = median(samples.iter().map(|t| t.clients_s_per_m).collect());
                let rss = samples.iter().map(|t| t.peak_rss_kib).max().unwrap();
                println!(
                    "| {s} | {size} B | {} | {rate:.0} | {cpu:.2} | {client_cpu:.2} | {:.1} MiB |",
                    imp.name(),
                    rss as f64 / 1024.0
                );
                cell.push((rate, cpu, rss as f64));
                clients.push(client_cpu);
            }
            // With the clients costing what they did with zring, a broker
            // that used no CPU at all would deliver at most this much: every
            // core busy with the clients.
            cells.push((format!("S={s}, {size} B"), cell.clone()));
            for (z, imp) in impls.iter().enumerate().skip(1) {
                let ceiling = cores * 1e6 / clients[z];
                ratios.push((
                    imp.name(),
                    s,
                    size,
                    cell[z].0 / cell[0].0,
                    cell[z].1 / cell[0].1,
                    cell[z].2 / cell[0].2,
                    ceiling / cell[0].0,
                ));
            }
        }
    }
    if let Some(path) = arg("svg") {
        let chart = svg(&cells, &names(&impls), &[RATE_CHART, CPU_CHART]);
        std::fs::write(&path, chart).unwrap();
        eprintln!("wrote {path}");
    }
    println!();
    println!(
        "| S | payload | broker | /zmq_proxy msg/s | CPU per delivered msg | peak RSS | \
         msg/s a broker using no CPU would reach, /zmq_proxy |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, s, size, rate, cpu, rss, ceiling) in ratios {
        println!(
            "| {s} | {size} B | {name} | {rate:.2}× | {cpu:.2}× | {rss:.2}× | {ceiling:.2}× |"
        );
    }
    let on = |name: &str| arg(name).as_deref() == Some("on");
    if on("capacity") {
        capacity(&impls, runs, count, arg("svg-capacity").as_deref());
    }
    if on("scale") {
        scale(&impls, count, arg("svg-scale").as_deref());
    }
    if on("bench-latency") {
        let runs: usize = arg("latency-runs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        bench_latency(&impls, runs);
    }
    if arg("latency").as_deref() != Some("off") {
        let rate: u64 = arg("rate").and_then(|v| v.parse().ok()).unwrap_or(10_000);
        let latency_runs: usize = arg("latency-runs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        println!();
        println!(
            "Latency: one publisher at {rate} msg/s for 5 s, 64 B payload, one subscriber; \
             medians of {latency_runs} alternating runs (µs):"
        );
        println!();
        println!("| broker | p50 | p99 | p99.9 |");
        println!("|---|---|---|---|");
        // The third row has no broker: the same clients, the subscriber
        // connected to the publisher. What a broker adds is its row less
        // this one.
        let routes: Vec<Option<Impl>> = impls.iter().copied().map(Some).chain([None]).collect();
        let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); routes.len()];
        for _ in 0..latency_runs {
            for (i, &imp) in routes.iter().enumerate() {
                results[i].push(latency(imp, reactors, rate, 5));
            }
        }
        let mut p99s = Vec::new();
        for (imp, r) in routes.iter().zip(&results) {
            let p50 = median(r.iter().map(|x| x.0).collect());
            let p99 = median(r.iter().map(|x| x.1).collect());
            let p999 = median(r.iter().map(|x| x.2).collect());
            let name = imp.map_or("none (publisher to subscriber)".into(), |imp| imp.name());
            println!("| {name} | {p50:.0} | {p99:.0} | {p999:.0} |");
            p99s.push(p99);
        }
        println!();
        for (z, imp) in impls.iter().enumerate().skip(1) {
            println!("{}/zmq_proxy p99: {:.2}x", imp.name(), p99s[z] / p99s[0]);
        }
    }
}

/// `zring bench`, built beside this example (target/release/zring).
fn zring_exe() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let zring = exe
        .parent()
        .and_then(|examples| examples.parent())
        .expect("target/release/examples/broker")
        .join("zring");
    assert!(
        zring.exists(),
        "{} is missing: run `cargo build --release` first",
        zring.display()
    );
    zring
}

/// Runs `zring bench WHAT ARGS --json` against `server` (or no broker).
fn generator(server: Option<&Server>, what: &str, args: &[String]) -> serde_json::Value {
    let mut command = Command::new(zring_exe());
    command.args(["bench", what, "--json", "--timeout", "30"]);
    if let Some(server) = server {
        command
            .args(["--connect-xpub-endpoint", &server.xsub])
            .args(["--connect-xsub-endpoint", &server.xpub])
            .args(["--broker-pid", &server.child.id().to_string()]);
    }
    let out = command.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "zring bench {what} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

/// Capacity: P = 2, S = 4, as fast as each broker takes them, with a
/// generator cheaper than the broker.
fn capacity(impls: &[Impl], runs: usize, count: u64, svg_path: Option<&str>) {
    println!();
    println!(
        "Capacity, `zring bench pubsub` (P=2, S=4, 4 frames, blocking sends), {count} \
         messages per publisher; medians of {runs} alternating runs:"
    );
    println!();
    println!(
        "| payload | broker | delivered msg/s | broker CPU s per M | generator CPU s per M | \
         broker peak RSS | lost |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut cells: Vec<Cell> = Vec::new();
    let mut ratios = Vec::new();
    for size in [64usize, 512, 4096] {
        let n = if size >= 4096 { count / 4 } else { count };
        let mut samples: Vec<Vec<serde_json::Value>> = impls.iter().map(|_| Vec::new()).collect();
        for _ in 0..runs {
            for (i, &imp) in impls.iter().enumerate() {
                std::thread::sleep(Duration::from_millis(200));
                let server = Server::start(imp, 1);
                let args: Vec<String> = ["--messages", &n.to_string(), "--size", &size.to_string()]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                samples[i].push(generator(Some(&server), "pubsub", &args));
            }
        }
        let mut cell = Vec::new();
        for (imp, runs) in impls.iter().zip(&samples) {
            let m = |k: &str| median(runs.iter().map(|v| num(v, k)).collect());
            let lost: f64 = runs.iter().map(|v| num(v, "lost")).sum();
            let (rate, cpu, gen) = (
                m("delivered_per_s"),
                m("broker_cpu_s_per_million"),
                m("generator_cpu_s_per_million"),
            );
            let rss = m("broker_peak_rss_bytes");
            println!(
                "| {size} B | {} | {rate:.0} | {cpu:.3} | {gen:.3} | {:.1} MiB | {lost} |",
                imp.name(),
                rss / (1 << 20) as f64
            );
            cell.push((rate, cpu, rss));
        }
        for (z, imp) in impls.iter().enumerate().skip(1) {
            ratios.push((
                imp.name(),
                size,
                cell[z].0 / cell[0].0,
                cell[z].1 / cell[0].1,
            ));
        }
        cells.push((format!("{size} B, S=4"), cell));
    }
    println!();
    println!("| payload | broker | /zmq_proxy msg/s | /zmq_proxy broker CPU per delivered msg |");
    println!("|---|---|---|---|");
    for (name, size, rate, cpu) in ratios {
        println!("| {size} B | {name} | {rate:.2}× | {cpu:.2}× |");
    }
    if let Some(path) = svg_path {
        let chart = svg(&cells, &names(impls), &[RATE_CHART, CPU_CHART]);
        std::fs::write(path, chart).unwrap();
        eprintln!("wrote {path}");
    }
}

/// Scale: broker CPU per delivered message as connections and
/// subscriptions grow, 64 B, P = 2, S = 4.
fn scale(impls: &[Impl], count: u64, svg_path: Option<&str>) {
    println!();
    println!(
        "Scale, `zring bench pubsub` (P=2, S=4, 64 B), {count} messages per publisher: \
         idle nodes (an XPUB and an XSUB each) add connections, and subscriptions per node \
         add prefixes nothing is published on:"
    );
    println!();
    println!(
        "| connections | subscriptions | broker | delivered msg/s | broker CPU s per M | \
         growth from the first row | subscriptions not forwarded |"
    );
    println!("|---|---|---|---|---|---|---|");
    // (idle nodes, subscriptions per node): 6 + 2 × idle connections, and
    // (4 + idle) × per-node subscriptions in all.
    let steps: [(usize, usize); 6] = [(1, 2), (29, 2), (253, 2), (0, 3), (0, 250), (0, 2500)];
    let mut series: Vec<Vec<(String, f64)>> = impls.iter().map(|_| Vec::new()).collect();
    let mut first: Vec<Option<f64>> = vec![None; impls.len()];
    for (step, &(idle, per_node)) in steps.iter().enumerate() {
        if step == 3 {
            first = vec![None; impls.len()];
        }
        let connections = 6 + 2 * idle;
        let subscriptions = (4 + idle) * per_node;
        for (i, &imp) in impls.iter().enumerate() {
            std::thread::sleep(Duration::from_millis(200));
            let server = Server::start(imp, 1);
            let args: Vec<String> = [
                "--messages",
                &count.to_string(),
                "--connections",
                &idle.to_string(),
                "--subscriptions-per-subscriber",
                &per_node.to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let v = generator(Some(&server), "pubsub", &args);
            let cpu = num(&v, "broker_cpu_s_per_million");
            let base = *first[i].get_or_insert(cpu);
            println!(
                "| {connections} | {subscriptions} | {} | {:.0} | {cpu:.3} | {:.2}× | {} |",
                imp.name(),
                num(&v, "delivered_per_s"),
                cpu / base,
                num(&v, "subscriptions_missing")
            );
            series[i].push((format!("{connections} conns, {subscriptions} subs"), cpu));
        }
    }
    if let Some(path) = svg_path {
        let cells: Vec<Cell> = (0..steps.len())
            .map(|k| {
                (
                    series[0][k].0.clone(),
                    series.iter().map(|s| (0.0, s[k].1, 0.0)).collect(),
                )
            })
            .collect();
        let chart = svg(&cells, &names(impls), &[CPU_GROWTH_CHART]);
        std::fs::write(path, chart).unwrap();
        eprintln!("wrote {path}");
    }
}

/// Latency with `zring bench latency`: p99 through each broker and with no
/// broker at all, at 10k and 100k msg/s; what a broker adds is the
/// difference.
fn bench_latency(impls: &[Impl], runs: usize) {
    println!();
    println!(
        "Latency, `zring bench latency` (one publisher at a fixed rate, 5 s, 64 B, intended \
         send times), medians of {runs} alternating runs, µs:"
    );
    println!();
    println!("| rate | broker | p50 | p99 | p99.9 | broker-added p99 |");
    println!("|---|---|---|---|---|---|");
    for rate in [10_000u64, 100_000] {
        let args: Vec<String> = ["--rate", &rate.to_string(), "--duration", "5"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut samples: Vec<Vec<serde_json::Value>> = vec![Vec::new(); impls.len() + 1];
        for _ in 0..runs {
            for (i, &imp) in impls.iter().enumerate() {
                let server = Server::start(imp, 1);
                samples[i].push(generator(Some(&server), "latency", &args));
            }
            let mut direct = args.clone();
            direct.push("--direct".into());
            samples[impls.len()].push(generator(None, "latency", &direct));
        }
        let m = |runs: &Vec<serde_json::Value>, k: &str| {
            median(runs.iter().map(|v| num(v, k)).collect())
        };
        let floor = m(&samples[impls.len()], "p99_us");
        let mut added = Vec::new();
        for (i, runs) in samples.iter().enumerate() {
            let name = impls
                .get(i)
                .map_or("none (--direct)".to_owned(), |imp| imp.name());
            let p99 = m(runs, "p99_us");
            let extra = if i < impls.len() {
                added.push(p99 - floor);
                format!("{:.0}", p99 - floor)
            } else {
                "-".into()
            };
            println!(
                "| {rate} | {name} | {:.0} | {p99:.0} | {:.0} | {extra} |",
                m(runs, "p50_us"),
                m(runs, "p999_us")
            );
        }
        for (z, imp) in impls.iter().enumerate().skip(1) {
            println!(
                "{} broker-added p99 /zmq_proxy at {rate} msg/s: {:.2}x",
                imp.name(),
                added[z] / added[0]
            );
        }
    }
}
