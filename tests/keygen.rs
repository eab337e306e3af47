//! `zring keygen` and the CURVE options of `zring broker` / `zring logger`,
//! as processes.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use zring::codec::{KeyPair, PublicKey};
use zring::keys::CurveOptions;

fn zring(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zring"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove(zring::keys::ENV_SERVER_PUBLICKEY)
        .env_remove(zring::keys::ENV_SERVER_SECRETKEY)
        .env_remove(zring::keys::ENV_CLIENT_PUBLICKEY)
        .env_remove(zring::keys::ENV_CLIENT_SECRETKEY)
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zring-keygen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The line after `header` in curve_keygen's output.
fn section<'a>(out: &'a str, header: &str) -> &'a str {
    let mut lines = out.lines();
    lines.by_ref().find(|l| *l == header).expect(header);
    lines.next().unwrap()
}

#[test]
fn keygen_prints_a_pair_as_curve_keygen_does() {
    let out = zring(&["keygen"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let public = section(&text, "== CURVE PUBLIC KEY ==");
    let secret = section(&text, "== CURVE SECRET KEY ==");
    assert_eq!((public.len(), secret.len()), (40, 40), "{text}");
    // Decodes, and the public key is the secret key's.
    let pair = KeyPair::from_z85(public, secret).unwrap();
    let again = String::from_utf8(zring(&["keygen"]).stdout).unwrap();
    assert_ne!(
        PublicKey::from_z85(section(&again, "== CURVE PUBLIC KEY ==")).unwrap(),
        pair.public
    );
}

#[test]
fn keygen_writes_a_private_keyfile_that_resolves_and_is_never_replaced() {
    let dir = temp_dir("file");
    let path = dir.join("cluster.keys");
    let shown = path.to_str().unwrap();
    let out = zring(&["keygen", "--keyfile", shown]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let written = std::fs::read_to_string(&path).unwrap();
    // The four keys under Zeek's names; stdout shows the public ones only.
    for name in [
        "curve_server_publickey",
        "curve_server_secretkey",
        "curve_client_publickey",
        "curve_client_secretkey",
    ] {
        assert!(written.contains(&format!("\n{name} = \"")), "{written}");
    }
    assert!(!text.contains("secretkey"), "{text}");
    let settings = CurveOptions {
        keyfile: Some(path.clone()),
        ..CurveOptions::default()
    }
    .resolve(|_| None)
    .unwrap()
    .unwrap();
    assert!(
        text.contains(&format!(
            "curve_server_publickey = \"{}\"",
            settings.server.public.to_z85()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "curve_client_publickey = \"{}\"",
            settings.client_public.to_z85()
        )),
        "{text}"
    );

    let out = zring(&["keygen", "--keyfile", shown]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("exists") && stderr.contains(shown),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = zring(&[
        "logger",
        "--listen",
        "tcp://127.0.0.1:*",
        "--dir",
        dir.to_str().unwrap(),
        "--curve-keyfile",
        shown,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("chmod 600"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_curve_settings_stop_the_broker_without_showing_the_secret() {
    // A secret that starts with '-' is a value, not a flag.
    let secret = "-so<iWpS=5uINn*eV$=J)F%lEFd=@g:g@GqmL2C]";
    let out = zring(&[
        "broker",
        "--listen-xpub-endpoint",
        "tcp://127.0.0.1:*",
        "--listen-xsub-endpoint",
        "tcp://127.0.0.1:*",
        "--curve-server-secretkey",
        secret,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("curve_server_secretkey set, but curve_client_publickey missing"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_zring"))
        .args(["broker", "--curve-server-secretkey", secret])
        .env(zring::keys::ENV_CLIENT_PUBLICKEY, "anything")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("curve_server_secretkey")
            && stderr.contains(zring::keys::ENV_CLIENT_PUBLICKEY)
            && stderr.contains("not both"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "{stderr}");
}
