//! The `zring` command line.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use zring::cat::CatConfig;
use zring::keys::{CurveOptions, CurveSettings, SecretText};
use zring::{Context, ReactorConfig, SocketKind};

/// zring: a native, libzmq-free ZeroMQ (ZMTP 3.x) dataplane on io_uring.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The central XPUB/XSUB broker of a Zeek cluster (a drop-in for Zeek's zmq_proxy).
    ///
    /// With no arguments it listens where Zeek's nodes look for their broker:
    /// XPUB side on tcp://127.0.0.1:5555 (nodes' XSUBs connect), XSUB side on
    /// tcp://127.0.0.1:5556 (nodes' XPUBs connect). Options are named after
    /// Zeek's Cluster::Backend::ZeroMQ options; a TOML file (--config) may
    /// set the same keys with underscores, and flags override it. Stops
    /// cleanly on SIGINT or SIGTERM. See docs/operations.md.
    Broker(BrokerArgs),
    /// A Zeek logger node: receives the log batches Zeek's nodes push and
    /// writes Zeek's logs.
    ///
    /// Binds a PULL socket on --listen (the endpoint Zeek's cluster layout
    /// gives this logger; nodes' log PUSH sockets connect there), decodes
    /// zeek-bin-serializer batches and writes one file per log path into
    /// --dir, in Zeek's ASCII format or JSON lines, rotated hourly as a
    /// Zeek cluster logger does. Nothing read is dropped: a slow or full
    /// disk makes the logger stop reading, and TCP pushes back on the
    /// nodes. SIGINT or SIGTERM stops accepting nodes, reads what the
    /// connected ones already sent, writes it, closes the files and exits.
    /// See docs/operations.md ("What the logger guarantees").
    Logger(LoggerArgs),
    /// Print what a socket receives, or send stdin's lines, one message per line.
    ///
    /// Receivers (sub, xsub, pull) print each message as its frames joined
    /// by the separator, each frame as text when printable, else as 0x-hex.
    /// Senders (pub, push, xpub) send each stdin line as a message, split
    /// into frames at the separator; a frame written 0x... is hex. Examples:
    ///
    ///   zring cat sub tcp://127.0.0.1:5555 --topic zeek/
    ///
    ///   printf 'log-write|payload\n' | zring cat push tcp://logger:5557
    #[command(verbatim_doc_comment)]
    Cat(CatArgs),
    /// Generate a CURVE key pair and print it in Z85, as libzmq's curve_keygen does.
    ///
    /// With --keyfile, write instead a new key file with a server key pair and
    /// a client key pair: the keys of one encrypted Zeek cluster, under Zeek's
    /// option names, for zring broker and zring logger (--curve-keyfile) and
    /// to copy into the nodes' settings. The file is created with mode 0600
    /// and an existing file is never replaced. See docs/security.md.
    Keygen(KeygenArgs),
}

#[derive(Debug, clap::Args)]
struct KeygenArgs {
    /// Write the cluster's key file here (mode 0600; must not exist yet).
    #[arg(long, value_name = "FILE")]
    keyfile: Option<std::path::PathBuf>,
}

/// CURVE encryption, with Zeek's option names (docs/security.md). Instead
/// of these, Zeek's ZEEK_CLUSTER_BACKEND_ZEROMQ_CURVE_* environment
/// variables may be set, but not both.
#[derive(Debug, clap::Args)]
struct CurveArgs {
    /// The cluster's server public key (Z85); optional, checked against the
    /// secret key.
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    curve_server_publickey: Option<String>,
    /// The cluster's server secret key (Z85). Other local users can read
    /// command lines: prefer --curve-keyfile or the environment variable
    /// ZEEK_CLUSTER_BACKEND_ZEROMQ_CURVE_SERVER_SECRETKEY.
    #[arg(long, value_name = "Z85", allow_hyphen_values = true, value_parser = secret_text)]
    curve_server_secretkey: Option<SecretText>,
    /// The nodes' client public key (Z85), the one client key Zeek accepts.
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    curve_client_publickey: Option<String>,
    /// More client public keys to accept (comma-separated, or repeated).
    #[arg(
        long,
        value_name = "Z85,...",
        allow_hyphen_values = true,
        value_delimiter = ','
    )]
    curve_allowed_clients: Option<Vec<String>>,
    /// A key file (TOML, curve_* keys) as `zring keygen --keyfile` writes
    /// it; group and others must have no access to it.
    #[arg(long, value_name = "FILE")]
    curve_keyfile: Option<std::path::PathBuf>,
}

/// Who may connect, by address, whatever the mechanism (CURVE or
/// plaintext). A refused peer is closed on accept, counted in
/// *_access_denied_total and logged.
#[derive(Debug, clap::Args)]
struct AddressArgs {
    /// Address ranges let in, e.g. 10.0.0.0/8,192.0.2.7 (comma-separated or
    /// repeated); once any is given, only these [default: any].
    #[arg(long, value_name = "RANGE,...", value_delimiter = ',')]
    allow_addresses: Option<Vec<String>>,
    /// Address ranges refused, even when an allowed range holds them.
    #[arg(long, value_name = "RANGE,...", value_delimiter = ',')]
    deny_addresses: Option<Vec<String>>,
}

/// What the start-up line says about address lists.
fn address_summary(lists: &zring::AddressLists) -> String {
    let show = |nets: &[ipnet::IpNet]| {
        nets.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    match (lists.allow.is_empty(), lists.deny.is_empty()) {
        (true, true) => "any".to_owned(),
        (false, true) => format!("allow {}", show(&lists.allow)),
        (true, false) => format!("deny {}", show(&lists.deny)),
        (false, false) => format!("allow {}; deny {}", show(&lists.allow), show(&lists.deny)),
    }
}

fn secret_text(text: &str) -> Result<SecretText, std::convert::Infallible> {
    Ok(SecretText::from(text))
}

#[derive(Debug, clap::Args)]
struct BrokerArgs {
    /// TOML file with any of the options below (keys with underscores).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Where nodes' XSUB sockets connect [default: tcp://127.0.0.1:5555].
    #[arg(long, value_name = "ENDPOINT")]
    listen_xpub_endpoint: Option<String>,
    /// Where nodes' XPUB sockets connect [default: tcp://127.0.0.1:5556].
    #[arg(long, value_name = "ENDPOINT")]
    listen_xsub_endpoint: Option<String>,
    /// Messages queued per subscriber (per reactor) before the
    /// slow-subscriber policy applies; 0 = unlimited [default: 1000].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    xpub_sndhwm: Option<i64>,
    /// Accepted for compatibility; zring keeps no receive queue per
    /// publisher (it reads at most 64 KiB ahead of a full subscriber).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    xsub_rcvhwm: Option<i64>,
    /// SO_SNDBUF for subscriber connections in bytes; -1 = OS default.
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    xpub_sndbuf: Option<i64>,
    /// SO_RCVBUF for publisher connections in bytes; -1 = OS default.
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    xsub_rcvbuf: Option<i64>,
    /// Zeek's listen_xpub_nodrop: false drops for a full subscriber (the
    /// same as --slow-subscriber drop) [default: true].
    #[arg(long, value_name = "BOOL")]
    listen_xpub_nodrop: Option<bool>,
    /// Allow IPv6 endpoints; `*` then binds IPv4 and IPv6 [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    ipv6: Option<bool>,
    /// How long shutdown may spend sending what is queued [default: 500].
    #[arg(long, value_name = "MS")]
    linger_ms: Option<u64>,
    /// What a subscriber that cannot keep up costs: block (stop reading the
    /// publishers it slows, so they count xpub_drops; Zeek's behaviour),
    /// drop (its messages only, counted), or disconnect (block, then close
    /// it after --stall-timeout-ms) [default: block].
    #[arg(long, value_enum)]
    slow_subscriber: Option<Policy>,
    /// With --slow-subscriber disconnect: how long a subscriber may keep a
    /// publisher waiting [default: 10000].
    #[arg(long, value_name = "MS")]
    stall_timeout_ms: Option<u64>,
    /// Largest message accepted from a node, in bytes [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    max_message_size: Option<u64>,
    /// Receive buffers of 64 KiB per reactor, a power of two [default: 256].
    #[arg(long, value_name = "N")]
    receive_buffers: Option<u16>,
    #[command(flatten)]
    curve: CurveArgs,
    #[command(flatten)]
    addresses: AddressArgs,
    #[command(flatten)]
    daemon: DaemonArgs,
}

#[derive(Debug, clap::Args)]
struct LoggerArgs {
    /// Where nodes' log PUSH sockets connect: the logger's endpoint from
    /// the cluster layout (Zeek's listen_log_endpoint), e.g. tcp://10.0.0.5:27762.
    #[arg(long, value_name = "ENDPOINT")]
    listen: String,
    /// Directory the logs are written to (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: std::path::PathBuf,
    /// Output format: Zeek's tab-separated ASCII, or JSON lines as
    /// LogAscii::use_json = T writes them.
    #[arg(long, value_enum, default_value = "ascii")]
    format: FormatArg,
    /// Rotate every N seconds, on multiples of N (3600: on the hour, as a
    /// Zeek cluster logger does); 0 = never.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    rotate_interval: u64,
    /// Compress rotated files with gzip (FILE.gz), off the write path.
    #[arg(long)]
    gzip: bool,
    /// At a stop, rotate every file (and run --postprocessor on it with
    /// terminating 1), as a Zeek logger node does; false closes them in
    /// place. Only when rotating (--rotate-interval not 0).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    rotate_on_shutdown: bool,
    /// Move rotated files into this directory (relative: to --dir), made
    /// if missing: Zeek's Log::default_rotation_dir, `log-queue` under
    /// Zeek's Supervisor. Default: beside the open files.
    #[arg(long, value_name = "DIR")]
    rotation_dir: Option<std::path::PathBuf>,
    /// How rotated files are named. zeek: conn.<open>.log, as a logger
    /// under ZeekControl; archiver: conn__<open>__<close>__.log, as a logger
    /// under Zeek's Supervisor for zeek-archiver.
    #[arg(long, value_enum, value_name = "NAMES", default_value = "zeek")]
    rotation_names: RotationNamesArg,
    /// Metadata in archiver names, as Zeek's archiver_log_metadata:
    /// key=value pairs separated by commas, e.g. log_suffix=logger-1 (what
    /// Zeek sets when a cluster has several loggers).
    #[arg(long, value_name = "K=V,...", value_parser = parse_pairs)]
    archiver_metadata: Option<Pairs>,
    /// Run this on each rotated file, as Zeek's
    /// Log::default_rotation_postprocessor_cmd (ZeekControl sets
    /// archive-log): through sh, in --dir, with Zeek's arguments: the
    /// rotated file, the path, open and close times (%y-%m-%d_%H.%M.%S),
    /// 1 when stopping else 0, and the writer (ascii).
    #[arg(long, value_name = "COMMAND")]
    postprocessor: Option<String>,
    /// An environment variable for the postprocessor, set as ZEEK_ARG_<KEY>
    /// (Zeek's Log::default_rotation_postprocessor_cmd_env); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_pair)]
    postprocessor_env: Vec<(String, String)>,
    /// Batches queued for the writer before the logger stops reading from
    /// nodes (Zeek's log_rcvhwm).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    rcvhwm: usize,
    /// SO_RCVBUF for node connections in bytes; -1 = OS default (Zeek's log_rcvbuf).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, default_value_t = -1)]
    rcvbuf: i64,
    /// Largest message accepted from a node, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    max_message_size: u64,
    /// Most log paths (files) open at once; a batch for one more is rejected
    /// [default: 1024, or fewer if the file descriptor limit is low]. With 64
    /// descriptors kept for connections, it must fit the limit (RLIMIT_NOFILE,
    /// raised to its hard limit at start).
    #[arg(long, value_name = "N")]
    max_paths: Option<usize>,
    /// What a batch the file system refuses (disk full, quota, I/O error,
    /// permissions) costs. block: it is held and written again (after 100 ms,
    /// backing off to every 5 s) while nothing more is read from the nodes,
    /// so TCP pushes back on them; nothing read is lost. drop: it is dropped
    /// and counted (zring_logger_records_dropped_total).
    #[arg(long, value_enum, value_name = "POLICY", default_value = "block")]
    on_write_error: WriteErrorArg,
    /// When logs are flushed to the disk (fdatasync). interval: every open
    /// file once a second (a power loss costs about the last second); rotate:
    /// at rotation and close (rotated files are whole on disk); never: when
    /// the kernel writes back. See docs/operations.md.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "rotate")]
    fsync: FsyncArg,
    /// At a stop, read on from the connected nodes until none has sent
    /// anything for this long...
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 200)]
    drain_ms: u64,
    /// ...but stop reading this long after the signal at most.
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 2000)]
    linger_ms: u64,
    /// How long the writer may sleep on after a batch arrives, so that it
    /// wakes once for several: fewer wake-ups, less CPU; 0 = at once. The
    /// queue filling halfway wakes it sooner.
    #[arg(
        long,
        value_name = "MICROSECONDS",
        default_value_t = zring::logger::config::DEFAULT_WAKE_DELAY.as_micros() as u64
    )]
    wake_delay_us: u64,
    /// While nodes stream, how long the receiving reactor lets data gather
    /// before it wakes to read it: fewer, larger receives, less CPU; 0 =
    /// wake for every arrival. The first batch after a quiet spell is read
    /// at once.
    #[arg(
        long,
        value_name = "MICROSECONDS",
        default_value_t = zring::logger::config::DEFAULT_COALESCE.as_micros() as u64
    )]
    coalesce_us: u64,
    #[command(flatten)]
    curve: CurveArgs,
    #[command(flatten)]
    addresses: AddressArgs,
    #[command(flatten)]
    daemon: DaemonArgs,
}

/// Threads, pinning and metrics, the same for the broker and the logger.
#[derive(Debug, clap::Args)]
struct DaemonArgs {
    /// Reactor threads [default: 1; one per --cores entry when given].
    #[arg(long, value_name = "N")]
    reactors: Option<usize>,
    /// Cores to pin reactor threads to, e.g. 2,3 (one per reactor).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9911.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    backend: BackendArg,
}

/// Which kernel interface the reactors run on.
#[derive(Debug, clap::Args)]
struct BackendArg {
    /// auto: io_uring where this kernel and process allow it, else epoll
    /// with one warning that says why; io_uring: fail to start if it is
    /// refused; epoll: always (Linux 4.18+, any container). The
    /// environment's ZRING_BACKEND overrides auto [default: auto].
    #[arg(long, value_name = "BACKEND")]
    backend: Option<zring::Backend>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RotationNamesArg {
    Zeek,
    Archiver,
}

/// `KEY=VALUE`.
fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// `K=V,K=V,...`, in order.
#[derive(Debug, Clone)]
struct Pairs(Vec<(String, String)>);

fn parse_pairs(text: &str) -> Result<Pairs, String> {
    text.split(',')
        .map(parse_pair)
        .collect::<Result<_, _>>()
        .map(Pairs)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum WriteErrorArg {
    Block,
    Drop,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FsyncArg {
    Interval,
    Rotate,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Ascii,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Policy {
    Block,
    Drop,
    Disconnect,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Sub,
    Xsub,
    Pull,
    Pub,
    Xpub,
    Push,
}

#[derive(Debug, clap::Args)]
struct CatArgs {
    /// The socket type.
    kind: Kind,
    /// Endpoints, e.g. tcp://127.0.0.1:5555, tcp://[::1]:5555, ipc:///tmp/x.
    #[arg(required = true)]
    endpoints: Vec<String>,
    /// Bind to the endpoints instead of connecting.
    #[arg(long)]
    bind: bool,
    /// Subscribe to this prefix (sub, xsub; repeatable). Default: everything.
    #[arg(long = "topic", value_name = "PREFIX")]
    topics: Vec<String>,
    /// Separator between frames on a line.
    #[arg(long, short = 's', default_value = "|")]
    separator: String,
    /// Exit after this many messages (receivers).
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// Exit when nothing arrived for this many seconds (receivers).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Wait for this many peers (and, for pub/xpub, a subscription) before sending.
    #[arg(long, default_value_t = 0, value_name = "N")]
    wait_peers: usize,
    #[command(flatten)]
    backend: BackendArg,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A broker reports its endpoints and every peer by default; `cat`
    // keeps stderr for problems. RUST_LOG overrides both.
    let default_level = match cli.command {
        Command::Broker(_) | Command::Logger(_) => "info",
        Command::Cat(_) | Command::Keygen(_) => "warn",
    };
    // Colour only for a person at a terminal: a pipe, a file or journald
    // would keep the escape codes as text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        // A log line that cannot be written (stderr closed: a pipe's reader
        // gone, journald restarting) is lost, not a panic of the thread
        // that logged it, which would take a reactor down.
        .log_internal_errors(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    if matches!(cli.command, Command::Broker(_) | Command::Logger(_)) {
        // Each connection and log file is a descriptor; the usual soft
        // limit of 1024 is far below what the hard limit allows.
        match zring::raise_fd_limit() {
            Ok(limit) => tracing::debug!(limit, "file descriptor limit"),
            Err(e) => tracing::warn!("cannot raise the file descriptor limit: {e}"),
        }
    }
    match cli.command {
        Command::Broker(args) => broker(args),
        Command::Logger(args) => logger(args),
        Command::Cat(args) => cat(args),
        Command::Keygen(args) => keygen(args),
    }
}

fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    use zring::codec::{KeyPair, OsRandom};

    let server = KeyPair::generate(&mut OsRandom)?;
    let Some(path) = args.keyfile else {
        // curve_keygen's two sections, without its preamble.
        let secret = zeroize::Zeroizing::new(server.secret.to_z85());
        println!("== CURVE PUBLIC KEY ==");
        println!("{}", server.public.to_z85());
        println!();
        println!("== CURVE SECRET KEY ==");
        println!("{}", secret.as_str());
        return Ok(());
    };
    let client = KeyPair::generate(&mut OsRandom)?;
    zring::keys::write_keyfile(&path, &server, &client).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} exists: zring keygen never replaces a key file; remove it or choose another",
                path.display()
            )
        } else {
            anyhow::anyhow!("{}: cannot write the key file: {e}", path.display())
        }
    })?;
    println!(
        "wrote {} (mode 0600): a new server key pair and client key pair",
        path.display()
    );
    println!("curve_server_publickey = \"{}\"", server.public.to_z85());
    println!("curve_client_publickey = \"{}\"", client.public.to_z85());
    Ok(())
}

impl CurveArgs {
    fn into_options(self) -> CurveOptions {
        CurveOptions {
            server_publickey: self.curve_server_publickey,
            server_secretkey: self.curve_server_secretkey,
            client_publickey: self.curve_client_publickey,
            allowed_clients: self.curve_allowed_clients.unwrap_or_default(),
            keyfile: self.curve_keyfile,
        }
    }
}

/// Resolves the CURVE keys before anything binds, so a bad or half-given
/// key stops the process with an error that names it.
fn resolve_curve(
    resolve: impl FnOnce() -> Result<Option<CurveSettings>, zring::keys::CurveConfigError>,
) -> anyhow::Result<Option<CurveSettings>> {
    Ok(resolve()?)
}

/// What the start-up line says about encryption: public facts only.
fn curve_summary(curve: &Option<CurveSettings>) -> String {
    match curve {
        None => "off (plaintext)".to_owned(),
        Some(c) => {
            if let Some(note) = zring::codec::mechanism::curve_kernel_note() {
                tracing::warn!("{note}");
            }
            format!(
                "on: server public key {}, {} client key(s) accepted, cipher kernel {}",
                c.server.public.to_z85(),
                c.clients().count(),
                zring::codec::mechanism::curve_kernel().name()
            )
        }
    }
}

fn logger(args: LoggerArgs) -> anyhow::Result<()> {
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

fn broker(args: BrokerArgs) -> anyhow::Result<()> {
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

/// Starts the metrics endpoint when an address is given.
fn serve_metrics(
    listen: Option<&str>,
    source: impl FnOnce() -> zring::metrics::Source,
) -> anyhow::Result<Option<zring::metrics::MetricsServer>> {
    let Some(addr) = listen else {
        return Ok(None);
    };
    let server = zring::metrics::MetricsServer::start(addr, source())
        .map_err(|e| anyhow::anyhow!("metrics_listen = {addr:?}: cannot listen: {e}"))?;
    tracing::info!("metrics at http://{}/metrics", server.local_addr());
    Ok(Some(server))
}

fn cat(args: CatArgs) -> anyhow::Result<()> {
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
