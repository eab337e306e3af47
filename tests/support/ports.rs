//! Ports for tests that need one nobody listens on, or one to bind later.
//!
//! `bind("127.0.0.1:0")` and dropping the listener is not enough: the
//! kernel hands the same port to the next `bind(0)` of any test running in
//! parallel, and a test that expected "connection refused" then talks to a
//! stranger. These ports come from below the kernel's ephemeral range,
//! where `bind(0)` never looks, and each call in a process gets its own.
#![allow(dead_code)] // each test binary uses a different part

use std::sync::atomic::{AtomicU16, Ordering};

/// The first port of the ephemeral range (`ip_local_port_range`).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A port on 127.0.0.1 that nothing listens on now, outside the range the
/// kernel picks ephemeral ports from, and not returned before by this
/// process. Test binaries run one at a time; the process id spreads them
/// anyway, in case two run at once.
pub fn unused_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let top = ephemeral_start();
    let bottom = 10_000u16.min(top / 2);
    let span = top - bottom;
    let spread = (std::process::id() % u32::from(span)) as u16;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no unused port left below {top}");
        let port = bottom + (spread + n) % span;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
