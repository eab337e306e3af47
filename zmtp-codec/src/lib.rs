//! A sans-IO codec for ZMTP 3.0 and 3.1, the wire protocol of ZeroMQ,
//! compatible byte for byte with libzmq 4.3.
//!
//! No sockets, threads or clocks: a [`Session`] is fed received bytes and
//! yields [`Event`]s; what it wants to send waits in its [`Outbox`]. A
//! received [`Message`] is a [`bytes::Bytes`] slice of the buffer it arrived
//! in (frames are slices of that), and bodies to send are queued as handles,
//! never copied.
//!
//! Security mechanisms: [`Null`] (the default), PLAIN ([`PlainClient`],
//! [`PlainServer`]) and CURVE ([`CurveClient`], [`CurveServer`]) as libzmq
//! 4.3 speaks them; servers ask an [`Authorizer`] (the in-process
//! counterpart of a ZAP handler) who may connect. Keys are read and
//! written in Z85 ([`z85`]).
//!
//! ```
//! use bytes::{Buf, Bytes};
//! use zmtp_codec::{Event, Session, SessionConfig, SocketType};
//!
//! let mut push = Session::new(SessionConfig::new(SocketType::Push));
//! let mut pull = Session::new(SessionConfig::new(SocketType::Pull));
//! // Move what one side wants to send into the other, as a transport would,
//! // and collect the events that causes.
//! fn shuttle(from: &mut Session, to: &mut Session) -> Vec<Event> {
//!     let n = from.outbox().remaining();
//!     to.feed(from.outbox().copy_to_bytes(n));
//!     std::iter::from_fn(|| to.poll().unwrap()).collect()
//! }
//! shuttle(&mut push, &mut pull); // greeting
//! shuttle(&mut pull, &mut push); // greeting and READY
//! let ready = shuttle(&mut push, &mut pull); // READY
//! assert!(matches!(ready[..], [Event::Ready(_)]));
//! push.send_frames(&[Bytes::from_static(b"log-write"), Bytes::from_static(b"batch")]).unwrap();
//! let events = shuttle(&mut push, &mut pull);
//! let [Event::Message(m)] = &events[..] else { panic!("{events:?}") };
//! assert_eq!(m.frames().collect::<Vec<_>>(), [&b"log-write"[..], b"batch"]);
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
pub mod error;
pub mod frame;
pub mod greeting;
mod limits;
pub mod mechanism;
pub mod message;
pub mod metadata;
pub mod outbox;
mod reassembly;
pub mod session;
pub mod socket_type;
pub mod subscription;
pub mod z85;

pub use command::{Command, RawCommand};
pub use error::{Error, Result};
pub use frame::{Frame, FrameDecoder, FrameFlags, FrameHeader, RawFrame};
pub use greeting::{Greeting, MechanismName};
pub use mechanism::{
    AllowAll, Authorizer, Credentials, CurveClient, CurveServer, KeyPair, Mechanism, Null,
    OsRandom, PlainClient, PlainServer, PublicKey, Randomness, Refusal, SecretKey, Step,
};
pub use message::{Message, MessageBuilder};
pub use metadata::Metadata;
pub use outbox::Outbox;
pub use reassembly::{BufferPool, HeapPool};
pub use session::{Event, PeerInfo, Session, SessionConfig, SessionStats};
pub use socket_type::SocketType;
pub use subscription::{Subscription, SubscriptionAction, SubscriptionForm};
