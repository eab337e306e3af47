//! The `zring` binary as a daemon under an operator's hands: log formats,
//! secrets in config errors, SIGHUP, start-up validation, systemd's
//! notifications, refusal logging, `cat` as a probe. Each test runs the
//! release or debug binary as a child process.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/ports.rs"]
mod ports;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon::Daemon;

const EXE: &str = env!("CARGO_BIN_EXE_zring");

/// A Z85 secret key for the wrapped-line tests (not a cluster's).
const SECRET: &str = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";

/// The value of `key="..."` or `key=...` in a text log line.
fn field(line: &str, key: &str) -> String {
    let start = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 1;
    let rest = line[start..].trim_start_matches('"');
    rest.split(['"', ' ']).next().unwrap().to_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zring-daemon-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn broker_command() -> Command {
    let mut c = Command::new(EXE);
    c.args(["broker", "--listen-xpub-endpoint", "tcp://127.0.0.1:*"])
        .args(["--listen-xsub-endpoint", "tcp://127.0.0.1:*"]);
    c
}

fn run(command: &mut Command) -> (i32, String) {
    let out = command.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether a connection to `addr` is closed by the peer before any byte
/// (an address refused on accept), rather than greeted.
fn closed_on_accept(addr: &str) -> bool {
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Our greeting's signature makes a ZMTP peer answer with its own.
    let _ = stream.write_all(&[0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f]);
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

#[test]
fn logs_have_no_colour_codes_when_piped_and_json_lines_parse() {
    let broker = Daemon::spawn(&mut broker_command());
    let line = broker.wait_line("zring broker running");
    let (status, text) = broker.stop();
    assert!(status.success(), "{text}");
    assert!(!text.contains('\x1b'), "colour codes in a pipe:\n{text}");
    // Text has a timestamp when not under journald.
    assert!(line.starts_with("20"), "{line}");
    // Values as people write them.
    assert!(!text.contains("Some("), "{text}");

    let broker = Daemon::spawn(broker_command().args(["--log-format", "json"]));
    broker.wait_line("zring broker running");
    let (status, text) = broker.stop();
    assert!(status.success(), "{text}");
    let mut running = None;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "no {key}: {line}");
        }
        if v["message"] == "zring broker running" {
            running = Some(v);
        }
    }
    let running = running.expect("the start-up line");
    // The event's fields under their own names, as strings or numbers.
    assert!(running["xpub"]
        .as_str()
        .unwrap()
        .starts_with("tcp://127.0.0.1:"));
    assert_eq!(running["reactors"], 1);
    assert_eq!(running["level"], "INFO");
}

#[test]
fn under_journald_lines_have_no_timestamp_and_levels_filter() {
    // JOURNAL_STREAM names stderr's device and inode: both ends of a pipe
    // share one inode, so the test's end names the child's.
    let mut child = broker_command();
    child
        .args(["--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // A first run to learn nothing but that warn filters info.
    let quiet = Daemon::spawn(&mut child);
    std::thread::sleep(Duration::from_millis(500));
    let (status, text) = quiet.stop();
    assert!(status.success());
    assert!(!text.contains("running"), "info shown at warn:\n{text}");

    let (read, write) = {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both are new descriptors we own from here on.
        unsafe {
            use std::os::fd::FromRawFd;
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        }
    };
    let meta = read.metadata().unwrap();
    use std::os::unix::fs::MetadataExt;
    let mut child = broker_command()
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(write))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(read).lines();
    let first = lines.next().unwrap().unwrap();
    // SAFETY: signals a child we started and still own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(
        first.trim_start().starts_with("INFO"),
        "journald adds its own timestamps: {first}"
    );
    assert!(!first.contains('\x1b'), "{first}");
}

#[test]
fn a_secret_in_a_malformed_file_is_never_printed() {
    let dir = scratch("secret");
    let layouts = [
        format!("curve_server_secretkey =\n\"{SECRET}\"\n"),
        format!("curve_server_secretkey = \"{SECRET}\n"),
        format!("curve_server_secretkey = {SECRET}\n"),
        format!("curve_server_secretkye = \"{SECRET}\"\n"),
        format!("xpub_sndhwm = \"{SECRET}\"\n"),
        format!(
            "curve_server_secretkey = \"{SECRET}\" # ok\ncurve_server_secretkey = \"{SECRET}\"\n"
        ),
    ];
    let pieces: Vec<String> = SECRET
        .chars()
        .collect::<Vec<_>>()
        .windows(6)
        .map(|w| w.iter().collect())
        .collect();
    for (i, text) in layouts.iter().enumerate() {
        let config = dir.join(format!("broker-{i}.toml"));
        write_private(&config, text);
        let keys = dir.join(format!("keys-{i}.toml"));
        write_private(&keys, text);
        for args in [
            vec!["broker", "--config", config.to_str().unwrap()],
            vec!["broker", "--curve-keyfile", keys.to_str().unwrap()],
            vec!["logger", "--config", config.to_str().unwrap(), "--dir", "x"],
        ] {
            let (code, stderr) = run(Command::new(EXE).args(&args).current_dir(&dir));
            assert_eq!(code, 1, "{args:?}: {stderr}");
            assert!(stderr.contains("line "), "says where: {stderr}");
            for piece in &pieces {
                assert!(
                    !stderr.contains(piece.as_str()),
                    "{text:?} printed {stderr}"
                );
            }
        }
    }
}

#[test]
fn sighup_reloads_the_allow_list_live_and_a_bad_file_is_refused() {
    let dir = scratch("reload");
    let config = dir.join("broker.toml");
    std::fs::write(&config, "allow_addresses = [\"127.0.0.0/8\"]\n").unwrap();
    let broker = Daemon::spawn(broker_command().arg("--config").arg(&config));
    let line = broker.wait_line("zring broker running");
    let xsub = field(&line, "xsub");
    let addr = xsub.strip_prefix("tcp://").unwrap().to_owned();
    assert!(!closed_on_accept(&addr), "allowed at first");

    std::fs::write(&config, "deny_addresses = [\"127.0.0.1\"]\n").unwrap();
    broker.signal(libc::SIGHUP);
    broker.wait_line("reload: addresses allow 127.0.0.0/8 -> deny 127.0.0.1/32");
    assert!(closed_on_accept(&addr), "denied after the reload");
    broker.wait_line("refused 127.0.0.1");

    // A file that no longer parses is refused; the lists stay as they are.
    std::fs::write(&config, "deny_addresses = [\"nope\"]\n").unwrap();
    broker.signal(libc::SIGHUP);
    broker.wait_line("reload refused, running on as before");
    assert!(closed_on_accept(&addr), "still denied");

    // A setting that needs a restart is named, not applied.
    std::fs::write(&config, "xpub_sndhwm = 5\n").unwrap();
    broker.signal(libc::SIGHUP);
    broker.wait_line("settings=\"xpub_sndhwm\"");
    assert!(!closed_on_accept(&addr), "the lists were emptied");
    let (status, text) = broker.stop();
    assert!(
        status.success(),
        "SIGHUP must not end it: {status:?}\n{text}"
    );
}

#[test]
fn refusals_are_logged_once_per_address_then_summarised() {
    let broker = Daemon::spawn(broker_command().args(["--deny-addresses", "127.0.0.0/8"]));
    let line = broker.wait_line("zring broker running");
    let addr = field(&line, "xpub")
        .strip_prefix("tcp://")
        .unwrap()
        .to_owned();
    for _ in 0..20 {
        assert!(closed_on_accept(&addr));
    }
    broker.wait_line("refused 127.0.0.1");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        broker.count_lines("refused 127.0.0.1"),
        1,
        "one line for twenty refusals:\n{}",
        broker.text()
    );
    broker.stop();
}

#[test]
fn the_metrics_address_is_checked_before_anything_binds() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let port = ports::unused_port();
    let (code, stderr) = run(Command::new(EXE).args([
        "broker",
        "--listen-xpub-endpoint",
        &format!("tcp://127.0.0.1:{port}"),
        "--listen-xsub-endpoint",
        "tcp://127.0.0.1:*",
        "--metrics-listen",
        &busy,
    ]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("metrics_listen"), "{stderr}");
    assert!(!stderr.contains("running"), "{stderr}");
    let (code, stderr) = run(broker_command().args(["--metrics-listen", "nowhere:xx"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("metrics_listen = \"nowhere:xx\""),
        "{stderr}"
    );

    // Exit statuses: usage errors 2, configuration errors 1.
    let (code, _) = run(Command::new(EXE).args(["broker", "--linger-ms=-1"]));
    assert_eq!(code, 2);
    let (code, _) = run(Command::new(EXE).args(["broker", "--xpub-sndhwm=-1"]));
    assert_eq!(code, 1);
}

#[test]
fn version_and_build_info_name_the_commit() {
    let out = Command::new(EXE).arg("--version").output().unwrap();
    let version = String::from_utf8(out.stdout).unwrap();
    assert!(version.starts_with("zring 0."), "{version}");
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no commit in {version}"))
        .to_owned();
    assert!(!commit.is_empty());

    let port = ports::unused_port();
    let broker =
        Daemon::spawn(broker_command().args(["--metrics-listen", &format!("127.0.0.1:{port}")]));
    broker.wait_line("metrics at");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    let info = page
        .lines()
        .find(|l| l.starts_with("zring_build_info{"))
        .unwrap_or_else(|| panic!("no build_info:\n{page}"));
    assert!(info.contains(&format!("commit=\"{commit}\"")), "{info}");
    assert!(info.contains("version=\"0."), "{info}");
    assert!(info.ends_with(" 1"), "{info}");
    broker.stop();
}

#[test]
fn systemd_hears_ready_after_binding_reloading_and_stopping() {
    let dir = scratch("notify");
    let socket_path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let broker = Daemon::spawn(broker_command().env("NOTIFY_SOCKET", &socket_path));
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(ready.contains("READY=1"), "{ready}");
    // Every listener is bound by then.
    let line = broker.wait_line("zring broker running");
    for key in ["xpub", "xsub"] {
        let endpoint = field(&line, key);
        std::net::TcpStream::connect(endpoint.strip_prefix("tcp://").unwrap()).unwrap();
    }
    broker.signal(libc::SIGHUP);
    let reloading = next();
    assert!(reloading.contains("RELOADING=1"), "{reloading}");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    assert!(next().contains("READY=1"));
    broker.signal(libc::SIGTERM);
    assert!(next().contains("STOPPING=1"));
    let (status, _) = broker.stop();
    assert!(status.success());
}

#[test]
fn thread_choices_that_cost_throughput_are_warned_about() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let broker = Daemon::spawn(broker_command().args(["--reactors", &(cores + 1).to_string()]));
    broker.wait_line("more reactor threads than cores");
    broker.stop();
    let broker = Daemon::spawn(broker_command().args(["--cores", "0,0"]));
    broker.wait_line("names a core more than once");
    broker.stop();
    let broker = Daemon::spawn(broker_command().args(["--cores", "4095"]));
    broker.wait_line("outside this process's CPU affinity");
    broker.stop();
}

#[test]
fn an_ipc_socket_file_is_removed_at_a_clean_stop() {
    let dir = scratch("ipc");
    let xpub = dir.join("xpub.sock");
    let broker = Daemon::spawn(
        Command::new(EXE)
            .arg("broker")
            .arg("--listen-xpub-endpoint")
            .arg(format!("ipc://{}", xpub.display()))
            .args(["--listen-xsub-endpoint", "tcp://127.0.0.1:*"]),
    );
    broker.wait_line("zring broker running");
    assert!(xpub.exists());
    let (status, _) = broker.stop();
    assert!(status.success());
    assert!(!xpub.exists(), "the socket file is left behind");
}

#[test]
fn the_logger_reads_a_config_file_needs_a_dir_and_creates_nothing_when_the_bind_fails() {
    let dir = scratch("logger");
    let (code, stderr) = run(Command::new(EXE).args(["logger", "--listen", "tcp://127.0.0.1:*"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("no log directory: give --dir"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let logs = dir.join("logs");
    let (code, stderr) = run(Command::new(EXE)
        .args(["logger", "--listen"])
        .arg(format!("tcp://{}", taken.local_addr().unwrap()))
        .arg("--dir")
        .arg(&logs));
    assert_eq!(code, 1);
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(!logs.exists(), "created before the listen succeeded");

    let config = dir.join("logger.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"tcp://127.0.0.1:*\"\ndir = \"{}\"\nformat = \"json\"\nrotate_interval = 0\n",
            logs.display()
        ),
    )
    .unwrap();
    let logger = Daemon::spawn(Command::new(EXE).args(["logger", "--config"]).arg(&config));
    let line = logger.wait_line("zring logger running");
    assert_eq!(field(&line, "format"), "json");
    assert_eq!(field(&line, "rotate_interval_s"), "0");
    assert!(logs.is_dir());
    // SIGHUP reopens moved files and re-reads the file; it does not stop it.
    logger.signal(libc::SIGHUP);
    logger.wait_line("reopening log files");
    logger.wait_line("reload: nothing");
    let (status, text) = logger.stop();
    assert!(status.success(), "{text}");

    std::fs::write(&config, "listen = \"tcp://127.0.0.1:*\"\ndri = \"/tmp\"\n").unwrap();
    let (code, stderr) = run(Command::new(EXE).args(["logger", "--config"]).arg(&config));
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown field `dri`"), "{stderr}");
}

#[test]
fn cat_is_a_probe_with_exit_statuses() {
    // Nothing listens: a sender warns with the endpoint and gives up.
    let port = ports::unused_port();
    let started = Instant::now();
    let mut push = Command::new(EXE)
        .args([
            "cat",
            "push",
            &format!("tcp://127.0.0.1:{port}"),
            "--timeout",
            "1",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    push.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = push.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("no peer took it"), "{stderr}");

    // A receiver that got fewer than -n fails.
    let broker = Daemon::spawn(&mut broker_command());
    let line = broker.wait_line("zring broker running");
    let xpub = field(&line, "xpub");
    let (code, stderr) =
        run(Command::new(EXE).args(["cat", "sub", &xpub, "-n", "1", "--timeout", "1"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("received 0 of 1"), "{stderr}");
    broker.stop();
}

#[test]
fn cat_speaks_curve_through_an_encrypted_broker() {
    let dir = scratch("curve");
    let keys = dir.join("keys.toml");
    let (code, stderr) = run(Command::new(EXE).args(["keygen", "--keyfile"]).arg(&keys));
    assert_eq!(code, 0, "{stderr}");
    let broker = Daemon::spawn(broker_command().arg("--curve-keyfile").arg(&keys));
    let line = broker.wait_line("zring broker running");
    let (xpub, xsub) = (field(&line, "xpub"), field(&line, "xsub"));
    let sub = Command::new(EXE)
        .args([
            "cat",
            "sub",
            &xpub,
            "--topic",
            "zeek/",
            "-n",
            "1",
            "--timeout",
            "10",
        ])
        .arg("--curve-keyfile")
        .arg(&keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut publisher = Command::new(EXE)
        .args(["cat", "xpub", &xsub, "--wait-peers", "1", "--timeout", "10"])
        .arg("--curve-keyfile")
        .arg(&keys)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    publisher
        .stdin
        .take()
        .unwrap()
        .write_all(b"zeek/test|encrypted\n")
        .unwrap();
    let published = publisher.wait_with_output().unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let received = sub.wait_with_output().unwrap();
    assert!(
        received.status.success(),
        "{}",
        String::from_utf8_lossy(&received.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&received.stdout),
        "zeek/test|encrypted\n"
    );

    // A client the broker does not know is refused: nothing arrives, and
    // the broker names the address.
    let at = line.find("server public key ").expect("key shown") + "server public key ".len();
    let server_key = &line[at..at + 40];
    let (code, stderr) = run(Command::new(EXE).args([
        "cat",
        "sub",
        &xpub,
        "-n",
        "1",
        "--timeout",
        "1",
        "--curve-serverkey",
        server_key,
    ]));
    assert_eq!(code, 1, "{stderr}");
    broker.wait_line("refused 127.0.0.1");
    broker.stop();
}

#[test]
fn an_error_is_one_line_with_its_cause_once_and_no_backtrace() {
    let dir = scratch("error");
    let (code, stderr) = run(Command::new(EXE)
        .args(["broker", "--config"])
        .arg(&dir)
        .env("RUST_BACKTRACE", "1"));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("zring: error: cannot read "), "{stderr}");
    assert_eq!(stderr.matches("os error 21").count(), 1, "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    // A logger whose directory is a file: the cause once, too.
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let (code, stderr) = run(Command::new(EXE)
        .args(["logger", "--listen", "tcp://127.0.0.1:*", "--dir"])
        .arg(&file)
        .env("RUST_BACKTRACE", "1"));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}
