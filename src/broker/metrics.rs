//! The broker's counters in Prometheus' text format, and a small HTTP
//! endpoint that serves them.
//!
//! Zeek 8.2's proxy exports eight `zeek_cluster_zeromq_proxy_*` counters
//! (frontend = the XSUB side, backend = the XPUB side; "messages" are
//! frames). They are exported here with the same names and meaning, so
//! dashboards built for Zeek's proxy keep working; zring's own counters
//! follow under `zring_broker_*`.

use super::BrokerStats;
use crate::metrics::PromText;
pub use crate::metrics::{MetricsServer, Source};

/// The Prometheus text for a snapshot.
pub fn render(s: &BrokerStats) -> String {
    let b = &s.broker;
    let mut w = PromText::with_capacity(8192);
    let zeek = "zeek_cluster_zeromq_proxy";
    for (name, help, value) in [
        (
            "frontend_messages_received_total",
            "Frames received on the XSUB side (published data).",
            b.frontend_frames_in,
        ),
        (
            "frontend_bytes_received_total",
            "Frame body bytes received on the XSUB side.",
            b.frontend_bytes_in,
        ),
        (
            "frontend_messages_sent_total",
            "Frames sent on the XSUB side (forwarded subscriptions, once each).",
            b.frontend_frames_out,
        ),
        (
            "frontend_bytes_sent_total",
            "Frame body bytes sent on the XSUB side.",
            b.frontend_bytes_out,
        ),
        (
            "backend_messages_received_total",
            "Frames received on the XPUB side (subscriptions).",
            b.backend_frames_in,
        ),
        (
            "backend_bytes_received_total",
            "Frame body bytes received on the XPUB side.",
            b.backend_bytes_in,
        ),
        (
            "backend_messages_sent_total",
            "Frames forwarded to the XPUB side (once per message).",
            b.backend_frames_out,
        ),
        (
            "backend_bytes_sent_total",
            "Frame body bytes forwarded to the XPUB side.",
            b.backend_bytes_out,
        ),
    ] {
        w.counter(&format!("{zeek}_{name}"), help, value);
    }
    let z = "zring_broker";
    w.counter(
        &format!("{z}_messages_received_total"),
        "Data messages received from publishers.",
        b.messages_in,
    );
    w.counter(
        &format!("{z}_messages_unmatched_total"),
        "Data messages no subscriber wanted.",
        b.unmatched,
    );
    w.counter(
        &format!("{z}_deliveries_total"),
        "Messages queued for a subscriber (one per message and subscriber).",
        b.deliveries,
    );
    w.counter(
        &format!("{z}_messages_sent_total"),
        "Messages handed to the kernel for subscribers.",
        s.xpub_side.messages_out,
    );
    w.metric(
        &format!("{z}_dropped_total"),
        "counter",
        "Deliveries that did not happen, by policy in effect and reason.",
        &[
            ("reason=\"slow_subscriber\",policy=\"drop\"", b.dropped_slow),
            (
                "reason=\"slow_subscriber\",policy=\"disconnect\"",
                b.dropped_evicted,
            ),
            ("reason=\"subscriber_gone\"", b.dropped_subscriber_gone),
            ("reason=\"publisher_gone\"", b.dropped_publisher_gone),
        ],
    );
    w.counter(
        &format!("{z}_lost_on_disconnect_total"),
        "Messages queued for a subscriber that disconnected before they were sent.",
        b.lost_on_disconnect,
    );
    w.counter(
        &format!("{z}_stalls_total"),
        "Times a publisher waited for a full subscriber.",
        b.stalls,
    );
    w.counter(
        &format!("{z}_stall_seconds_total"),
        "Time publishers spent waiting for full subscribers (whole seconds).",
        b.stall_micros / 1_000_000,
    );
    w.counter(
        &format!("{z}_evictions_total"),
        "Subscribers disconnected for keeping a publisher waiting (policy disconnect).",
        b.evictions,
    );
    w.counter(
        &format!("{z}_subscriptions_received_total"),
        "Subscribe messages from subscribers.",
        b.subscriptions_in,
    );
    w.counter(
        &format!("{z}_cancels_received_total"),
        "Cancel messages from subscribers.",
        b.cancels_in,
    );
    w.counter(
        &format!("{z}_ignored_messages_total"),
        "Data messages subscribers sent (ignored).",
        b.ignored_from_subscribers,
    );
    w.metric(
        &format!("{z}_subscriptions"),
        "gauge",
        "Prefixes held by at least one subscriber.",
        &[("", s.upstream_prefixes)],
    );
    w.metric(
        &format!("{z}_peers"),
        "gauge",
        "Connections past their handshake, by side.",
        &[
            ("side=\"xpub\"", s.subscribers),
            ("side=\"xsub\"", s.publishers),
        ],
    );
    let sides = [("xpub", &s.xpub_side), ("xsub", &s.xsub_side)];
    let per_side = |f: fn(&crate::socket::SocketStats) -> u64| -> Vec<(String, u64)> {
        sides
            .iter()
            .map(|(n, st)| (format!("side=\"{n}\""), f(st)))
            .collect()
    };
    for (name, help, f) in [
        (
            "connections_accepted_total",
            "Connections accepted.",
            (|s| s.connections_accepted) as fn(&crate::socket::SocketStats) -> u64,
        ),
        ("handshakes_total", "ZMTP handshakes completed.", |s| {
            s.handshakes
        }),
        (
            "disconnects_total",
            "Connections closed, for any reason.",
            |s| s.disconnects,
        ),
        (
            "protocol_errors_total",
            "Connections closed for malformed input or a broken limit.",
            |s| s.protocol_errors,
        ),
        (
            "security_failures_total",
            "Connections closed for a failed or refused CURVE/PLAIN handshake.",
            |s| s.security_failures,
        ),
        (
            "access_denied_total",
            "Connections refused on accept for the peer's address.",
            |s| s.access_denied,
        ),
        (
            "timeouts_total",
            "Connections closed by a handshake or heartbeat timeout.",
            |s| s.timeouts,
        ),
        ("bytes_received_total", "Frame body bytes received.", |s| {
            s.bytes_in
        }),
        ("bytes_sent_total", "Bytes written to peers.", |s| {
            s.bytes_out
        }),
    ] {
        let samples = per_side(f);
        let refs: Vec<(&str, u64)> = samples.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        w.metric(&format!("{z}_{name}"), "counter", help, &refs);
    }
    w.backend(s.backend);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_zeeks_eight_counters_and_valid_lines() {
        let mut s = BrokerStats {
            backend: "epoll",
            ..BrokerStats::default()
        };
        s.broker.frontend_frames_in = 4;
        s.broker.dropped_slow = 7;
        let text = render(&s);
        for name in [
            "frontend_messages_received_total",
            "frontend_bytes_received_total",
            "frontend_messages_sent_total",
            "frontend_bytes_sent_total",
            "backend_messages_received_total",
            "backend_bytes_received_total",
            "backend_messages_sent_total",
            "backend_bytes_sent_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE zeek_cluster_zeromq_proxy_{name} counter")),
                "{name}"
            );
        }
        assert!(text.contains("zeek_cluster_zeromq_proxy_frontend_messages_received_total 4\n"));
        assert!(text.contains(
            "zring_broker_dropped_total{reason=\"slow_subscriber\",policy=\"drop\"} 7\n"
        ));
        assert!(text.contains("zring_backend_info{backend=\"epoll\"} 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            assert!(value.parse::<u64>().is_ok(), "{line}");
            assert!(
                name.starts_with("zeek_") || name.starts_with("zring_"),
                "{line}"
            );
        }
    }
}
