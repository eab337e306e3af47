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
    /// Exit after this many messages (receivers).
    #[arg(long, short = 'n')]
    pub(crate) count: Option<u64>,
    /// Exit when nothing arrived for this many seconds (receivers).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<f64>,
    /// Wait for this many peers (and, for pub/xpub, a subscription) before sending.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) wait_peers: usize,
    #[command(flatten)]
    pub(crate) backend: BackendArg,
}

pub(crate) fn run(args: CatArgs) -> anyhow::Result<()> {
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
    let config = CatConfig {
        kind,
        endpoints: args.endpoints,
        bind: args.bind,
        topics: args.topics,
        separator: args.separator,
        count: args.count,
        idle_timeout,
        wait_peers: args.wait_peers,
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
            Ok(())
        }
        other => other.map(drop),
    }
}
