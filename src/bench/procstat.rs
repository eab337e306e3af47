//! A process's cost from `/proc`: CPU time (user and system, all threads,
//! or one thread's) and resident memory, sampled over a benchmark run.
//! The perf harness (perf/) measures with it too.

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

    /// The calling thread (its CPU time only: memory is the process's).
    pub fn this_thread() -> Proc {
        Proc {
            dir: PathBuf::from("/proc/thread-self"),
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

    /// Its highest resident memory since it started (the kernel's
    /// high-water mark, `VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> std::io::Result<u64> {
        let status = std::fs::read_to_string(self.dir.join("status"))?;
        status_kib(&status, "VmHWM:")
            .map(|kib| kib * 1024)
            .ok_or_else(|| std::io::Error::other("a status file without VmHWM"))
    }
}

/// What a run cost from [`Cost::start`] to [`Cost::finish`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spent {
    /// This process's CPU seconds.
    pub(crate) cpu_s: f64,
    /// The peer's CPU seconds, if one was watched.
    pub(crate) peer_cpu_s: Option<f64>,
    /// The peer's highest RSS sampled, in bytes, if one was watched.
    pub(crate) peer_peak_rss_bytes: Option<u64>,
}

/// Measures a run's cost: this process's CPU time, and a peer's (the
/// broker's) CPU time and peak RSS, sampled while the run lasts. The peak
/// is sampled, not the kernel's high-water mark, because the peer may
/// have peaked before the run.
pub(crate) struct Cost {
    me: Proc,
    cpu0: f64,
    peer: Option<(Proc, f64)>,
    rss: Option<RssSampler>,
}

impl Cost {
    /// Starts measuring, now.
    pub(crate) fn start(peer: Option<Proc>) -> std::io::Result<Cost> {
        let peer = match peer {
            Some(p) => {
                let cpu0 = p.cpu_seconds()?;
                Some((p, cpu0))
            }
            None => None,
        };
        let rss = peer.as_ref().map(|(p, _)| RssSampler::start(p.clone()));
        let me = Proc::this();
        let cpu0 = me.cpu_seconds()?;
        Ok(Cost {
            me,
            cpu0,
            peer,
            rss,
        })
    }

    /// What was spent since [`Cost::start`].
    pub(crate) fn finish(self) -> std::io::Result<Spent> {
        let cpu_s = self.me.cpu_seconds()? - self.cpu0;
        let peer_cpu_s = match &self.peer {
            Some((p, cpu0)) => Some(p.cpu_seconds()? - cpu0),
            None => None,
        };
        Ok(Spent {
            cpu_s,
            peer_cpu_s,
            peer_peak_rss_bytes: self.rss.map(RssSampler::finish),
        })
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
        assert!(me.peak_rss_bytes().unwrap() > 1 << 20);
        let before = me.cpu_seconds().unwrap();
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(200) {
            std::hint::black_box(start.elapsed());
        }
        assert!(me.cpu_seconds().unwrap() > before);
        assert!(Proc::this_thread().cpu_seconds().unwrap() > 0.0);
        assert!(Proc::pid(u32::MAX).is_err());
    }

    #[test]
    fn a_cost_has_peer_figures_only_with_a_peer() {
        let alone = Cost::start(None).unwrap().finish().unwrap();
        assert!(alone.cpu_s >= 0.0);
        assert!(alone.peer_cpu_s.is_none() && alone.peer_peak_rss_bytes.is_none());
        let watched = Cost::start(Some(Proc::this())).unwrap().finish().unwrap();
        assert!(watched.peer_cpu_s.is_some_and(|c| c >= 0.0));
        assert!(watched.peer_peak_rss_bytes.is_some_and(|b| b > 1 << 20));
    }
}
