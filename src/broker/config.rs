//! The broker's configuration: option names follow Zeek's
//! `Cluster::Backend::ZeroMQ::*` options, so a TOML file reads like the
//! `redef`s an operator already has.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config_file::{self, ConfigFileError};
use crate::keys::{CurveConfigError, CurveOptions, CurveSettings, SecretText};
use crate::reactor::{Backend, ReactorConfig};
use crate::security::AddressLists;

/// What the broker does when a subscriber's lane is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SlowSubscriber {
    /// Stop reading from the publishers whose messages it matches, so TCP
    /// pushes back and Zeek's publishers count `xpub_drops` (libzmq's
    /// XPUB_NODROP, Zeek's default). Nothing is dropped in the broker.
    #[default]
    Block,
    /// Drop the message for that subscriber only, and count it.
    Drop,
    /// Block as above, but close a subscriber that keeps a publisher
    /// waiting longer than `stall_timeout_ms` (as NATS does with slow
    /// consumers); what it had not taken is counted as dropped.
    Disconnect,
}

impl SlowSubscriber {
    /// The name used in files, flags and metrics.
    pub fn name(self) -> &'static str {
        match self {
            SlowSubscriber::Block => "block",
            SlowSubscriber::Drop => "drop",
            SlowSubscriber::Disconnect => "disconnect",
        }
    }
}

/// A broker's settings. Defaults are where Zeek's nodes look for their
/// broker, with Zeek's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// Where nodes' XSUB sockets connect (Zeek: `listen_xpub_endpoint`).
    pub listen_xpub_endpoint: String,
    /// Where nodes' XPUB sockets connect (Zeek: `listen_xsub_endpoint`).
    pub listen_xsub_endpoint: String,
    /// Messages queued per subscriber (per reactor that publishes to it)
    /// before the slow-subscriber policy applies; 0 = unlimited.
    pub xpub_sndhwm: usize,
    /// Accepted for compatibility with Zeek's option set. zring keeps no
    /// per-publisher receive queue: a waiting publisher is read ahead by at
    /// most 64 KiB, then TCP pushes back.
    pub xsub_rcvhwm: usize,
    /// SO_SNDBUF of subscriber connections (None: the OS default).
    pub xpub_sndbuf: Option<usize>,
    /// SO_RCVBUF of publisher connections (None: the OS default).
    pub xsub_rcvbuf: Option<usize>,
    /// Zeek's `listen_xpub_nodrop`: false means policy `drop`.
    pub listen_xpub_nodrop: bool,
    /// Allow IPv6 endpoints; `*` then binds both families.
    pub ipv6: bool,
    /// How long shutdown may spend sending what is queued.
    pub linger: Duration,
    /// What to do with a subscriber that cannot keep up.
    pub slow_subscriber: SlowSubscriber,
    /// Policy `disconnect`: how long a subscriber may keep a publisher waiting.
    pub stall_timeout: Duration,
    /// Largest message accepted from a peer, in bytes.
    pub max_message_size: u64,
    /// Receive buffers of 64 KiB per reactor (a power of two): the
    /// broker's main fixed memory cost.
    pub receive_buffers: u16,
    /// Reactor threads.
    pub reactors: usize,
    /// The kernel interface the reactors run on (`backend`: auto,
    /// io_uring or epoll).
    pub backend: Backend,
    /// Cores to pin reactors to, in order (empty: not pinned).
    pub cores: Vec<usize>,
    /// Where to serve Prometheus metrics (None: off).
    pub metrics_listen: Option<String>,
    /// CURVE keys as given (`curve_*` options), resolved at start-up by
    /// [`BrokerConfig::curve`]. Its `Debug` output redacts the secret.
    pub curve: CurveOptions,
    /// Peer addresses let in and refused on both sides, whatever the
    /// mechanism (`allow_addresses`, `deny_addresses`; empty: anyone).
    pub addresses: AddressLists,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen_xpub_endpoint: "tcp://127.0.0.1:5555".into(),
            listen_xsub_endpoint: "tcp://127.0.0.1:5556".into(),
            xpub_sndhwm: 1000,
            xsub_rcvhwm: 1000,
            xpub_sndbuf: None,
            xsub_rcvbuf: None,
            listen_xpub_nodrop: true,
            ipv6: false,
            linger: Duration::from_millis(500),
            slow_subscriber: SlowSubscriber::Block,
            stall_timeout: Duration::from_secs(10),
            max_message_size: 256 << 20,
            receive_buffers: 256,
            reactors: 1,
            backend: Backend::Auto,
            cores: Vec::new(),
            metrics_listen: None,
            curve: CurveOptions::default(),
            addresses: AddressLists::default(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    File(#[from] ConfigFileError),
    /// Values that contradict each other or are out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Overrides, from a TOML file (keys named as Zeek names the options) or
/// from flags; `None` keeps what is there.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// See [`BrokerConfig`]'s fields of the same names.
    pub listen_xpub_endpoint: Option<String>,
    #[allow(missing_docs)]
    pub listen_xsub_endpoint: Option<String>,
    #[allow(missing_docs)]
    pub xpub_sndhwm: Option<i64>,
    #[allow(missing_docs)]
    pub xsub_rcvhwm: Option<i64>,
    /// -1: the OS default, as in Zeek.
    pub xpub_sndbuf: Option<i64>,
    #[allow(missing_docs)]
    pub xsub_rcvbuf: Option<i64>,
    #[allow(missing_docs)]
    pub listen_xpub_nodrop: Option<bool>,
    #[allow(missing_docs)]
    pub ipv6: Option<bool>,
    #[allow(missing_docs)]
    pub linger_ms: Option<u64>,
    #[allow(missing_docs)]
    pub slow_subscriber: Option<SlowSubscriber>,
    #[allow(missing_docs)]
    pub stall_timeout_ms: Option<u64>,
    #[allow(missing_docs)]
    pub max_message_size: Option<u64>,
    #[allow(missing_docs)]
    pub receive_buffers: Option<u16>,
    #[allow(missing_docs)]
    pub reactors: Option<usize>,
    /// `auto`, `io_uring` or `epoll`.
    pub backend: Option<String>,
    #[allow(missing_docs)]
    pub cores: Option<Vec<usize>>,
    #[allow(missing_docs)]
    pub metrics_listen: Option<String>,
    /// Zeek's option; "" = not set.
    pub curve_server_publickey: Option<String>,
    /// Zeek's option; "" = not set. A file holding it must be private.
    pub curve_server_secretkey: Option<SecretText>,
    /// Zeek's option; "" = not set.
    pub curve_client_publickey: Option<String>,
    /// More client public keys to accept ([] = none).
    pub curve_allowed_clients: Option<Vec<String>>,
    /// A key file with any of the three keys ("" = none).
    pub curve_keyfile: Option<PathBuf>,
    /// Address ranges let in (`10.0.0.0/8`, `192.0.2.7`; [] = any).
    pub allow_addresses: Option<Vec<String>>,
    /// Address ranges refused, even if allowed.
    pub deny_addresses: Option<Vec<String>>,
}

fn count(name: &str, v: i64) -> Result<usize, ConfigError> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v <= crate::socket::MAX_HWM)
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{name} must be 0 (unlimited) to 2147483647, not {v}"
            ))
        })
}

fn buffer(name: &str, v: i64) -> Result<Option<usize>, ConfigError> {
    match v {
        -1 => Ok(None),
        v if v > 0 => Ok(Some(v as usize)),
        v => Err(ConfigError::Invalid(format!(
            "{name} must be -1 (the OS default) or a positive size in bytes, not {v}"
        ))),
    }
}

impl BrokerConfig {
    /// Reads a TOML file of overrides (private to its owner if it holds
    /// the secret key).
    pub fn read_file(path: &Path) -> Result<Overrides, ConfigError> {
        Ok(config_file::read(path, |o: &Overrides| {
            o.curve_server_secretkey
                .as_ref()
                .is_some_and(|s| !s.is_empty())
        })?)
    }

    /// Parses TOML overrides (`path` only names the source in errors).
    pub fn parse_file(path: &str, text: &str) -> Result<Overrides, ConfigError> {
        Ok(config_file::parse(path, text)?)
    }

    /// The CURVE keys from the `curve_*` options, their key file or Zeek's
    /// environment variables (looked up through `env`; the binary passes
    /// [`crate::keys::process_env`]). `Ok(None)`: none is set, the broker
    /// speaks plaintext (NULL). See [`CurveOptions::resolve`].
    pub fn curve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<CurveSettings>, CurveConfigError> {
        self.curve.resolve(env)
    }

    /// Applies overrides on top of this configuration.
    pub fn apply(&mut self, o: Overrides) -> Result<(), ConfigError> {
        if let Some(v) = o.listen_xpub_endpoint {
            self.listen_xpub_endpoint = v;
        }
        if let Some(v) = o.listen_xsub_endpoint {
            self.listen_xsub_endpoint = v;
        }
        if let Some(v) = o.xpub_sndhwm {
            self.xpub_sndhwm = count("xpub_sndhwm", v)?;
        }
        if let Some(v) = o.xsub_rcvhwm {
            self.xsub_rcvhwm = count("xsub_rcvhwm", v)?;
        }
        if let Some(v) = o.xpub_sndbuf {
            self.xpub_sndbuf = buffer("xpub_sndbuf", v)?;
        }
        if let Some(v) = o.xsub_rcvbuf {
            self.xsub_rcvbuf = buffer("xsub_rcvbuf", v)?;
        }
        if let Some(v) = o.ipv6 {
            self.ipv6 = v;
        }
        if let Some(v) = o.linger_ms {
            self.linger = Duration::from_millis(v);
        }
        if let Some(v) = o.stall_timeout_ms {
            self.stall_timeout = Duration::from_millis(v);
        }
        if let Some(v) = o.max_message_size {
            self.max_message_size = v;
        }
        if let Some(v) = o.reactors {
            self.reactors = v;
        }
        if let Some(v) = o.receive_buffers {
            self.receive_buffers = v;
        }
        if let Some(v) = o.backend {
            self.backend = v
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("backend: {e}")))?;
        }
        if let Some(v) = o.cores {
            self.cores = v;
        }
        if let Some(v) = o.metrics_listen {
            self.metrics_listen = Some(v).filter(|s| !s.is_empty());
        }
        self.curve.apply(crate::keys::CurveOverrides {
            server_publickey: o.curve_server_publickey,
            server_secretkey: o.curve_server_secretkey,
            client_publickey: o.curve_client_publickey,
            allowed_clients: o.curve_allowed_clients,
            keyfile: o.curve_keyfile,
        });
        if o.allow_addresses.is_some() || o.deny_addresses.is_some() {
            let parsed = AddressLists::parse(
                o.allow_addresses.as_deref().unwrap_or_default(),
                o.deny_addresses.as_deref().unwrap_or_default(),
            )
            .map_err(ConfigError::Invalid)?;
            if o.allow_addresses.is_some() {
                self.addresses.allow = parsed.allow;
            }
            if o.deny_addresses.is_some() {
                self.addresses.deny = parsed.deny;
            }
        }
        match (o.listen_xpub_nodrop, o.slow_subscriber) {
            (Some(false), Some(SlowSubscriber::Block)) => {
                return Err(ConfigError::Invalid(
                    "listen_xpub_nodrop = false asks for drops, slow_subscriber = \"block\" \
                     forbids them: set only one"
                        .into(),
                ))
            }
            (_, Some(policy)) => self.slow_subscriber = policy,
            (Some(false), None) => self.slow_subscriber = SlowSubscriber::Drop,
            (Some(true), None) if self.slow_subscriber == SlowSubscriber::Drop => {
                self.slow_subscriber = SlowSubscriber::Block
            }
            _ => {}
        }
        if let Some(v) = o.listen_xpub_nodrop {
            self.listen_xpub_nodrop = v;
        }
        self.listen_xpub_nodrop = self.slow_subscriber != SlowSubscriber::Drop;
        Ok(())
    }

    /// Checks values that can be wrong whatever their source.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.reactors == 0 || self.reactors > 256 {
            return Err(ConfigError::Invalid(format!(
                "reactors must be from 1 to 256, not {}",
                self.reactors
            )));
        }
        if !self.cores.is_empty() && self.cores.len() != self.reactors {
            return Err(ConfigError::Invalid(format!(
                "cores lists {} cores for {} reactors: give one core per reactor, or none",
                self.cores.len(),
                self.reactors
            )));
        }
        let available = core_affinity::get_core_ids().map(|c| c.len()).unwrap_or(0);
        if let Some(&bad) = self
            .cores
            .iter()
            .find(|&&c| available > 0 && c >= available)
        {
            return Err(ConfigError::Invalid(format!(
                "core {bad} does not exist: this machine has cores 0 to {}",
                available - 1
            )));
        }
        if self.slow_subscriber == SlowSubscriber::Disconnect && self.stall_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "stall_timeout_ms must be above 0 with slow_subscriber = \"disconnect\"".into(),
            ));
        }
        if !self.receive_buffers.is_power_of_two() || self.receive_buffers < 8 {
            return Err(ConfigError::Invalid(format!(
                "receive_buffers must be a power of two from 8 to 32768, not {}",
                self.receive_buffers
            )));
        }
        if self.max_message_size == 0 {
            return Err(ConfigError::Invalid(
                "max_message_size must be above 0".into(),
            ));
        }
        if self.listen_xpub_endpoint == self.listen_xsub_endpoint
            && !self.listen_xpub_endpoint.ends_with(":*")
        {
            return Err(ConfigError::Invalid(format!(
                "listen_xpub_endpoint and listen_xsub_endpoint are both {:?}: they need \
                 different ports",
                self.listen_xpub_endpoint
            )));
        }
        Ok(())
    }

    /// The reactors this configuration asks for.
    pub fn reactor_config(&self) -> ReactorConfig {
        let cores = if self.cores.is_empty() {
            vec![None; self.reactors.max(1)]
        } else {
            self.cores.iter().map(|&c| Some(c)).collect()
        };
        ReactorConfig {
            cores,
            buffer_count: self.receive_buffers,
            backend: self.backend,
            ..ReactorConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_where_zeek_looks() {
        let c = BrokerConfig::default();
        assert_eq!(c.listen_xpub_endpoint, "tcp://127.0.0.1:5555");
        assert_eq!(c.listen_xsub_endpoint, "tcp://127.0.0.1:5556");
        assert_eq!(c.slow_subscriber, SlowSubscriber::Block);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn a_file_with_zeeks_names_applies() {
        let o = BrokerConfig::parse_file(
            "b.toml",
            r#"
            listen_xpub_endpoint = "tcp://10.0.0.1:27760"
            listen_xsub_endpoint = "tcp://10.0.0.1:27761"
            xpub_sndhwm = 0
            xpub_sndbuf = -1
            xsub_rcvbuf = 4194304
            linger_ms = 100
            slow_subscriber = "disconnect"
            stall_timeout_ms = 2500
            "#,
        )
        .unwrap();
        let mut c = BrokerConfig::default();
        c.apply(o).unwrap();
        assert_eq!(c.listen_xsub_endpoint, "tcp://10.0.0.1:27761");
        assert_eq!(c.xpub_sndhwm, 0);
        assert_eq!(c.xpub_sndbuf, None);
        assert_eq!(c.xsub_rcvbuf, Some(4 << 20));
        assert_eq!(c.linger, Duration::from_millis(100));
        assert_eq!(c.slow_subscriber, SlowSubscriber::Disconnect);
        assert_eq!(c.stall_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn bad_files_and_values_name_what_is_wrong() {
        let e = BrokerConfig::parse_file("b.toml", "xpub_sndhwn = 5").unwrap_err();
        assert!(e.to_string().contains("xpub_sndhwn"), "{e}");
        let huge = BrokerConfig::parse_file("b.toml", "xpub_sndhwm = 4294967296").unwrap();
        let e = BrokerConfig::default().apply(huge).unwrap_err();
        assert!(e.to_string().contains("xpub_sndhwm"), "{e}");
        let e = BrokerConfig::parse_file("b.toml", "xpub_sndhwm = \"lots\"").unwrap_err();
        assert!(e.to_string().contains("xpub_sndhwm"), "{e}");
        let e = BrokerConfig::parse_file("b.toml", "slow_subscriber = \"maybe\"").unwrap_err();
        assert!(e.to_string().contains("maybe"), "{e}");
        let mut c = BrokerConfig::default();
        let e = c
            .apply(Overrides {
                xpub_sndhwm: Some(-3),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(e.to_string().contains("xpub_sndhwm"), "{e}");
        let e = c
            .apply(Overrides {
                xsub_rcvbuf: Some(0),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(e.to_string().contains("xsub_rcvbuf"), "{e}");
        c.reactors = 2;
        c.cores = vec![0];
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("one core per reactor"));
    }

    #[test]
    fn address_lists_come_from_the_file_and_bad_ranges_are_named() {
        let mut c = BrokerConfig::default();
        let o = BrokerConfig::parse_file(
            "b.toml",
            "allow_addresses = [\"10.0.0.0/8\", \"192.0.2.7\"]\ndeny_addresses = [\"10.9.0.0/16\"]",
        )
        .unwrap();
        c.apply(o).unwrap();
        assert_eq!(c.addresses.allow.len(), 2);
        assert_eq!(c.addresses.deny[0].to_string(), "10.9.0.0/16");
        // A later source that sets only one list keeps the other.
        c.apply(Overrides {
            deny_addresses: Some(vec![]),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!((c.addresses.allow.len(), c.addresses.deny.len()), (2, 0));
        let bad = BrokerConfig::parse_file("b.toml", "deny_addresses = [\"10.0.0.0/40\"]").unwrap();
        let e = c.apply(bad).unwrap_err().to_string();
        assert!(
            e.contains("deny_addresses") && e.contains("10.0.0.0/40"),
            "{e}"
        );
    }

    #[test]
    fn nodrop_false_means_policy_drop_and_conflicts_with_block() {
        let mut c = BrokerConfig::default();
        c.apply(Overrides {
            listen_xpub_nodrop: Some(false),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.slow_subscriber, SlowSubscriber::Drop);
        let e = BrokerConfig::default()
            .apply(Overrides {
                listen_xpub_nodrop: Some(false),
                slow_subscriber: Some(SlowSubscriber::Block),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(e.to_string().contains("listen_xpub_nodrop"), "{e}");
    }

    const SERVER_PUBLIC: &str = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    const SERVER_SECRET: &str = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
    const CLIENT_PUBLIC: &str = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn curve_options_come_from_the_file_with_zeeks_names() {
        let o = BrokerConfig::parse_file(
            "b.toml",
            &format!(
                r#"
                curve_server_publickey = "{SERVER_PUBLIC}"
                curve_server_secretkey = "{SERVER_SECRET}"
                curve_client_publickey = "{CLIENT_PUBLIC}"
                curve_allowed_clients = ["{SERVER_PUBLIC}"]
                "#
            ),
        )
        .unwrap();
        assert!(!format!("{o:?}").contains(SERVER_SECRET));
        let mut c = BrokerConfig::default();
        assert_eq!(c.curve(no_env), Ok(None));
        c.apply(o).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains(SERVER_SECRET), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let s = c.curve(no_env).unwrap().unwrap();
        assert_eq!(s.server.public.to_z85(), SERVER_PUBLIC);
        assert_eq!(s.client_public.to_z85(), CLIENT_PUBLIC);
        assert_eq!(s.allowed_clients.len(), 1);
        // "" is Zeek's default: not set.
        c.apply(
            BrokerConfig::parse_file(
                "b.toml",
                "curve_server_secretkey = \"\"\ncurve_client_publickey = \"\"\n\
                 curve_server_publickey = \"\"\ncurve_allowed_clients = []\ncurve_keyfile = \"\"",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(c.curve, CurveOptions::default());
        assert_eq!(c.curve(no_env), Ok(None));
    }

    #[test]
    fn a_config_file_error_never_quotes_a_secret() {
        let e = BrokerConfig::parse_file(
            "b.toml",
            &format!("curve_server_secretkye = \"{SERVER_SECRET}\""),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("curve_server_secretkye"), "{e}");
        assert!(!e.contains(SERVER_SECRET), "{e}");
        let e = BrokerConfig::parse_file(
            "b.toml",
            &format!("curve_server_secretkey = \"{SERVER_SECRET}"),
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains(&SERVER_SECRET[..10]), "{e}");
    }

    #[test]
    fn a_config_file_with_a_secret_must_be_private() {
        use std::os::unix::fs::PermissionsExt;

        let dir = std::env::temp_dir().join(format!("zring-broker-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("broker.toml");
        std::fs::write(&path, "xpub_sndhwm = 5\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Without a secret, the file may be public.
        assert_eq!(BrokerConfig::read_file(&path).unwrap().xpub_sndhwm, Some(5));
        std::fs::write(
            &path,
            format!("curve_server_secretkey = \"{SERVER_SECRET}\"\n"),
        )
        .unwrap();
        let e = BrokerConfig::read_file(&path).unwrap_err().to_string();
        assert!(e.contains("(mode 0644)") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(BrokerConfig::read_file(&path)
            .unwrap()
            .curve_server_secretkey
            .is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
