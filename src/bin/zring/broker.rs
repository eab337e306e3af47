//! `zring broker`.

use clap::ValueEnum;

use crate::common::{
    address_summary, curve_summary, resolve_curve, serve_metrics, AddressArgs, CurveArgs,
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

pub(crate) fn run(args: BrokerArgs) -> anyhow::Result<()> {
    use zring::broker::config::Overrides;
    use zring::broker::{Broker, BrokerConfig, SlowSubscriber};

    let mut config = BrokerConfig::default();
    if let Some(path) = &args.config {
        config.apply(BrokerConfig::read_file(path)?)?;
    }
    let reactors = args
        .daemon
        .reactors
        .or(match (&args.daemon.cores, args.daemon.reactors) {
            (Some(cores), None) => Some(cores.len()),
            _ => None,
        });
    config.apply(Overrides {
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
    })?;
    let curve = resolve_curve(|| config.curve(zring::keys::process_env))?;
    // Block the stop signals before any thread starts, so every thread
    // inherits the mask and only `wait_for_stop_signal` receives them.
    let signals = zring::StopSignals::block();
    let security = curve
        .as_ref()
        .map(|c| c.server_security())
        .unwrap_or_default();
    let broker = Broker::start_with_security(config, security)?;
    let config = broker.config();
    let cores = if config.cores.is_empty() {
        "not pinned".to_owned()
    } else {
        format!("{:?}", config.cores)
    };
    tracing::info!(
        xpub = broker.xpub_endpoint(),
        xsub = broker.xsub_endpoint(),
        reactors = config.reactors,
        backend = broker.backend(),
        cores,
        slow_subscriber = config.slow_subscriber.name(),
        xpub_sndhwm = config.xpub_sndhwm,
        curve = curve_summary(&curve),
        addresses = address_summary(&config.addresses),
        "zring broker running"
    );
    let metrics = serve_metrics(config.metrics_listen.as_deref(), || broker.metrics_source())?;
    let signal = signals.wait();
    tracing::info!(
        signal,
        linger_ms = config.linger.as_millis() as u64,
        "shutting down"
    );
    drop(metrics);
    broker.shutdown();
    Ok(())
}
