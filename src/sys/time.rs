//! Local time, as the C library computes it: `TZ` and `/etc/localtime`
//! apply exactly as they do to Zeek, which formats its log times the same
//! way.

/// A broken-down calendar time and its zone's offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BrokenDown {
    pub(crate) year: i64,
    /// 1–12.
    pub(crate) month: u8,
    /// 1–31.
    pub(crate) day: u8,
    pub(crate) hour: u8,
    pub(crate) minute: u8,
    /// 0–60.
    pub(crate) second: u8,
    /// Seconds east of UTC (ignored by [`mktime`]).
    pub(crate) offset: i64,
}

/// `secs` since the epoch in the local time zone (`localtime_r`); None if
/// the C library cannot convert it.
pub(crate) fn local_time(secs: i64) -> Option<BrokenDown> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `tm` is plain old data for which all-zero bytes are valid;
    // localtime_r only reads `t` and writes `tm`, and is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return None;
    }
    // c_long: i64 here, i32 on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let offset = i64::from(tm.tm_gmtoff);
    Some(BrokenDown {
        year: i64::from(tm.tm_year) + 1900,
        month: u8::try_from(tm.tm_mon + 1).ok()?,
        day: u8::try_from(tm.tm_mday).ok()?,
        hour: u8::try_from(tm.tm_hour).ok()?,
        minute: u8::try_from(tm.tm_min).ok()?,
        second: u8::try_from(tm.tm_sec).ok()?,
        offset,
    })
}

/// The seconds since the epoch a local calendar time names (`mktime`, with
/// the zone's own daylight saving rule); None if the C library cannot say.
pub(crate) fn mktime(t: &BrokenDown) -> Option<i64> {
    // SAFETY: `tm` is plain old data for which all-zero bytes are valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = libc::c_int::try_from(t.year - 1900).ok()?;
    tm.tm_mon = libc::c_int::from(t.month) - 1;
    tm.tm_mday = libc::c_int::from(t.day);
    tm.tm_hour = libc::c_int::from(t.hour);
    tm.tm_min = libc::c_int::from(t.minute);
    tm.tm_sec = libc::c_int::from(t.second);
    tm.tm_isdst = -1;
    // SAFETY: mktime reads and normalises a live, initialised tm.
    let secs = unsafe { libc::mktime(&mut tm) };
    // -1 is also the answer for 1969-12-31 23:59:59 UTC.
    if secs == -1 && tm.tm_year != 69 {
        return None;
    }
    // time_t: i64 here, i32 on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    Some(i64::from(secs))
}

/// glibc's `snprintf("%.6f")`: the reference the number formatting is
/// tested against.
#[cfg(test)]
pub(crate) fn c_printf_f6(d: f64) -> String {
    let mut buf = vec![0u8; 400];
    // SAFETY: the buffer is large enough for any "%.6f" of a double (at
    // most 309 integer digits, sign, point and six decimals), and snprintf
    // never writes more than the size it is given.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), c"%.6f".as_ptr(), d) };
    buf.truncate(n as usize);
    String::from_utf8(buf).expect("ASCII digits")
}
