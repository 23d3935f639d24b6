//! UTC ISO-8601 timestamps (`2026-11-23T10:00:00Z`) and short durations, by hand: a calendar
//! conversion is a dozen lines and not worth a date-time dependency.

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC, proleptic Gregorian).
pub fn iso8601(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`, restricted
/// to non-negative day counts so it stays in unsigned arithmetic.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A compact human duration: `3600` → `1h`, `5400` → `1h30m`, `86400` → `1d`, `45` → `45s`.
pub fn human_secs(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        let n = rest / len;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            rest %= len;
        }
    }
    out
}

/// Parses a duration: plain seconds (`3600`) or a number with one unit (`s`, `m`, `h`, `d`),
/// or several (`1h30m`). Zero and overflow are errors.
pub fn parse_duration(text: &str) -> Result<u32, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".to_string());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut saw_unit = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "bad duration {text:?}: unknown unit {c:?} (use s, m, h, d)"
                ));
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("bad duration {text:?}: a number must come before {c:?}"))?;
        total = total.saturating_add(n.saturating_mul(mult));
        num.clear();
        saw_unit = true;
    }
    if !num.is_empty() {
        if saw_unit {
            return Err(format!(
                "bad duration {text:?}: trailing number without unit"
            ));
        }
        total = num
            .parse()
            .map_err(|_| format!("bad duration {text:?}: number too large"))?;
    }
    if total == 0 {
        return Err(format!("bad duration {text:?}: must be more than zero"));
    }
    u32::try_from(total).map_err(|_| format!("bad duration {text:?}: too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_795_428_000), "2026-11-23T10:00:00Z");
        assert_eq!(iso8601(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("1h30").is_err());
        assert!(parse_duration("99999999999").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn human() {
        assert_eq!(human_secs(3600), "1h");
        assert_eq!(human_secs(5400), "1h30m");
        assert_eq!(human_secs(86_400), "1d");
        assert_eq!(human_secs(45), "45s");
        assert_eq!(human_secs(0), "0s");
    }
}
