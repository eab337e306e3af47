//! CURVE settings of `zring broker` and `zring logger`, resolved as Zeek
//! resolves its own: the same option names, the same environment
//! variables, and the same refusal to mix the two.
//!
//! A zring broker or logger is always the CURVE *server* of a Zeek cluster
//! (contract §7.2). It needs the cluster's server secret key and the one
//! client public key that the nodes share; Zeek's ZAP handler accepts that
//! key only, and so does zring. `curve_allowed_clients` adds more keys to
//! accept, for clients that are not Zeek nodes or for a rotation.
//!
//! The keys come from three places:
//!
//! * options (flags, the broker's TOML file): `curve_server_publickey`,
//!   `curve_server_secretkey`, `curve_client_publickey`;
//! * a key file (`curve_keyfile`), TOML with the same names, as
//!   `zring keygen --keyfile` writes it ([`write_keyfile`]); it must not be
//!   accessible by group or others, as ssh insists for its keys;
//! * Zeek's environment variables ([`ENV_SERVER_PUBLICKEY`], ...).
//!
//! Options and the key file may share the work (say, the secret in the
//! file and the public keys in the TOML), but not name the same key twice.
//! Options or the key file together with the environment variables is an
//! error, as it is fatal in Zeek. Nothing set means a plaintext (NULL
//! mechanism) cluster.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};
use zmtp_codec::z85::Z85Error;
use zmtp_codec::{KeyPair, PublicKey, SecretKey};

use crate::security::{Access, Security};

/// Zeek's environment variable for `curve_server_publickey`.
pub const ENV_SERVER_PUBLICKEY: &str = "ZEEK_CLUSTER_BACKEND_ZEROMQ_CURVE_SERVER_PUBLICKEY";
/// Zeek's environment variable for `curve_server_secretkey`.
pub const ENV_SERVER_SECRETKEY: &str = "ZEEK_CLUSTER_BACKEND_ZEROMQ_CURVE_SERVER_SECRETKEY";
/// Zeek's environment variable for `curve_client_publickey`.
pub const ENV_CLIENT_PUBLICKEY: &str = "ZEEK_CLUSTER_BACKEND_ZEROMQ_CURVE_CLIENT_PUBLICKEY";
/// Zeek's environment variable for `curve_client_secretkey`. A server has
/// no use for it, but a manager's environment carries it, and with options
/// it makes the same mix Zeek refuses.
pub const ENV_CLIENT_SECRETKEY: &str = "ZEEK_CLUSTER_BACKEND_ZEROMQ_CURVE_CLIENT_SECRETKEY";

/// The text of a secret (a Z85 secret key) as configured: wiped from memory
/// when dropped, and `<redacted>` in `Debug` output, so a configuration
/// can be printed or logged whole.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> SecretText {
        SecretText(text.into())
    }

    /// The secret itself, for decoding it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the text is empty (Zeek's default: not set).
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl From<String> for SecretText {
    fn from(text: String) -> SecretText {
        SecretText(text)
    }
}

impl From<&str> for SecretText {
    fn from(text: &str) -> SecretText {
        SecretText(text.to_owned())
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The CURVE options as given (flags, TOML), before they are resolved into
/// keys at start-up. Names are Zeek's without the `curve_` prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurveOptions {
    /// `curve_server_publickey`: optional; if given, it must be the secret
    /// key's public key.
    pub server_publickey: Option<String>,
    /// `curve_server_secretkey`: the cluster's server secret key.
    pub server_secretkey: Option<SecretText>,
    /// `curve_client_publickey`: the nodes' shared client public key, the
    /// one a Zeek ZAP handler accepts.
    pub client_publickey: Option<String>,
    /// `curve_allowed_clients`: more client public keys to accept (zring's
    /// addition; Zeek accepts one).
    pub allowed_clients: Vec<String>,
    /// `curve_keyfile`: a TOML file with any of the three keys.
    pub keyfile: Option<PathBuf>,
}

/// Resolved CURVE settings: the sockets that nodes connect to become CURVE
/// servers with `server`'s secret key, and accept a client only if its
/// long-term public key is `client_public` or one of `allowed_clients`;
/// any other is refused with ZAP status 400, as Zeek's handler does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurveSettings {
    /// The cluster's server key pair.
    pub server: KeyPair,
    /// The nodes' client public key (Zeek: `curve_client_publickey`).
    pub client_public: PublicKey,
    /// Further client public keys to accept, without `client_public` and
    /// without repeats.
    pub allowed_clients: Vec<PublicKey>,
}

impl CurveSettings {
    /// Whether a client with this long-term public key may connect.
    pub fn allows(&self, client: &PublicKey) -> bool {
        *client == self.client_public || self.allowed_clients.contains(client)
    }

    /// Every accepted client key, `client_public` first.
    pub fn clients(&self) -> impl Iterator<Item = &PublicKey> {
        std::iter::once(&self.client_public).chain(&self.allowed_clients)
    }

    /// The sockets' mechanism: a CURVE server with the cluster's server
    /// keys, admitting exactly these client keys (Zeek's ZAP handler).
    pub fn server_security(&self) -> Security {
        let access = self.clients().fold(Access::default(), |access, key| {
            access.allow_curve_client(*key)
        });
        Security::curve_server(self.server.clone(), access)
    }
}

/// CURVE settings that cannot be used; the message names the options,
/// variables or file involved, and never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CurveConfigError(String);

impl CurveConfigError {
    fn new(message: impl Into<String>) -> CurveConfigError {
        CurveConfigError(message.into())
    }
}

/// The process environment, for [`CurveOptions::resolve`] in the binary.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The content of a key file. The client secret key is accepted so that
/// one file can serve the Zeek nodes too; zring does not use it.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    curve_server_publickey: Option<String>,
    curve_server_secretkey: Option<SecretText>,
    curve_client_publickey: Option<String>,
    curve_client_secretkey: Option<SecretText>,
}

/// One key's text and the name to give it in errors.
struct Given<T> {
    value: T,
    name: String,
}

/// The three keys a server needs, wherever each came from.
#[derive(Default)]
struct Slots {
    server_public: Option<Given<String>>,
    server_secret: Option<Given<SecretText>>,
    client_public: Option<Given<String>>,
}

/// The CURVE options one source gives (a config file, the flags), each
/// `None` where the source is silent; [`CurveOptions::apply`] lays them
/// over what came before.
#[derive(Debug, Clone, Default)]
pub struct CurveOverrides {
    /// `curve_server_publickey`.
    pub server_publickey: Option<String>,
    /// `curve_server_secretkey`.
    pub server_secretkey: Option<SecretText>,
    /// `curve_client_publickey`.
    pub client_publickey: Option<String>,
    /// `curve_allowed_clients`.
    pub allowed_clients: Option<Vec<String>>,
    /// `curve_keyfile`.
    pub keyfile: Option<PathBuf>,
}

impl CurveOptions {
    /// Lays one source's options over these: what it gives replaces what
    /// was there, and "" unsets, as Zeek's options default to "" (so a
    /// flag can unset what a config file set).
    pub fn apply(&mut self, o: CurveOverrides) {
        let text = |v: String| Some(v).filter(|s| !s.trim().is_empty());
        if let Some(v) = o.server_publickey {
            self.server_publickey = text(v);
        }
        if let Some(v) = o.server_secretkey {
            self.server_secretkey = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = o.client_publickey {
            self.client_publickey = text(v);
        }
        if let Some(v) = o.allowed_clients {
            self.allowed_clients = v;
        }
        if let Some(v) = o.keyfile {
            self.keyfile = Some(v).filter(|p| !p.as_os_str().is_empty());
        }
    }

    /// Whether no CURVE option is set.
    pub fn is_empty(&self) -> bool {
        self.server_publickey.is_none()
            && self.server_secretkey.is_none()
            && self.client_publickey.is_none()
            && self.allowed_clients.is_empty()
            && self.keyfile.is_none()
    }

    /// Resolves the options, the key file and Zeek's environment variables
    /// (looked up through `env`, so tests need not touch the process
    /// environment) into keys. `Ok(None)`: nothing is set, the cluster is
    /// plaintext.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<CurveSettings>, CurveConfigError> {
        let from_env = [
            ENV_SERVER_PUBLICKEY,
            ENV_SERVER_SECRETKEY,
            ENV_CLIENT_PUBLICKEY,
            ENV_CLIENT_SECRETKEY,
        ]
        .map(|name| {
            env(name)
                .map(Zeroizing::new)
                .filter(|v| !v.trim().is_empty())
        });
        let explicit = [
            ("curve_server_publickey", self.server_publickey.is_some()),
            ("curve_server_secretkey", self.server_secretkey.is_some()),
            ("curve_client_publickey", self.client_publickey.is_some()),
            ("curve_keyfile", self.keyfile.is_some()),
        ];
        let first_explicit = explicit.iter().find(|(_, set)| *set).map(|(n, _)| *n);
        let first_env = [
            ENV_SERVER_PUBLICKEY,
            ENV_SERVER_SECRETKEY,
            ENV_CLIENT_PUBLICKEY,
            ENV_CLIENT_SECRETKEY,
        ]
        .into_iter()
        .zip(&from_env)
        .find(|(_, v)| v.is_some())
        .map(|(n, _)| n);
        if let (Some(option), Some(var)) = (first_explicit, first_env) {
            return Err(CurveConfigError::new(format!(
                "{option} is set and so is the environment variable {var}: give the CURVE keys \
                 either as options (or in curve_keyfile) or in Zeek's environment variables, \
                 not both (Zeek refuses the mix too)"
            )));
        }

        let mut slots = Slots::default();
        let using_env = first_env.is_some();
        if using_env {
            let [server_public, server_secret, client_public, _] = from_env;
            slots.server_public = server_public.map(|v| Given {
                value: v.to_string(),
                name: ENV_SERVER_PUBLICKEY.into(),
            });
            slots.server_secret = server_secret.map(|v| Given {
                value: SecretText::new(v.as_str()),
                name: ENV_SERVER_SECRETKEY.into(),
            });
            slots.client_public = client_public.map(|v| Given {
                value: v.to_string(),
                name: ENV_CLIENT_PUBLICKEY.into(),
            });
        } else {
            let given = |v: &Option<String>, name: &str| {
                v.as_ref().map(|v| Given {
                    value: v.clone(),
                    name: name.into(),
                })
            };
            slots.server_public = given(&self.server_publickey, "curve_server_publickey");
            slots.server_secret = self.server_secretkey.as_ref().map(|v| Given {
                value: v.clone(),
                name: "curve_server_secretkey".into(),
            });
            slots.client_public = given(&self.client_publickey, "curve_client_publickey");
            if let Some(path) = &self.keyfile {
                merge_keyfile(&mut slots, path, &read_keyfile(path)?)?;
            }
        }

        let nothing = slots.server_public.is_none()
            && slots.server_secret.is_none()
            && slots.client_public.is_none();
        if nothing && !using_env && self.keyfile.is_none() && self.allowed_clients.is_empty() {
            return Ok(None);
        }
        let (secret_name, client_name) = if using_env {
            (ENV_SERVER_SECRETKEY, ENV_CLIENT_PUBLICKEY)
        } else {
            ("curve_server_secretkey", "curve_client_publickey")
        };
        let missing: Vec<&str> = [
            (slots.server_secret.is_none(), secret_name),
            (slots.client_public.is_none(), client_name),
        ]
        .into_iter()
        .filter(|(m, _)| *m)
        .map(|(_, n)| n)
        .collect();
        if !missing.is_empty() {
            let mut given: Vec<String> = [
                slots.server_public.as_ref().map(|g| g.name.clone()),
                slots.server_secret.as_ref().map(|g| g.name.clone()),
                slots.client_public.as_ref().map(|g| g.name.clone()),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !using_env {
                if let Some(path) = &self.keyfile {
                    if nothing {
                        given.push(format!("curve_keyfile {}", path.display()));
                    }
                }
                if !self.allowed_clients.is_empty() {
                    given.push("curve_allowed_clients".into());
                }
            }
            if using_env && given.is_empty() {
                given.push(ENV_CLIENT_SECRETKEY.into());
            }
            return Err(CurveConfigError::new(format!(
                "CURVE is only partly configured: {} set, but {} missing; a CURVE server needs \
                 the cluster's server secret key and its client public key (the server public \
                 key is optional)",
                join(&given),
                join(&missing.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            )));
        }

        let secret = slots.server_secret.expect("checked above");
        let public = slots.server_public.as_ref();
        let server = key_pair(
            secret.value.expose(),
            &secret.name,
            public.map(|p| (p.value.as_str(), p.name.as_str())),
        )?;
        let client = slots.client_public.expect("checked above");
        let client_public = decode_public(&client.value, &client.name)?;
        let mut allowed_clients = Vec::new();
        for (i, text) in self.allowed_clients.iter().enumerate() {
            let key = decode_public(text, &format!("curve_allowed_clients[{i}]"))?;
            if key != client_public && !allowed_clients.contains(&key) {
                allowed_clients.push(key);
            }
        }
        Ok(Some(CurveSettings {
            server,
            client_public,
            allowed_clients,
        }))
    }
}

fn join(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn decode_public(text: &str, name: &str) -> Result<PublicKey, CurveConfigError> {
    PublicKey::from_z85(text.trim()).map_err(|e| CurveConfigError::new(format!("{name}: {e}")))
}

/// The key pair of the secret key `secret` (Z85) named `secret_name`,
/// checked against its public key (text, name) if that is given too. An
/// error names the keys and never quotes the secret.
fn key_pair(
    secret: &str,
    secret_name: &str,
    public: Option<(&str, &str)>,
) -> Result<KeyPair, CurveConfigError> {
    let key = SecretKey::from_z85(secret.trim())
        .map_err(|e| CurveConfigError::new(format!("{secret_name}: {}", secret_error(&e))))?;
    let pair = KeyPair::from_secret(key);
    if let Some((text, name)) = public {
        if decode_public(text, name)? != pair.public {
            return Err(CurveConfigError::new(format!(
                "{name} does not belong to {secret_name}: that secret key's public key is {}",
                pair.public.to_z85()
            )));
        }
    }
    Ok(pair)
}

/// The codec's Z85 error text, except that a group of a secret key that
/// does not decode is not quoted: those five characters are most of four
/// bytes of the secret.
fn secret_error(e: &Z85Error) -> String {
    match e {
        Z85Error::Overflow { position, .. } => {
            format!("Z85 group at position {position} encodes a value above 2^32-1")
        }
        e => e.to_string(),
    }
}

fn merge_keyfile(slots: &mut Slots, path: &Path, file: &KeyFile) -> Result<(), CurveConfigError> {
    fn put<T: Clone>(
        slot: &mut Option<Given<T>>,
        value: &Option<T>,
        key: &str,
        path: &Path,
    ) -> Result<(), CurveConfigError> {
        let Some(value) = value else { return Ok(()) };
        if slot.is_some() {
            return Err(CurveConfigError::new(format!(
                "{key} is set both as an option and in curve_keyfile {}: give it once",
                path.display()
            )));
        }
        *slot = Some(Given {
            value: value.clone(),
            name: format!("{key} in curve_keyfile {}", path.display()),
        });
        Ok(())
    }
    put(
        &mut slots.server_public,
        &file.curve_server_publickey,
        "curve_server_publickey",
        path,
    )?;
    put(
        &mut slots.server_secret,
        &file.curve_server_secretkey,
        "curve_server_secretkey",
        path,
    )?;
    put(
        &mut slots.client_public,
        &file.curve_client_publickey,
        "curve_client_publickey",
        path,
    )
}

/// Refuses a file that holds secrets but that group or others may access
/// (any of the mode bits 077), as ssh refuses such private keys.
pub fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), CurveConfigError> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CurveConfigError::new(format!(
            "{} holds a CURVE secret key but group or others may access it (mode {mode:04o}): \
             run chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

fn read_keyfile(path: &Path) -> Result<KeyFile, CurveConfigError> {
    let shown = path.display();
    let cannot = |e: std::io::Error| {
        CurveConfigError::new(format!("curve_keyfile {shown}: cannot read it: {e}"))
    };
    let (mut file, meta) = crate::config_file::open_regular(path).map_err(cannot)?;
    check_private(path, &meta).map_err(|e| CurveConfigError::new(format!("curve_keyfile {e}")))?;
    let text = crate::config_file::read_text(&mut file).map_err(cannot)?;
    toml::from_str(&text).map_err(|e| {
        CurveConfigError::new(format!(
            "curve_keyfile {shown}: {}",
            toml_error_text(&e, &text)
        ))
    })
}

/// What a CURVE client (`zring cat`) takes from a key file as `zring
/// keygen --keyfile` writes it: the server's public key and the nodes'
/// client key pair, both optional.
#[derive(Debug)]
pub struct ClientKeys {
    /// `curve_server_publickey`.
    pub server: Option<PublicKey>,
    /// `curve_client_publickey` with `curve_client_secretkey`.
    pub client: Option<KeyPair>,
}

/// Reads the client's keys from a key file (private to its owner, as any
/// key file); a half-given client pair is an error that names the key.
pub fn read_client_keys(path: &Path) -> Result<ClientKeys, CurveConfigError> {
    let file = read_keyfile(path)?;
    let shown = path.display();
    let name = |key: &str| format!("curve_keyfile {shown}: {key}");
    let server = match file.curve_server_publickey.as_deref() {
        Some(text) if !text.is_empty() => {
            Some(decode_public(text, &name("curve_server_publickey"))?)
        }
        _ => None,
    };
    let client = match (
        file.curve_client_publickey
            .as_deref()
            .filter(|t| !t.is_empty()),
        file.curve_client_secretkey
            .as_ref()
            .filter(|t| !t.is_empty()),
    ) {
        (Some(public), Some(secret)) => Some(key_pair(
            secret.expose(),
            &name("curve_client_secretkey"),
            Some((public, &name("curve_client_publickey"))),
        )?),
        (None, None) => None,
        (Some(_), None) => {
            return Err(CurveConfigError::new(format!(
                "curve_keyfile {shown}: curve_client_publickey without curve_client_secretkey"
            )))
        }
        (None, Some(_)) => {
            return Err(CurveConfigError::new(format!(
                "curve_keyfile {shown}: curve_client_secretkey without curve_client_publickey"
            )))
        }
    };
    Ok(ClientKeys { server, client })
}

/// A TOML parser error as text that never quotes the file: where (line
/// and column) and what was wrong, without the source line the parser
/// would show, since a file may hold a secret key and the line shown may
/// be the secret's (a misspelt key, a value wrapped onto the next line, an
/// unterminated string). Quoted values in the message that are long
/// enough to be a key (Z85 keys are 40 characters) are left out too:
/// serde quotes a string it could not use.
pub(crate) fn toml_error_text(e: &toml::de::Error, source: &str) -> String {
    let message = redact_long_quotes(e.message().trim());
    match e.span() {
        Some(span) => {
            // A span off a character boundary (it should not be) costs the
            // position, never a panic.
            let before = source.get(..span.start).unwrap_or(source);
            let line = before.matches('\n').count() + 1;
            let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
            // The key whose value was wrong, when the error is in a value:
            // key names are not secret, and without the line they say where.
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let key = source[line_start..]
                .split_once('=')
                .filter(|(key, _)| line_start + key.len() < span.start && !key.contains('\n'))
                .map(|(key, _)| key.trim())
                .filter(|key| !key.is_empty() && key.len() <= 64);
            match key {
                Some(key) => format!("line {line}, column {column}, {key}: {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message,
    }
}

/// Replaces each quoted run of 32 or more characters with a note of its
/// length.
fn redact_long_quotes(text: &str) -> String {
    const LONG: usize = 32;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let Some(close) = rest.find(quote) else {
            // Unterminated: whatever follows may be the secret itself.
            if rest.chars().count() >= LONG {
                out.push_str("<not shown>");
            } else {
                out.push_str(rest);
            }
            return out;
        };
        let inner = &rest[..close];
        if inner.chars().count() >= LONG {
            out.push_str(&format!(
                "<{} characters, not shown>",
                inner.chars().count()
            ));
        } else {
            out.push_str(inner);
        }
        out.push(quote);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Writes a new key file at `path` with the cluster's server and client key
/// pairs under Zeek's option names, readable by its owner only (0600).
/// Never replaces a file: an existing `path` is an error
/// ([`std::io::ErrorKind::AlreadyExists`]).
pub fn write_keyfile(path: &Path, server: &KeyPair, client: &KeyPair) -> std::io::Result<()> {
    let text = Zeroizing::new(keyfile_text(server, client));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // The umask can only clear bits, but say what is meant.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn keyfile_text(server: &KeyPair, client: &KeyPair) -> String {
    format!(
        "# CURVE keys of one Zeek cluster, written by `zring keygen`, named as Zeek's\n\
         # Cluster::Backend::ZeroMQ options. Keep this file secret (mode 0600).\n\
         #\n\
         # zring broker and zring logger: --curve-keyfile THIS_FILE (they use the\n\
         # server pair and the client public key).\n\
         # Every Zeek node: curve_server_publickey, curve_client_publickey and\n\
         # curve_client_secretkey. A Zeek node that runs Zeek's own broker or is a\n\
         # Zeek logger: curve_server_secretkey as well.\n\
         curve_server_publickey = \"{}\"\n\
         curve_server_secretkey = \"{}\"\n\
         curve_client_publickey = \"{}\"\n\
         curve_client_secretkey = \"{}\"\n",
        server.public.to_z85(),
        Zeroizing::new(server.secret.to_z85()).as_str(),
        client.public.to_z85(),
        Zeroizing::new(client.secret.to_z85()).as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    // libzmq's test keys (zmq_curve(7)), as Zeek's btests use them.
    const SERVER_PUBLIC: &str = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    const SERVER_SECRET: &str = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
    const CLIENT_PUBLIC: &str = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    const CLIENT_SECRET: &str = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn options(secret: Option<&str>, client: Option<&str>) -> CurveOptions {
        CurveOptions {
            server_secretkey: secret.map(SecretText::from),
            client_publickey: client.map(str::to_owned),
            ..CurveOptions::default()
        }
    }

    fn err(options: &CurveOptions, env: impl Fn(&str) -> Option<String>) -> String {
        let e = options.resolve(env).unwrap_err().to_string();
        for secret in [SERVER_SECRET, CLIENT_SECRET] {
            assert!(!e.contains(secret), "{e}");
        }
        e
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("zring-keys-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write_mode(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn nothing_set_is_plaintext() {
        assert_eq!(CurveOptions::default().resolve(no_env), Ok(None));
        assert!(CurveOptions::default().is_empty());
        // Empty variables are unset, as Zeek's empty default options are.
        let env = env_of(&[(ENV_SERVER_SECRETKEY, ""), (ENV_CLIENT_PUBLICKEY, "  ")]);
        assert_eq!(CurveOptions::default().resolve(env), Ok(None));
    }

    #[test]
    fn options_give_the_server_pair_and_the_client_key() {
        let mut o = options(Some(SERVER_SECRET), Some(CLIENT_PUBLIC));
        let s = o.resolve(no_env).unwrap().unwrap();
        assert_eq!(s.server.public.to_z85(), SERVER_PUBLIC);
        assert_eq!(s.client_public.to_z85(), CLIENT_PUBLIC);
        assert!(s.allows(&s.client_public));
        assert!(!s.allows(&s.server.public));
        assert!(s.allowed_clients.is_empty());
        // The server public key is optional, and checked when given.
        o.server_publickey = Some(SERVER_PUBLIC.into());
        assert_eq!(o.resolve(no_env).unwrap().unwrap(), s);
        // Surrounding white space (a `$(cat file)` or a pasted line) is not part of a key.
        let padded = options(Some(&format!(" {SERVER_SECRET}\n")), Some(CLIENT_PUBLIC));
        assert_eq!(padded.resolve(no_env).unwrap().unwrap(), s);
    }

    #[test]
    fn zeeks_environment_variables_give_the_same() {
        // A manager's environment: all four, the client secret unused.
        let env = env_of(&[
            (ENV_SERVER_PUBLICKEY, SERVER_PUBLIC),
            (ENV_SERVER_SECRETKEY, SERVER_SECRET),
            (ENV_CLIENT_PUBLICKEY, CLIENT_PUBLIC),
            (ENV_CLIENT_SECRETKEY, CLIENT_SECRET),
        ]);
        let s = CurveOptions::default().resolve(env).unwrap().unwrap();
        assert_eq!(s.server.public.to_z85(), SERVER_PUBLIC);
        assert_eq!(s.client_public.to_z85(), CLIENT_PUBLIC);
        let env = env_of(&[
            (ENV_SERVER_SECRETKEY, SERVER_SECRET),
            (ENV_CLIENT_PUBLICKEY, CLIENT_PUBLIC),
        ]);
        assert!(CurveOptions::default().resolve(env).unwrap().is_some());
    }

    #[test]
    fn options_and_environment_do_not_mix() {
        let o = options(Some(SERVER_SECRET), Some(CLIENT_PUBLIC));
        let e = err(&o, env_of(&[(ENV_CLIENT_SECRETKEY, CLIENT_SECRET)]));
        assert!(e.contains("curve_server_secretkey"), "{e}");
        assert!(e.contains(ENV_CLIENT_SECRETKEY), "{e}");
        assert!(e.contains("not both"), "{e}");
        let o = CurveOptions {
            keyfile: Some("/nonexistent/keys.toml".into()),
            ..CurveOptions::default()
        };
        let e = err(&o, env_of(&[(ENV_SERVER_PUBLICKEY, SERVER_PUBLIC)]));
        assert!(e.contains("curve_keyfile"), "{e}");
        assert!(e.contains(ENV_SERVER_PUBLICKEY), "{e}");
        // The allow-list is not a key source: it goes with either.
        let o = CurveOptions {
            allowed_clients: vec![SERVER_PUBLIC.into()],
            ..CurveOptions::default()
        };
        let env = env_of(&[
            (ENV_SERVER_SECRETKEY, SERVER_SECRET),
            (ENV_CLIENT_PUBLICKEY, CLIENT_PUBLIC),
        ]);
        assert_eq!(o.resolve(env).unwrap().unwrap().allowed_clients.len(), 1);
    }

    #[test]
    fn a_partial_set_names_what_is_missing() {
        let e = err(&options(Some(SERVER_SECRET), None), no_env);
        assert!(
            e.contains("curve_server_secretkey set, but curve_client_publickey missing"),
            "{e}"
        );
        let e = err(&options(None, Some(CLIENT_PUBLIC)), no_env);
        assert!(
            e.contains("curve_client_publickey set, but curve_server_secretkey missing"),
            "{e}"
        );
        let o = CurveOptions {
            server_publickey: Some(SERVER_PUBLIC.into()),
            ..CurveOptions::default()
        };
        let e = err(&o, no_env);
        assert!(
            e.contains(
                "curve_server_publickey set, but curve_server_secretkey and \
                 curve_client_publickey missing"
            ),
            "{e}"
        );
        let o = CurveOptions {
            allowed_clients: vec![CLIENT_PUBLIC.into()],
            ..CurveOptions::default()
        };
        let e = err(&o, no_env);
        assert!(e.contains("curve_allowed_clients set"), "{e}");
        // A worker's environment on a server: no server secret.
        let env = env_of(&[
            (ENV_SERVER_PUBLICKEY, SERVER_PUBLIC),
            (ENV_CLIENT_PUBLICKEY, CLIENT_PUBLIC),
            (ENV_CLIENT_SECRETKEY, CLIENT_SECRET),
        ]);
        let e = err(&CurveOptions::default(), env);
        assert!(
            e.contains(&format!(
                "{ENV_SERVER_PUBLICKEY} and {ENV_CLIENT_PUBLICKEY} set, but \
                 {ENV_SERVER_SECRETKEY} missing"
            )),
            "{e}"
        );
        let env = env_of(&[(ENV_CLIENT_SECRETKEY, CLIENT_SECRET)]);
        let e = err(&CurveOptions::default(), env);
        assert!(
            e.contains(&format!(
                "{ENV_CLIENT_SECRETKEY} set, but {ENV_SERVER_SECRETKEY} and \
                 {ENV_CLIENT_PUBLICKEY} missing"
            )),
            "{e}"
        );
    }

    #[test]
    fn a_server_public_key_must_be_the_secret_keys() {
        let mut o = options(Some(SERVER_SECRET), Some(CLIENT_PUBLIC));
        o.server_publickey = Some(CLIENT_PUBLIC.into());
        let e = err(&o, no_env);
        assert_eq!(
            e,
            format!(
                "curve_server_publickey does not belong to curve_server_secretkey: that secret \
                 key's public key is {SERVER_PUBLIC}"
            )
        );
        let env = env_of(&[
            (ENV_SERVER_PUBLICKEY, CLIENT_PUBLIC),
            (ENV_SERVER_SECRETKEY, SERVER_SECRET),
            (ENV_CLIENT_PUBLICKEY, CLIENT_PUBLIC),
        ]);
        let e = err(&CurveOptions::default(), env);
        assert!(
            e.starts_with(&format!(
                "{ENV_SERVER_PUBLICKEY} does not belong to {ENV_SERVER_SECRETKEY}"
            )),
            "{e}"
        );
    }

    #[test]
    fn bad_z85_names_the_option_and_the_problem() {
        let e = err(
            &options(Some(SERVER_SECRET), Some(&CLIENT_PUBLIC[..35])),
            no_env,
        );
        assert_eq!(
            e,
            "curve_client_publickey: a CURVE key is 40 Z85 characters (32 bytes); got 35 characters"
        );
        let e = err(
            &options(Some(SERVER_SECRET), Some(&CLIENT_PUBLIC[..39])),
            no_env,
        );
        assert!(
            e.starts_with("curve_client_publickey: Z85 text is whole"),
            "{e}"
        );
        let bad = format!("{}\"", &CLIENT_PUBLIC[..39]);
        let e = err(&options(Some(SERVER_SECRET), Some(&bad)), no_env);
        assert_eq!(
            e,
            "curve_client_publickey: character '\"' at position 39 is not in the Z85 alphabet"
        );
        // A secret's undecodable group is not quoted.
        let overflowing = format!("#####{}", &SERVER_SECRET[5..]);
        let e = err(&options(Some(&overflowing), Some(CLIENT_PUBLIC)), no_env);
        assert_eq!(
            e,
            "curve_server_secretkey: Z85 group at position 0 encodes a value above 2^32-1"
        );
        let env = env_of(&[
            (ENV_SERVER_SECRETKEY, &SERVER_SECRET[..20]),
            (ENV_CLIENT_PUBLICKEY, CLIENT_PUBLIC),
        ]);
        let e = err(&CurveOptions::default(), env);
        assert!(
            e.starts_with(&format!("{ENV_SERVER_SECRETKEY}: a CURVE key")),
            "{e}"
        );
    }

    #[test]
    fn allowed_clients_add_keys_once() {
        let mut o = options(Some(SERVER_SECRET), Some(CLIENT_PUBLIC));
        o.allowed_clients = vec![
            SERVER_PUBLIC.into(),
            CLIENT_PUBLIC.into(),
            SERVER_PUBLIC.into(),
        ];
        let s = o.resolve(no_env).unwrap().unwrap();
        assert_eq!(s.allowed_clients, vec![s.server.public]);
        assert!(s.allows(&s.server.public));
        assert_eq!(s.clients().count(), 2);
        o.allowed_clients.push("nope".into());
        let e = err(&o, no_env);
        assert!(e.starts_with("curve_allowed_clients[3]: "), "{e}");
    }

    #[test]
    fn a_written_keyfile_resolves_and_is_never_replaced() {
        let dir = TempDir::new("written");
        let path = dir.0.join("cluster.keys");
        let server = KeyPair::from_z85(SERVER_PUBLIC, SERVER_SECRET).unwrap();
        let client = KeyPair::from_z85(CLIENT_PUBLIC, CLIENT_SECRET).unwrap();
        write_keyfile(&path, &server, &client).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let o = CurveOptions {
            keyfile: Some(path.clone()),
            ..CurveOptions::default()
        };
        let s = o.resolve(no_env).unwrap().unwrap();
        assert_eq!(s.server, server);
        assert_eq!(s.client_public, client.public);
        let e = write_keyfile(&path, &client, &server).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        let again = o.resolve(no_env).unwrap().unwrap();
        assert_eq!(again.server, server);
    }

    #[test]
    fn a_keyfile_shares_the_work_with_options_but_no_key_twice() {
        let dir = TempDir::new("share");
        let path = dir.0.join("secret.toml");
        write_mode(
            &path,
            &format!("curve_server_secretkey = \"{SERVER_SECRET}\"\n"),
            0o600,
        );
        let mut o = CurveOptions {
            keyfile: Some(path.clone()),
            client_publickey: Some(CLIENT_PUBLIC.into()),
            ..CurveOptions::default()
        };
        let s = o.resolve(no_env).unwrap().unwrap();
        assert_eq!(s.server.public.to_z85(), SERVER_PUBLIC);
        o.server_secretkey = Some(SERVER_SECRET.into());
        let e = err(&o, no_env);
        assert_eq!(
            e,
            format!(
                "curve_server_secretkey is set both as an option and in curve_keyfile {}: \
                 give it once",
                path.display()
            )
        );
        // Missing keys are named, and so is the file that lacks them.
        let o = CurveOptions {
            keyfile: Some(path.clone()),
            ..CurveOptions::default()
        };
        let e = err(&o, no_env);
        assert!(
            e.contains(&format!(
                "curve_server_secretkey in curve_keyfile {} set, but curve_client_publickey \
                 missing",
                path.display()
            )),
            "{e}"
        );
        write_mode(&path, "# nothing yet\n", 0o600);
        let e = err(&o, no_env);
        assert!(
            e.contains(&format!("curve_keyfile {} set, but", path.display())),
            "{e}"
        );
    }

    #[test]
    fn a_keyfile_others_may_read_is_refused() {
        let dir = TempDir::new("mode");
        let path = dir.0.join("keys.toml");
        write_mode(
            &path,
            &format!(
                "curve_server_secretkey = \"{SERVER_SECRET}\"\n\
                 curve_client_publickey = \"{CLIENT_PUBLIC}\"\n"
            ),
            0o644,
        );
        let o = CurveOptions {
            keyfile: Some(path.clone()),
            ..CurveOptions::default()
        };
        let e = err(&o, no_env);
        assert_eq!(
            e,
            format!(
                "curve_keyfile {0} holds a CURVE secret key but group or others may access it \
                 (mode 0644): run chmod 600 {0}",
                path.display()
            )
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(err(&o, no_env).contains("(mode 0640)"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(o.resolve(no_env).unwrap().is_some());
    }

    #[test]
    fn keyfile_errors_name_the_file_and_never_quote_a_secret() {
        let dir = TempDir::new("errors");
        let path = dir.0.join("keys.toml");
        let o = CurveOptions {
            keyfile: Some(path.clone()),
            ..CurveOptions::default()
        };
        let e = err(&o, no_env);
        assert!(
            e.starts_with(&format!(
                "curve_keyfile {}: cannot read it: ",
                path.display()
            )),
            "{e}"
        );
        // A misspelt key: named with where it is, the line not quoted.
        write_mode(
            &path,
            &format!("curve_server_secretkye = \"{SERVER_SECRET}\"\n"),
            0o600,
        );
        let e = err(&o, no_env);
        assert!(e.contains("curve_server_secretkye"), "{e}");
        assert!(e.contains("line 1, column 1"), "{e}");
        assert!(!shows_part_of(&e, SERVER_SECRET), "{e}");
        // An unterminated string.
        write_mode(
            &path,
            &format!("curve_server_secretkey = \"{SERVER_SECRET}\n"),
            0o600,
        );
        let e = err(&o, no_env);
        assert!(
            e.starts_with(&format!("curve_keyfile {}: ", path.display())),
            "{e}"
        );
        assert!(
            !e.contains(&SERVER_SECRET[..10]),
            "no part of the secret: {e}"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let e = err(&o, no_env);
        assert!(e.ends_with("not a regular file"), "{e}");
    }

    #[test]
    fn each_source_replaces_what_it_gives_and_empty_unsets() {
        let mut o = CurveOptions::default();
        o.apply(CurveOverrides {
            server_publickey: Some(SERVER_PUBLIC.into()),
            server_secretkey: Some(SecretText::from(SERVER_SECRET.to_owned())),
            client_publickey: Some(CLIENT_PUBLIC.into()),
            allowed_clients: Some(vec![SERVER_PUBLIC.into()]),
            keyfile: Some("/etc/zring/keys.toml".into()),
        });
        // A later source: silent on two, "" for the rest.
        o.apply(CurveOverrides {
            server_publickey: Some(" ".into()),
            server_secretkey: None,
            client_publickey: None,
            allowed_clients: Some(Vec::new()),
            keyfile: Some("".into()),
        });
        assert_eq!(o.server_publickey, None);
        assert!(o.server_secretkey.is_some());
        assert_eq!(o.client_publickey.as_deref(), Some(CLIENT_PUBLIC));
        assert!(o.allowed_clients.is_empty());
        assert_eq!(o.keyfile, None);
        o.apply(CurveOverrides {
            server_secretkey: Some(SecretText::from(String::new())),
            ..CurveOverrides::default()
        });
        assert!(o.server_secretkey.is_none());
    }

    #[test]
    fn a_clients_key_file_is_checked_as_the_servers_is() {
        let dir = TempDir::new("client");
        let path = dir.0.join("keys.toml");
        // Padded keys are accepted, as everywhere else.
        write_mode(
            &path,
            &format!(
                "curve_server_publickey = \" {SERVER_PUBLIC} \"\n\
                 curve_client_publickey = \"{SERVER_PUBLIC} \"\n\
                 curve_client_secretkey = \" {SERVER_SECRET}\"\n"
            ),
            0o600,
        );
        let keys = read_client_keys(&path).unwrap();
        assert_eq!(keys.server.unwrap().to_z85(), SERVER_PUBLIC);
        assert_eq!(keys.client.unwrap().public.to_z85(), SERVER_PUBLIC);
        // A secret's undecodable group is not quoted.
        let overflowing = format!("#####{}", &SERVER_SECRET[5..]);
        write_mode(
            &path,
            &format!(
                "curve_client_publickey = \"{SERVER_PUBLIC}\"\n\
                 curve_client_secretkey = \"{overflowing}\"\n"
            ),
            0o600,
        );
        let e = read_client_keys(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "curve_keyfile {}: curve_client_secretkey: Z85 group at position 0 encodes a \
                 value above 2^32-1",
                path.display()
            )
        );
        assert!(!shows_part_of(&e, &overflowing), "{e}");
        // A public key of another pair is named.
        write_mode(
            &path,
            &format!(
                "curve_client_publickey = \"{CLIENT_PUBLIC}\"\n\
                 curve_client_secretkey = \"{SERVER_SECRET}\"\n"
            ),
            0o600,
        );
        let e = read_client_keys(&path).unwrap_err().to_string();
        assert!(
            e.contains("curve_client_publickey does not belong to"),
            "{e}"
        );
        assert!(!shows_part_of(&e, SERVER_SECRET), "{e}");
    }

    /// Whether `text` holds any 6 consecutive characters of `secret`.
    fn shows_part_of(text: &str, secret: &str) -> bool {
        let secret: Vec<char> = secret.chars().collect();
        secret
            .windows(6)
            .any(|w| text.contains(&w.iter().collect::<String>()))
    }

    /// Every malformed layout a hand-edited key or config file can have
    /// that puts the secret near the error: none may print a piece of it.
    #[test]
    fn no_malformed_layout_prints_a_piece_of_the_secret() {
        let s = SERVER_SECRET;
        let layouts = [
            // The value wrapped onto the next line.
            format!("curve_server_secretkey =\n\"{s}\"\n"),
            format!("curve_server_secretkey\n= \"{s}\"\n"),
            // Unterminated, basic and literal, single and multi-line.
            format!("curve_server_secretkey = \"{s}\n"),
            format!("curve_server_secretkey = '{s}\n"),
            format!("curve_server_secretkey = \"\"\"{s}\n"),
            // Not quoted at all.
            format!("curve_server_secretkey = {s}\n"),
            // A misspelt key, and the secret under a key of another type.
            format!("curve_server_secretkye = \"{s}\"\n"),
            format!("curve_server_publickey = 7\ncurve_client_publickey = [\"{s}\"]\n"),
            // Twice.
            format!("curve_server_secretkey = \"{s}\"\ncurve_server_secretkey = \"{s}\"\n"),
            // Junk after the value, and a table header in the way.
            format!("curve_server_secretkey = \"{s}\" junk\n"),
            format!("[curve\ncurve_server_secretkey = \"{s}\"\n"),
        ];
        for text in &layouts {
            let e = match toml::from_str::<KeyFile>(text) {
                Ok(_) => panic!("{text:?} parsed"),
                Err(e) => toml_error_text(&e, text),
            };
            assert!(e.contains("line "), "where it is: {e}");
            assert!(!shows_part_of(&e, s), "{text:?} printed {e}");
        }
        // A string serde rejects is quoted in its message: a long one is not.
        let text = format!("xpub_sndhwm = \"{s}\"\n");
        let e = crate::broker::BrokerConfig::parse_file("b.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("xpub_sndhwm") || e.contains("line 1"), "{e}");
        assert!(!shows_part_of(&e, s), "{e}");
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let mut o = options(Some(SERVER_SECRET), Some(CLIENT_PUBLIC));
        o.keyfile = Some("/etc/zring/keys.toml".into());
        let shown = format!("{o:?}");
        assert!(!shown.contains(SERVER_SECRET), "{shown}");
        assert!(
            shown.contains("server_secretkey: Some(<redacted>)"),
            "{shown}"
        );
        o.keyfile = None;
        let s = o.resolve(no_env).unwrap().unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains(SERVER_SECRET), "{shown}");
        assert!(shown.contains(SERVER_PUBLIC), "{shown}");
    }
}
