//! Where io_uring is refused, as Docker's default seccomp profile refuses
//! it, `Context::new` fails with a message that names the cause and the fix.
//!
//! The refusal is real: a seccomp filter on a fresh thread makes
//! `io_uring_setup` fail with EPERM. Threads inherit the filter, so the
//! reactor threads the context starts from there meet it too; the rest of
//! the test process is untouched.

/// Installs a filter on the calling thread: `io_uring_setup` fails with
/// EPERM, every other system call is allowed.
fn refuse_io_uring_setup() {
    // Offsets into `struct seccomp_data`.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let mut program = [
        stmt(load, ARCH),
        // Another architecture's numbers mean something else: allow.
        jeq(AUDIT_ARCH, 0, 3),
        stmt(load, NR),
        jeq(libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; `fprog` points at a live program for the
    // duration of the call, and the kernel copies it.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog,
            ),
            0,
            "installing the seccomp filter: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn a_refused_io_uring_is_a_clear_error() {
    let outcome = std::thread::spawn(|| {
        refuse_io_uring_setup();
        zring::Context::new().map(|_| ())
    })
    .join()
    .expect("the filtered thread panicked");
    let err = outcome.expect_err("io_uring_setup is refused, so no context can start");
    let text = err.to_string();
    assert!(text.contains("io_uring is not available"), "{text}");
    assert!(text.contains("io_uring_setup was refused"), "{text}");
    assert!(text.contains("seccomp"), "names the likely cause: {text}");
}
