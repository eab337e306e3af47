//! libzmq 4.3.5 with CURVE, as pyzmq's wheel bundles it (with libsodium),
//! loaded at run time: the `zmq` crate's libzmq is built without CURVE, and
//! a C-speed libzmq peer is what the CURVE benchmark must compare against
//! (pyzmq itself would add Python's cost to every message).
//!
//! Only what the benchmark calls is bound. The library is opened with
//! `RTLD_LOCAL`, so its symbols cannot mix with anything else in the
//! process.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;

pub const PUSH: c_int = 8;
pub const PULL: c_int = 7;
pub const SUB: c_int = 2;
pub const XPUB: c_int = 9;

pub const SUBSCRIBE: c_int = 6;
pub const LAST_ENDPOINT: c_int = 32;
pub const CURVE_SERVER: c_int = 47;
pub const CURVE_PUBLICKEY: c_int = 48;
pub const CURVE_SECRETKEY: c_int = 49;
pub const CURVE_SERVERKEY: c_int = 50;
pub const XPUB_NODROP: c_int = 69;

/// `zmq_msg_t`: 64 opaque bytes, pointer-aligned.
#[repr(C, align(8))]
pub struct Msg([u8; 64]);

type CtxNew = unsafe extern "C" fn() -> *mut c_void;
type CtxTerm = unsafe extern "C" fn(*mut c_void) -> c_int;
type SocketFn = unsafe extern "C" fn(*mut c_void, c_int) -> *mut c_void;
type Close = unsafe extern "C" fn(*mut c_void) -> c_int;
type SetOpt = unsafe extern "C" fn(*mut c_void, c_int, *const c_void, usize) -> c_int;
type GetOpt = unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, *mut usize) -> c_int;
type Endpoint = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
type Send = unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> c_int;
type MsgInit = unsafe extern "C" fn(*mut Msg) -> c_int;
type MsgRecv = unsafe extern "C" fn(*mut Msg, *mut c_void, c_int) -> c_int;
type MsgClose = unsafe extern "C" fn(*mut Msg) -> c_int;
type Errno = unsafe extern "C" fn() -> c_int;
type StrError = unsafe extern "C" fn(c_int) -> *const c_char;
type Has = unsafe extern "C" fn(*const c_char) -> c_int;

/// The loaded library's entry points.
pub struct LibZmq {
    ctx_new: CtxNew,
    ctx_term: CtxTerm,
    socket: SocketFn,
    close: Close,
    setsockopt: SetOpt,
    getsockopt: GetOpt,
    bind: Endpoint,
    connect: Endpoint,
    send: Send,
    msg_init: MsgInit,
    msg_recv: MsgRecv,
    msg_close: MsgClose,
    errno: Errno,
    strerror: StrError,
}

/// Resolves `name` in `handle` as a function of type `T`.
///
/// # Safety
/// `T` must be the function's real C signature.
unsafe fn symbol<T: Copy>(handle: *mut c_void, name: &str) -> T {
    let cname = CString::new(name).unwrap();
    // SAFETY: a live handle from dlopen and a NUL-terminated name.
    let ptr = unsafe { libc::dlsym(handle, cname.as_ptr()) };
    assert!(!ptr.is_null(), "libzmq has no {name}");
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: a non-null function pointer, and the caller vouches for T.
    unsafe { std::mem::transmute_copy(&ptr) }
}

impl LibZmq {
    /// Opens the library at `path`; panics, naming it, if that fails or it
    /// lacks CURVE.
    pub fn open(path: &Path) -> LibZmq {
        let cpath = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path; the handle is never closed, so the
        // function pointers below stay valid for the process's life.
        let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns a C string or null after a failure.
            let why = unsafe { CStr::from_ptr(libc::dlerror()) };
            panic!("cannot load {}: {}", path.display(), why.to_string_lossy());
        }
        // SAFETY: each type alias above is that function's signature in
        // zmq.h (libzmq 4.3).
        unsafe {
            let has: Has = symbol(handle, "zmq_has");
            assert_eq!(has(c"curve".as_ptr()), 1, "{} has no CURVE", path.display());
            LibZmq {
                ctx_new: symbol(handle, "zmq_ctx_new"),
                ctx_term: symbol(handle, "zmq_ctx_term"),
                socket: symbol(handle, "zmq_socket"),
                close: symbol(handle, "zmq_close"),
                setsockopt: symbol(handle, "zmq_setsockopt"),
                getsockopt: symbol(handle, "zmq_getsockopt"),
                bind: symbol(handle, "zmq_bind"),
                connect: symbol(handle, "zmq_connect"),
                send: symbol(handle, "zmq_send"),
                msg_init: symbol(handle, "zmq_msg_init"),
                msg_recv: symbol(handle, "zmq_msg_recv"),
                msg_close: symbol(handle, "zmq_msg_close"),
                errno: symbol(handle, "zmq_errno"),
                strerror: symbol(handle, "zmq_strerror"),
            }
        }
    }

    fn check(&self, rc: c_int, what: &str) {
        if rc < 0 {
            // SAFETY: zmq_strerror returns a static C string.
            let why = unsafe { CStr::from_ptr((self.strerror)((self.errno)())) };
            panic!("{what}: {}", why.to_string_lossy());
        }
    }

    /// A new context (one I/O thread, libzmq's default).
    pub fn context(&self) -> Context<'_> {
        // SAFETY: no preconditions.
        let ctx = unsafe { (self.ctx_new)() };
        assert!(!ctx.is_null(), "zmq_ctx_new");
        Context { lib: self, ctx }
    }
}

/// A `zmq_ctx`, terminated on drop (which lingers as libzmq's does).
pub struct Context<'a> {
    lib: &'a LibZmq,
    ctx: *mut c_void,
}

impl Context<'_> {
    /// A socket, which borrows the context: it is closed before the
    /// context is terminated, or termination would wait for it forever.
    pub fn socket(&self, kind: c_int) -> Socket<'_> {
        // SAFETY: a live context.
        let s = unsafe { (self.lib.socket)(self.ctx, kind) };
        assert!(!s.is_null(), "zmq_socket");
        Socket { lib: self.lib, s }
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: a live context; its sockets, which borrow it, are closed.
        unsafe { (self.lib.ctx_term)(self.ctx) };
    }
}

/// A `zmq_socket`, closed on drop.
pub struct Socket<'a> {
    lib: &'a LibZmq,
    s: *mut c_void,
}

impl Socket<'_> {
    pub fn set_bytes(&self, option: c_int, value: &[u8]) {
        // SAFETY: a live socket and a buffer of the length given.
        let rc =
            unsafe { (self.lib.setsockopt)(self.s, option, value.as_ptr().cast(), value.len()) };
        self.lib.check(rc, "zmq_setsockopt");
    }

    pub fn set_int(&self, option: c_int, value: c_int) {
        self.set_bytes(option, &value.to_ne_bytes());
    }

    pub fn bind(&self, endpoint: &str) -> String {
        let c = CString::new(endpoint).unwrap();
        // SAFETY: a live socket and a NUL-terminated endpoint.
        self.lib
            .check(unsafe { (self.lib.bind)(self.s, c.as_ptr()) }, "zmq_bind");
        let mut buf = [0u8; 256];
        let mut len = buf.len();
        // SAFETY: a live socket; buf is len bytes.
        let rc = unsafe {
            (self.lib.getsockopt)(self.s, LAST_ENDPOINT, buf.as_mut_ptr().cast(), &mut len)
        };
        self.lib.check(rc, "ZMQ_LAST_ENDPOINT");
        CStr::from_bytes_until_nul(&buf)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    pub fn connect(&self, endpoint: &str) {
        let c = CString::new(endpoint).unwrap();
        // SAFETY: a live socket and a NUL-terminated endpoint.
        self.lib.check(
            unsafe { (self.lib.connect)(self.s, c.as_ptr()) },
            "zmq_connect",
        );
    }

    /// `zmq_send`: copies `data` into a new message, as applications do.
    pub fn send(&self, data: &[u8]) {
        // SAFETY: a live socket and a buffer of the length given.
        let rc = unsafe { (self.lib.send)(self.s, data.as_ptr().cast(), data.len(), 0) };
        self.lib.check(rc, "zmq_send");
    }

    /// `zmq_msg_recv` into `msg` (initialised by [`Socket::new_msg`]).
    pub fn recv(&self, msg: &mut Msg) -> usize {
        // SAFETY: a live socket and an initialised message.
        let rc = unsafe { (self.lib.msg_recv)(msg, self.s, 0) };
        self.lib.check(rc, "zmq_msg_recv");
        rc as usize
    }

    pub fn new_msg(&self) -> Msg {
        let mut msg = Msg([0; 64]);
        // SAFETY: 64 writable, aligned bytes. libzmq keeps no pointer into
        // a zmq_msg_t between calls, so it may move.
        let rc = unsafe { (self.lib.msg_init)(&mut msg) };
        self.lib.check(rc, "zmq_msg_init");
        msg
    }

    pub fn close_msg(&self, mut msg: Msg) {
        // SAFETY: an initialised message, not used again.
        unsafe { (self.lib.msg_close)(&mut msg) };
    }
}

impl Drop for Socket<'_> {
    fn drop(&mut self) {
        // SAFETY: a live socket, not used again.
        unsafe { (self.lib.close)(self.s) };
    }
}
