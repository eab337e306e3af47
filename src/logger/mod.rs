//! `zring logger`: a Zeek logger node. A PULL socket receives the
//! `log-write` messages Zeek's nodes push (contract §3.3), `batch` decodes
//! their `zeek-bin-serializer` payload (§4), and writers turn the records
//! into Zeek's ASCII or JSON logs.

pub mod batch;
pub mod ascii;
pub mod format;
pub mod json;
pub mod naming;
pub mod numbers;
pub mod value;

pub use batch::{Batch, BatchError, ElementsIter, Place, Records, SERIALIZER_NAME};
pub use value::{Elements, Field, Header, Proto, TypeTag, Value};
#[cfg(test)]
mod test_support;
