//! Lease timestamps as ISC dhcpd writes them: `W YYYY/MM/DD HH:MM:SS` in UTC (W = weekday,
//! 0 = Sunday), `epoch N` with `db-time-format local;`, or `never`.

use std::fmt;

use serde::{Serialize, Serializer};

/// A lease time. Kept as Unix seconds so callers can compare it with a clock; displayed (and
/// serialised) in ISC's own form so that DHCPStats clients see the strings they always saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IscTime {
    /// `never`: infinite leases (e.g. `ends never;` for BOOTP or infinite lease times).
    Never,
    /// A point in time, Unix seconds, UTC.
    At(i64),
}

impl IscTime {
    /// Unix seconds, or `None` for `never`.
    pub fn unix(self) -> Option<i64> {
        match self {
            IscTime::Never => None,
            IscTime::At(t) => Some(t),
        }
    }
}

impl fmt::Display for IscTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IscTime::Never => f.write_str("never"),
            IscTime::At(t) => {
                let days = t.div_euclid(86_400);
                let secs = t.rem_euclid(86_400);
                let (y, m, d) = civil_from_days(days);
                let wd = (days + 4).rem_euclid(7);
                write!(
                    f,
                    "{wd} {y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                )
            }
        }
    }
}

impl Serialize for IscTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses the words after `starts`/`ends`/…: `[W] YYYY/MM/DD HH:MM:SS`, `epoch N`, or `never`.
/// The weekday is ignored (dhcpd ignores it too). `Err` carries a message for a warning.
pub(crate) fn parse_time(words: &[&str]) -> Result<IscTime, String> {
    match words {
        [w] if w.eq_ignore_ascii_case("never") => Ok(IscTime::Never),
        [e, n] if e.eq_ignore_ascii_case("epoch") => n
            .parse::<i64>()
            .map(IscTime::At)
            .map_err(|_| format!("bad epoch time '{n}'")),
        [_, date, time] | [date, time] => parse_date_time(date, time),
        _ => Err(format!("unrecognised time '{}'", words.join(" "))),
    }
}

fn parse_date_time(date: &str, time: &str) -> Result<IscTime, String> {
    let bad = || format!("bad date/time '{date} {time}'");
    let dp: Vec<&str> = date.split('/').collect();
    let tp: Vec<&str> = time.split(':').collect();
    let [y, mo, d] = dp.as_slice() else {
        return Err(bad());
    };
    let [h, mi, s] = tp.as_slice() else {
        return Err(bad());
    };
    let y: i64 = y.parse().map_err(|_| bad())?;
    let mo: u32 = mo.parse().map_err(|_| bad())?;
    let d: u32 = d.parse().map_err(|_| bad())?;
    let h: i64 = h.parse().map_err(|_| bad())?;
    let mi: i64 = mi.parse().map_err(|_| bad())?;
    let s: i64 = s.parse().map_err(|_| bad())?;
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..=60).contains(&s)
    {
        return Err(bad());
    }
    Ok(IscTime::At(
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_isc_format() {
        let t = parse_time(&["4", "2020/08/06", "02:28:52"]).unwrap();
        assert_eq!(t, IscTime::At(1_596_680_932));
        assert_eq!(t.to_string(), "4 2020/08/06 02:28:52");
        assert_eq!(parse_time(&["never"]).unwrap(), IscTime::Never);
        assert_eq!(
            parse_time(&["epoch", "1600000000"]).unwrap(),
            IscTime::At(1_600_000_000)
        );
        assert_eq!(IscTime::At(0).to_string(), "4 1970/01/01 00:00:00");
        assert_eq!(
            parse_time(&["2024/02/29", "23:59:59"]).unwrap().to_string(),
            "4 2024/02/29 23:59:59"
        );
    }

    #[test]
    fn rejects_nonsense() {
        for w in [
            &["1", "2023/02/29", "00:00:00"][..],
            &["1", "2023/13/01", "00:00:00"],
            &["1", "2023/01/01", "24:00:00"],
            &["1", "x/y/z", "00:00:00"],
            &["epoch", "soon"],
            &[],
            &["a", "b", "c", "d"],
        ] {
            assert!(parse_time(w).is_err(), "{w:?}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
