//! A sender and a receiver, each a process of this benchmark, and the
//! table of their medians: the frame of `perf/throughput.rs` and
//! `perf/curve.rs`.
//!
//! The receiver is started with `--role recv` and its own arguments, binds,
//! and prints `ready ENDPOINT`; then `done SECONDS CPU` after its last
//! message. The sender is started with `--role send --endpoint ENDPOINT`
//! and its own arguments, and prints `done CPU`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::measure::median;

/// One run.
pub struct Sample {
    pub rate: f64,
    pub send_cpu_us: f64,
    pub recv_cpu_us: f64,
}

/// Runs a pair whose sides both take `common`, the sender also `--size
/// SIZE`.
pub fn run_sized(common: &[String], size: usize, count: u64) -> Sample {
    let mut send_args = common.to_vec();
    send_args.extend(["--size".into(), size.to_string()]);
    run_pair(common, &send_args, count)
}

/// Runs one receiver and one sender of `count` messages.
pub fn run_pair(recv_args: &[String], send_args: &[String], count: u64) -> Sample {
    let exe = std::env::current_exe().unwrap();
    let mut recv = Command::new(&exe)
        .args(["--role", "recv"])
        .args(recv_args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(recv.stdout.take().unwrap()).lines();
    let ready = lines.next().expect("the receiver's ready line").unwrap();
    let endpoint = ready
        .strip_prefix("ready ")
        .expect("ready ENDPOINT")
        .to_owned();
    let send = Command::new(&exe)
        .args(["--role", "send", "--endpoint", &endpoint])
        .args(send_args)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(send.status.success(), "the sender failed: {send_args:?}");
    let done = lines.next().expect("the receiver's done line").unwrap();
    assert!(
        recv.wait().unwrap().success(),
        "the receiver failed: {recv_args:?}"
    );
    let send_cpu: f64 = String::from_utf8(send.stdout)
        .unwrap()
        .trim()
        .strip_prefix("done ")
        .expect("done CPU")
        .parse()
        .unwrap();
    let mut parts = done
        .strip_prefix("done ")
        .expect("done SECONDS CPU")
        .split(' ');
    let elapsed: f64 = parts.next().unwrap().parse().unwrap();
    let recv_cpu: f64 = parts.next().unwrap().parse().unwrap();
    Sample {
        rate: (count - 1) as f64 / elapsed,
        send_cpu_us: send_cpu * 1e6 / count as f64,
        recv_cpu_us: recv_cpu * 1e6 / count as f64,
    }
}

/// One cell: `runs` rounds of libzmq then zring (`run(false)`, then
/// `run(true)`), alternating so that a change in a shared machine's load
/// over the cell falls on both; the medians of each.
pub fn run_cell(runs: usize, mut run: impl FnMut(bool) -> Sample) -> [Summary; 2] {
    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (i, zring) in [false, true].into_iter().enumerate() {
            std::thread::sleep(std::time::Duration::from_millis(200));
            samples[i].push(run(zring));
        }
    }
    samples.map(|s| summarize(&s))
}

/// The medians of a cell's runs.
pub struct Summary {
    pub rate: f64,
    pub send_cpu_us: f64,
    pub recv_cpu_us: f64,
    /// The median of the runs' sums, not the sum of the medians.
    pub total_cpu_us: f64,
}

pub fn summarize(samples: &[Sample]) -> Summary {
    Summary {
        rate: median(samples.iter().map(|s| s.rate).collect()),
        send_cpu_us: median(samples.iter().map(|s| s.send_cpu_us).collect()),
        recv_cpu_us: median(samples.iter().map(|s| s.recv_cpu_us).collect()),
        total_cpu_us: median(
            samples
                .iter()
                .map(|s| s.send_cpu_us + s.recv_cpu_us)
                .collect(),
        ),
    }
}

pub const CELL_HEADER: &str = "| pattern | size | impl | msg/s | send CPU µs/msg | recv CPU µs/msg | total CPU µs/msg |\n|---|---|---|---|---|---|---|";

/// One row of the cell table.
pub fn print_cell(pattern: &str, size: usize, implementation: &str, s: &Summary) {
    println!(
        "| {pattern} | {size} B | {implementation} | {:.0} | {:.3} | {:.3} | {:.3} |",
        s.rate, s.send_cpu_us, s.recv_cpu_us, s.total_cpu_us
    );
}

/// The ratio table: zring's messages/s and CPU per message over libzmq's,
/// per (pattern, size).
pub fn print_ratios(rows: &[(&str, usize, &Summary, &Summary)]) {
    println!();
    println!("| pattern | size | zring/libzmq msg/s | zring/libzmq CPU per msg |");
    println!("|---|---|---|---|");
    for (pattern, size, libzmq, zring) in rows {
        println!(
            "| {pattern} | {size} B | {:.2}× | {:.2}× |",
            zring.rate / libzmq.rate,
            zring.total_cpu_us / libzmq.total_cpu_us
        );
    }
}
