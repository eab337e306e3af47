//! Recorded log-write messages (`perf/data/`, format in its README).

use std::path::PathBuf;

/// The recording of a live Zeek 8.2 cluster's log batches.
pub fn zeek_cluster_recording() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("perf/data/zeek-8.2-cluster-log-batches.bin")
}

/// The messages of a recording, each as its frames.
pub fn read_messages(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn u32_at(bytes: &[u8], at: &mut usize) -> usize {
        let n = u32::from_be_bytes(bytes[*at..*at + 4].try_into().expect("4 bytes"));
        *at += 4;
        n as usize
    }
    let mut messages = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let count = u32_at(bytes, &mut at);
        let mut frames = Vec::with_capacity(count);
        for _ in 0..count {
            let len = u32_at(bytes, &mut at);
            frames.push(bytes[at..at + len].to_vec());
            at += len;
        }
        messages.push(frames);
    }
    messages
}
