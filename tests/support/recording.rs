//! Recorded log-write messages (`perf/data/`, format in its README).
#![allow(dead_code)] // each user takes a different part

use std::path::PathBuf;

/// The recording of a live Zeek 8.2 cluster's log batches.
pub fn zeek_cluster_recording() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("perf/data/zeek-8.2-cluster-log-batches.bin")
}

/// The messages of a recording, each as its frames, read as `zring bench
/// pushpull --zeek-log-batches` reads them.
pub fn read_messages(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    zring::bench::pushpull::read_recording(bytes).expect("a recording in perf/data's format")
}
