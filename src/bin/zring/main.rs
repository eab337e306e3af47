//! The `zring` command line.

mod broker;
mod cat;
mod common;
mod keygen;
mod logger;

use clap::{Parser, Subcommand};

use self::broker::BrokerArgs;
use self::cat::CatArgs;
use self::keygen::KeygenArgs;
use self::logger::LoggerArgs;

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
        Command::Broker(args) => broker::run(args),
        Command::Logger(args) => logger::run(args),
        Command::Cat(args) => cat::run(args),
        Command::Keygen(args) => keygen::run(args),
    }
}
