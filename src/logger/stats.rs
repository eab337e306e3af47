//! What the logger counts, and its Prometheus text.

use std::collections::BTreeMap;

use super::files::FileCounters;
use crate::metrics::PromText;
use crate::SocketStats;

/// Distinct node ids and paths kept apart in the counters; more are
/// folded into `other`, so a peer inventing names cannot grow them forever.
pub const MAX_LABELS: usize = 1024;

/// Counters of one log path or one node.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Batches written.
    pub batches: u64,
    /// Records written.
    pub records: u64,
    /// Bytes written to files (paths only).
    pub bytes: u64,
    /// Batches rejected (nodes only).
    pub rejected: u64,
}

/// A snapshot of the logger's counters.
#[derive(Debug, Default, Clone)]
pub struct LoggerStats {
    /// Batches decoded and written.
    pub batches: u64,
    /// Records written.
    pub records: u64,
    /// Bytes written to log files (before compression).
    pub bytes_written: u64,
    /// Rejected messages by reason (`frame_count`, `unknown_serializer`,
    /// `too_many_paths`, and the decoder's reasons such as `truncated`).
    pub rejected: BTreeMap<&'static str, u64>,
    /// Failed file operations by reason (`no_space`, `permission`, ...,
    /// see [`super::files::io_reason`]). With the default policy the batch
    /// a failed write carried is held and written later.
    pub write_errors: BTreeMap<&'static str, u64>,
    /// Records of sound batches that were not written, by reason:
    /// `write_error` (policy drop), `shutdown` (writes still failing when
    /// the logger stopped), `too_many_paths`, `too_many_open_files`.
    pub records_dropped: BTreeMap<&'static str, u64>,
    /// A refused batch is held and nothing is read from the nodes.
    pub write_blocked: bool,
    /// Log files open now.
    pub open_files: u64,
    /// Rotations, files left by earlier runs, files reopened.
    pub files: FileCounters,
    /// Rotation postprocessor runs by result (`ok`, `failed`,
    /// `not_started`, `dropped`); empty without a postprocessor.
    pub postprocessor_runs: BTreeMap<&'static str, u64>,
    /// Per log path.
    pub paths: BTreeMap<String, Tally>,
    /// Per sending node (frame 1 of a log-write).
    pub nodes: BTreeMap<String, Tally>,
    /// Messages waiting for the writer.
    pub queue_depth: u64,
    /// The PULL socket's counters.
    pub socket: SocketStats,
    /// The kernel interface the reactors run on: `io_uring` or `epoll`.
    pub backend: &'static str,
}

impl LoggerStats {
    /// Failed file operations, whatever the reason.
    pub fn write_error_count(&self) -> u64 {
        self.write_errors.values().sum()
    }

    /// Records of sound batches not written, whatever the reason.
    pub fn records_dropped_count(&self) -> u64 {
        self.records_dropped.values().sum()
    }

    /// The tally of `name` in `map`, or of `other` once the map is full.
    pub(crate) fn tally<'a>(map: &'a mut BTreeMap<String, Tally>, name: &str) -> &'a mut Tally {
        // Looked up before inserting: a known name (every batch but a
        // node's or a path's first) allocates nothing.
        let key = if map.contains_key(name) || map.len() < MAX_LABELS {
            name
        } else {
            "other"
        };
        if !map.contains_key(key) {
            map.insert(key.to_owned(), Tally::default());
        }
        map.get_mut(key).expect("present")
    }

    /// Counts a rejected message.
    pub(crate) fn reject(&mut self, reason: &'static str, node: &str) {
        *self.rejected.entry(reason).or_default() += 1;
        Self::tally(&mut self.nodes, node).rejected += 1;
    }
}

/// Prometheus label values escape backslash, quote and newline.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A counter with one sample per key of `values`, labelled `key`.
fn labelled(w: &mut PromText, name: &str, help: &str, key: &str, values: &BTreeMap<&str, u64>) {
    let samples: Vec<(String, u64)> = values
        .iter()
        .map(|(k, n)| (format!("{key}=\"{}\"", label(k)), *n))
        .collect();
    let refs: Vec<(&str, u64)> = samples.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    w.metric(name, "counter", help, &refs);
}

/// The Prometheus text for a snapshot.
pub fn render(s: &LoggerStats) -> String {
    let mut w = PromText::with_capacity(4096);
    let z = "zring_logger";
    w.counter(
        &format!("{z}_batches_total"),
        "Log batches decoded and written.",
        s.batches,
    );
    w.counter(
        &format!("{z}_records_total"),
        "Log records written.",
        s.records,
    );
    w.counter(
        &format!("{z}_bytes_written_total"),
        "Bytes written to log files, before compression.",
        s.bytes_written,
    );
    labelled(
        &mut w,
        &format!("{z}_write_errors_total"),
        "Failed file operations, by reason (with on-write-error=block the batch is written later).",
        "reason",
        &s.write_errors,
    );
    labelled(
        &mut w,
        &format!("{z}_records_dropped_total"),
        "Records of sound batches not written, by reason.",
        "reason",
        &s.records_dropped,
    );
    let f = &s.files;
    for (name, help, value) in [
        ("rotations_total", "Files rotated.", f.rotations),
        (
            "rotation_failures_total",
            "Rotations that failed; the file stayed open and was appended to.",
            f.rotation_failures,
        ),
        (
            "dirs_recreated_total",
            "Times the log directory was found gone and made again.",
            f.dirs_recreated,
        ),
    ] {
        w.counter(&format!("{z}_{name}"), help, value);
    }
    w.metric(
        &format!("{z}_leftover_files_total"),
        "counter",
        "Files found from an earlier run and moved aside, by whether that run closed them.",
        &[
            ("state=\"closed\"", f.leftovers_closed),
            ("state=\"unclosed\"", f.leftovers_unclosed),
        ],
    );
    labelled(
        &mut w,
        &format!("{z}_postprocessor_runs_total"),
        "Rotation postprocessor runs, by result.",
        "result",
        &s.postprocessor_runs,
    );
    labelled(
        &mut w,
        &format!("{z}_files_reopened_total"),
        "Open files whose name was removed or replaced, so that a new file was started.",
        "reason",
        &f.reopened,
    );
    for (name, help, value) in [
        (
            "queue_depth",
            "Received log batches waiting for the writer.",
            s.queue_depth,
        ),
        (
            "write_blocked",
            "1 while a batch the file system refused is held and nothing is read from the nodes.",
            u64::from(s.write_blocked),
        ),
        ("open_files", "Log files open.", s.open_files),
    ] {
        w.metric(&format!("{z}_{name}"), "gauge", help, &[("", value)]);
    }
    labelled(
        &mut w,
        &format!("{z}_rejected_total"),
        "Messages rejected whole, by reason.",
        "reason",
        &s.rejected,
    );
    for (map, key, what) in [(&s.paths, "path", "log path"), (&s.nodes, "node", "node")] {
        type Pick = fn(&Tally) -> u64;
        let fields: [(&str, &str, Pick); 4] = [
            ("batches", "Batches written", |t| t.batches),
            ("records", "Records written", |t| t.records),
            ("bytes_written", "Bytes written", |t| t.bytes),
            ("rejected", "Messages rejected", |t| t.rejected),
        ];
        for (name, help, pick) in fields {
            if (key == "path" && name == "rejected") || (key == "node" && name == "bytes_written") {
                continue;
            }
            let samples: Vec<(String, u64)> = map
                .iter()
                .map(|(k, t)| (format!("{key}=\"{}\"", label(k)), pick(t)))
                .collect();
            let refs: Vec<(&str, u64)> = samples.iter().map(|(l, v)| (l.as_str(), *v)).collect();
            w.metric(
                &format!("{z}_{key}_{name}_total"),
                "counter",
                &format!("{help}, per {what}."),
                &refs,
            );
        }
    }
    let sock = &s.socket;
    for (name, help, value) in [
        (
            "messages_received_total",
            "Messages received from nodes.",
            sock.messages_in,
        ),
        (
            "bytes_received_total",
            "Frame bytes received from nodes.",
            sock.bytes_in,
        ),
        (
            "connections_total",
            "Node connections accepted.",
            sock.connections_accepted,
        ),
        (
            "disconnects_total",
            "Node connections closed.",
            sock.disconnects,
        ),
        (
            "protocol_errors_total",
            "Connections closed for malformed ZMTP or a broken limit.",
            sock.protocol_errors,
        ),
        (
            "security_failures_total",
            "Connections closed for a failed or refused CURVE/PLAIN handshake.",
            sock.security_failures,
        ),
        (
            "access_denied_total",
            "Connections refused on accept for the peer's address.",
            sock.access_denied,
        ),
    ] {
        w.counter(&format!("{z}_{name}"), help, value);
    }
    w.backend(s.backend);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_counters() {
        let mut s = LoggerStats {
            batches: 3,
            ..LoggerStats::default()
        };
        s.reject("truncated", "worker-1");
        LoggerStats::tally(&mut s.paths, "conn").records = 5;
        LoggerStats::tally(&mut s.nodes, "we\"ird").batches = 2;
        let text = render(&s);
        assert!(text.contains("zring_logger_batches_total 3\n"), "{text}");
        assert!(text.contains("zring_logger_rejected_total{reason=\"truncated\"} 1\n"));
        assert!(text.contains("zring_logger_path_records_total{path=\"conn\"} 5\n"));
        assert!(text.contains("zring_logger_node_rejected_total{node=\"worker-1\"} 1\n"));
        assert!(text.contains("zring_logger_node_batches_total{node=\"we\\\"ird\"} 2\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("name value");
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        let mut s = LoggerStats::default();
        for i in 0..MAX_LABELS + 10 {
            s.reject("truncated", &format!("node-{i}"));
        }
        assert_eq!(s.nodes.len(), MAX_LABELS + 1);
        assert_eq!(s.nodes["other"].rejected, 10);
    }
}
