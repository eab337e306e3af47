//! How a socket's connections authenticate and encrypt, and who may
//! connect: NULL, PLAIN or CURVE (the codec's mechanisms), and an
//! [`Access`] list that decides, as a ZAP handler decides for libzmq,
//! which client keys, PLAIN users and addresses are let in.
//!
//! ```no_run
//! use zring::codec::{KeyPair, OsRandom};
//! use zring::{Access, Context, Security, SocketKind};
//!
//! let server = KeyPair::generate(&mut OsRandom)?;
//! let client = KeyPair::generate(&mut OsRandom)?;
//! let ctx = Context::new()?;
//! let mut pull = ctx.socket(SocketKind::Pull);
//! let access = Access::default().allow_curve_client(client.public);
//! pull.set_security(Security::curve_server(server, access))?;
//! pull.bind("tcp://127.0.0.1:27762")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ipnet::IpNet;
use zmtp_codec::{
    Credentials, CurveClient, CurveServer, KeyPair, Mechanism, Null, PlainClient, PlainServer,
    PublicKey, Refusal,
};

/// A socket's security mechanism. The default is NULL: no authentication,
/// no encryption, as in libzmq.
#[derive(Clone, Default)]
pub enum Security {
    /// No authentication, no encryption.
    #[default]
    Null,
    /// NULL, with the peers' addresses checked against `access` when they
    /// connect (its key and user lists do not apply): what a ZAP handler
    /// that filters by address does for libzmq's NULL sockets.
    NullServer {
        /// Whose addresses may connect.
        access: Arc<Access>,
    },
    /// PLAIN client: sends a username and password, in clear (RFC 24).
    PlainClient {
        /// At most 255 bytes.
        username: Vec<u8>,
        /// At most 255 bytes.
        password: Vec<u8>,
    },
    /// PLAIN server: lets in the users of `access`.
    PlainServer {
        /// Who may connect.
        access: Arc<Access>,
    },
    /// CURVE client (RFC 26): our long-term key pair and the server's key.
    CurveClient {
        /// Ours.
        keys: KeyPair,
        /// The server's long-term public key.
        server: PublicKey,
    },
    /// CURVE server: our long-term key pair; clients as `access` says.
    CurveServer {
        /// Ours.
        keys: KeyPair,
        /// Who may connect.
        access: Arc<Access>,
    },
}

impl Security {
    /// NULL, admitting the addresses `access` admits.
    pub fn null_server(access: Access) -> Security {
        Security::NullServer {
            access: Arc::new(access),
        }
    }

    /// This security with `lists` added to the addresses its server side
    /// admits: NULL becomes [`Security::NullServer`], PLAIN and CURVE
    /// servers keep their users and keys. Clients check no addresses, and
    /// empty lists change nothing.
    pub fn with_address_lists(self, lists: &AddressLists) -> Security {
        if lists.is_empty() {
            return self;
        }
        let restricted = |access: &Access| access.clone().with_address_lists(lists);
        match self {
            Security::Null => Security::null_server(Access::default().with_address_lists(lists)),
            Security::NullServer { access } => Security::null_server(restricted(&access)),
            Security::PlainServer { access } => Security::plain_server(restricted(&access)),
            Security::CurveServer { keys, access } => {
                Security::curve_server(keys, restricted(&access))
            }
            client => client,
        }
    }

    /// Whether the mechanism is NULL (with or without an address check).
    pub fn is_null(&self) -> bool {
        matches!(self, Security::Null | Security::NullServer { .. })
    }

    /// A CURVE server admitting what `access` admits.
    pub fn curve_server(keys: KeyPair, access: Access) -> Security {
        Security::CurveServer {
            keys,
            access: Arc::new(access),
        }
    }

    /// A CURVE client of the server whose public key is `server`.
    pub fn curve_client(keys: KeyPair, server: PublicKey) -> Security {
        Security::CurveClient { keys, server }
    }

    /// A PLAIN server admitting what `access` admits.
    pub fn plain_server(access: Access) -> Security {
        Security::PlainServer {
            access: Arc::new(access),
        }
    }

    /// A PLAIN client. Fails if either value is over 255 bytes.
    pub fn plain_client(
        username: impl Into<Vec<u8>>,
        password: impl Into<Vec<u8>>,
    ) -> Result<Security, String> {
        let (username, password) = (username.into(), password.into());
        for (what, value) in [("username", &username), ("password", &password)] {
            if value.len() > 255 {
                return Err(format!(
                    "the PLAIN {what} has {} bytes; at most 255 fit in a HELLO",
                    value.len()
                ));
            }
        }
        Ok(Security::PlainClient { username, password })
    }

    /// The mechanism's name, as in the greeting.
    pub fn name(&self) -> &'static str {
        match self {
            Security::Null | Security::NullServer { .. } => "NULL",
            Security::PlainClient { .. } | Security::PlainServer { .. } => "PLAIN",
            Security::CurveClient { .. } | Security::CurveServer { .. } => "CURVE",
        }
    }

    /// Whether it refuses any peer address (a server with address lists).
    fn checks_addresses(&self) -> bool {
        self.access().is_some_and(Access::checks_addresses)
    }

    /// Who may connect, for the server mechanisms.
    pub(crate) fn access(&self) -> Option<&Access> {
        match self {
            Security::NullServer { access }
            | Security::PlainServer { access }
            | Security::CurveServer { access, .. } => Some(access),
            _ => None,
        }
    }

    /// A new mechanism for one connection (each CURVE connection has its
    /// own short-term keys and nonces).
    pub(crate) fn mechanism(&self) -> Box<dyn Mechanism> {
        match self {
            Security::Null | Security::NullServer { .. } => Box::new(Null::new()),
            Security::PlainClient { username, password } => Box::new(
                PlainClient::new(username.clone(), password.clone())
                    .expect("lengths were checked by Security::plain_client"),
            ),
            Security::PlainServer { access } => {
                Box::new(PlainServer::new(Box::new(Authorize(access.clone()))))
            }
            Security::CurveClient { keys, server } => {
                Box::new(CurveClient::new(keys.clone(), *server))
            }
            Security::CurveServer { keys, access } => Box::new(CurveServer::new(
                keys.clone(),
                Box::new(Authorize(access.clone())),
            )),
        }
    }
}

/// Public parts only: secret keys and passwords are never printed.
impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Security::Null => f.write_str("Null"),
            Security::NullServer { access } => f
                .debug_struct("NullServer")
                .field("access", access)
                .finish(),
            Security::PlainClient { username, .. } => f
                .debug_struct("PlainClient")
                .field("username", &String::from_utf8_lossy(username))
                .finish_non_exhaustive(),
            Security::PlainServer { access } => f
                .debug_struct("PlainServer")
                .field("access", access)
                .finish(),
            Security::CurveClient { keys, server } => f
                .debug_struct("CurveClient")
                .field("public", &keys.public.to_z85())
                .field("server", &server.to_z85())
                .finish_non_exhaustive(),
            Security::CurveServer { keys, access } => f
                .debug_struct("CurveServer")
                .field("public", &keys.public.to_z85())
                .field("access", access)
                .finish_non_exhaustive(),
        }
    }
}

/// Address ranges to let in and to refuse, as configured (the broker's and
/// the logger's `allow_addresses` and `deny_addresses`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressLists {
    /// Once any is given, only peers in these ranges may connect.
    pub allow: Vec<IpNet>,
    /// Peers in these ranges may not, even if an allowed range holds them.
    pub deny: Vec<IpNet>,
}

impl AddressLists {
    /// Whether neither list has a range.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Parses the two lists; an error names the bad entry and its list.
    pub fn parse<S: AsRef<str>>(allow: &[S], deny: &[S]) -> Result<AddressLists, String> {
        let parse_all = |what: &str, texts: &[S]| {
            texts
                .iter()
                .map(|t| parse_address_range(t.as_ref()).map_err(|e| format!("{what}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(AddressLists {
            allow: parse_all("allow_addresses", allow)?,
            deny: parse_all("deny_addresses", deny)?,
        })
    }
}

/// An address range as `10.0.0.0/8` or `2001:db8::/32`, or one address
/// (`192.0.2.7`, `::1`), which is a range of one.
pub fn parse_address_range(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    Err(format!(
        "{text:?} is not an address or an address range (like 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32)"
    ))
}

/// A listener's security that a reload may replace while it runs: each
/// connection takes the security current when it is accepted or made, so
/// new lists and keys apply to new connections and established ones keep
/// what they were admitted with (as sshd keeps its sessions on a reload).
pub struct LiveSecurity {
    current: std::sync::RwLock<Security>,
    /// Its mechanism's name, which a reload may not change ([`replace`]
    /// refuses), so it is read without the lock.
    ///
    /// [`replace`]: LiveSecurity::replace
    name: &'static str,
    /// Whether the current security checks peers' addresses: kept beside
    /// the lock, updated under it, so that accepting where no list is
    /// configured takes no lock, and a reload that adds lists applies to
    /// the connections accepted after it.
    checks_addresses: AtomicBool,
}

impl fmt::Debug for LiveSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LiveSecurity({})", self.name())
    }
}

impl LiveSecurity {
    /// Starts with `security`.
    pub fn new(security: Security) -> LiveSecurity {
        LiveSecurity {
            name: security.name(),
            checks_addresses: AtomicBool::new(security.checks_addresses()),
            current: std::sync::RwLock::new(security),
        }
    }

    /// `f` applied to the security a connection starting now gets,
    /// under a read lock: no copy of its keys is made.
    pub fn with<R>(&self, f: impl FnOnce(&Security) -> R) -> R {
        f(&self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// A new mechanism for one connection starting now.
    pub(crate) fn mechanism(&self) -> Box<dyn Mechanism> {
        self.with(Security::mechanism)
    }

    /// Whether a peer at `addr` may connect now (see
    /// [`Access::admits_address`]; clients admit everyone).
    pub(crate) fn admits_address(&self, addr: Option<IpAddr>) -> Result<(), String> {
        // Acquire: pairs with the store in `replace`, so a connection
        // accepted after a reload that added lists sees them.
        if !self.checks_addresses.load(Ordering::Acquire) {
            return Ok(());
        }
        self.with(|s| s.access().map_or(Ok(()), |a| a.admits_address(addr)))
    }

    /// Its mechanism's name; a reload never changes it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether its mechanism is NULL; a reload never changes it (NULL is
    /// the only mechanism of that name).
    pub fn is_null(&self) -> bool {
        self.name == Security::Null.name()
    }

    /// Replaces it for connections from now on. Refused when the mechanism
    /// would change (plaintext to CURVE or back): peers and the nodes'
    /// settings change together with a restart, not under a running
    /// cluster.
    pub fn replace(&self, security: Security) -> Result<(), String> {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.name != security.name() {
            return Err(format!(
                "the mechanism would change from {} to {}: that needs a restart",
                self.name,
                security.name()
            ));
        }
        let checks = security.checks_addresses();
        *current = security;
        self.checks_addresses.store(checks, Ordering::Release);
        Ok(())
    }
}

/// Who may connect to a server socket: what a ZAP handler decides for
/// libzmq, decided in-process.
#[derive(Clone, Default)]
pub struct Access {
    /// CURVE client public keys let in. Empty: any client that knows the
    /// server's public key, as libzmq without a ZAP handler.
    curve_clients: HashSet<PublicKey>,
    /// PLAIN users and their passwords. Empty: nobody (a PLAIN server that
    /// lets anyone in would be NULL with extra steps).
    plain_users: HashMap<Vec<u8>, Vec<u8>>,
    /// Peer addresses let in (empty: any), checked when a connection is
    /// accepted, before any handshake, whatever the mechanism.
    allow: Vec<IpNet>,
    /// Peer addresses refused; these win over `allow`.
    deny: Vec<IpNet>,
}

impl Access {
    /// Lets in the CURVE client with this long-term public key.
    pub fn allow_curve_client(mut self, key: PublicKey) -> Access {
        self.curve_clients.insert(key);
        self
    }

    /// Lets in the PLAIN user `username` with `password`.
    pub fn allow_plain_user(
        mut self,
        username: impl Into<Vec<u8>>,
        password: impl Into<Vec<u8>>,
    ) -> Access {
        self.plain_users.insert(username.into(), password.into());
        self
    }

    /// Lets in peers from `net` (once any is given, only those).
    pub fn allow_addresses(mut self, net: IpNet) -> Access {
        self.allow.push(net);
        self
    }

    /// Refuses peers from `net`, even if an allowed range holds them.
    pub fn deny_addresses(mut self, net: IpNet) -> Access {
        self.deny.push(net);
        self
    }

    /// Both lists' ranges added.
    pub fn with_address_lists(mut self, lists: &AddressLists) -> Access {
        self.allow.extend(lists.allow.iter().copied());
        self.deny.extend(lists.deny.iter().copied());
        self
    }

    /// Whether any address list is set: without one, every address is
    /// admitted.
    fn checks_addresses(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty()
    }

    /// Whether a peer at `addr` may connect (`None`: not an IP peer, such
    /// as ipc, which address lists do not restrict).
    pub fn admits_address(&self, addr: Option<IpAddr>) -> Result<(), String> {
        let Some(addr) = addr else {
            return Ok(());
        };
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        if let Some(net) = self.deny.iter().find(|n| n.contains(&addr)) {
            return Err(format!("address {addr} is in the denied range {net}"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(&addr)) {
            return Err(format!("address {addr} is in no allowed range"));
        }
        Ok(())
    }

    /// The decision for proven credentials.
    pub fn admits(&self, credentials: &Credentials<'_>) -> Result<(), Refusal> {
        match *credentials {
            Credentials::Curve { public_key } => {
                let key = PublicKey::from_bytes(*public_key);
                if self.curve_clients.is_empty() || self.curve_clients.contains(&key) {
                    Ok(())
                } else {
                    Err(Refusal::denied(format!(
                        "unknown client key {}",
                        key.to_z85()
                    )))
                }
            }
            Credentials::Plain { username, password } => match self.plain_users.get(username) {
                Some(expected) if same_secret(expected, password) => Ok(()),
                Some(_) => Err(Refusal::denied(format!(
                    "wrong password for user {:?}",
                    String::from_utf8_lossy(username)
                ))),
                None => Err(Refusal::denied(format!(
                    "unknown user {:?}",
                    String::from_utf8_lossy(username)
                ))),
            },
        }
    }
}

/// Compares a password in time that depends on its length only, so a
/// peer cannot find it byte by byte from how fast refusals come.
fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Keys and ranges, never passwords.
impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<String> = self.curve_clients.iter().map(|k| k.to_z85()).collect();
        keys.sort();
        let mut users: Vec<_> = self
            .plain_users
            .keys()
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .collect();
        users.sort();
        f.debug_struct("Access")
            .field("curve_clients", &keys)
            .field("plain_users", &users)
            .field("allow", &self.allow)
            .field("deny", &self.deny)
            .finish()
    }
}

/// The codec's authorisation hook, answered from an [`Access`].
struct Authorize(Arc<Access>);

impl zmtp_codec::Authorizer for Authorize {
    fn authorize(&mut self, credentials: &Credentials<'_>) -> Result<(), Refusal> {
        self.0.admits(credentials)
    }
}

/// Whether a session error is a security failure (a refused or failed
/// PLAIN or CURVE handshake, a bad box, a replayed nonce), counted apart
/// from other protocol errors.
pub(crate) fn is_security_failure(error: &zmtp_codec::Error) -> bool {
    use zmtp_codec::Error as E;
    matches!(
        error,
        E::Refused { .. }
            | E::BadBox { .. }
            | E::NonceOutOfOrder { .. }
            | E::CurveMismatch { .. }
            | E::CurveExhausted(_)
            | E::MechanismMismatch { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::from_bytes([n; 32])
    }

    #[test]
    fn address_ranges_parse_or_name_what_is_wrong() {
        let net = |s: &str| parse_address_range(s).unwrap().to_string();
        assert_eq!(net("10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(net(" 192.0.2.7 "), "192.0.2.7/32");
        assert_eq!(net("::1"), "::1/128");
        assert_eq!(net("2001:db8::/32"), "2001:db8::/32");
        for bad in ["10.0.0.0/33", "10.0.0", "", "host.example"] {
            let e = parse_address_range(bad).unwrap_err();
            assert!(e.contains(&format!("{:?}", bad.trim())), "{e}");
        }
        let e = AddressLists::parse(&["10.0.0.0/8"], &["nope"]).unwrap_err();
        assert!(e.starts_with("deny_addresses: \"nope\""), "{e}");
    }

    #[test]
    fn address_lists_restrict_every_server_and_no_client() {
        let lists = AddressLists::parse(&["10.0.0.0/8"], &["10.9.0.0/16"]).unwrap();
        let peer = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let check = |security: &Security, addr: &str| {
            security
                .access()
                .map(|a| a.admits_address(peer(addr)).is_ok())
        };
        // NULL becomes a NULL server with the lists, still NULL on the wire.
        let null = Security::Null.with_address_lists(&lists);
        assert!(null.is_null() && null.name() == "NULL");
        assert_eq!(check(&null, "10.1.2.3"), Some(true));
        assert_eq!(check(&null, "10.9.2.3"), Some(false));
        assert_eq!(check(&null, "192.0.2.7"), Some(false));
        // A CURVE server keeps its client list and gains the ranges.
        let keys = KeyPair::from_secret(zmtp_codec::SecretKey::from_bytes([5; 32]));
        let curve = Security::curve_server(keys, Access::default().allow_curve_client(key(1)))
            .with_address_lists(&lists);
        assert_eq!(check(&curve, "192.0.2.7"), Some(false));
        let access = curve.access().unwrap();
        let known = [1u8; 32];
        assert!(access
            .admits(&Credentials::Curve { public_key: &known })
            .is_ok());
        let unknown = [2u8; 32];
        assert!(access
            .admits(&Credentials::Curve {
                public_key: &unknown
            })
            .is_err());
        // Clients check no addresses; empty lists change nothing.
        let client = Security::curve_client(
            KeyPair::from_secret(zmtp_codec::SecretKey::from_bytes([6; 32])),
            key(9),
        )
        .with_address_lists(&lists);
        assert!(client.access().is_none());
        assert!(Security::Null
            .with_address_lists(&AddressLists::default())
            .access()
            .is_none());
    }

    /// Without lists no lock is taken to admit a peer, yet a reload that
    /// adds lists applies to the next peer, and one that drops them frees
    /// it; the mechanism stays.
    #[test]
    fn a_reload_that_adds_address_lists_applies_to_new_peers() {
        let live = LiveSecurity::new(Security::Null);
        let peer = Some("192.0.2.7".parse().unwrap());
        assert!(live.admits_address(peer).is_ok());
        let lists = AddressLists::parse(&["10.0.0.0/8"], &[]).unwrap();
        live.replace(Security::Null.with_address_lists(&lists))
            .unwrap();
        assert!(live.admits_address(peer).is_err());
        assert!(live.is_null() && live.name() == "NULL");
        live.replace(Security::Null).unwrap();
        assert!(live.admits_address(peer).is_ok());
        let e = live
            .replace(Security::plain_server(Access::default()))
            .unwrap_err();
        assert!(e.contains("from NULL to PLAIN"), "{e}");
        assert!(live.is_null());
    }

    #[test]
    fn curve_clients_are_checked_only_when_listed() {
        let anyone = Access::default();
        let cred = [7u8; 32];
        assert!(anyone
            .admits(&Credentials::Curve { public_key: &cred })
            .is_ok());
        let listed = Access::default().allow_curve_client(key(1));
        assert!(listed
            .admits(&Credentials::Curve {
                public_key: &[1; 32]
            })
            .is_ok());
        let refusal = listed
            .admits(&Credentials::Curve { public_key: &cred })
            .unwrap_err();
        assert_eq!(refusal.status, 400);
        assert!(refusal.text.contains(&key(7).to_z85()), "{}", refusal.text);
    }

    #[test]
    fn plain_users_need_their_password() {
        let access = Access::default().allow_plain_user("zeek", "s3cret");
        let ok = Credentials::Plain {
            username: b"zeek",
            password: b"s3cret",
        };
        assert!(access.admits(&ok).is_ok());
        let wrong = Credentials::Plain {
            username: b"zeek",
            password: b"guess",
        };
        assert!(access
            .admits(&wrong)
            .unwrap_err()
            .text
            .contains("wrong password"));
        let unknown = Credentials::Plain {
            username: b"eve",
            password: b"s3cret",
        };
        assert!(access
            .admits(&unknown)
            .unwrap_err()
            .text
            .contains("unknown user"));
        let nobody = Access::default();
        assert!(nobody.admits(&ok).is_err(), "no users: nobody gets in");
    }

    #[test]
    fn denied_ranges_win_and_allowed_ranges_restrict() {
        let access = Access::default()
            .allow_addresses("10.0.0.0/8".parse().unwrap())
            .deny_addresses("10.6.6.0/24".parse().unwrap());
        assert!(access
            .admits_address(Some("10.1.2.3".parse().unwrap()))
            .is_ok());
        let denied = access
            .admits_address(Some("10.6.6.6".parse().unwrap()))
            .unwrap_err();
        assert!(denied.contains("10.6.6.0/24"), "{denied}");
        let outside = access
            .admits_address(Some("192.0.2.1".parse().unwrap()))
            .unwrap_err();
        assert!(outside.contains("no allowed range"), "{outside}");
        // Mapped IPv4 from a dual-stack listener is judged as IPv4.
        assert!(access
            .admits_address(Some("::ffff:10.6.6.6".parse().unwrap()))
            .is_err());
        assert!(access.admits_address(None).is_ok(), "ipc is not restricted");
        assert!(Access::default()
            .admits_address(Some("192.0.2.1".parse().unwrap()))
            .is_ok());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let keys = KeyPair::from_secret(zmtp_codec::SecretKey::from_bytes([9; 32]));
        let secret = keys.secret.to_z85();
        let access = Access::default().allow_plain_user("zeek", "hunter2");
        let shown = format!(
            "{:?} {:?} {:?}",
            Security::curve_server(keys.clone(), access.clone()),
            Security::curve_client(keys, key(1)),
            Security::plain_client("zeek", "hunter2").unwrap()
        );
        assert!(!shown.contains(&secret), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("zeek"), "{shown}");
    }

    #[test]
    fn plain_values_over_255_bytes_are_refused() {
        let err = Security::plain_client(vec![b'u'; 256], "p").unwrap_err();
        assert!(err.contains("username has 256 bytes"), "{err}");
    }
}
