//! `zring broker`.

use clap::ValueEnum;

use crate::common::{
    address_summary, bind_metrics, cores_summary, curve_summary, log_live_changes, resolve_curve,
    serve_metrics, serve_signals, server_security, warn_about_threads, AddressArgs, CurveArgs,
    DaemonArgs,
};

#[derive(Debug, clap::Args)]
pub(crate) struct BrokerArgs {
    /// TOML file with any of the options below (keys with underscores).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Where nodes' XSUB sockets connect [default: tcp://127.0.0.1:5555].
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) listen_xpub_endpoint: Option<String>,
    /// Where nodes' XPUB sockets connect [default: tcp://127.0.0.1:5556].
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) listen_xsub_endpoint: Option<String>,
    /// Messages queued per subscriber (per reactor) before the
    /// slow-subscriber policy applies; 0 = unlimited [default: 1000].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) xpub_sndhwm: Option<i64>,
    /// Accepted for compatibility; zring keeps no receive queue per
    /// publisher (it reads at most 64 KiB ahead of a full subscriber).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) xsub_rcvhwm: Option<i64>,
    /// SO_SNDBUF for subscriber connections in bytes; -1 = OS default.
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub(crate) xpub_sndbuf: Option<i64>,
    /// SO_RCVBUF for publisher connections in bytes; -1 = OS default.
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub(crate) xsub_rcvbuf: Option<i64>,
    /// Zeek's listen_xpub_nodrop: false drops for a full subscriber (the
    /// same as --slow-subscriber drop) [default: true].
    #[arg(long, value_name = "BOOL")]
    pub(crate) listen_xpub_nodrop: Option<bool>,
    /// Allow IPv6 endpoints; `*` then binds IPv4 and IPv6 [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) ipv6: Option<bool>,
    /// How long shutdown may spend sending what is queued [default: 500].
    #[arg(long, value_name = "MS")]
    pub(crate) linger_ms: Option<u64>,
    /// What a subscriber that cannot keep up costs: block (stop reading the
    /// publishers it slows, so they count xpub_drops; Zeek's behaviour),
    /// drop (its messages only, counted), or disconnect (block, then close
    /// it after --stall-timeout-ms) [default: block].
    #[arg(long, value_enum)]
    pub(crate) slow_subscriber: Option<Policy>,
    /// With --slow-subscriber disconnect: how long a subscriber may keep a
    /// publisher waiting [default: 10000].
    #[arg(long, value_name = "MS")]
    pub(crate) stall_timeout_ms: Option<u64>,
    /// Largest message accepted from a node, in bytes [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_message_size: Option<u64>,
    /// Receive buffers of 64 KiB per reactor, a power of two [default: 256].
    #[arg(long, value_name = "N")]
    pub(crate) receive_buffers: Option<u16>,
    #[command(flatten)]
    pub(crate) curve: CurveArgs,
    #[command(flatten)]
    pub(crate) addresses: AddressArgs,
    #[command(flatten)]
    pub(crate) daemon: DaemonArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Policy {
    Block,
    Drop,
    Disconnect,
}

pub(crate) fn run(args: BrokerArgs) -> anyhow::Result<std::process::ExitCode> {
    use zring::broker::Broker;

    // First, before any thread: until SIGHUP is blocked it would end the
    // process, and every thread started from here inherits the mask.
    let signals = zring::DaemonSignals::block();
    let path = args.config.clone();
    let flags = flag_overrides(args);
    let config = effective_config(path.as_deref(), &flags)?;
    let curve = resolve_curve(|| config.curve(zring::keys::process_env))?;
    warn_about_threads(config.reactors, &config.cores);
    let metrics = bind_metrics(config.metrics_listen.as_deref())?;
    let security = server_security(&curve);
    let broker = Broker::start_with_security(config, security)?;
    let metrics = serve_metrics(metrics, || broker.metrics_source())?;
    let mut running = broker.config().clone();
    let mut running_curve = curve.clone();
    tracing::info!(
        xpub = broker.xpub_endpoint(),
        xsub = broker.xsub_endpoint(),
        reactors = running.reactors,
        backend = broker.backend(),
        cores = cores_summary(&running.cores),
        slow_subscriber = running.slow_subscriber.name(),
        xpub_sndhwm = running.xpub_sndhwm,
        curve = curve_summary(&curve),
        addresses = address_summary(&running.addresses),
        "zring broker running"
    );
    let status = format!(
        "routing: xpub {}, xsub {}",
        broker.xpub_endpoint(),
        broker.xsub_endpoint()
    );
    let signal = serve_signals(&signals, &status, || {
        (running, running_curve) =
            reload(&broker, path.as_deref(), &flags, &running, &running_curve)?;
        Ok(())
    });
    tracing::info!(
        signal,
        linger_ms = running.linger.as_millis() as u64,
        "shutting down"
    );
    drop(metrics);
    broker.shutdown();
    Ok(std::process::ExitCode::SUCCESS)
}

/// What the command line sets, applied over the config file at start and
/// again at every reload (flags win over the file).
fn flag_overrides(args: BrokerArgs) -> zring::broker::config::Overrides {
    use zring::broker::SlowSubscriber;

    let reactors = args
        .daemon
        .reactors
        .or(match (&args.daemon.cores, args.daemon.reactors) {
            (Some(cores), None) => Some(cores.len()),
            _ => None,
        });
    zring::broker::config::Overrides {
        listen_xpub_endpoint: args.listen_xpub_endpoint,
        listen_xsub_endpoint: args.listen_xsub_endpoint,
        xpub_sndhwm: args.xpub_sndhwm,
        xsub_rcvhwm: args.xsub_rcvhwm,
        xpub_sndbuf: args.xpub_sndbuf,
        xsub_rcvbuf: args.xsub_rcvbuf,
        listen_xpub_nodrop: args.listen_xpub_nodrop,
        ipv6: args.ipv6,
        linger_ms: args.linger_ms,
        slow_subscriber: args.slow_subscriber.map(|p| match p {
            Policy::Block => SlowSubscriber::Block,
            Policy::Drop => SlowSubscriber::Drop,
            Policy::Disconnect => SlowSubscriber::Disconnect,
        }),
        stall_timeout_ms: args.stall_timeout_ms,
        max_message_size: args.max_message_size,
        receive_buffers: args.receive_buffers,
        reactors,
        backend: args.daemon.backend.backend.map(|b| b.name().to_owned()),
        cores: args.daemon.cores,
        metrics_listen: args.daemon.metrics_listen,
        curve_server_publickey: args.curve.curve_server_publickey,
        curve_server_secretkey: args.curve.curve_server_secretkey,
        curve_client_publickey: args.curve.curve_client_publickey,
        curve_allowed_clients: args.curve.curve_allowed_clients,
        curve_keyfile: args.curve.curve_keyfile,
        allow_addresses: args.addresses.allow_addresses,
        deny_addresses: args.addresses.deny_addresses,
    }
}

/// Defaults, then the file, then the flags.
fn effective_config(
    path: Option<&std::path::Path>,
    flags: &zring::broker::config::Overrides,
) -> anyhow::Result<zring::broker::BrokerConfig> {
    use zring::broker::BrokerConfig;

    let mut config = BrokerConfig::default();
    if let Some(path) = path {
        config.apply(BrokerConfig::read_file(path)?)?;
    }
    config.apply(flags.clone())?;
    Ok(config)
}

/// SIGHUP: reads the config file, key file and lists again and applies
/// what can change under running connections (address lists, client keys,
/// the server's keys for new connections). Settings that need a restart
/// are named and kept as they are.
fn reload(
    broker: &zring::broker::Broker,
    path: Option<&std::path::Path>,
    flags: &zring::broker::config::Overrides,
    running: &zring::broker::BrokerConfig,
    running_curve: &Option<zring::keys::CurveSettings>,
) -> anyhow::Result<(
    zring::broker::BrokerConfig,
    Option<zring::keys::CurveSettings>,
)> {
    let mut new = effective_config(path, flags)?;
    let curve = resolve_curve(|| new.curve(zring::keys::process_env))?;
    let security = server_security(&curve);
    broker
        .reload_security(security, &new.addresses)
        .map_err(anyhow::Error::msg)?;
    let restart_only = restart_only_changes(running, &new);
    if !restart_only.is_empty() {
        tracing::warn!(
            settings = restart_only.join(","),
            "reload: these settings changed but apply only at a restart; running with the old values"
        );
    }
    log_live_changes(
        (&running.addresses, running_curve),
        (&new.addresses, &curve),
    );
    // What runs now: the live parts new, the rest as started.
    let mut kept = running.clone();
    kept.addresses = std::mem::take(&mut new.addresses);
    kept.curve = new.curve;
    Ok((kept, curve))
}

/// The settings whose change needs a restart, by their config names.
fn restart_only_changes(
    old: &zring::broker::BrokerConfig,
    new: &zring::broker::BrokerConfig,
) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! compare {
        ($($field:ident => $name:literal),* $(,)?) => {
            $(if old.$field != new.$field { changed.push($name); })*
        };
    }
    compare!(
        listen_xpub_endpoint => "listen_xpub_endpoint",
        listen_xsub_endpoint => "listen_xsub_endpoint",
        xpub_sndhwm => "xpub_sndhwm",
        xsub_rcvhwm => "xsub_rcvhwm",
        xpub_sndbuf => "xpub_sndbuf",
        xsub_rcvbuf => "xsub_rcvbuf",
        listen_xpub_nodrop => "listen_xpub_nodrop",
        ipv6 => "ipv6",
        linger => "linger_ms",
        slow_subscriber => "slow_subscriber",
        stall_timeout => "stall_timeout_ms",
        max_message_size => "max_message_size",
        receive_buffers => "receive_buffers",
        reactors => "reactors",
        backend => "backend",
        cores => "cores",
        metrics_listen => "metrics_listen",
    );
    changed
}
