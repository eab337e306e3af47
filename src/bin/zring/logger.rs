//! `zring logger`.

use std::time::Duration;

use clap::ValueEnum;

use zring::keys::SecretText;

use crate::common::{
    address_summary, bind_metrics, cores_summary, curve_summary, log_live_changes, resolve_curve,
    serve_metrics, serve_signals, server_security, warn_about_threads, AddressArgs, CurveArgs,
    DaemonArgs,
};

#[derive(Debug, clap::Args)]
pub(crate) struct LoggerArgs {
    /// TOML file with any of the options below (keys with underscores,
    /// e.g. listen, dir, rotate_interval); flags override it. SIGHUP
    /// re-reads it. See packaging/etc/logger.toml.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Where nodes' log PUSH sockets connect: the logger's endpoint from
    /// the cluster layout (Zeek's listen_log_endpoint), e.g.
    /// tcp://10.0.0.5:27762. Required, here or in the config file.
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) listen: Option<String>,
    /// Directory the logs are written to, created (once the endpoint is
    /// bound) if missing. Required, here or in the config file: the
    /// packaged units use /var/log/zring/NAME.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<std::path::PathBuf>,
    /// Output format: Zeek's tab-separated ASCII, or JSON lines as
    /// LogAscii::use_json = T writes them [default: ascii].
    #[arg(long, value_enum)]
    pub(crate) format: Option<FormatArg>,
    /// Rotate every N seconds, on multiples of N (3600: on the hour, as a
    /// Zeek cluster logger does); 0 = never [default: 3600].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) rotate_interval: Option<u64>,
    /// Compress rotated files with gzip (FILE.gz), off the write path
    /// [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) gzip: Option<bool>,
    /// At a stop, rotate every file (and run --postprocessor on it with
    /// terminating 1), as a Zeek logger node does; false closes them in
    /// place. Only when rotating (--rotate-interval not 0) [default: true].
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub(crate) rotate_on_shutdown: Option<bool>,
    /// Move rotated files into this directory (relative: to --dir), made
    /// if missing: Zeek's Log::default_rotation_dir, `log-queue` under
    /// Zeek's Supervisor. Default: beside the open files.
    #[arg(long, value_name = "DIR")]
    pub(crate) rotation_dir: Option<std::path::PathBuf>,
    /// How rotated files are named. zeek: conn.<open>.log, as a logger
    /// under ZeekControl; archiver: conn__<open>__<close>__.log, as a logger
    /// under Zeek's Supervisor for zeek-archiver [default: zeek].
    #[arg(long, value_enum, value_name = "NAMES")]
    pub(crate) rotation_names: Option<RotationNamesArg>,
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
    /// nodes (Zeek's log_rcvhwm) [default: 1000].
    #[arg(long, value_name = "N")]
    pub(crate) rcvhwm: Option<usize>,
    /// SO_RCVBUF for node connections in bytes; -1 = OS default (Zeek's
    /// log_rcvbuf) [default: -1].
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub(crate) rcvbuf: Option<i64>,
    /// Largest message accepted from a node, in bytes [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_message_size: Option<u64>,
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
    /// and counted (zring_logger_records_dropped_total) [default: block].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub(crate) on_write_error: Option<WriteErrorArg>,
    /// When logs are flushed to the disk (fdatasync). interval: every open
    /// file once a second (a power loss costs about the last second); rotate:
    /// at rotation and close (rotated files are whole on disk); never: when
    /// the kernel writes back. See docs/operations.md [default: rotate].
    #[arg(long, value_enum, value_name = "WHEN")]
    pub(crate) fsync: Option<FsyncArg>,
    /// At a stop, read on from the connected nodes until none has sent
    /// anything for this long... [default: 200]
    #[arg(long, value_name = "MILLISECONDS")]
    pub(crate) drain_ms: Option<u64>,
    /// ...but stop reading this long after the signal at most [default: 2000].
    #[arg(long, value_name = "MILLISECONDS")]
    pub(crate) linger_ms: Option<u64>,
    /// How long the writer may sleep on after a batch arrives, so that it
    /// wakes once for several: fewer wake-ups, less CPU; 0 = at once. The
    /// queue filling halfway wakes it sooner [default: 1000].
    #[arg(long, value_name = "MICROSECONDS")]
    pub(crate) wake_delay_us: Option<u64>,
    /// While nodes stream, how long the receiving reactor lets data gather
    /// before it wakes to read it: fewer, larger receives, less CPU; 0 =
    /// wake for every arrival. The first batch after a quiet spell is read
    /// at once [default: 200].
    #[arg(long, value_name = "MICROSECONDS")]
    pub(crate) coalesce_us: Option<u64>,
    #[command(flatten)]
    pub(crate) curve: CurveArgs,
    #[command(flatten)]
    pub(crate) addresses: AddressArgs,
    #[command(flatten)]
    pub(crate) daemon: DaemonArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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

#[derive(Debug, Clone, Copy, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WriteErrorArg {
    Block,
    Drop,
}

#[derive(Debug, Clone, Copy, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FsyncArg {
    Interval,
    Rotate,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FormatArg {
    Ascii,
    Json,
}

/// The config file's keys: the long options' names with underscores.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoggerFile {
    listen: Option<String>,
    dir: Option<std::path::PathBuf>,
    format: Option<FormatArg>,
    rotate_interval: Option<u64>,
    gzip: Option<bool>,
    rotate_on_shutdown: Option<bool>,
    rotation_dir: Option<std::path::PathBuf>,
    rotation_names: Option<RotationNamesArg>,
    /// `k=v,k=v`, as on the command line.
    archiver_metadata: Option<String>,
    postprocessor: Option<String>,
    postprocessor_env: Option<std::collections::BTreeMap<String, String>>,
    rcvhwm: Option<usize>,
    rcvbuf: Option<i64>,
    max_message_size: Option<u64>,
    max_paths: Option<usize>,
    on_write_error: Option<WriteErrorArg>,
    fsync: Option<FsyncArg>,
    drain_ms: Option<u64>,
    linger_ms: Option<u64>,
    wake_delay_us: Option<u64>,
    coalesce_us: Option<u64>,
    reactors: Option<usize>,
    cores: Option<Vec<usize>>,
    metrics_listen: Option<String>,
    backend: Option<String>,
    curve_server_publickey: Option<String>,
    curve_server_secretkey: Option<SecretText>,
    curve_client_publickey: Option<String>,
    curve_allowed_clients: Option<Vec<String>>,
    curve_keyfile: Option<std::path::PathBuf>,
    allow_addresses: Option<Vec<String>>,
    deny_addresses: Option<Vec<String>>,
}

/// Defaults, then the config file, then the flags (which win).
fn effective_config(args: &LoggerArgs) -> anyhow::Result<zring::logger::LoggerConfig> {
    use zring::logger::{LogFormatKind, LoggerConfig};

    let file: LoggerFile = match &args.config {
        Some(path) => zring::config_file::read(path, |f: &LoggerFile| {
            f.curve_server_secretkey
                .as_ref()
                .is_some_and(|s| !s.is_empty())
        })?,
        None => LoggerFile::default(),
    };
    let from = |flag: &str| match &args.config {
        Some(path) => format!(
            "--{flag} or {flag_key} in {}",
            path.display(),
            flag_key = flag.replace('-', "_")
        ),
        None => format!("--{flag}"),
    };
    let listen = args
        .listen
        .clone()
        .or(file.listen)
        .ok_or_else(|| anyhow::anyhow!("no endpoint to listen on: give {}", from("listen")))?;
    let mut config = LoggerConfig::new(listen);
    config.dir = args.dir.clone().or(file.dir).ok_or_else(|| {
        anyhow::anyhow!(
            "no log directory: give {} (for example /var/log/zring/logger)",
            from("dir")
        )
    })?;
    if let Some(format) = args.format.or(file.format) {
        config.format = match format {
            FormatArg::Ascii => LogFormatKind::Ascii,
            FormatArg::Json => LogFormatKind::Json,
        };
    }
    if let Some(interval) = args.rotate_interval.or(file.rotate_interval) {
        config.rotate_interval = (interval > 0).then(|| Duration::from_secs(interval));
    }
    if let Some(gzip) = args.gzip.or(file.gzip) {
        config.gzip = gzip;
    }
    if let Some(rotate) = args.rotate_on_shutdown.or(file.rotate_on_shutdown) {
        config.rotate_on_shutdown = rotate;
    }
    config.rotation_dir = args.rotation_dir.clone().or(file.rotation_dir);
    if let Some(names) = args.rotation_names.or(file.rotation_names) {
        config.rotation_names = match names {
            RotationNamesArg::Zeek => zring::logger::files::RotationNames::Zeek,
            RotationNamesArg::Archiver => zring::logger::files::RotationNames::Archiver,
        };
    }
    config.archiver_metadata = match (&args.archiver_metadata, &file.archiver_metadata) {
        (Some(pairs), _) => pairs.0.clone(),
        (None, Some(text)) => {
            parse_pairs(text)
                .map_err(|e| anyhow::anyhow!("archiver_metadata: {e}"))?
                .0
        }
        (None, None) => Vec::new(),
    };
    config.postprocessor = args.postprocessor.clone().or(file.postprocessor);
    config.postprocessor_env = if args.postprocessor_env.is_empty() {
        file.postprocessor_env
            .unwrap_or_default()
            .into_iter()
            .collect()
    } else {
        args.postprocessor_env.clone()
    };
    if let Some(rcvhwm) = args.rcvhwm.or(file.rcvhwm) {
        config.rcvhwm = rcvhwm;
    }
    config.rcvbuf = match args.rcvbuf.or(file.rcvbuf).unwrap_or(-1) {
        -1 => None,
        n if n > 0 => Some(n as usize),
        n => anyhow::bail!("rcvbuf must be -1 (the OS default) or a positive size, not {n}"),
    };
    if let Some(max) = args.max_message_size.or(file.max_message_size) {
        config.max_message_size = max;
    }
    config.max_paths = args.max_paths.or(file.max_paths);
    if let Some(policy) = args.on_write_error.or(file.on_write_error) {
        config.on_write_error = match policy {
            WriteErrorArg::Block => zring::logger::WriteErrorPolicy::Block,
            WriteErrorArg::Drop => zring::logger::WriteErrorPolicy::Drop,
        };
    }
    if let Some(fsync) = args.fsync.or(file.fsync) {
        config.fsync = match fsync {
            FsyncArg::Interval => zring::logger::Fsync::Interval,
            FsyncArg::Rotate => zring::logger::Fsync::Rotate,
            FsyncArg::Never => zring::logger::Fsync::Never,
        };
    }
    if let Some(ms) = args.drain_ms.or(file.drain_ms) {
        config.drain = Duration::from_millis(ms);
    }
    if let Some(ms) = args.linger_ms.or(file.linger_ms) {
        config.linger = Duration::from_millis(ms);
    }
    if let Some(us) = args.wake_delay_us.or(file.wake_delay_us) {
        config.wake_delay = Some(Duration::from_micros(us)).filter(|d| !d.is_zero());
    }
    if let Some(us) = args.coalesce_us.or(file.coalesce_us) {
        config.coalesce = Some(Duration::from_micros(us)).filter(|d| !d.is_zero());
    }
    config.cores = args.daemon.cores.clone().or(file.cores).unwrap_or_default();
    config.reactors = args
        .daemon
        .reactors
        .or(file.reactors)
        .unwrap_or(config.cores.len().max(1));
    config.backend = match (args.daemon.backend.backend, &file.backend) {
        (Some(backend), _) => backend,
        (None, Some(name)) => name
            .parse()
            .map_err(|e: String| anyhow::anyhow!("backend: {e}"))?,
        (None, None) => zring::Backend::default(),
    };
    // "" turns the endpoint off, as in the broker's file.
    config.metrics_listen = args
        .daemon
        .metrics_listen
        .clone()
        .or(file.metrics_listen)
        .filter(|a| !a.is_empty());
    config.curve.apply(zring::keys::CurveOverrides {
        server_publickey: file.curve_server_publickey,
        server_secretkey: file.curve_server_secretkey,
        client_publickey: file.curve_client_publickey,
        allowed_clients: file.curve_allowed_clients,
        keyfile: file.curve_keyfile,
    });
    config.curve.apply(args.curve.overrides());
    config.addresses = zring::AddressLists::parse(
        &args
            .addresses
            .allow_addresses
            .clone()
            .or(file.allow_addresses)
            .unwrap_or_default(),
        &args
            .addresses
            .deny_addresses
            .clone()
            .or(file.deny_addresses)
            .unwrap_or_default(),
    )
    .map_err(anyhow::Error::msg)?;
    Ok(config)
}

pub(crate) fn run(args: LoggerArgs) -> anyhow::Result<std::process::ExitCode> {
    use zring::logger::Logger;

    // First, before any thread (see the broker's run).
    let signals = zring::DaemonSignals::block();
    let config = effective_config(&args)?;
    let curve = resolve_curve(|| config.curve(zring::keys::process_env))?;
    warn_about_threads(config.reactors, &config.cores);
    let metrics = bind_metrics(config.metrics_listen.as_deref())?;
    let security = server_security(&curve);
    let logger = Logger::start_with_security(config.clone(), security)?;
    let metrics = serve_metrics(metrics, || logger.metrics_source())?;
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
        cores = cores_summary(&config.cores),
        backend = logger.backend(),
        curve = curve_summary(&curve),
        addresses = address_summary(&config.addresses),
        "zring logger running"
    );
    let status = format!(
        "logging: {} into {}",
        logger.endpoint(),
        config.dir.display()
    );
    let mut running = config;
    let mut running_curve = curve;
    let signal = serve_signals(&signals, &status, || {
        logger.reopen_files();
        (running, running_curve) = reload(&logger, &args, &running, &running_curve)?;
        Ok(())
    });
    tracing::info!(signal, "shutting down: writing what was received");
    drop(metrics);
    let stats = logger.shutdown();
    tracing::info!(
        batches = stats.batches,
        records = stats.records,
        rejected = stats.rejected.values().sum::<u64>(),
        records_dropped = stats.records_dropped_count(),
        records_dropped_by_reason = stats
            .records_dropped
            .iter()
            .map(|(reason, n)| format!("{reason}={n}"))
            .collect::<Vec<_>>()
            .join(","),
        write_errors = stats.write_error_count(),
        "zring logger stopped"
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// SIGHUP: the files were asked to reopen; the config file is read again
/// and its address lists and CURVE keys apply to new connections. Other
/// changed settings are named and wait for a restart.
fn reload(
    logger: &zring::logger::Logger,
    args: &LoggerArgs,
    running: &zring::logger::LoggerConfig,
    running_curve: &Option<zring::keys::CurveSettings>,
) -> anyhow::Result<(
    zring::logger::LoggerConfig,
    Option<zring::keys::CurveSettings>,
)> {
    let new = effective_config(args)?;
    let curve = resolve_curve(|| new.curve(zring::keys::process_env))?;
    let security = server_security(&curve);
    logger
        .reload_security(security, &new.addresses)
        .map_err(anyhow::Error::msg)?;
    let mut probe = new.clone();
    probe.addresses = running.addresses.clone();
    probe.curve = running.curve.clone();
    if probe != *running {
        tracing::warn!(
            "reload: settings other than the address lists and CURVE keys changed; they \
             apply only at a restart"
        );
    }
    log_live_changes(
        (&running.addresses, running_curve),
        (&new.addresses, &curve),
    );
    let mut kept = running.clone();
    kept.addresses = new.addresses;
    kept.curve = new.curve;
    Ok((kept, curve))
}
