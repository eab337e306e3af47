//! The `zring` command line.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use zring::cat::CatConfig;
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
    /// The central XPUB/XSUB broker for Zeek clusters (a drop-in for Zeek's zmq_proxy).
    ///
    /// Not built yet: this prints the plan and exits.
    Broker,
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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Broker => print_quietly(BROKER_PLACEHOLDER.trim()),
        Command::Cat(args) => cat(args),
    }
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
    let ctx = Context::with_config(&ReactorConfig::default())?;
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

/// Prints to stdout; a reader that went away (`zring ... | head`) is not an error.
fn print_quietly(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

const BROKER_PLACEHOLDER: &str = r#"
zring broker is not built yet.

What exists today: zmtp-codec, a sans-IO ZMTP 3.0/3.1 codec, and the
io_uring reactor with PUB/SUB/XPUB/XSUB/PUSH/PULL sockets on it, tested
against libzmq 4.3.4 and 4.3.5 (`cargo test --workspace`). `zring cat`
talks to any ZeroMQ peer from the command line.

Coming next:
  1. `zring broker`: with no arguments it will bind the XPUB side on
     tcp://127.0.0.1:5555 and the XSUB side on tcp://127.0.0.1:5556, where
     Zeek's nodes expect their central broker;
  2. `zring logger`, a Zeek logger node;
  3. CURVE and PLAIN security.
See docs/architecture.md.
"#;
