//! What every end-to-end benchmark measures with: CPU time from `/proc`,
//! and medians over runs.
#![allow(dead_code)] // each benchmark uses a different part

/// utime + stime of a `stat` file (`/proc/self/stat`,
/// `/proc/thread-self/stat`), in seconds.
pub fn cpu_seconds_of(file: &str) -> f64 {
    let stat = std::fs::read_to_string(file).expect("a stat file");
    // utime and stime are the 14th and 15th fields; the command name before
    // them is parenthesised and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// The CPU time of this process, all threads, in seconds.
pub fn process_cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat")
}

/// The CPU time of the calling thread, in seconds.
pub fn thread_cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/thread-self/stat")
}

/// The median (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
