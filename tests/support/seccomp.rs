//! A seccomp filter that refuses io_uring as Docker's default profile
//! does (`io_uring_setup` fails with EPERM), for the tests of what zring
//! does where io_uring is refused. A filter applies to the thread that
//! installs it, the threads it starts afterwards and the programs they
//! exec; the rest of the test process is untouched.
#![allow(dead_code)] // each test binary uses a different part

/// Installs a filter on the calling thread: `io_uring_setup` fails with
/// EPERM, every other system call is allowed.
pub fn refuse_io_uring_setup() {
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

/// The environment variable that makes the broker tests start each broker
/// on a thread with the filter (`.ci/run` sets it), so the whole suite
/// runs on the fallback as a container would.
pub const REFUSE_ENV: &str = "ZRING_TEST_REFUSE_IO_URING";

/// Whether the tests should run under the filter.
pub fn refusing() -> bool {
    std::env::var_os(REFUSE_ENV).is_some()
}
