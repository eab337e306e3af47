//! `zring logger` benchmarks, against libzmq in the same run.
//!
//! - **ingest**: a libzmq PUSH (as Zeek's nodes use) sends 4-frame
//!   log-write messages of 1 KiB and 64 KiB batches; the receiver is a
//!   zring PULL configured as `zring logger` configures it, or a libzmq
//!   PULL configured as Zeek's logger (RCVHWM 1000). Each is its own
//!   process; the figure is the receiver's CPU time per message
//!   (`/proc/self/stat`) from its first message to its last, so start-up
//!   is left out for both; medians of alternating runs.
//! - **write**: decoding and writing conn-like batches (21 columns of
//!   mixed types, 1000 records a batch) to a file, ASCII and JSON, on one
//!   thread: records per CPU second of that thread.
//! - **e2e**: real records end to end. A libzmq PUSH, configured as Zeek's
//!   nodes configure it, replays the recording of a live Zeek 8.2 cluster's
//!   log batches (`perf/data`, 817 batches, 2,142 records on 20 paths)
//!   `--repeat` times (default 500) to a `zring logger` in its own process,
//!   set up as the binary sets it up (`LoggerConfig` defaults), which
//!   writes the files. Reported: the logger process's CPU per million
//!   records (all threads, `/proc/self/stat`, from its first record to its
//!   last), records/s, its peak RSS (`VmHWM`), and the sender's CPU.
//! - **stages**: the same recording on one thread, stage by stage: decode
//!   (parse and read every value), + format (into memory), + write (the
//!   logger's files): ns per record of each, the differences being each
//!   stage's cost.
//!
//! ```text
//! cargo run --release --example logger                  # both tables
//! cargo run --release --example logger -- --only write --records 2000000
//! cargo run --release --example logger -- --only ingest --runs 5
//! cargo run --release --example logger -- --only write --format json   # one format, e.g. to profile it
//! cargo run --release --example logger -- --only e2e --runs 3 --repeat 500
//! cargo run --release --example logger -- --only stages --repeat 200
//! ```

#[path = "support/measure.rs"]
mod measure;

#[path = "../tests/support/recording.rs"]
mod recording;
#[path = "../tests/support/zeek_batch.rs"]
mod zeek_batch;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use measure::{median, process_cpu_seconds, thread_cpu_seconds};
use zring::logger::batch::{Batch, HeaderCache};
use zring::logger::config::LoggerConfig;
use zring::logger::files::{FileOptions, Fsync, LogFiles};

const NODE_ID: &str = "zeromq_worker-1_box_4242_NwrZBf1q3FkxySjt2a";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == &format!("--{name}"))
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    match arg("role").as_deref() {
        Some("recv") => receiver(),
        Some("send") => sender(),
        Some("logger") => e2e_logger(),
        Some("replay") => replayer(),
        _ => orchestrate(),
    }
}

/// Binds, receives `--count` messages, prints `done ELAPSED CPU`.
fn receiver() {
    let count: u64 = arg("count").unwrap().parse().unwrap();
    // Timed, and charged, from the first message on: start-up (the receive
    // pool, the context's threads, the handshake) is not per message.
    let ((first, first_cpu), last) = if arg("impl").as_deref() == Some("zring") {
        // Exactly as `zring logger` sets up its reactor and PULL socket.
        let mut config = LoggerConfig::new("tcp://127.0.0.1:*");
        if let Some(bytes) = arg("rcvbuf") {
            config.rcvbuf = Some(bytes.parse().unwrap());
        }
        if let Some(us) = arg("wake-delay-us") {
            config.wake_delay = Some(Duration::from_micros(us.parse().unwrap()));
        }
        if let Some(us) = arg("coalesce-us") {
            config.coalesce =
                Some(Duration::from_micros(us.parse().unwrap())).filter(|d| !d.is_zero());
        }
        let mut reactor = config.reactor_config();
        if let Some(kib) = arg("buffer-kib") {
            // Same pool size in bytes, in buffers of another size.
            let pool = usize::from(reactor.buffer_count) * reactor.buffer_size;
            reactor.buffer_size = kib.parse::<usize>().unwrap() * 1024;
            reactor.buffer_count = u16::try_from(pool / reactor.buffer_size).unwrap();
        }
        if let Some(count) = arg("buffer-count") {
            reactor.buffer_count = count.parse().unwrap();
        }
        if let Some(on) = arg("incremental") {
            reactor.incremental_buffers = on.parse().unwrap();
        }
        let ctx = zring::Context::with_config(&reactor).unwrap();
        let mut s = ctx.socket(zring::SocketKind::Pull);
        for option in config.socket_options() {
            s.set(option).unwrap();
        }
        let endpoint = s.bind("tcp://127.0.0.1:*").unwrap();
        println!("ready {endpoint}");
        let first_message = s.recv(zring::Wait::Block).unwrap();
        assert_eq!(first_message.frame_count(), 4);
        let first = (Instant::now(), process_cpu_seconds());
        for _ in 1..count {
            let _ = s.recv(zring::Wait::Block).unwrap();
        }
        (first, Instant::now())
    } else {
        let ctx = zmq::Context::new();
        let s = ctx.socket(zmq::PULL).unwrap();
        s.set_rcvhwm(1000).unwrap();
        s.bind("tcp://127.0.0.1:*").unwrap();
        println!("ready {}", s.get_last_endpoint().unwrap().unwrap());
        // Zeek's logger receives a whole multipart message per batch.
        let parts = s.recv_multipart(0).unwrap();
        assert_eq!(parts.len(), 4);
        let first = (Instant::now(), process_cpu_seconds());
        let mut msg = zmq::Message::new();
        for _ in 1..count {
            loop {
                s.recv(&mut msg, 0).unwrap();
                if !msg.get_more() {
                    break;
                }
            }
        }
        (first, Instant::now())
    };
    println!(
        "done {} {}",
        (last - first).as_secs_f64(),
        process_cpu_seconds() - first_cpu
    );
}

/// A libzmq PUSH as Zeek configures it, sending log-write messages.
fn sender() {
    let count: u64 = arg("count").unwrap().parse().unwrap();
    let size: usize = arg("size").unwrap().parse().unwrap();
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::PUSH).unwrap();
    s.set_sndhwm(1000).unwrap();
    s.set_linger(-1).unwrap();
    s.connect(&arg("endpoint").unwrap()).unwrap();
    let payload = vec![0x5a; size];
    for _ in 0..count {
        s.send("log-write", zmq::SNDMORE).unwrap();
        s.send(NODE_ID, zmq::SNDMORE).unwrap();
        s.send("zeek-bin-serializer", zmq::SNDMORE).unwrap();
        s.send(&payload[..], 0).unwrap();
    }
    drop(s);
    drop(ctx);
}

struct Sample {
    rate: f64,
    recv_cpu_us: f64,
}

fn ingest_once(zring: bool, size: usize, count: u64) -> Sample {
    let exe = std::env::current_exe().unwrap();
    let imp = if zring { "zring" } else { "libzmq" };
    let mut recv = Command::new(&exe)
        .args([
            "--role",
            "recv",
            "--impl",
            imp,
            "--count",
            &count.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(recv.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    let endpoint = ready.strip_prefix("ready ").unwrap().to_owned();
    let status = Command::new(&exe)
        .args(["--role", "send", "--count", &count.to_string()])
        .args(["--size", &size.to_string(), "--endpoint", &endpoint])
        .status()
        .unwrap();
    assert!(status.success());
    let done = lines.next().unwrap().unwrap();
    recv.wait().unwrap();
    let mut parts = done.strip_prefix("done ").unwrap().split(' ');
    let elapsed: f64 = parts.next().unwrap().parse().unwrap();
    let cpu: f64 = parts.next().unwrap().parse().unwrap();
    Sample {
        rate: (count - 1) as f64 / elapsed,
        recv_cpu_us: cpu * 1e6 / (count - 1) as f64,
    }
}

fn ingest(runs: usize) {
    println!("| message | receiver | msg/s | receiver CPU µs/msg |");
    println!("|---|---|---|---|");
    let mut ratios = Vec::new();
    for (size, count) in [(1024usize, 300_000u64), (65536, 30_000)] {
        let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..runs {
            for (i, zring) in [false, true].into_iter().enumerate() {
                std::thread::sleep(Duration::from_millis(200));
                samples[i].push(ingest_once(zring, size, count));
            }
        }
        let mut cpu = [0.0; 2];
        for (i, name) in ["libzmq 4.3.4 PULL", "zring PULL"].into_iter().enumerate() {
            let rate = median(samples[i].iter().map(|s| s.rate).collect());
            cpu[i] = median(samples[i].iter().map(|s| s.recv_cpu_us).collect());
            println!(
                "| {} KiB | {name} | {rate:.0} | {:.3} |",
                size / 1024,
                cpu[i]
            );
        }
        ratios.push((size, cpu[1] / cpu[0]));
    }
    println!();
    for (size, ratio) in ratios {
        println!(
            "ingest {} KiB: zring/libzmq receiver CPU per message = {ratio:.2}×",
            size / 1024
        );
    }
}

/// `only`: "ascii" or "json" for one of them alone, None for both.
fn write(records: u64, only: Option<&str>) {
    let batch_records = 1000;
    let bytes = Bytes::from(zeek_batch::conn_batch(batch_records));
    let batches = records.div_ceil(batch_records);
    println!();
    println!("| format | records | records/s (thread CPU) | ns/record | MB/s written |");
    println!("|---|---|---|---|---|");
    for (name, format) in [
        (
            "ASCII",
            Box::new(zring::logger::ascii::Ascii) as Box<dyn zring::logger::format::LogFormat>,
        ),
        ("JSON", Box::new(zring::logger::json::Json)),
    ] {
        if only.is_some_and(|f| !f.eq_ignore_ascii_case(name)) {
            continue;
        }
        let dir = std::env::temp_dir().join(format!("zring-logger-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // As `zring logger` keeps them by default (fsync at rotation).
        let options = FileOptions {
            gzip: false,
            max_paths: 16,
            fsync: Fsync::Rotate,
            rotation: Default::default(),
        };
        let mut files = LogFiles::new(&dir, format, options);
        let mut written = 0u64;
        let cpu0 = thread_cpu_seconds();
        for _ in 0..batches {
            let batch = Batch::parse(bytes.clone()).unwrap();
            written += files.write(&batch, SystemTime::now()).unwrap().bytes;
            assert!(files.flush().is_empty());
        }
        let cpu = thread_cpu_seconds() - cpu0;
        files.close_all(SystemTime::now(), false);
        std::fs::remove_dir_all(&dir).unwrap();
        let n = batches * batch_records;
        println!(
            "| {name} | {n} | {:.0} | {:.0} | {:.0} |",
            n as f64 / cpu,
            cpu * 1e9 / n as f64,
            written as f64 / cpu / 1e6
        );
    }
}

/// The recording's messages, each as its frames.
fn recording() -> Vec<Vec<Vec<u8>>> {
    let bytes = std::fs::read(recording::zeek_cluster_recording()).expect("perf/data");
    recording::read_messages(&bytes)
}

/// Records in the recording.
fn recorded_records(messages: &[Vec<Vec<u8>>]) -> u64 {
    messages
        .iter()
        .map(|m| {
            u64::from(
                Batch::parse(Bytes::from(m[3].clone()))
                    .unwrap()
                    .num_records(),
            )
        })
        .sum()
}

/// A `zring logger` in this process, as the binary starts one: prints
/// `ready ENDPOINT`, waits for `--records`, prints `done ELAPSED CPU
/// PEAK_RSS_KB`, and stops.
fn e2e_logger() {
    let records: u64 = arg("records").unwrap().parse().unwrap();
    let dir = std::env::temp_dir().join(format!("zring-logger-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = LoggerConfig::new("tcp://127.0.0.1:*");
    config.dir = dir.clone();
    if arg("format").as_deref() == Some("json") {
        config.format = zring::logger::LogFormatKind::Json;
    }
    let logger = zring::logger::Logger::start(config).unwrap();
    println!("ready {}", logger.endpoint());
    let poll = Duration::from_millis(2);
    while logger.stats().records == 0 {
        std::thread::sleep(poll);
    }
    let (first, first_cpu) = (Instant::now(), process_cpu_seconds());
    while logger.stats().records < records {
        std::thread::sleep(poll);
    }
    let (elapsed, cpu) = (first.elapsed(), process_cpu_seconds() - first_cpu);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    println!("done {} {cpu} {peak_kb}", elapsed.as_secs_f64());
    let stats = logger.shutdown();
    assert_eq!(stats.records, records, "{stats:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A libzmq PUSH as Zeek's nodes configure it (SNDHWM 1000), replaying
/// the recording `--repeat` times; prints its CPU seconds.
fn replayer() {
    let repeat: u64 = arg("repeat").unwrap().parse().unwrap();
    let messages = recording();
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::PUSH).unwrap();
    s.set_sndhwm(1000).unwrap();
    s.set_linger(-1).unwrap();
    s.connect(&arg("endpoint").unwrap()).unwrap();
    let cpu0 = process_cpu_seconds();
    for _ in 0..repeat {
        for m in &messages {
            s.send_multipart(m, 0).unwrap();
        }
    }
    println!("{}", process_cpu_seconds() - cpu0);
    drop(s);
    drop(ctx);
}

struct E2e {
    rate: f64,
    cpu_s_per_m: f64,
    peak_mb: f64,
    sender_us: f64,
}

fn e2e_once(format: &str, repeat: u64, records: u64) -> E2e {
    let exe = std::env::current_exe().unwrap();
    let mut logger = Command::new(&exe)
        .args(["--role", "logger", "--format", format])
        .args(["--records", &(records * repeat).to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(logger.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    let endpoint = ready.strip_prefix("ready ").unwrap().to_owned();
    let sender = Command::new(&exe)
        .args(["--role", "replay", "--repeat", &repeat.to_string()])
        .args(["--endpoint", &endpoint])
        .output()
        .unwrap();
    assert!(sender.status.success());
    let sender_cpu: f64 = String::from_utf8_lossy(&sender.stdout)
        .trim()
        .parse()
        .unwrap();
    let done = lines.next().unwrap().unwrap();
    assert!(logger.wait().unwrap().success());
    let parts: Vec<f64> = done
        .strip_prefix("done ")
        .unwrap()
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    let n = (records * repeat) as f64;
    E2e {
        rate: n / parts[0],
        cpu_s_per_m: parts[1] * 1e6 / n,
        peak_mb: parts[2] / 1024.0,
        sender_us: sender_cpu * 1e6 / n,
    }
}

fn e2e(runs: usize, repeat: u64) {
    let records = recorded_records(&recording());
    println!(
        "real records: {records} a pass of the recording, {repeat} passes, {} records a run",
        records * repeat
    );
    println!();
    println!(
        "| format | logger CPU s per M records | records/s | peak RSS MB | sender CPU µs/record |"
    );
    println!("|---|---|---|---|---|");
    for format in ["ascii", "json"] {
        let samples: Vec<E2e> = (0..runs)
            .map(|_| e2e_once(format, repeat, records))
            .collect();
        let m = |f: fn(&E2e) -> f64| median(samples.iter().map(f).collect());
        println!(
            "| {format} | {:.2} | {:.0} | {:.0} | {:.2} |",
            m(|s| s.cpu_s_per_m),
            m(|s| s.rate),
            m(|s| s.peak_mb),
            m(|s| s.sender_us)
        );
    }
}

/// The recording through each stage on this thread, `repeat` times.
fn stages(repeat: u64) {
    let messages = recording();
    let batches: Vec<Bytes> = messages.iter().map(|m| Bytes::from(m[3].clone())).collect();
    let n = (recorded_records(&messages) * repeat) as f64;
    println!("| format | decode ns/record | + format | + write (files) |");
    println!("|---|---|---|---|");
    for (name, format) in [
        (
            "ascii",
            Box::new(zring::logger::ascii::Ascii) as Box<dyn zring::logger::format::LogFormat>,
        ),
        ("json", Box::new(zring::logger::json::Json)),
    ] {
        // Headers through a cache, as the logger's writer parses them.
        let timed = |work: &mut dyn FnMut(&Batch)| {
            let mut headers = HeaderCache::default();
            let cpu0 = thread_cpu_seconds();
            for _ in 0..repeat {
                for b in &batches {
                    work(&Batch::parse_cached(b.clone(), &mut headers).unwrap());
                }
            }
            (thread_cpu_seconds() - cpu0) * 1e9 / n
        };
        let decode = timed(&mut |batch| {
            let mut values = Vec::new();
            let mut records = batch.records();
            while records.next_into(&mut values).unwrap() {
                std::hint::black_box(&values);
            }
        });
        let mut out = Vec::with_capacity(1 << 20);
        // One writer per schema, as the logger keeps one per open file.
        let mut writers = std::collections::HashMap::new();
        let formatted = timed(&mut |batch| {
            let mut values = Vec::new();
            let mut records = batch.records();
            let w = writers
                .entry(std::sync::Arc::as_ptr(batch.shared_header()))
                .or_insert_with(|| format.record_writer(batch.header()));
            out.clear();
            while records.next_into(&mut values).unwrap() {
                w.write(&values, &mut out);
            }
            std::hint::black_box(&out);
        });
        let dir = std::env::temp_dir().join(format!("zring-logger-stages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let options = FileOptions {
            gzip: false,
            max_paths: 64,
            fsync: Fsync::Rotate,
            rotation: Default::default(),
        };
        let fmt: Box<dyn zring::logger::format::LogFormat> = if name == "json" {
            Box::new(zring::logger::json::Json)
        } else {
            Box::new(zring::logger::ascii::Ascii)
        };
        let mut files = LogFiles::new(&dir, fmt, options);
        // Staged and written as the writer does: at 256 KiB staged (and,
        // in the logger, whenever the queue runs empty).
        let written = timed(&mut |batch| {
            files.write(batch, SystemTime::now()).unwrap();
            if files.staged_bytes() >= 256 * 1024 {
                assert!(files.flush().is_empty());
            }
        });
        files.close_all(SystemTime::now(), false);
        std::fs::remove_dir_all(&dir).unwrap();
        println!("| {name} | {decode:.0} | {formatted:.0} | {written:.0} |");
    }
}

fn orchestrate() {
    let runs: usize = arg("runs").map_or(3, |r| r.parse().unwrap());
    let records: u64 = arg("records").map_or(3_000_000, |r| r.parse().unwrap());
    match arg("only").as_deref() {
        Some("ingest") => ingest(runs),
        Some("write") => write(records, arg("format").as_deref()),
        Some("e2e") => e2e(runs, arg("repeat").map_or(500, |r| r.parse().unwrap())),
        Some("stages") => stages(arg("repeat").map_or(200, |r| r.parse().unwrap())),
        _ => {
            ingest(runs);
            write(records, arg("format").as_deref());
        }
    }
}
