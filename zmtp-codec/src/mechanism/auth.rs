//! The authorisation hook of PLAIN and CURVE servers: what a ZAP handler
//! (RFC 27) decides for libzmq, asked synchronously and in-process so the
//! codec stays pure. The caller builds one per connection and may capture
//! whatever it knows that the codec does not (the peer's address, an
//! allowlist, counters).

/// What a client presented, as a ZAP handler would receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// PLAIN: the HELLO's username and password (each at most 255 bytes).
    Plain {
        /// The username, as sent.
        username: &'a [u8],
        /// The password, as sent.
        password: &'a [u8],
    },
    /// CURVE: the client's long-term public key, proven by its vouch.
    Curve {
        /// The key (ZAP's one credentials frame).
        public_key: &'a [u8; 32],
    },
}

impl Credentials<'_> {
    /// The mechanism name, as in ZAP's mechanism frame.
    pub fn mechanism(&self) -> &'static str {
        match self {
            Credentials::Plain { .. } => "PLAIN",
            Credentials::Curve { .. } => "CURVE",
        }
    }
}

/// A refusal: a ZAP status code and a text for logs.
///
/// What the client is told follows libzmq: for 400 and 500 an ERROR command
/// whose reason is the code alone (libzmq never sends the text); for 300
/// ("try again later") nothing, the connection is just closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 300, 400 or 500 (ZAP's status codes; anything else is sent as 400).
    pub status: u16,
    /// Why, for our own logs; never sent.
    pub text: String,
}

impl Refusal {
    /// Status 400: the credentials are not accepted (unknown key, wrong password).
    pub fn denied(text: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            text: text.into(),
        }
    }

    /// Status 300: a temporary refusal; libzmq closes without an ERROR.
    pub fn temporary(text: impl Into<String>) -> Refusal {
        Refusal {
            status: 300,
            text: text.into(),
        }
    }

    /// Status 500: the authoriser itself failed.
    pub fn internal(text: impl Into<String>) -> Refusal {
        Refusal {
            status: 500,
            text: text.into(),
        }
    }

    /// The ERROR reason to send, or `None` when libzmq sends none (300).
    pub fn error_reason(&self) -> Option<&'static str> {
        match self.status {
            300 => None,
            500 => Some("500"),
            _ => Some("400"),
        }
    }

    /// The status as it is reported in errors (`400 unknown key`).
    pub(crate) fn describe(&self) -> String {
        let status = match self.status {
            300 | 500 => self.status,
            _ => 400,
        };
        if self.text.is_empty() {
            status.to_string()
        } else {
            format!("{status} {}", self.text)
        }
    }
}

/// Decides whether a client may connect. Asked once per connection, when
/// the credentials have been proven (PLAIN: on HELLO; CURVE: on INITIATE,
/// after the vouch opened).
///
/// Closures `FnMut(&Credentials) -> Result<(), Refusal>` are authorisers.
pub trait Authorizer: Send {
    /// `Ok` lets the client in; a [`Refusal`] turns it away.
    fn authorize(&mut self, credentials: &Credentials<'_>) -> Result<(), Refusal>;
}

impl<F> Authorizer for F
where
    F: FnMut(&Credentials<'_>) -> Result<(), Refusal> + Send,
{
    fn authorize(&mut self, credentials: &Credentials<'_>) -> Result<(), Refusal> {
        self(credentials)
    }
}

/// Lets every client in: what a libzmq CURVE server does when no ZAP handler
/// is bound (any client that knows the server's public key may connect).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&mut self, _credentials: &Credentials<'_>) -> Result<(), Refusal> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_libzmq_error_reasons() {
        assert_eq!(Refusal::denied("unknown key").error_reason(), Some("400"));
        assert_eq!(Refusal::internal("db down").error_reason(), Some("500"));
        assert_eq!(Refusal::temporary("busy").error_reason(), None);
        let odd = Refusal {
            status: 418,
            text: "teapot".into(),
        };
        assert_eq!(odd.error_reason(), Some("400"));
        assert_eq!(odd.describe(), "400 teapot");
        assert_eq!(Refusal::denied("").describe(), "400");
    }

    #[test]
    fn closures_are_authorizers() {
        let mut seen = Vec::new();
        let mut auth = |c: &Credentials<'_>| {
            seen.push(c.mechanism());
            match c {
                Credentials::Plain { username, .. } if *username == b"admin" => Ok(()),
                _ => Err(Refusal::denied("not admin")),
            }
        };
        let plain = Credentials::Plain {
            username: b"admin",
            password: b"x",
        };
        assert_eq!(auth.authorize(&plain), Ok(()));
        assert!(auth
            .authorize(&Credentials::Curve {
                public_key: &[0; 32]
            })
            .is_err());
        assert_eq!(seen, ["PLAIN", "CURVE"]);
    }
}
