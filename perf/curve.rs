//! Encrypted throughput: zring and libzmq 4.3.5, both speaking CURVE, in one
//! run on one machine.
//!
//! libzmq is the copy pyzmq's wheel bundles (built with libsodium), loaded
//! from the tests' venv at run time (`perf/support/libzmq_dl.rs`): the `zmq`
//! crate's libzmq has no CURVE. The venv is made on first use, as the tests
//! make it.
//!
//! The receiver binds and is the CURVE server, the sender connects as the
//! client, as Zeek's nodes connect to the broker and the logger. Each side
//! is its own process, so its CPU time is its own (`/proc/self/stat`,
//! utime + stime); the receiver is timed and charged from its first message
//! to its last, the sender from its first send until its context has
//! flushed everything, so neither side's start-up or handshake counts.
//! Patterns: PUSH→PULL, and XPUB with NODROP → SUB (a PUB that waits
//! instead of dropping, so the count is exact, as in `perf/throughput.rs`).
//! Runs alternate between the implementations; figures are medians.
//!
//! ```text
//! cargo run --release --example curve                       # the full table
//! cargo run --release --example curve -- --runs 3 --pattern pushpull --size 4096
//! cargo run --release --example curve -- --security null    # the same, in clear
//! ```

#[path = "support/measure.rs"]
mod measure;
#[path = "support/pair.rs"]
mod pair;

#[path = "support/libzmq_dl.rs"]
mod libzmq_dl;
#[allow(dead_code)]
#[path = "../tests/support/venv.rs"]
mod venv;

use std::collections::HashMap;
use std::time::Instant;

use measure::process_cpu_seconds as cpu_seconds;
use pair::{print_cell, print_ratios, run_cell, run_sized, Sample, CELL_HEADER};
use zmtp_codec::{KeyPair, PublicKey, SecretKey};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    Zring,
    Libzmq,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Zring => "zring",
            Impl::Libzmq => "libzmq",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pattern {
    PushPull,
    PubSub,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::PushPull => "pushpull",
            Pattern::PubSub => "pubsub",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Pattern::PushPull => "PUSH→PULL",
            Pattern::PubSub => "XPUB→SUB",
        }
    }
}

/// Fixed keys: a benchmark needs no secrecy, and fixed keys keep runs alike.
fn server_secret() -> SecretKey {
    SecretKey::from_bytes([0x5a; 32])
}

fn client_secret() -> SecretKey {
    SecretKey::from_bytes([0xc3; 32])
}

struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> Args {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut map = HashMap::new();
        for pair in args.chunks(2) {
            let key = pair[0]
                .strip_prefix("--")
                .unwrap_or_else(|| panic!("not a flag: {}", pair[0]));
            map.insert(key.to_owned(), pair.get(1).cloned().unwrap_or_default());
        }
        Args(map)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        match self.get(key) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| panic!("--{key} {v}: not a number")),
        }
    }

    fn imp(&self) -> Impl {
        match self.get("impl") {
            Some("zring") => Impl::Zring,
            Some("libzmq") => Impl::Libzmq,
            other => panic!("--impl zring|libzmq, not {other:?}"),
        }
    }

    fn pattern(&self) -> Pattern {
        match self.get("pattern") {
            Some("pushpull") => Pattern::PushPull,
            Some("pubsub") => Pattern::PubSub,
            other => panic!("--pattern pushpull|pubsub, not {other:?}"),
        }
    }

    fn curve(&self) -> bool {
        match self.get("security").unwrap_or("curve") {
            "curve" => true,
            "null" => false,
            other => panic!("--security curve|null, not {other}"),
        }
    }
}

fn main() {
    let args = Args::parse();
    match args.get("role") {
        Some("recv") => receiver(&args),
        Some("send") => sender(&args),
        Some(other) => panic!("--role recv|send, not {other}"),
        None => orchestrate(&args),
    }
}

/// Binds (as the CURVE server), prints `ready ENDPOINT`, receives `--count`
/// messages, prints `done SECONDS CPU`, both from its first message.
fn receiver(args: &Args) {
    let pattern = args.pattern();
    let count: u64 = args.num("count", 0);
    let curve = args.curve();
    let (first, first_cpu, last) = match args.imp() {
        Impl::Zring => {
            let ctx = zring::Context::new().unwrap();
            let mut s = ctx.socket(match pattern {
                Pattern::PushPull => zring::SocketKind::Pull,
                Pattern::PubSub => zring::SocketKind::Sub,
            });
            if curve {
                s.set_security(zring::Security::curve_server(
                    KeyPair::from_secret(server_secret()),
                    zring::Access::default(),
                ))
                .unwrap();
            }
            if pattern == Pattern::PubSub {
                s.subscribe(b"").unwrap();
            }
            println!("ready {}", s.bind("tcp://127.0.0.1:*").unwrap());
            let _ = s.recv(zring::Wait::Block).unwrap();
            let (first, first_cpu) = (Instant::now(), cpu_seconds());
            for _ in 1..count {
                let _ = s.recv(zring::Wait::Block).unwrap();
            }
            (first, first_cpu, Instant::now())
        }
        Impl::Libzmq => {
            let lib = libzmq_dl::LibZmq::open(&venv::bundled_libzmq());
            let ctx = lib.context();
            let s = ctx.socket(match pattern {
                Pattern::PushPull => libzmq_dl::PULL,
                Pattern::PubSub => libzmq_dl::SUB,
            });
            if curve {
                s.set_int(libzmq_dl::CURVE_SERVER, 1);
                s.set_bytes(libzmq_dl::CURVE_SECRETKEY, server_secret().as_bytes());
            }
            if pattern == Pattern::PubSub {
                s.set_bytes(libzmq_dl::SUBSCRIBE, b"");
            }
            println!("ready {}", s.bind("tcp://127.0.0.1:*"));
            let mut msg = s.new_msg();
            s.recv(&mut msg);
            let (first, first_cpu) = (Instant::now(), cpu_seconds());
            for _ in 1..count {
                s.recv(&mut msg);
            }
            let last = Instant::now();
            s.close_msg(msg);
            (first, first_cpu, last)
        }
    };
    println!(
        "done {} {}",
        (last - first).as_secs_f64(),
        cpu_seconds() - first_cpu
    );
}

/// Connects (as the CURVE client), sends `--count` messages of `--size`
/// bytes, prints `done CPU` from the first send to the last byte flushed.
fn sender(args: &Args) {
    let pattern = args.pattern();
    let count: u64 = args.num("count", 0);
    let size: usize = args.num("size", 0);
    let endpoint = args.get("endpoint").expect("--endpoint");
    let curve = args.curve();
    let payload = vec![b'z'; size];
    let server_public = server_secret().public_key();
    let start_cpu;
    match args.imp() {
        Impl::Zring => {
            let ctx = zring::Context::new().unwrap();
            let mut s = ctx.socket(match pattern {
                Pattern::PushPull => zring::SocketKind::Push,
                Pattern::PubSub => zring::SocketKind::Xpub,
            });
            s.set(zring::SocketOption::XpubNodrop(true)).unwrap();
            if curve {
                s.set_security(zring::Security::curve_client(
                    KeyPair::from_secret(client_secret()),
                    PublicKey::from_bytes(*server_public.as_bytes()),
                ))
                .unwrap();
            }
            s.connect(endpoint).unwrap();
            if pattern == Pattern::PubSub {
                // The subscription has arrived: from here nothing is lost.
                let _ = s.recv(zring::Wait::Block).unwrap();
            }
            start_cpu = cpu_seconds();
            // Copying the payload, as zmq_send does.
            for _ in 0..count {
                s.send_copy(&[&payload], zring::Wait::Block).unwrap();
            }
            drop(s);
            drop(ctx); // lingers until everything is sent
        }
        Impl::Libzmq => {
            let lib = libzmq_dl::LibZmq::open(&venv::bundled_libzmq());
            let ctx = lib.context();
            let s = ctx.socket(match pattern {
                Pattern::PushPull => libzmq_dl::PUSH,
                Pattern::PubSub => libzmq_dl::XPUB,
            });
            if pattern == Pattern::PubSub {
                s.set_int(libzmq_dl::XPUB_NODROP, 1);
            }
            if curve {
                s.set_bytes(libzmq_dl::CURVE_SERVERKEY, server_public.as_bytes());
                s.set_bytes(
                    libzmq_dl::CURVE_PUBLICKEY,
                    client_secret().public_key().as_bytes(),
                );
                s.set_bytes(libzmq_dl::CURVE_SECRETKEY, client_secret().as_bytes());
            }
            s.connect(endpoint);
            if pattern == Pattern::PubSub {
                let mut msg = s.new_msg();
                s.recv(&mut msg);
                s.close_msg(msg);
            }
            start_cpu = cpu_seconds();
            for _ in 0..count {
                s.send(&payload);
            }
            drop(s);
            drop(ctx); // lingers until everything is sent
        }
    }
    println!("done {}", cpu_seconds() - start_cpu);
}

fn run_once(imp: Impl, pattern: Pattern, size: usize, count: u64, security: &str) -> Sample {
    let common = [
        "--impl",
        imp.name(),
        "--pattern",
        pattern.name(),
        "--security",
        security,
        "--count",
        &count.to_string(),
    ]
    .map(String::from);
    run_sized(&common, size, count)
}

fn orchestrate(args: &Args) {
    let runs: usize = args.num("runs", 5);
    let count_64: u64 = args.num("count-64", 1_000_000);
    let count_4k: u64 = args.num("count-4k", 200_000);
    let count_64k: u64 = args.num("count-64k", 20_000);
    // `--kernel portable|sse2|avx2`: the zring processes' Salsa20 kernel
    // (they read ZRING_CURVE_KERNEL; libzmq ignores it).
    let zring_name = match args.get("kernel") {
        Some(kernel) => {
            std::env::set_var("ZRING_CURVE_KERNEL", kernel);
            format!("zring ({kernel})")
        }
        None => format!("zring ({})", zmtp_codec::mechanism::curve_kernel().name()),
    };
    let security = if args.curve() { "curve" } else { "null" };
    // Load the library once here, so that a missing venv or a library
    // without CURVE is reported before any run.
    let _ = libzmq_dl::LibZmq::open(&venv::bundled_libzmq());
    let patterns = match args.get("pattern") {
        None => vec![Pattern::PushPull, Pattern::PubSub],
        Some(_) => vec![args.pattern()],
    };
    let sizes: Vec<(usize, u64)> = match args.get("size") {
        None => vec![(64, count_64), (4096, count_4k)],
        Some("64") => vec![(64, count_64)],
        Some("4096") => vec![(4096, count_4k)],
        Some("65536") => vec![(65536, count_64k)],
        Some(other) => panic!("--size is 64, 4096 or 65536, not {other}"),
    };
    println!("security: {security}");
    println!();
    println!("{CELL_HEADER}");
    let mut cells = Vec::new();
    for &pattern in &patterns {
        for &(size, count) in &sizes {
            let [libzmq, zring] = run_cell(runs, |zring| {
                let imp = if zring { Impl::Zring } else { Impl::Libzmq };
                run_once(imp, pattern, size, count, security)
            });
            print_cell(pattern.label(), size, "libzmq 4.3.5", &libzmq);
            print_cell(pattern.label(), size, &zring_name, &zring);
            cells.push((pattern.label(), size, libzmq, zring));
        }
    }
    let rows: Vec<_> = cells.iter().map(|(p, s, l, z)| (*p, *s, l, z)).collect();
    print_ratios(&rows);
}
