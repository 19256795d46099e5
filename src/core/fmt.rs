//! Values read from people and written for people: durations, sizes, money and counts.
//!
//! Owns the one duration grammar (config values, `--since` windows), the one size grammar, and
//! the one way each kind of value is printed. Commands, reports and plan messages call these;
//! none keeps a formatter of its own.
//!
//! Must not touch: files, clocks, processes or the terminal. Pure functions of their arguments.

use std::time::Duration;

const SECOND_MS: u64 = 1_000;
const MINUTE_MS: u64 = 60 * SECOND_MS;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;
const WEEK_MS: u64 = 7 * DAY_MS;

/// Duration units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 6] = [
    ("w", WEEK_MS),
    ("d", DAY_MS),
    ("h", HOUR_MS),
    ("m", MINUTE_MS),
    ("s", SECOND_MS),
    ("ms", 1),
];

/// Parse a duration such as `500ms`, `30s`, `5m`, `2h`, `1d`, `2w` or `1h30m` (units from
/// largest to smallest, each at most once). A bare number is refused: the unit is never guessed.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; write e.g. \"30s\", \"5m\" or \"1h30m\"".to_string());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "duration \"{t}\" has no unit; write e.g. \"{t}s\" or \"{t}ms\" (units: ms, s, m, h, d, w)"
        ));
    }
    let bad = || {
        format!(
            "invalid duration \"{t}\"; write e.g. \"500ms\", \"30s\", \"5m\", \"2h\", \"1d\" or \"1h30m\""
        )
    };
    let too_large = || format!("duration \"{t}\" is too large");
    let mut rest = t;
    let mut total: u64 = 0;
    let mut last_rank: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(rank) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                bad()
            } else {
                format!("unknown unit \"{unit}\" in duration \"{t}\" (units: ms, s, m, h, d, w)")
            });
        };
        if last_rank.is_some_and(|r| rank <= r) {
            return Err(format!(
                "duration \"{t}\": units must go from largest to smallest, each once, e.g. \"1h30m\""
            ));
        }
        last_rank = Some(rank);
        total = n
            .checked_mul(UNITS[rank].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(too_large)?;
    }
    Ok(Duration::from_millis(total))
}

/// Parse a size: integer bytes, or a number with `B`, `KB`, `MB`, `GB` (powers of 1000) or
/// `KiB`, `MiB`, `GiB` (powers of 1024), case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let bad =
        || format!("invalid size \"{t}\"; write bytes or e.g. \"512KiB\", \"1MiB\", \"10MB\"");
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("size \"{t}\" is too large"))?;
    let unit = t[digits..].trim_start().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size \"{t}\" is too large"))
}

/// How finely a duration is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Measured times (latencies, run durations, spans of a log): milliseconds under a second,
    /// tenths of a second under a minute, then two units with the smaller one padded to two
    /// digits: `850ms`, `1.2s`, `3m05s`, `2h10m`, `6d08h`.
    Fine,
    /// Ages and settings (how long ago, how long to wait): whole units, the two largest that are
    /// not zero, unpadded: `45s`, `12m`, `2h`, `3h12m`, `1d`, `2d4h`.
    Coarse,
}

/// A duration for people, at the given precision.
pub fn duration(d: Duration, precision: Precision) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    match precision {
        Precision::Fine => fine(ms),
        Precision::Coarse => coarse(ms / SECOND_MS),
    }
}

/// [`duration`] of a count of milliseconds.
pub fn duration_ms(ms: u64, precision: Precision) -> String {
    duration(Duration::from_millis(ms), precision)
}

fn fine(ms: u64) -> String {
    if ms < SECOND_MS {
        format!("{ms}ms")
    } else if ms < MINUTE_MS {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < HOUR_MS {
        format!("{}m{:02}s", ms / MINUTE_MS, ms % MINUTE_MS / SECOND_MS)
    } else if ms < DAY_MS {
        format!("{}h{:02}m", ms / HOUR_MS, ms % HOUR_MS / MINUTE_MS)
    } else {
        format!("{}d{:02}h", ms / DAY_MS, ms % DAY_MS / HOUR_MS)
    }
}

fn coarse(s: u64) -> String {
    let (days, hours, minutes) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// Dollars for people: `$0.12`, `$12.50`; below a cent, four decimals (`$0.0042`).
pub fn usd(usd: f64) -> String {
    if usd != 0.0 && usd.abs() < 0.01 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.2}")
    }
}

/// A size for people, in the binary units `parse_size` reads: `512B`, `12.0KiB`, `3.4MiB`,
/// `1.2GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    UNITS.iter().find(|(unit, _)| bytes >= *unit).map_or_else(
        || format!("{bytes}B"),
        |(unit, name)| format!("{:.1}{name}", bytes as f64 / *unit as f64),
    )
}

/// A count (of tokens) for people: `950`, `12.3k`, `4.1M`.
pub fn count(n: u64) -> String {
    if n < 1000 {
        n.to_string()
    } else if n < 1_000_000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        format!("{:.1}M", n as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Result<Duration, String> {
        Ok(Duration::from_millis(n))
    }

    #[test]
    fn sizes_are_written_in_the_units_they_are_read_in() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(1023), "1023B");
        assert_eq!(size(1024), "1.0KiB");
        assert_eq!(size(3 << 20 | 1 << 19), "3.5MiB");
        assert_eq!(size(5 << 30), "5.0GiB");
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
    }

    #[test]
    fn one_grammar_for_settings_and_windows() {
        assert_eq!(parse_duration("500ms"), ms(500));
        assert_eq!(parse_duration("1h30m"), ms(5_400_000));
        assert_eq!(parse_duration("7d"), ms(7 * DAY_MS));
        assert_eq!(parse_duration("90m"), ms(90 * MINUTE_MS));
        assert_eq!(parse_duration("2w"), ms(14 * DAY_MS));
        assert_eq!(parse_duration("1w2d"), ms(9 * DAY_MS));
        assert_eq!(parse_duration(" 0s "), ms(0));
        for (s, needle) in [
            ("7", "no unit"),
            ("d", "invalid"),
            ("7 days", "invalid"),
            ("3x", "unknown unit"),
            ("1d1w", "largest to smallest"),
            ("99999999999999w", "too large"),
        ] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.contains(needle), "{s:?}: {e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("1.5MiB").is_err());
        assert!(
            parse_size("99999999999GiB")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn fine_durations() {
        let f = |n| duration_ms(n, Precision::Fine);
        assert_eq!(
            [
                f(850),
                f(1_240),
                f(3 * MINUTE_MS + 5_000),
                f(2 * HOUR_MS + 10 * MINUTE_MS),
                f(6 * DAY_MS + 8 * HOUR_MS),
                f(25 * HOUR_MS)
            ],
            ["850ms", "1.2s", "3m05s", "2h10m", "6d08h", "1d01h"]
        );
    }

    #[test]
    fn coarse_durations() {
        let c = |s| duration(Duration::from_secs(s), Precision::Coarse);
        assert_eq!(
            [
                c(5),
                c(60),
                c(12 * 60 + 30),
                c(7200),
                c(3 * 3600 + 5 * 60),
                c(86_400),
                c(86_400 + 59 * 60),
                c(2 * 86_400 + 4 * 3600)
            ],
            ["5s", "1m", "12m", "2h", "3h5m", "1d", "1d", "2d4h"]
        );
    }

    #[test]
    fn money_and_counts() {
        assert_eq!(
            [usd(0.0), usd(0.0042), usd(12.5), usd(-0.5)],
            ["$0.00", "$0.0042", "$12.50", "$-0.50"]
        );
        assert_eq!(
            [count(950), count(12_345), count(4_100_000)],
            ["950", "12.3k", "4.1M"]
        );
    }
}
