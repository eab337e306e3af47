//! Subscriptions in both wire forms: the ZMTP 3.0 data frame `0x01 topic` /
//! `0x00 topic` and the ZMTP 3.1 SUBSCRIBE / CANCEL commands. Both decode to
//! one [`Subscription`]; which form is sent depends on the peer's version.

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::Command;
use crate::frame::Frame;

/// Subscribe or cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionAction {
    /// Start receiving messages whose first frame starts with the topic.
    Subscribe,
    /// Stop.
    Cancel,
}

/// How a subscription travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionForm {
    /// A data frame starting with 0x01 or 0x00 (ZMTP 3.0, and what libzmq XSUB forwards).
    Legacy,
    /// A SUBSCRIBE or CANCEL command (ZMTP 3.1).
    Command,
}

/// One subscription change received from, or to be sent to, a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// Subscribe or cancel.
    pub action: SubscriptionAction,
    /// The topic prefix (may be empty: everything).
    pub topic: Bytes,
    /// The wire form it arrived in.
    pub form: SubscriptionForm,
}

impl Subscription {
    /// Reads a legacy subscription from a data frame: non-empty, first byte
    /// 0x01 or 0x00. Other frames are not subscriptions.
    pub fn from_data_frame(frame: &Frame) -> Option<Subscription> {
        let action = match frame.body.first()? {
            1 => SubscriptionAction::Subscribe,
            0 => SubscriptionAction::Cancel,
            _ => return None,
        };
        Some(Subscription {
            action,
            topic: frame.body.slice(1..),
            form: SubscriptionForm::Legacy,
        })
    }

    /// Reads a subscription from a decoded command.
    pub fn from_command(command: &Command) -> Option<Subscription> {
        let (action, topic) = match command {
            Command::Subscribe(t) => (SubscriptionAction::Subscribe, t),
            Command::Cancel(t) => (SubscriptionAction::Cancel, t),
            _ => return None,
        };
        Some(Subscription {
            action,
            topic: topic.clone(),
            form: SubscriptionForm::Command,
        })
    }

    /// The message an application reads from an XPUB (and writes to an XSUB)
    /// for this change: `0x01 topic` or `0x00 topic`, whatever the wire form.
    pub fn to_legacy_body(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(1 + self.topic.len());
        out.put_u8(match self.action {
            SubscriptionAction::Subscribe => 1,
            SubscriptionAction::Cancel => 0,
        });
        out.put_slice(&self.topic);
        out.freeze()
    }

    /// The equivalent 3.1 command.
    pub fn to_command(&self) -> Command {
        match self.action {
            SubscriptionAction::Subscribe => Command::Subscribe(self.topic.clone()),
            SubscriptionAction::Cancel => Command::Cancel(self.topic.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_decode_to_the_same_change() {
        let legacy =
            Subscription::from_data_frame(&Frame::data(Bytes::from_static(b"\x01A"), false))
                .unwrap();
        let command = Subscription::from_command(&Command::Subscribe("A".into())).unwrap();
        assert_eq!(
            (legacy.action, &legacy.topic),
            (command.action, &command.topic)
        );
        assert_eq!(legacy.to_legacy_body(), command.to_legacy_body());
        assert_eq!(&legacy.to_legacy_body()[..], b"\x01A");
        let cancel =
            Subscription::from_data_frame(&Frame::data(Bytes::from_static(b"\x00"), false))
                .unwrap();
        assert_eq!(cancel.action, SubscriptionAction::Cancel);
        assert!(cancel.topic.is_empty());
        assert_eq!(cancel.to_command(), Command::Cancel(Bytes::new()));
    }

    #[test]
    fn other_frames_are_not_subscriptions() {
        assert!(Subscription::from_data_frame(&Frame::data(Bytes::new(), false)).is_none());
        assert!(
            Subscription::from_data_frame(&Frame::data(Bytes::from_static(b"\x02x"), false))
                .is_none()
        );
        assert!(Subscription::from_command(&Command::Pong(Bytes::new())).is_none());
    }
}
