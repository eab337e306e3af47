//! Another process's cost from `/proc`: CPU time (user and system, all
//! threads) and resident memory, sampled over a benchmark run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A process to watch: `self` or a PID.
#[derive(Debug, Clone)]
pub struct Proc {
    dir: PathBuf,
}

impl Proc {
    /// This process.
    pub fn this() -> Proc {
        Proc {
            dir: PathBuf::from("/proc/self"),
        }
    }

    /// Process `pid`; an error names it if it does not exist.
    pub fn pid(pid: u32) -> std::io::Result<Proc> {
        let p = Proc {
            dir: PathBuf::from(format!("/proc/{pid}")),
        };
        p.cpu_seconds().map_err(|e| {
            std::io::Error::new(e.kind(), format!("process {pid}: {e} (is it running?)"))
        })?;
        Ok(p)
    }

    /// Its CPU time so far, user and system, all threads, in seconds.
    pub fn cpu_seconds(&self) -> std::io::Result<f64> {
        let stat = std::fs::read_to_string(self.dir.join("stat"))?;
        parse_cpu_ticks(&stat)
            .map(|ticks| ticks as f64 / crate::sys::clock_ticks_per_second() as f64)
            .ok_or_else(|| std::io::Error::other("a stat line without CPU times"))
    }

    /// Its resident memory now, in bytes.
    pub fn rss_bytes(&self) -> std::io::Result<u64> {
        let status = std::fs::read_to_string(self.dir.join("status"))?;
        status_kib(&status, "VmRSS:")
            .map(|kib| kib * 1024)
            .ok_or_else(|| std::io::Error::other("a status file without VmRSS"))
    }
}

/// utime + stime, the 14th and 15th fields; the command name before them
/// is parenthesised and may hold spaces.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The highest RSS seen by a sampler thread, every 50 ms until stopped.
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl RssSampler {
    pub(crate) fn start(proc: Proc) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("zring-bench-rss".into())
            .spawn(move || {
                let mut peak = 0;
                while !flag.load(Ordering::Relaxed) {
                    peak = peak.max(proc.rss_bytes().unwrap_or(0));
                    std::thread::sleep(Duration::from_millis(50));
                }
                peak.max(proc.rss_bytes().unwrap_or(0))
            })
            .ok();
        RssSampler { stop, thread }
    }

    /// Stops it; the peak in bytes.
    pub(crate) fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_past_a_command_name_with_spaces() {
        let stat = "1234 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = Proc::this();
        assert!(me.rss_bytes().unwrap() > 1 << 20);
        let before = me.cpu_seconds().unwrap();
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(200) {
            std::hint::black_box(start.elapsed());
        }
        assert!(me.cpu_seconds().unwrap() > before);
        assert!(Proc::pid(u32::MAX).is_err());
    }
}
