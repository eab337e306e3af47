//! The `zring` command line.
//!
//! Today only the codec exists; `zring broker` explains what is coming so
//! that the README's run command does something honest on a fresh machine.

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Broker => print_quietly(BROKER_PLACEHOLDER.trim()),
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

What exists today is zmtp-codec, a sans-IO ZMTP 3.0/3.1 codec that talks to
libzmq 4.3.4 and 4.3.5 byte for byte (run `cargo test --workspace` to see it
interoperate with both).

Coming next, in this order:
  1. an io_uring reactor on pinned cores and the ZeroMQ sockets on top of it;
  2. `zring broker`: with no arguments it will bind the XPUB side on
     tcp://127.0.0.1:5555 and the XSUB side on tcp://127.0.0.1:5556, where
     Zeek's nodes expect their central broker;
  3. `zring logger`, a Zeek logger node;
  4. CURVE and PLAIN security.
See docs/architecture.md.
"#;
