//! A Python venv with pyzmq, whose wheels bundle libzmq 4.3.5 (with
//! libsodium, so CURVE too). It is made once per checkout under `target/`;
//! a lock file serialises the processes that want it, and a marker written
//! after a successful install makes a half-made venv be redone. Used by the
//! interop tests and by `perf/curve.rs`, which loads the bundled library.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The pyzmq release whose wheels bundle libzmq 4.3.5.
const PYZMQ: &str = "pyzmq==27.3.0";

pub fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        fs::create_dir_all(&target).expect("create the target directory");
        let venv = target.join("pyzmq-venv");
        let python = venv.join("bin").join("python");
        let marker = venv.join(format!(".installed-{PYZMQ}"));
        let lock = File::create(target.join("pyzmq-venv.lock")).expect("create the venv lock file");
        lock.lock().expect("lock the venv");
        if !marker.exists() {
            let _ = fs::remove_dir_all(&venv);
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv (install python3-venv)",
            );
            run(
                Command::new(&python).args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    PYZMQ,
                ]),
                "pip install pyzmq (PyPI must be reachable)",
            );
            fs::write(&marker, b"").expect("write the venv marker");
        }
        python
    })
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The libzmq shared library inside pyzmq's wheel (`pyzmq.libs/`), for a
/// C-speed libzmq with CURVE.
pub fn bundled_libzmq() -> PathBuf {
    let lib = venv_python()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("lib");
    for python in fs::read_dir(&lib)
        .expect("the venv's lib directory")
        .flatten()
    {
        let libs = python.path().join("site-packages").join("pyzmq.libs");
        let Ok(entries) = fs::read_dir(&libs) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("libzmq") {
                return entry.path();
            }
        }
    }
    panic!("no libzmq in {}/*/site-packages/pyzmq.libs", lib.display());
}
