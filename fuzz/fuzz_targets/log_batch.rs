//! The log-batch decoder on arbitrary bytes: it must never panic, every
//! record it accepts has one value per field, every container iterates
//! exactly its announced number of elements within the nesting limit, and
//! a batch read to the end has exactly the records its header announced.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use zring::logger::batch::{MAX_DEPTH, MAX_FIELDS, MAX_NAME_LEN, MAX_PATH_LEN};
use zring::logger::{Batch, Value};

/// Iterates a value's elements, all the way down.
fn walk(v: &Value<'_>, depth: u32) {
    if let Value::Set(e) | Value::Vector(e) = v {
        assert!(depth < MAX_DEPTH, "containers nested deeper than the limit");
        let mut n = 0u64;
        for element in e.iter() {
            walk(&element, depth + 1);
            n += 1;
        }
        assert_eq!(n, e.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = Batch::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let h = batch.header();
    for name in [&h.stream, &h.writer, &h.filter] {
        assert!(name.len() <= MAX_NAME_LEN);
    }
    assert!(!h.path.is_empty() && h.path.len() <= MAX_PATH_LEN);
    assert!(!h.path.starts_with('.') && !h.path.contains(['/', '\0']));
    assert!(h.fields.len() <= MAX_FIELDS as usize);

    let mut records = batch.records();
    let mut out = Vec::new();
    let mut n = 0u32;
    loop {
        match records.next_into(&mut out) {
            Ok(true) => {
                assert_eq!(out.len(), h.fields.len());
                out.iter().for_each(|v| walk(v, 0));
                n += 1;
            }
            Ok(false) => {
                assert_eq!(n, batch.num_records());
                break;
            }
            Err(e) => {
                assert!(out.is_empty());
                assert!(!e.reason().is_empty() && !e.to_string().is_empty());
                break;
            }
        }
    }
    // Finished either way.
    assert!(matches!(records.next_into(&mut out), Ok(false)));
});
