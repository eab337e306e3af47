//! Where and how log lines go: text for a person at a terminal, plain text
//! for journald (which adds its own timestamps) and for files, or JSON
//! lines for log shippers.

use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Coloured text with timestamps on a terminal; plain text without
    /// timestamps under journald; plain text with timestamps otherwise.
    Auto,
    /// Plain text with timestamps, never coloured.
    Text,
    /// One JSON object per line: timestamp, level, target, message and
    /// the event's fields, under their own names.
    Json,
}

/// Logging options, taken by every subcommand.
#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// How log lines look (see docs/operations.md, "Logs").
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "auto",
        global = true
    )]
    pub(crate) log_format: LogFormat,
    /// The least severe lines written: error, warn, info, debug or trace,
    /// or a filter such as info,zring::reactor=debug [default: info for
    /// broker and logger, warn otherwise]. RUST_LOG, when set, wins.
    #[arg(long, value_name = "LEVEL", global = true)]
    pub(crate) log_level: Option<String>,
}

/// Whether stderr is the stream journald gave this process
/// (`JOURNAL_STREAM` names its device and inode).
fn stderr_is_journald() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Sets up logging for the rest of the process. `default_level` applies
/// when neither RUST_LOG nor `--log-level` is given.
pub(crate) fn init(args: &LogArgs, default_level: &str) -> anyhow::Result<()> {
    let filter = match (EnvFilter::try_from_default_env(), &args.log_level) {
        (Ok(filter), _) => filter,
        (Err(_), Some(level)) => EnvFilter::try_new(level).map_err(|e| {
            anyhow::anyhow!(
                "--log-level {level:?}: {e} (expected error, warn, info, debug, trace or a \
                 filter such as info,zring::reactor=debug)"
            )
        })?,
        (Err(_), None) => EnvFilter::new(default_level),
    };
    let terminal = std::io::stderr().is_terminal();
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        // A log line that cannot be written (stderr closed: a pipe's reader
        // gone, journald restarting) is lost, not a panic of the thread
        // that logged it, which would take a reactor down.
        .log_internal_errors(false);
    match args.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Auto if terminal => builder.with_ansi(!no_colour).init(),
        LogFormat::Auto if stderr_is_journald() => builder.with_ansi(false).without_time().init(),
        LogFormat::Auto => builder.with_ansi(false).init(),
    }
    Ok(())
}
