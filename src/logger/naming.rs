//! File names and header timestamps of Zeek's ASCII writer.
//!
//! Zeek prints every such date with `strftime("%Y-%m-%d-%H-%M-%S")` in the
//! process's **local** time zone (`localtime_r`): the `#open`/`#close`
//! header lines (`Ascii::Timestamp`, `src/logging/writers/ascii/Ascii.cc:838-854`)
//! and the rotated file names (`strftime` built-in, `src/zeek.bif:4067-4079`).
//! Times are cut to whole seconds toward zero (`static_cast<time_t>`). glibc
//! does not pad `%Y`. This module does the same through the C library's
//! `localtime_r` (`crate::sys::local_time`), so `TZ` and `/etc/localtime`
//! apply exactly as they do to Zeek. docs/zeek-log-formats.md describes rotation as a whole.

use std::time::{SystemTime, UNIX_EPOCH};

use super::numbers::write_i64;

/// A broken-down calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// The year, e.g. 2026.
    pub year: i64,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–60 (a leap second can show up in local time with "right/" zones).
    pub second: u8,
}

/// Whole seconds since the epoch, truncated toward zero as
/// `static_cast<time_t>(double)` does.
pub fn epoch_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// `secs` in the local time zone, by `localtime_r`; UTC if the C library
/// cannot convert it.
pub fn local_time(secs: i64) -> CivilTime {
    local_time_with_offset(secs).map_or_else(|| utc_time(secs), |(t, _)| t)
}

/// `secs` in the local time zone and that zone's offset from UTC then.
fn local_time_with_offset(secs: i64) -> Option<(CivilTime, i64)> {
    let t = crate::sys::local_time(secs)?;
    let civil = CivilTime {
        year: t.year,
        month: t.month,
        day: t.day,
        hour: t.hour,
        minute: t.minute,
        second: t.second,
    };
    Some((civil, t.offset))
}

/// The time a local calendar date names (`mktime`, with the zone's own
/// daylight saving rule), or None if the C library cannot say.
pub fn from_local_time(t: &CivilTime) -> Option<SystemTime> {
    let secs = crate::sys::mktime(&crate::sys::BrokenDown {
        year: t.year,
        month: t.month,
        day: t.day,
        hour: t.hour,
        minute: t.minute,
        second: t.second,
        offset: 0,
    })?;
    Some(if secs >= 0 {
        UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
    })
}

/// Reads a `%Y-%m-%d-%H-%M-%S` date, as [`write_date`] writes it (the
/// `#open` line of Zeek's ASCII logs).
pub fn parse_date(text: &str) -> Option<CivilTime> {
    let mut parts = text.splitn(6, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let mut two = || -> Option<u8> {
        let p = parts.next()?;
        (p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok())?
    };
    let (month, day, hour, minute, second) = (two()?, two()?, two()?, two()?, two()?);
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60;
    valid.then_some(CivilTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

/// A time as Zeek's `run_rotation_postprocessor_cmd` passes it to the
/// postprocessor command: `strftime("%y-%m-%d_%H.%M.%S")` in local time,
/// e.g. `15-01-20_15.23.42` (`scripts/base/frameworks/logging/main.zeek`,
/// the format zeekctl's `archive-log` checks for).
pub fn postprocessor_time(t: SystemTime) -> String {
    let c = local_time(epoch_seconds(t));
    format!(
        "{:02}-{:02}-{:02}_{:02}.{:02}.{:02}",
        c.year.rem_euclid(100),
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second
    )
}

/// `secs` in UTC (proleptic Gregorian calendar).
pub fn utc_time(secs: i64) -> CivilTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    CivilTime {
        year,
        month: month as u8,
        day: day as u8,
        hour: (rem / 3_600) as u8,
        minute: (rem / 60 % 60) as u8,
        second: (rem % 60) as u8,
    }
}

/// Appends `%Y-%m-%d-%H-%M-%S` of `t`.
pub fn write_date(out: &mut Vec<u8>, t: &CivilTime) {
    write_i64(out, t.year);
    for part in [t.month, t.day, t.hour, t.minute, t.second] {
        out.push(b'-');
        out.push(b'0' + part / 10);
        out.push(b'0' + part % 10);
    }
}

/// Appends the local-time `%Y-%m-%d-%H-%M-%S` of `t`, as in Zeek's
/// `#open`/`#close` lines and rotated file names.
pub fn write_local_date(out: &mut Vec<u8>, t: SystemTime) {
    write_date(out, &local_time(epoch_seconds(t)));
}

/// The name Zeek gives a rotated log file by default:
/// `<path>.<open time %Y-%m-%d-%H-%M-%S>.<ext>`, e.g.
/// `conn.2026-11-22-10-00-00.log`, in local time; `closed` does not appear.
///
/// This is `Log::rotation_format_func`'s default branch
/// (`scripts/base/frameworks/logging/main.zeek:856-881`, taken when the
/// filter has no postprocessor of its own and the ASCII writer's default
/// postprocessor is in place), with the dated base name formatted by
/// `Log::default_rotation_date_format` (`main.zeek:170`), to which the ASCII
/// writer appends `.` and its extension
/// (`src/logging/writers/ascii/Ascii.cc:666`). The file is renamed in the
/// directory it was written to (`Log::default_rotation_dir` is empty by
/// default, `main.zeek:141`; `Log::default_logdir` if set,
/// `src/logging/Manager.cc:2182-2200`).
///
/// Zeek rotates only if a rotation interval is set: the framework default
/// `Log::default_rotation_interval` is 0 (no rotation, `main.zeek:135`), a
/// cluster logger sets 1 hour (`scripts/base/frameworks/cluster/nodes/logger.zeek:20`)
/// and ZeekControl sets its `LogRotationInterval` (3600 s) on loggers. A
/// ZeekControl cluster logger uses this name, then its `archive-log`
/// postprocessor moves the file to `<LogDir>/<open date>/<path>.<open
/// HH:MM:SS>-<close HH:MM:SS>.log.gz` (zeekctl `bin/archive-log`,
/// `bin/make-archive-name:51-63`). A logger run by Zeek's Supervisor uses
/// [`archiver_rotated_name`] instead.
pub fn rotated_name(path: &str, ext: &str, opened: SystemTime, _closed: SystemTime) -> String {
    let mut out = Vec::with_capacity(path.len() + ext.len() + 24);
    out.extend_from_slice(path.as_bytes());
    out.push(b'.');
    write_local_date(&mut out, opened);
    out.push(b'.');
    out.extend_from_slice(ext.as_bytes());
    // Only ASCII digits and '-' were added to two &strs.
    String::from_utf8(out).unwrap_or_default()
}

/// The name a Supervisor-run cluster logger gives a rotated file, for
/// `zeek-archiver` to pick up from the `log-queue` directory:
/// `<path>__<open>__<close>__.<ext>`, both times `%Y-%m-%d-%H-%M-%S` in
/// local time, and with `metadata` (see [`archiver_metadata`]), if not
/// empty, as one more part: `<path>__<open>__<close>__<metadata>__.<ext>`
/// (`archiver_rotation_format_func`,
/// `scripts/base/frameworks/cluster/nodes/logger.zeek`). A cluster with
/// more than one logger sets `log_suffix=<node>` there.
pub fn archiver_rotated_name(
    path: &str,
    ext: &str,
    opened: SystemTime,
    closed: SystemTime,
    metadata: &str,
) -> String {
    let mut out = Vec::with_capacity(path.len() + ext.len() + metadata.len() + 48);
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b"__");
    write_local_date(&mut out, opened);
    out.extend_from_slice(b"__");
    write_local_date(&mut out, closed);
    out.extend_from_slice(b"__");
    if !metadata.is_empty() {
        out.extend_from_slice(metadata.as_bytes());
        out.extend_from_slice(b"__");
    }
    out.push(b'.');
    out.extend_from_slice(ext.as_bytes());
    String::from_utf8(out).unwrap_or_default()
}

/// `archiver_log_metadata` as `archiver_encode_log_metadata` encodes it
/// into rotated names: `k=v` pairs joined by `,`, keys and values stripped
/// of surrounding white space, pairs with an empty value left out. Zeek
/// warns about and skips a key or value holding `,` or `=`, which
/// zeek-archiver could not read back; here that is an error, named, so
/// that it is fixed before the logger starts.
pub fn archiver_metadata(pairs: &[(String, String)]) -> Result<String, String> {
    let mut parts = Vec::new();
    for (k, v) in pairs {
        if v.is_empty() {
            continue;
        }
        if k.contains([',', '=']) || v.contains([',', '=']) {
            return Err(format!(
                "archiver metadata {k}={v}: a key or value must not hold `,` or `=`"
            ));
        }
        parts.push(format!("{}={}", k.trim(), v.trim()));
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn date(t: &CivilTime) -> String {
        let mut out = Vec::new();
        write_date(&mut out, t);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn utc_dates() {
        assert_eq!(date(&utc_time(0)), "1970-01-01-00-00-00");
        assert_eq!(date(&utc_time(1_234_567_890)), "2009-02-13-23-31-30");
        assert_eq!(date(&utc_time(951_782_400)), "2000-02-29-00-00-00");
        assert_eq!(date(&utc_time(1_795_341_600)), "2026-11-22-10-00-00");
        assert_eq!(date(&utc_time(-315_619_200)), "1960-01-01-00-00-00");
        assert_eq!(date(&utc_time(-1)), "1969-12-31-23-59-59");
        assert_eq!(date(&utc_time(253_402_300_800)), "10000-01-01-00-00-00");
    }

    #[test]
    fn local_time_is_utc_plus_the_zone_offset() {
        for secs in [
            0i64,
            1_234_567_890,
            1_795_341_600,
            1_711_846_800,
            1_730_000_000,
        ] {
            let (local, offset) = local_time_with_offset(secs).unwrap();
            assert_eq!(local, utc_time(secs + offset), "{secs}");
        }
    }

    #[test]
    fn epoch_seconds_truncate_toward_zero() {
        assert_eq!(epoch_seconds(UNIX_EPOCH + Duration::from_millis(1_999)), 1);
        assert_eq!(epoch_seconds(UNIX_EPOCH - Duration::from_millis(1_999)), -1);
        assert_eq!(epoch_seconds(UNIX_EPOCH), 0);
    }

    #[test]
    fn rotated_names() {
        let opened = at(1_795_341_600);
        let closed = at(1_795_345_200);
        let (o, _) = local_time_with_offset(1_795_341_600).unwrap();
        let (c, _) = local_time_with_offset(1_795_345_200).unwrap();
        assert_eq!(
            rotated_name("conn", "log", opened, closed),
            format!("conn.{}.log", date(&o))
        );
        assert_eq!(
            archiver_rotated_name("conn", "log", opened, closed, ""),
            format!("conn__{}__{}__.log", date(&o), date(&c))
        );
        // With UTC as the local zone (as on this project's test machines)
        // the name is exactly the documented example.
        if o == utc_time(1_795_341_600) {
            assert_eq!(
                rotated_name("conn", "log", opened, closed),
                "conn.2026-11-22-10-00-00.log"
            );
            assert_eq!(
                archiver_rotated_name("conn", "log", opened, closed, ""),
                "conn__2026-11-22-10-00-00__2026-11-22-11-00-00__.log"
            );
        }
        // Sub-second parts are dropped.
        assert_eq!(
            rotated_name("dns", "log", opened + Duration::from_millis(999), closed),
            format!("dns.{}.log", date(&o))
        );
    }

    /// What Zeek's `archiver_rotation_format_func` makes of given inputs,
    /// worked out from the script: a path, the two times, and the
    /// metadata a cluster with two loggers sets (`log_suffix=<node>`).
    #[test]
    fn archiver_names_follow_zeeks_format_func() {
        let opened = from_local_time(&parse_date("2026-11-22-10-00-00").unwrap()).unwrap();
        let closed = from_local_time(&parse_date("2026-11-22-11-00-00").unwrap()).unwrap();
        let meta = archiver_metadata(&[("log_suffix".into(), "logger-1".into())]).unwrap();
        assert_eq!(
            archiver_rotated_name("conn", "log", opened, closed, &meta),
            "conn__2026-11-22-10-00-00__2026-11-22-11-00-00__log_suffix=logger-1__.log"
        );
        assert_eq!(
            archiver_rotated_name("dns", "log", opened, closed, ""),
            "dns__2026-11-22-10-00-00__2026-11-22-11-00-00__.log"
        );
        // Stripped, empty values left out, order kept.
        let pairs = [
            (" a ".to_owned(), " 1 ".to_owned()),
            ("skip".to_owned(), String::new()),
            ("b".to_owned(), "2".to_owned()),
        ];
        assert_eq!(archiver_metadata(&pairs).unwrap(), "a=1,b=2");
        let e = archiver_metadata(&[("k".into(), "x,y".into())]).unwrap_err();
        assert!(e.contains("k=x,y"), "{e}");
    }

    /// The arguments of zeekctl's `archive-log` example, which is what
    /// Zeek's `run_rotation_postprocessor_cmd` passes:
    /// `archive-log conn.2015-01-20-15-23-42.log conn 15-01-20_15.23.42
    /// 15-01-20_16.00.00 0 ascii`.
    #[test]
    fn postprocessor_times_and_dates_read_back() {
        let opened = from_local_time(&parse_date("2015-01-20-15-23-42").unwrap()).unwrap();
        let closed = from_local_time(&parse_date("2015-01-20-16-00-00").unwrap()).unwrap();
        assert_eq!(postprocessor_time(opened), "15-01-20_15.23.42");
        assert_eq!(postprocessor_time(closed), "15-01-20_16.00.00");
        assert_eq!(
            rotated_name("conn", "log", opened, closed),
            "conn.2015-01-20-15-23-42.log"
        );
        // A date written and read back is the same second.
        let now = SystemTime::now();
        let mut text = Vec::new();
        write_local_date(&mut text, now);
        let back = from_local_time(&parse_date(std::str::from_utf8(&text).unwrap()).unwrap());
        assert_eq!(back.map(epoch_seconds), Some(epoch_seconds(now)));
        for bad in [
            "",
            "2015-01-20",
            "2015-13-20-15-23-42",
            "2015-01-20-15-23-4x",
            "2015-1-20-15-23-42",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
