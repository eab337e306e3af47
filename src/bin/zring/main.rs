//! The `zring` command line.

mod bench;
mod broker;
mod cat;
mod common;
mod generate;
mod keygen;
mod logger;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::broker::BrokerArgs;
use self::cat::CatArgs;
use self::keygen::KeygenArgs;
use self::logger::LoggerArgs;

/// zring: a native, libzmq-free ZeroMQ (ZMTP 3.x) dataplane on io_uring.
#[derive(Debug, Parser)]
#[command(
    version = VERSION,
    about,
    long_about = None,
    after_help = EXIT_STATUS
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: logging::LogArgs,
}

/// The version and the commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ZRING_COMMIT"),
    ")"
);

const EXIT_STATUS: &str = "Exit status: 0 when stopped by SIGINT or SIGTERM (or, for cat and \
keygen, when done); 1 for a configuration or runtime error, with one line on stderr that \
says what was wrong; 2 for a usage error (an unknown option, a value of the wrong kind).";

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
    /// Load generator and latency probe for any ZeroMQ broker or PULL peer.
    ///
    /// Speaks ZMTP itself, with pre-encoded messages written in large blocks
    /// and received bytes walked frame by frame, so it costs less per message
    /// than the broker it measures. See docs/benchmarking.md.
    Bench(bench::BenchArgs),
    /// Write man pages or shell completions (for packages).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

fn main() -> ExitCode {
    // Usage errors exit with 2 here (clap's own exit), before anything runs.
    let cli = Cli::parse();
    // A broker reports its endpoints and every peer by default; `cat`
    // keeps stderr for problems.
    let default_level = match cli.command {
        Command::Broker(_) | Command::Logger(_) => "info",
        Command::Cat(_) | Command::Keygen(_) | Command::Bench(_) | Command::Generate(_) => "warn",
    };
    if let Err(e) = logging::init(&cli.log, default_level) {
        return fail(&e);
    }
    if matches!(cli.command, Command::Broker(_) | Command::Logger(_)) {
        // Each connection and log file is a descriptor; the usual soft
        // limit of 1024 is far below what the hard limit allows.
        match zring::raise_fd_limit() {
            Ok(limit) => tracing::debug!(limit, "file descriptor limit"),
            Err(e) => tracing::warn!("cannot raise the file descriptor limit: {e}"),
        }
    }
    let outcome = match cli.command {
        Command::Broker(args) => broker::run(args),
        Command::Logger(args) => logger::run(args),
        Command::Cat(args) => cat::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Generate(args) => generate::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Prints an error once, with each cause its message does not already
/// contain, and no backtrace (RUST_BACKTRACE is for panics); exit status 1.
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("zring: error: {}", common::error_text(error));
    ExitCode::from(1)
}
