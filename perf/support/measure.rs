//! What every end-to-end benchmark measures with: CPU time from `/proc`
//! (read as `zring bench` reads it), and medians over runs.
#![allow(dead_code)] // each benchmark uses a different part

use zring::bench::procstat::Proc;

/// The CPU time of this process, all threads, in seconds.
pub fn process_cpu_seconds() -> f64 {
    Proc::this().cpu_seconds().expect("/proc/self/stat")
}

/// The CPU time of the calling thread, in seconds.
pub fn thread_cpu_seconds() -> f64 {
    Proc::this_thread()
        .cpu_seconds()
        .expect("/proc/thread-self/stat")
}

/// The median (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
