//! `zring logger`.

use std::time::Duration;

use clap::ValueEnum;

use crate::common::{
    address_summary, curve_summary, resolve_curve, serve_metrics, AddressArgs, CurveArgs,
    DaemonArgs,
};

#[derive(Debug, clap::Args)]
pub(crate) struct LoggerArgs {
    /// Where nodes' log PUSH sockets connect: the logger's endpoint from
    /// the cluster layout (Zeek's listen_log_endpoint), e.g. tcp://10.0.0.5:27762.
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) listen: String,
    /// Directory the logs are written to (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) dir: std::path::PathBuf,
    /// Output format: Zeek's tab-separated ASCII, or JSON lines as
    /// LogAscii::use_json = T writes them.
    #[arg(long, value_enum, default_value = "ascii")]
    pub(crate) format: FormatArg,
    /// Rotate every N seconds, on multiples of N (3600: on the hour, as a
    /// Zeek cluster logger does); 0 = never.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub(crate) rotate_interval: u64,
    /// Compress rotated files with gzip (FILE.gz), off the write path.
    #[arg(long)]
    pub(crate) gzip: bool,
    /// At a stop, rotate every file (and run --postprocessor on it with
    /// terminating 1), as a Zeek logger node does; false closes them in
    /// place. Only when rotating (--rotate-interval not 0).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) rotate_on_shutdown: bool,
    /// Move rotated files into this directory (relative: to --dir), made
    /// if missing: Zeek's Log::default_rotation_dir, `log-queue` under
    /// Zeek's Supervisor. Default: beside the open files.
    #[arg(long, value_name = "DIR")]
    pub(crate) rotation_dir: Option<std::path::PathBuf>,
    /// How rotated files are named. zeek: conn.<open>.log, as a logger
    /// under ZeekControl; archiver: conn__<open>__<close>__.log, as a logger
    /// under Zeek's Supervisor for zeek-archiver.
    #[arg(long, value_enum, value_name = "NAMES", default_value = "zeek")]
    pub(crate) rotation_names: RotationNamesArg,
    /// Metadata in archiver names, as Zeek's archiver_log_metadata:
    /// key=value pairs separated by commas, e.g. log_suffix=logger-1 (what
    /// Zeek sets when a cluster has several loggers).
    #[arg(long, value_name = "K=V,...", value_parser = parse_pairs)]
    pub(crate) archiver_metadata: Option<Pairs>,
    /// Run this on each rotated file, as Zeek's
    /// Log::default_rotation_postprocessor_cmd (ZeekControl sets
    /// archive-log): through sh, in --dir, with Zeek's arguments: the
    /// rotated file, the path, open and close times (%y-%m-%d_%H.%M.%S),
    /// 1 when stopping else 0, and the writer (ascii).
    #[arg(long, value_name = "COMMAND")]
    pub(crate) postprocessor: Option<String>,
    /// An environment variable for the postprocessor, set as ZEEK_ARG_<KEY>
    /// (Zeek's Log::default_rotation_postprocessor_cmd_env); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub(crate) postprocessor_env: Vec<(String, String)>,
    /// Batches queued for the writer before the logger stops reading from
    /// nodes (Zeek's log_rcvhwm).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) rcvhwm: usize,
    /// SO_RCVBUF for node connections in bytes; -1 = OS default (Zeek's log_rcvbuf).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, default_value_t = -1)]
    pub(crate) rcvbuf: i64,
    /// Largest message accepted from a node, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    pub(crate) max_message_size: u64,
    /// Most log paths (files) open at once; a batch for one more is rejected
    /// [default: 1024, or fewer if the file descriptor limit is low]. With 64
    /// descriptors kept for connections, it must fit the limit (RLIMIT_NOFILE,
    /// raised to its hard limit at start).
    #[arg(long, value_name = "N")]
    pub(crate) max_paths: Option<usize>,
    /// What a batch the file system refuses (disk full, quota, I/O error,
    /// permissions) costs. block: it is held and written again (after 100 ms,
    /// backing off to every 5 s) while nothing more is read from the nodes,
    /// so TCP pushes back on them; nothing read is lost. drop: it is dropped
    /// and counted (zring_logger_records_dropped_total).
    #[arg(long, value_enum, value_name = "POLICY", default_value = "block")]
    pub(crate) on_write_error: WriteErrorArg,
    /// When logs are flushed to the disk (fdatasync). interval: every open
    /// file once a second (a power loss costs about the last second); rotate:
    /// at rotation and close (rotated files are whole on disk); never: when
    /// the kernel writes back. See docs/operations.md.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "rotate")]
    pub(crate) fsync: FsyncArg,
    /// At a stop, read on from the connected nodes until none has sent
    /// anything for this long...
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 200)]
    pub(crate) drain_ms: u64,
    /// ...but stop reading this long after the signal at most.
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 2000)]
    pub(crate) linger_ms: u64,
    /// How long the writer may sleep on after a batch arrives, so that it
    /// wakes once for several: fewer wake-ups, less CPU; 0 = at once. The
    /// queue filling halfway wakes it sooner.
    #[arg(
        long,
        value_name = "MICROSECONDS",
        default_value_t = zring::logger::config::DEFAULT_WAKE_DELAY.as_micros() as u64
    )]
    pub(crate) wake_delay_us: u64,
    /// While nodes stream, how long the receiving reactor lets data gather
    /// before it wakes to read it: fewer, larger receives, less CPU; 0 =
    /// wake for every arrival. The first batch after a quiet spell is read
    /// at once.
    #[arg(
        long,
        value_name = "MICROSECONDS",
        default_value_t = zring::logger::config::DEFAULT_COALESCE.as_micros() as u64
    )]
    pub(crate) coalesce_us: u64,
    #[command(flatten)]
    pub(crate) curve: CurveArgs,
    #[command(flatten)]
    pub(crate) addresses: AddressArgs,
    #[command(flatten)]
    pub(crate) daemon: DaemonArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RotationNamesArg {
    Zeek,
    Archiver,
}

/// `KEY=VALUE`.
pub(crate) fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// `K=V,K=V,...`, in order.
#[derive(Debug, Clone)]
pub(crate) struct Pairs(pub(crate) Vec<(String, String)>);

pub(crate) fn parse_pairs(text: &str) -> Result<Pairs, String> {
    text.split(',')
        .map(parse_pair)
        .collect::<Result<_, _>>()
        .map(Pairs)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum WriteErrorArg {
    Block,
    Drop,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FsyncArg {
    Interval,
    Rotate,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Ascii,
    Json,
}

pub(crate) fn run(args: LoggerArgs) -> anyhow::Result<()> {
    use zring::logger::{LogFormatKind, Logger, LoggerConfig};

    let mut config = LoggerConfig::new(args.listen);
    config.dir = args.dir;
    config.format = match args.format {
        FormatArg::Ascii => LogFormatKind::Ascii,
        FormatArg::Json => LogFormatKind::Json,
    };
    config.rotate_interval =
        (args.rotate_interval > 0).then(|| Duration::from_secs(args.rotate_interval));
    config.gzip = args.gzip;
    config.rotate_on_shutdown = args.rotate_on_shutdown;
    config.rotation_dir = args.rotation_dir;
    config.rotation_names = match args.rotation_names {
        RotationNamesArg::Zeek => zring::logger::files::RotationNames::Zeek,
        RotationNamesArg::Archiver => zring::logger::files::RotationNames::Archiver,
    };
    config.archiver_metadata = args.archiver_metadata.map(|p| p.0).unwrap_or_default();
    config.postprocessor = args.postprocessor;
    config.postprocessor_env = args.postprocessor_env;
    config.rcvhwm = args.rcvhwm;
    config.rcvbuf = match args.rcvbuf {
        -1 => None,
        n if n > 0 => Some(n as usize),
        n => anyhow::bail!("--rcvbuf must be -1 (the OS default) or a positive size, not {n}"),
    };
    config.max_message_size = args.max_message_size;
    config.max_paths = args.max_paths;
    config.on_write_error = match args.on_write_error {
        WriteErrorArg::Block => zring::logger::WriteErrorPolicy::Block,
        WriteErrorArg::Drop => zring::logger::WriteErrorPolicy::Drop,
    };
    config.fsync = match args.fsync {
        FsyncArg::Interval => zring::logger::Fsync::Interval,
        FsyncArg::Rotate => zring::logger::Fsync::Rotate,
        FsyncArg::Never => zring::logger::Fsync::Never,
    };
    config.drain = Duration::from_millis(args.drain_ms);
    config.linger = Duration::from_millis(args.linger_ms);
    config.wake_delay =
        Some(std::time::Duration::from_micros(args.wake_delay_us)).filter(|d| !d.is_zero());
    config.coalesce =
        Some(std::time::Duration::from_micros(args.coalesce_us)).filter(|d| !d.is_zero());
    config.cores = args.daemon.cores.unwrap_or_default();
    config.reactors = args.daemon.reactors.unwrap_or(config.cores.len().max(1));
    config.backend = args.daemon.backend.backend.unwrap_or_default();
    config.curve = args.curve.into_options();
    config.addresses = zring::AddressLists::parse(
        &args.addresses.allow_addresses.unwrap_or_default(),
        &args.addresses.deny_addresses.unwrap_or_default(),
    )
    .map_err(anyhow::Error::msg)?;
    let curve = resolve_curve(|| config.curve(zring::keys::process_env))?;
    let signals = zring::StopSignals::block();
    let security = curve
        .as_ref()
        .map(|c| c.server_security())
        .unwrap_or_default();
    let logger = Logger::start_with_security(config.clone(), security)?;
    tracing::info!(
        listen = logger.endpoint(),
        dir = %config.dir.display(),
        format = config.format.name(),
        rotate_interval_s = config.rotate_interval.map_or(0, |d| d.as_secs()),
        gzip = config.gzip,
        rotation_names = config.rotation_names.name(),
        postprocessor = config.postprocessor.as_deref().unwrap_or("none"),
        on_write_error = config.on_write_error.name(),
        fsync = config.fsync.name(),
        reactors = config.reactors,
        backend = logger.backend(),
        curve = curve_summary(&curve),
        addresses = address_summary(&config.addresses),
        "zring logger running"
    );
    let metrics = serve_metrics(args.daemon.metrics_listen.as_deref(), || {
        logger.metrics_source()
    })?;
    let signal = signals.wait();
    tracing::info!(signal, "shutting down: writing what was received");
    drop(metrics);
    let stats = logger.shutdown();
    tracing::info!(
        batches = stats.batches,
        records = stats.records,
        rejected = stats.rejected.values().sum::<u64>(),
        records_dropped = ?stats.records_dropped,
        write_errors = stats.write_error_count(),
        "zring logger stopped"
    );
    Ok(())
}
