//! `zring cat`.

use std::time::Duration;

use clap::ValueEnum;
use zring::cat::CatConfig;
use zring::{Context, ReactorConfig, SocketKind};

use crate::common::BackendArg;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    Sub,
    Xsub,
    Pull,
    Pub,
    Xpub,
    Push,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CatArgs {
    /// The socket type.
    pub(crate) kind: Kind,
    /// Endpoints, e.g. tcp://127.0.0.1:5555, tcp://[::1]:5555, ipc:///tmp/x.
    #[arg(required = true)]
    pub(crate) endpoints: Vec<String>,
    /// Bind to the endpoints instead of connecting.
    #[arg(long)]
    pub(crate) bind: bool,
    /// Subscribe to this prefix (sub, xsub; repeatable). Default: everything.
    #[arg(long = "topic", value_name = "PREFIX")]
    pub(crate) topics: Vec<String>,
    /// Separator between frames on a line.
    #[arg(long, short = 's', default_value = "|")]
    pub(crate) separator: String,
    /// Exit after this many messages (receivers); fewer before --timeout
    /// is a failure (exit status 1), so `cat sub -n 1 --timeout 5` is a
    /// health check.
    #[arg(long, short = 'n')]
    pub(crate) count: Option<u64>,
    /// Receivers: exit when nothing arrived for this many seconds. Senders:
    /// fail (exit status 1) when no peer connected or took a line for this
    /// long. Without it, both wait for ever.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<f64>,
    /// Wait for this many peers (and, for pub/xpub, a subscription) before sending.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) wait_peers: usize,
    /// CURVE: the server's public key (Z85), as the cluster's nodes have
    /// it; turns encryption on.
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    pub(crate) curve_serverkey: Option<String>,
    /// CURVE: a key file as `zring keygen --keyfile` writes it; its server
    /// public key and client key pair are used (--curve-serverkey wins).
    /// Without a client pair a new one is made, which only a server that
    /// accepts any client lets in.
    #[arg(long, value_name = "FILE")]
    pub(crate) curve_keyfile: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) backend: BackendArg,
}

pub(crate) fn run(args: CatArgs) -> anyhow::Result<std::process::ExitCode> {
    let kind = match args.kind {
        Kind::Sub => SocketKind::Sub,
        Kind::Xsub => SocketKind::Xsub,
        Kind::Pull => SocketKind::Pull,
        Kind::Pub => SocketKind::Pub,
        Kind::Xpub => SocketKind::Xpub,
        Kind::Push => SocketKind::Push,
    };
    let idle_timeout = match args.timeout {
        Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => anyhow::bail!("--timeout must be a non-negative number of seconds, not {s}"),
        None => None,
    };
    let security = curve_security(
        args.curve_serverkey.as_deref(),
        args.curve_keyfile.as_deref(),
    )?;
    if args.bind && !security.is_null() {
        anyhow::bail!("the CURVE options are for connecting to a server; --bind makes a server");
    }
    let config = CatConfig {
        kind,
        endpoints: args.endpoints,
        bind: args.bind,
        topics: args.topics,
        separator: args.separator,
        count: args.count,
        idle_timeout,
        wait_peers: args.wait_peers,
        security,
    };
    let ctx = Context::with_config(&ReactorConfig {
        backend: args.backend.backend.unwrap_or_default(),
        ..ReactorConfig::default()
    })?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match zring::cat::run(&ctx, &config, stdin, stdout) {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(std::process::ExitCode::SUCCESS)
        }
        Ok(got) => match args.count {
            Some(wanted) if !config.kind.can_send() && got < wanted => {
                anyhow::bail!("received {got} of {wanted} message(s) before the timeout")
            }
            _ => Ok(std::process::ExitCode::SUCCESS),
        },
        Err(e) => Err(e),
    }
}

/// The CURVE client security the options ask for (NULL when none is given).
fn curve_security(
    serverkey: Option<&str>,
    keyfile: Option<&std::path::Path>,
) -> anyhow::Result<zring::Security> {
    use zring::codec::{KeyPair, OsRandom, PublicKey};

    let from_file = match keyfile {
        Some(path) => Some(zring::keys::read_client_keys(path)?),
        None => None,
    };
    let server = match serverkey {
        Some(text) => {
            Some(PublicKey::from_z85(text).map_err(|e| anyhow::anyhow!("--curve-serverkey: {e}"))?)
        }
        None => from_file.as_ref().and_then(|f| f.server),
    };
    let Some(server) = server else {
        if keyfile.is_some() {
            anyhow::bail!("the key file has no curve_server_publickey: give --curve-serverkey");
        }
        return Ok(zring::Security::Null);
    };
    let client = match from_file.and_then(|f| f.client) {
        Some(pair) => pair,
        None => KeyPair::generate(&mut OsRandom)?,
    };
    Ok(zring::Security::curve_client(client, server))
}
