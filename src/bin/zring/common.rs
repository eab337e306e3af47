//! What the subcommands share: CURVE and address options, threads,
//! pinning, metrics and the backend, and the start-up line's summaries.

use zring::keys::{CurveSettings, SecretText};

/// CURVE encryption, with Zeek's option names (docs/security.md). Instead
/// of these, Zeek's ZEEK_CLUSTER_BACKEND_ZEROMQ_CURVE_* environment
/// variables may be set, but not both.
#[derive(Debug, clap::Args)]
pub(crate) struct CurveArgs {
    /// The cluster's server public key (Z85); optional, checked against the
    /// secret key.
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    pub(crate) curve_server_publickey: Option<String>,
    /// The cluster's server secret key (Z85). Other local users can read
    /// command lines: prefer --curve-keyfile or the environment variable
    /// ZEEK_CLUSTER_BACKEND_ZEROMQ_CURVE_SERVER_SECRETKEY.
    #[arg(long, value_name = "Z85", allow_hyphen_values = true, value_parser = secret_text)]
    pub(crate) curve_server_secretkey: Option<SecretText>,
    /// The nodes' client public key (Z85), the one client key Zeek accepts.
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    pub(crate) curve_client_publickey: Option<String>,
    /// More client public keys to accept (comma-separated, or repeated).
    #[arg(
        long,
        value_name = "Z85,...",
        allow_hyphen_values = true,
        value_delimiter = ','
    )]
    pub(crate) curve_allowed_clients: Option<Vec<String>>,
    /// A key file (TOML, curve_* keys) as `zring keygen --keyfile` writes
    /// it; group and others must have no access to it.
    #[arg(long, value_name = "FILE")]
    pub(crate) curve_keyfile: Option<std::path::PathBuf>,
}

impl CurveArgs {
    /// The flags as one source of CURVE options.
    pub(crate) fn overrides(&self) -> zring::keys::CurveOverrides {
        zring::keys::CurveOverrides {
            server_publickey: self.curve_server_publickey.clone(),
            server_secretkey: self.curve_server_secretkey.clone(),
            client_publickey: self.curve_client_publickey.clone(),
            allowed_clients: self.curve_allowed_clients.clone(),
            keyfile: self.curve_keyfile.clone(),
        }
    }
}

/// Who may connect, by address, whatever the mechanism (CURVE or
/// plaintext). A refused peer is closed on accept, counted in
/// *_access_denied_total and logged.
#[derive(Debug, clap::Args)]
pub(crate) struct AddressArgs {
    /// Address ranges let in, e.g. 10.0.0.0/8,192.0.2.7 (comma-separated or
    /// repeated); once any is given, only these [default: any].
    #[arg(long, value_name = "RANGE,...", value_delimiter = ',')]
    pub(crate) allow_addresses: Option<Vec<String>>,
    /// Address ranges refused, even when an allowed range holds them.
    #[arg(long, value_name = "RANGE,...", value_delimiter = ',')]
    pub(crate) deny_addresses: Option<Vec<String>>,
}

/// What the start-up line says about address lists.
pub(crate) fn address_summary(lists: &zring::AddressLists) -> String {
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

pub(crate) fn secret_text(text: &str) -> Result<SecretText, std::convert::Infallible> {
    Ok(SecretText::from(text))
}

/// Threads, pinning and metrics, the same for the broker and the logger.
#[derive(Debug, clap::Args)]
pub(crate) struct DaemonArgs {
    /// Reactor threads [default: 1; one per --cores entry when given].
    #[arg(long, value_name = "N")]
    pub(crate) reactors: Option<usize>,
    /// Cores to pin reactor threads to, e.g. 2,3 (one per reactor).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub(crate) cores: Option<Vec<usize>>,
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9911.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_listen: Option<String>,
    #[command(flatten)]
    pub(crate) backend: BackendArg,
}

/// Which kernel interface the reactors run on.
#[derive(Debug, clap::Args)]
pub(crate) struct BackendArg {
    /// auto: io_uring where this kernel and process allow it, else epoll
    /// with one warning that says why; io_uring: fail to start if it is
    /// refused; epoll: always (Linux 4.18+, any container). The
    /// environment's ZRING_BACKEND overrides auto [default: auto].
    #[arg(long, value_name = "BACKEND")]
    pub(crate) backend: Option<zring::Backend>,
}

/// Resolves the CURVE keys before anything binds, so a bad or half-given
/// key stops the process with an error that names it.
pub(crate) fn resolve_curve(
    resolve: impl FnOnce() -> Result<Option<CurveSettings>, zring::keys::CurveConfigError>,
) -> anyhow::Result<Option<CurveSettings>> {
    Ok(resolve()?)
}

/// The security a daemon's listeners run with: CURVE as a server when keys
/// are set, else plaintext.
pub(crate) fn server_security(curve: &Option<CurveSettings>) -> zring::Security {
    curve
        .as_ref()
        .map(|c| c.server_security())
        .unwrap_or_default()
}

/// What the start-up line says about encryption: public facts only.
pub(crate) fn curve_summary(curve: &Option<CurveSettings>) -> String {
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

/// Binds the metrics address, when one is given, before anything else
/// binds: a bad or busy address is a configuration error at start.
pub(crate) fn bind_metrics(
    listen: Option<&str>,
) -> anyhow::Result<Option<zring::metrics::MetricsListener>> {
    let Some(addr) = listen else {
        return Ok(None);
    };
    let listener = zring::metrics::MetricsListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("metrics_listen = {addr:?}: cannot listen: {e}"))?;
    Ok(Some(listener))
}

/// Serves the metrics endpoint bound by [`bind_metrics`].
pub(crate) fn serve_metrics(
    listener: Option<zring::metrics::MetricsListener>,
    source: impl FnOnce() -> zring::metrics::Source,
) -> anyhow::Result<Option<zring::metrics::MetricsServer>> {
    let Some(listener) = listener else {
        return Ok(None);
    };
    let server = listener
        .serve(source())
        .map_err(|e| anyhow::anyhow!("metrics endpoint: {e}"))?;
    tracing::info!("metrics at http://{}/metrics", server.local_addr());
    Ok(Some(server))
}

/// What the start-up line says about pinning: `0,1`, or `not pinned`.
pub(crate) fn cores_summary(cores: &[usize]) -> String {
    if cores.is_empty() {
        return "not pinned".to_owned();
    }
    cores
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Warnings for thread and pinning choices that work but are almost
/// certainly not what was meant: they cost throughput silently.
pub(crate) fn warn_about_threads(reactors: usize, cores: &[usize]) {
    // The cores this process may run on (its affinity mask, which a
    // container or `taskset` narrows), not every core the host has.
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    if !allowed.is_empty() && reactors > allowed.len() {
        tracing::warn!(
            reactors,
            allowed_cores = cores_summary(&allowed),
            "more reactor threads than cores this process may run on: they will take turns \
             on the same cores; use at most one reactor per core"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let duplicates: Vec<usize> = cores.iter().copied().filter(|c| !seen.insert(*c)).collect();
    if !duplicates.is_empty() {
        tracing::warn!(
            cores = cores_summary(cores),
            duplicates = cores_summary(&duplicates),
            "--cores names a core more than once: those reactors share it"
        );
    }
    let outside: Vec<usize> = seen
        .into_iter()
        .filter(|c| !allowed.is_empty() && !allowed.contains(c))
        .collect();
    if !outside.is_empty() {
        tracing::warn!(
            outside = cores_summary(&outside),
            allowed_cores = cores_summary(&allowed),
            "--cores names cores outside this process's CPU affinity: those reactors are not pinned"
        );
    }
}

/// An error with each cause its message does not already contain, on one
/// line: `cannot read x: Permission denied`, not the cause twice.
pub(crate) fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Tells systemd (Type=notify; nothing when NOTIFY_SOCKET is unset) that
/// every listener is bound and what the service is doing, then serves
/// signals until a stop: each SIGHUP runs `reload` between RELOADING=1 and
/// READY=1, and a reload that fails is logged and changes nothing. Returns
/// the stop signal's name, STOPPING=1 already sent.
pub(crate) fn serve_signals(
    signals: &zring::DaemonSignals,
    status: &str,
    mut reload: impl FnMut() -> anyhow::Result<()>,
) -> &'static str {
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
    let name = loop {
        match signals.wait() {
            zring::Signal::Stop(name) => break name,
            zring::Signal::Reload => {
                let mut states = vec![sd_notify::NotifyState::Reloading];
                // Type=notify-reload (systemd 253+) wants the time with it.
                if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
                    states.push(now);
                }
                notify(&states);
                if let Err(e) = reload() {
                    tracing::error!("reload refused, running on as before: {}", error_text(&e));
                }
                notify(&[
                    sd_notify::NotifyState::Ready,
                    sd_notify::NotifyState::Status(status),
                ]);
            }
        }
    };
    // A logger's drain may take seconds: say the stop has begun.
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping"),
    ]);
    name
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
    }
}

/// Logs what a reload changed of what applies live (address lists, the
/// server key, accepted client keys), old then new, or that nothing did.
pub(crate) fn log_live_changes(
    old: (&zring::AddressLists, &Option<CurveSettings>),
    new: (&zring::AddressLists, &Option<CurveSettings>),
) {
    let changes = live_changes(old, new);
    if changes.is_empty() {
        tracing::info!("reload: nothing that applies live changed");
    }
    for change in &changes {
        tracing::info!("reload: {change} (for new connections)");
    }
}

/// What a reload changed of what applies live, as log lines.
fn live_changes(
    (old_addresses, old_curve): (&zring::AddressLists, &Option<CurveSettings>),
    (new_addresses, new_curve): (&zring::AddressLists, &Option<CurveSettings>),
) -> Vec<String> {
    let mut changes = Vec::new();
    if old_addresses != new_addresses {
        changes.push(format!(
            "addresses {} -> {}",
            address_summary(old_addresses),
            address_summary(new_addresses)
        ));
    }
    if let (Some(old), Some(new)) = (old_curve, new_curve) {
        if old.server.public != new.server.public {
            changes.push(format!(
                "server key {} -> {}",
                old.server.public.to_z85(),
                new.server.public.to_z85()
            ));
        }
        let before: Vec<_> = old.clients().collect();
        let after: Vec<_> = new.clients().collect();
        for key in after.iter().filter(|k| !before.contains(k)) {
            changes.push(format!("client key {} accepted", key.to_z85()));
        }
        for key in before.iter().filter(|k| !after.contains(k)) {
            changes.push(format!("client key {} no longer accepted", key.to_z85()));
        }
    }
    changes
}
