//! Endpoint strings as libzmq writes them: `tcp://host:port` and
//! `ipc://path`.
//!
//! Parsing is separate from resolution: a string is checked once, with an
//! error that names the part that is wrong, and only then turned into socket
//! addresses (which may need DNS or the list of network interfaces).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Longest `ipc://` path: `sun_path` holds 108 bytes including the NUL.
const MAX_IPC_PATH: usize = 107;

/// A parsed endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp://HOST:PORT`.
    Tcp {
        /// Where to bind or what to connect to.
        host: Host,
        /// The port; `None` is libzmq's `*` (bind to an ephemeral port).
        port: Option<u16>,
    },
    /// `ipc://PATH`: a Unix stream socket.
    Ipc(PathBuf),
}

/// The host part of a `tcp://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `*`: every IPv4 interface (libzmq binds IPv4 only unless told otherwise).
    Any,
    /// A literal address; IPv6 is written in brackets, `[::1]`.
    Ip(IpAddr),
    /// A host name to resolve (connect) or an interface name (bind).
    Name(String),
}

/// Why an endpoint string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// No `://` separates the transport from the address.
    #[error("endpoint {0:?} has no transport: expected tcp://HOST:PORT or ipc://PATH")]
    NoTransport(String),
    /// A transport zring does not speak.
    #[error("endpoint {endpoint:?}: transport {transport:?} is not supported (tcp and ipc are)")]
    UnsupportedTransport {
        /// The whole endpoint.
        endpoint: String,
        /// The part before `://`.
        transport: String,
    },
    /// `tcp://` without `:PORT`.
    #[error("endpoint {0:?} has no port: expected tcp://HOST:PORT")]
    NoPort(String),
    /// The port is not a number from 0 to 65535 or `*`.
    #[error("endpoint {endpoint:?}: port {port:?} is not a number from 0 to 65535 or *")]
    BadPort {
        /// The whole endpoint.
        endpoint: String,
        /// The port as written.
        port: String,
    },
    /// The host is empty, has a bad IPv6 literal, or contains characters no
    /// host or interface name has.
    #[error("endpoint {endpoint:?}: host {host:?} is not *, an IP address, [IPv6] or a name")]
    BadHost {
        /// The whole endpoint.
        endpoint: String,
        /// The host as written.
        host: String,
    },
    /// An `ipc://` path that is empty or longer than a Unix socket path may be.
    #[error("endpoint {endpoint:?}: ipc path must be 1 to {MAX_IPC_PATH} bytes, is {len}")]
    BadIpcPath {
        /// The whole endpoint.
        endpoint: String,
        /// The path's length in bytes.
        len: usize,
    },
    /// A host name or interface that does not resolve to an address.
    #[error("endpoint {endpoint:?}: {host:?} resolves to no address{detail}")]
    Unresolved {
        /// The whole endpoint.
        endpoint: String,
        /// The host as written.
        host: String,
        /// What the resolver said, if anything.
        detail: String,
    },
    /// `*` or an ephemeral port used to connect.
    #[error("endpoint {0:?}: cannot connect to a wildcard host or port")]
    WildcardConnect(String),
}

impl Endpoint {
    /// Parses `tcp://HOST:PORT` or `ipc://PATH`.
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let (transport, rest) = s
            .split_once("://")
            .ok_or_else(|| EndpointError::NoTransport(s.to_owned()))?;
        match transport {
            "tcp" => parse_tcp(s, rest),
            "ipc" => {
                if rest.is_empty() || rest.len() > MAX_IPC_PATH {
                    return Err(EndpointError::BadIpcPath {
                        endpoint: s.to_owned(),
                        len: rest.len(),
                    });
                }
                Ok(Endpoint::Ipc(PathBuf::from(rest)))
            }
            other => Err(EndpointError::UnsupportedTransport {
                endpoint: s.to_owned(),
                transport: other.to_owned(),
            }),
        }
    }

    /// Addresses to bind. `*` is `0.0.0.0`; a name is tried as a network
    /// interface first (libzmq's `tcp://eth0:5555`), then as a host name.
    pub fn bind_addrs(&self) -> Result<Vec<SocketAddr>, EndpointError> {
        let Endpoint::Tcp { host, port } = self else {
            return Ok(Vec::new());
        };
        let port = port.unwrap_or(0);
        match host {
            Host::Any => Ok(vec![SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)]),
            Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
            Host::Name(name) => {
                if let Some(ip) = crate::sys::interface_address(name) {
                    return Ok(vec![SocketAddr::new(ip, port)]);
                }
                self.resolve(name, port)
            }
        }
    }

    /// Addresses to connect to, in resolver order.
    pub fn connect_addrs(&self) -> Result<Vec<SocketAddr>, EndpointError> {
        let Endpoint::Tcp { host, port } = self else {
            return Ok(Vec::new());
        };
        let Some(port) = *port else {
            return Err(EndpointError::WildcardConnect(self.to_string()));
        };
        match host {
            Host::Any => Err(EndpointError::WildcardConnect(self.to_string())),
            Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
            Host::Name(name) => self.resolve(name, port),
        }
    }

    fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, EndpointError> {
        let unresolved = |detail: String| EndpointError::Unresolved {
            endpoint: self.to_string(),
            host: name.to_owned(),
            detail,
        };
        let addrs: Vec<SocketAddr> = (name, port)
            .to_socket_addrs()
            .map_err(|e| unresolved(format!(": {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(unresolved(String::new()));
        }
        Ok(addrs)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } => {
                write!(f, "tcp://")?;
                match host {
                    Host::Any => write!(f, "*")?,
                    Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
                    Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
                    Host::Name(n) => write!(f, "{n}")?,
                }
                match port {
                    Some(p) => write!(f, ":{p}"),
                    None => write!(f, ":*"),
                }
            }
            Endpoint::Ipc(path) => write!(f, "ipc://{}", path.display()),
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Endpoint, EndpointError> {
        Endpoint::parse(s)
    }
}

fn parse_tcp(endpoint: &str, rest: &str) -> Result<Endpoint, EndpointError> {
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| EndpointError::NoPort(endpoint.to_owned()))?;
    let bad_host = || EndpointError::BadHost {
        endpoint: endpoint.to_owned(),
        host: host.to_owned(),
    };
    let port = match port {
        "*" | "0" => None,
        p => Some(
            p.parse::<u16>()
                .ok()
                .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| EndpointError::BadPort {
                    endpoint: endpoint.to_owned(),
                    port: p.to_owned(),
                })?,
        ),
    };
    let host = if host == "*" {
        Host::Any
    } else if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(bad_host)?;
        // A zone index (`[fe80::1%eth0]`) is not supported by std's parser.
        let ip: Ipv6Addr = inner.parse().map_err(|_| bad_host())?;
        Host::Ip(IpAddr::V6(ip))
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        Host::Ip(IpAddr::V4(ip))
    } else if !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        Host::Name(host.to_owned())
    } else {
        return Err(bad_host());
    };
    Ok(Endpoint::Tcp { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_libzmq_accepts() {
        let cases = [
            ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5555"),
            ("tcp://*:5555", "tcp://*:5555"),
            ("tcp://*:*", "tcp://*:*"),
            ("tcp://[::1]:7", "tcp://[::1]:7"),
            ("tcp://localhost:1", "tcp://localhost:1"),
            ("tcp://lo:9", "tcp://lo:9"),
            ("ipc:///tmp/zring.sock", "ipc:///tmp/zring.sock"),
        ];
        for (input, shown) in cases {
            let e = Endpoint::parse(input).unwrap();
            assert_eq!(e.to_string(), shown);
        }
    }

    #[test]
    fn refuses_bad_strings_naming_the_part() {
        let cases = [
            ("127.0.0.1:5555", "no transport"),
            ("udp://1.2.3.4:5", "transport \"udp\""),
            ("tcp://1.2.3.4", "no port"),
            ("tcp://1.2.3.4:70000", "port \"70000\""),
            ("tcp://1.2.3.4:+5", "port \"+5\""),
            ("tcp://:5", "host \"\""),
            ("tcp://[::1:5", "host \"[::1\""),
            ("tcp://[zz]:5", "host \"[zz]\""),
            ("tcp://a b:5", "host \"a b\""),
            ("ipc://", "1 to 107 bytes, is 0"),
        ];
        for (input, expected) in cases {
            let err = Endpoint::parse(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
        let long = format!("ipc://{}", "x".repeat(108));
        assert!(Endpoint::parse(&long).is_err());
    }

    #[test]
    fn resolves_binds_and_connects() {
        let any = Endpoint::parse("tcp://*:*").unwrap();
        assert_eq!(any.bind_addrs().unwrap(), ["0.0.0.0:0".parse().unwrap()]);
        assert!(matches!(
            any.connect_addrs(),
            Err(EndpointError::WildcardConnect(_))
        ));
        let lo = Endpoint::parse("tcp://lo:4000").unwrap();
        assert_eq!(
            lo.bind_addrs().unwrap(),
            ["127.0.0.1:4000".parse().unwrap()]
        );
        let v6 = Endpoint::parse("tcp://[::1]:4000").unwrap();
        assert_eq!(v6.connect_addrs().unwrap(), ["[::1]:4000".parse().unwrap()]);
        let nowhere = Endpoint::parse("tcp://no-such-host.invalid:1").unwrap();
        assert!(matches!(
            nowhere.connect_addrs(),
            Err(EndpointError::Unresolved { .. })
        ));
    }
}
