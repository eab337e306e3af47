//! `zring cat`: print what a socket receives, or send what stdin says, one
//! message per line. For people debugging a cluster, like `kcat` or `nats sub`.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zmtp_codec::Message;

use crate::error::Error;
use crate::security::Security;
use crate::socket::{Context, Socket, SocketKind, SocketOption, Wait};

/// What `zring cat` was asked to do.
#[derive(Debug, Clone)]
pub struct CatConfig {
    /// The socket kind.
    pub kind: SocketKind,
    /// Endpoints to connect to (or bind, with `bind`).
    pub endpoints: Vec<String>,
    /// Bind instead of connect.
    pub bind: bool,
    /// SUB/XSUB topics (none: everything).
    pub topics: Vec<String>,
    /// Separates frames within a line.
    pub separator: String,
    /// Stop after this many messages (receivers).
    pub count: Option<u64>,
    /// Receivers: stop when nothing arrived for this long. Senders: give up
    /// when no peer appeared or took a message for this long.
    pub idle_timeout: Option<Duration>,
    /// Senders: wait for this many peers before sending the first line.
    pub wait_peers: usize,
    /// The mechanism (NULL unless set: CURVE for an encrypted cluster).
    pub security: Security,
}

/// Formats a message as one line: frames joined by `separator`, each as
/// text when it is printable UTF-8 without the separator, else as `0x` and
/// hex.
pub fn format_message(message: &Message, separator: &str) -> String {
    let mut line = String::new();
    for (i, frame) in message.frames().enumerate() {
        if i > 0 {
            line.push_str(separator);
        }
        line.push_str(&format_frame(frame, separator));
    }
    line
}

fn format_frame(frame: &[u8], separator: &str) -> String {
    match std::str::from_utf8(frame) {
        Ok(text)
            if !text.chars().any(char::is_control)
                && !text.starts_with("0x")
                && (separator.is_empty() || !text.contains(separator)) =>
        {
            text.to_owned()
        }
        _ => {
            let mut hex = String::with_capacity(2 + frame.len() * 2);
            hex.push_str("0x");
            for b in frame {
                hex.push_str(&format!("{b:02x}"));
            }
            hex
        }
    }
}

/// Splits an input line into frames; `0x`-prefixed frames are hex.
pub fn parse_line(line: &str, separator: &str) -> Result<Vec<Bytes>, String> {
    let parts: Vec<&str> = if separator.is_empty() {
        vec![line]
    } else {
        line.split(separator).collect()
    };
    parts
        .into_iter()
        .map(|part| match part.strip_prefix("0x") {
            Some(hex) if hex.len() % 2 == 0 => (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map(Bytes::from)
                .map_err(|_| format!("frame {part:?} starts with 0x but is not hex")),
            Some(_) => Err(format!("frame {part:?} has an odd number of hex digits")),
            None => Ok(Bytes::copy_from_slice(part.as_bytes())),
        })
        .collect()
}

fn open(ctx: &Context, config: &CatConfig) -> Result<Socket, Error> {
    let mut socket = ctx.socket(config.kind);
    socket.set_security(config.security.clone())?;
    if config.kind.can_send() && config.idle_timeout.is_some() {
        // Queue only for connected peers, so that a send to an endpoint
        // where nothing listens times out instead of waiting in a queue
        // that the exit then drops.
        socket.set(SocketOption::Immediate(true))?;
    }
    if config.kind.can_send() {
        // Deliver what was read from stdin before exiting, however long it
        // takes, or as long as --timeout allows.
        socket.set(SocketOption::Linger(config.idle_timeout))?;
    }
    for endpoint in &config.endpoints {
        if config.bind {
            let bound = socket.bind(endpoint)?;
            eprintln!("zring cat: {} bound to {bound}", config.kind.name());
        } else {
            socket.connect(endpoint)?;
        }
    }
    match config.kind {
        SocketKind::Sub | SocketKind::Xsub => {
            if config.topics.is_empty() {
                socket.subscribe(b"")?;
            }
            for topic in &config.topics {
                socket.subscribe(topic.as_bytes())?;
            }
        }
        _ => {}
    }
    Ok(socket)
}

/// Runs `zring cat` until input ends, the count is reached or the idle
/// timeout passes. Returns the number of messages printed or sent.
pub fn run(
    ctx: &Context,
    config: &CatConfig,
    input: impl BufRead,
    mut output: impl Write,
) -> anyhow::Result<u64> {
    let mut socket = open(ctx, config)?;
    if config.kind.can_send() {
        send_lines(&mut socket, config, input, &mut output)
    } else {
        print_messages(&mut socket, config, &mut output)
    }
}

fn print_messages(
    socket: &mut Socket,
    config: &CatConfig,
    output: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut printed = 0;
    let mut last = Instant::now();
    while config.count.is_none_or(|c| printed < c) {
        let wait = match config.idle_timeout {
            Some(t) => Wait::Timeout(t.saturating_sub(last.elapsed())),
            None => Wait::Block,
        };
        match socket.recv(wait) {
            Ok(m) => {
                writeln!(output, "{}", format_message(&m, &config.separator))?;
                output.flush()?;
                printed += 1;
                last = Instant::now();
            }
            Err(Error::TimedOut) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(printed)
}

fn send_lines(
    socket: &mut Socket,
    config: &CatConfig,
    input: impl BufRead,
    output: &mut impl Write,
) -> anyhow::Result<u64> {
    let waiting_since = Instant::now();
    while socket.peer_count() < config.wait_peers
        || matches!(config.kind, SocketKind::Pub | SocketKind::Xpub)
            && config.wait_peers > 0
            && socket.topic_count() == 0
    {
        if let Some(limit) = config.idle_timeout {
            if waiting_since.elapsed() >= limit {
                anyhow::bail!(
                    "{} of {} peer(s) connected within {limit:?}",
                    socket.peer_count(),
                    config.wait_peers
                );
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let wait = config.idle_timeout.map_or(Wait::Block, Wait::Timeout);
    let mut sent = 0;
    for (number, line) in input.lines().enumerate() {
        let line = line?;
        let frames = parse_line(&line, &config.separator)
            .map_err(|e| anyhow::anyhow!("stdin line {}: {e}", number + 1))?;
        match socket.send_frames(frames, wait) {
            Ok(()) => {}
            Err(Error::TimedOut) => anyhow::bail!(
                "stdin line {}: no peer took it within {:?} (is anything listening at {}?)",
                number + 1,
                config.idle_timeout.unwrap_or_default(),
                config.endpoints.join(", ")
            ),
            Err(e) => return Err(e.into()),
        }
        sent += 1;
        if config.kind == SocketKind::Xpub {
            // Show subscriptions as they come, between lines.
            while let Ok(m) = socket.recv(Wait::DontWait) {
                writeln!(output, "{}", format_message(&m, &config.separator))?;
            }
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_print_as_text_or_hex() {
        let m = Message::from_frames(&[&b"zeek/topic"[..], b"\x01\x02", b"a|b", b"", b"0xab"]);
        assert_eq!(
            format_message(&m, "|"),
            "zeek/topic|0x0102|0x617c62||0x30786162"
        );
    }

    #[test]
    fn lines_split_into_frames_and_hex_round_trips() {
        let frames = parse_line("a|0x00ff|", "|").unwrap();
        assert_eq!(frames, [&b"a"[..], b"\x00\xff", b""]);
        let m = Message::from_frames(&frames);
        assert_eq!(parse_line(&format_message(&m, "|"), "|").unwrap(), frames);
        assert!(parse_line("0xzz", "|").unwrap_err().contains("not hex"));
        assert!(parse_line("0xabc", "|").unwrap_err().contains("odd number"));
    }
}
