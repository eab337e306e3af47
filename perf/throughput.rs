//! End-to-end throughput: zring and libzmq in one run, on one machine.
//!
//! Each side of each test is its own process, so its CPU time can be read
//! from `/proc/self/stat` (utime + stime) and nothing is shared but the
//! loopback. Patterns: PUSH→PULL, and XPUB (NODROP, so nothing is lost and
//! the count is exact) → SUB. The receiver times from its first message to
//! its last; each side reports its CPU time. The table gives messages per
//! second and CPU microseconds per message for both implementations, and
//! zring's ratio to libzmq.
//!
//! ```text
//! cargo run --release --example throughput            # the full table
//! cargo run --release --example throughput -- --runs 1 --count-64 200000
//! cargo run --release --example throughput -- --pattern pushpull --size 64
//! ```
//!
//! Runs alternate between libzmq and zring, so that a change in the load of
//! a shared machine during a cell falls on both; medians are per
//! implementation.

#[path = "support/measure.rs"]
mod measure;
#[path = "support/pair.rs"]
mod pair;

use std::time::Instant;

use measure::process_cpu_seconds as cpu_seconds;
use pair::{print_cell, print_ratios, run_cell, run_sized, Sample, CELL_HEADER};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    Zring,
    Libzmq,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pattern {
    PushPull,
    PubSub,
}

fn parse_args() -> std::collections::HashMap<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut map = std::collections::HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let key = args[i].trim_start_matches("--").to_owned();
        let value = args.get(i + 1).cloned().unwrap_or_default();
        map.insert(key, value);
        i += 2;
    }
    map
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let args = parse_args();
    match args.get("role").map(String::as_str) {
        Some("recv") => receiver(&args),
        Some("send") => sender(&args),
        _ => orchestrate(&args),
    }
}

fn get<T: std::str::FromStr>(args: &std::collections::HashMap<String, String>, k: &str) -> T {
    args.get(k)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("missing or bad --{k}"))
}

fn parse_impl(s: &str) -> Impl {
    match s {
        "zring" => Impl::Zring,
        "libzmq" => Impl::Libzmq,
        other => panic!("unknown impl {other}"),
    }
}

fn parse_pattern(s: &str) -> Pattern {
    match s {
        "pushpull" => Pattern::PushPull,
        "pubsub" => Pattern::PubSub,
        other => panic!("unknown pattern {other}"),
    }
}

/// Binds, prints `ready ENDPOINT`, receives `count` messages, prints
/// `done SECONDS CPU`.
fn receiver(args: &std::collections::HashMap<String, String>) {
    let imp = parse_impl(&args["impl"]);
    let pattern = parse_pattern(&args["pattern"]);
    let count: u64 = get(args, "count");
    let (first, last) = match imp {
        Impl::Zring => {
            let ctx = zring::Context::new().unwrap();
            let kind = match pattern {
                Pattern::PushPull => zring::SocketKind::Pull,
                Pattern::PubSub => zring::SocketKind::Sub,
            };
            let mut s = ctx.socket(kind);
            if pattern == Pattern::PubSub {
                s.subscribe(b"").unwrap();
            }
            let endpoint = s.bind("tcp://127.0.0.1:*").unwrap();
            println!("ready {endpoint}");
            let _ = s.recv(zring::Wait::Block).unwrap();
            let first = Instant::now();
            for _ in 1..count {
                let _ = s.recv(zring::Wait::Block).unwrap();
            }
            (first, Instant::now())
        }
        Impl::Libzmq => {
            let ctx = zmq::Context::new();
            let kind = match pattern {
                Pattern::PushPull => zmq::PULL,
                Pattern::PubSub => zmq::SUB,
            };
            let s = ctx.socket(kind).unwrap();
            if pattern == Pattern::PubSub {
                s.set_subscribe(b"").unwrap();
            }
            s.bind("tcp://127.0.0.1:*").unwrap();
            println!("ready {}", s.get_last_endpoint().unwrap().unwrap());
            let mut msg = zmq::Message::new();
            s.recv(&mut msg, 0).unwrap();
            let first = Instant::now();
            for _ in 1..count {
                s.recv(&mut msg, 0).unwrap();
            }
            (first, Instant::now())
        }
    };
    println!("done {} {}", (last - first).as_secs_f64(), cpu_seconds());
}

/// Connects, sends `count` messages of `size` bytes, prints `done CPU`.
fn sender(args: &std::collections::HashMap<String, String>) {
    let imp = parse_impl(&args["impl"]);
    let pattern = parse_pattern(&args["pattern"]);
    let count: u64 = get(args, "count");
    let size: usize = get(args, "size");
    let endpoint = &args["endpoint"];
    let payload = vec![b'z'; size];
    match imp {
        Impl::Zring => {
            let ctx = zring::Context::new().unwrap();
            let kind = match pattern {
                Pattern::PushPull => zring::SocketKind::Push,
                Pattern::PubSub => zring::SocketKind::Xpub,
            };
            let mut s = ctx.socket(kind);
            s.set(zring::SocketOption::XpubNodrop(true)).unwrap();
            s.connect(endpoint).unwrap();
            if pattern == Pattern::PubSub {
                // XPUB reports the subscription: then nothing is lost.
                let _ = s.recv(zring::Wait::Block).unwrap();
            }
            // Copying the payload, as zmq_send does.
            for _ in 0..count {
                s.send_copy(&[&payload], zring::Wait::Block).unwrap();
            }
            drop(s);
            drop(ctx); // lingers until everything is sent
        }
        Impl::Libzmq => {
            let ctx = zmq::Context::new();
            let kind = match pattern {
                Pattern::PushPull => zmq::PUSH,
                Pattern::PubSub => zmq::XPUB,
            };
            let mut s = ctx.socket(kind).unwrap();
            if pattern == Pattern::PubSub {
                let one: i32 = 1;
                // SAFETY: a live socket and a live i32 of the size given;
                // 69 is ZMQ_XPUB_NODROP, which the zmq crate does not wrap.
                let rc = unsafe {
                    zmq_sys::zmq_setsockopt(
                        s.as_mut_ptr(),
                        69,
                        (&one as *const i32).cast(),
                        std::mem::size_of::<i32>(),
                    )
                };
                assert_eq!(rc, 0, "ZMQ_XPUB_NODROP");
            }
            s.connect(endpoint).unwrap();
            if pattern == Pattern::PubSub {
                let _ = s.recv_bytes(0).unwrap();
            }
            for _ in 0..count {
                s.send(&payload[..], 0).unwrap();
            }
            drop(s);
            drop(ctx);
        }
    }
    println!("done {}", cpu_seconds());
}

fn run_once(imp: Impl, pattern: Pattern, size: usize, count: u64) -> Sample {
    let name = if imp == Impl::Zring {
        "zring"
    } else {
        "libzmq"
    };
    let pat = if pattern == Pattern::PushPull {
        "pushpull"
    } else {
        "pubsub"
    };
    let common = [
        "--impl",
        name,
        "--pattern",
        pat,
        "--count",
        &count.to_string(),
    ]
    .map(String::from);
    run_sized(&common, size, count)
}

fn label(pattern: Pattern) -> &'static str {
    if pattern == Pattern::PushPull {
        "PUSH→PULL"
    } else {
        "XPUB→SUB"
    }
}

fn orchestrate(args: &std::collections::HashMap<String, String>) {
    let runs: usize = args.get("runs").and_then(|v| v.parse().ok()).unwrap_or(5);
    let count_64: u64 = args
        .get("count-64")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let count_4k: u64 = args
        .get("count-4k")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    // `--backend io_uring|epoll`: the zring processes' driver (they read
    // ZRING_BACKEND; the libzmq ones ignore it).
    let zring_name = match args.get("backend") {
        Some(backend) => {
            std::env::set_var("ZRING_BACKEND", backend);
            format!("zring ({backend})")
        }
        None => "zring".to_owned(),
    };
    println!("{CELL_HEADER}");
    let patterns: Vec<Pattern> = match args.get("pattern").map(String::as_str) {
        None => vec![Pattern::PushPull, Pattern::PubSub],
        Some(p) => vec![parse_pattern(p)],
    };
    let sizes: Vec<(usize, u64)> = match args.get("size").map(String::as_str) {
        None => vec![(64, count_64), (4096, count_4k)],
        Some("64") => vec![(64, count_64)],
        Some("4096") => vec![(4096, count_4k)],
        Some(other) => panic!("--size is 64 or 4096, not {other}"),
    };
    let mut cells = Vec::new();
    for &pattern in &patterns {
        for &(size, count) in &sizes {
            let [libzmq, zring] = run_cell(runs, |zring| {
                let imp = if zring { Impl::Zring } else { Impl::Libzmq };
                run_once(imp, pattern, size, count)
            });
            print_cell(label(pattern), size, "libzmq 4.3.4", &libzmq);
            print_cell(label(pattern), size, &zring_name, &zring);
            cells.push((label(pattern), size, libzmq, zring));
        }
    }
    let rows: Vec<_> = cells.iter().map(|(p, s, l, z)| (*p, *s, l, z)).collect();
    print_ratios(&rows);
}
