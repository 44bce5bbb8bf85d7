//! Parsers for flag values (durations, counts, sizes, addresses, advice kinds, fingerprints), and
//! the reason shown when clap refuses one: each says what it expected and what it got.

use std::net::SocketAddr;
use std::time::Duration;

use advisor::advice::{parse_fingerprint, Kind};
use advisor::Fingerprint;

/// `value` as an error message shows it: numbers bare, anything else quoted.
fn shown(value: &str) -> String {
    if value.parse::<f64>().is_ok() {
        value.to_string()
    } else {
        format!("{value:?}")
    }
}

/// Durations above this are refused: no setting needs a year, and deadlines computed from
/// `Instant::now() + d` must not overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A duration: seconds (`10`, `2.5`) or a number with a unit (`500ms`, `1.5s`, `2m`, `1h 30m`).
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let parsed = match t.parse::<f64>() {
        Ok(secs) if secs < 0.0 => return Err(format!("must not be negative, got {}", shown(s))),
        Ok(secs) if secs.is_nan() => None,
        Ok(secs) => Duration::try_from_secs_f64(secs.min(MAX_DURATION.as_secs_f64() + 1.0)).ok(),
        Err(_) if t.starts_with('-') => return Err(format!("must not be negative, got {}", shown(s))),
        Err(_) => humantime::parse_duration(t).ok(),
    };
    let d = parsed.ok_or_else(|| format!("expected a duration such as 100ms, 2s or 1.5s, got {}", shown(s)))?;
    if d > MAX_DURATION {
        return Err(format!("must be at most 365 days, got {}", shown(s)));
    }
    Ok(d)
}

/// A duration of at least 1 ms: a timeout or a window of zero would make the setting useless.
pub(super) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d < Duration::from_millis(1) => Err(format!("must be at least 1ms, got {}", shown(s))),
        d => Ok(d),
    }
}

/// A whole number from `min` to `max` as `T`; `why` (may be empty) says why `min` is the least.
pub(super) fn count<T>(
    min: u64,
    max: u64,
    why: &'static str,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    move |s: &str| {
        let t = s.trim();
        let too_large = || format!("must be at most {max}, got {}", shown(s));
        let n = match t.parse::<u64>() {
            Ok(n) => n,
            Err(_) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => return Err(too_large()),
            Err(_) => {
                let message = match t.parse::<f64>() {
                    Ok(f) if f < 0.0 && min > 0 => "must be a positive whole number",
                    Ok(f) if f < 0.0 => "must not be negative",
                    Ok(_) => "must be a whole number",
                    Err(_) => "expected a whole number",
                };
                return Err(format!("{message}, got {}", shown(s)));
            }
        };
        if n < min {
            let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
            return Err(format!("must be at least {min}{why}, got {}", shown(s)));
        }
        match T::try_from(n) {
            Ok(value) if n <= max => Ok(value),
            _ => Err(too_large()),
        }
    }
}

/// A size in bytes, at least 1: a number, optionally with a unit as PostgreSQL writes them (B,
/// kB, MB, GB; multiples of 1024).
pub(super) fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let expected = || format!("expected a size such as 10MB, 512kB or 1048576 (units B, kB, MB, GB), got {}", shown(s));
    let n: u64 = match number.parse() {
        Ok(n) => n,
        Err(_) if !number.is_empty() => return Err(format!("too large for a size in bytes, got {}", shown(s))),
        Err(_) => return Err(expected()),
    };
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" | "k" | "K" => 1 << 10,
        "MB" | "M" => 1 << 20,
        "GB" | "G" => 1 << 30,
        _ => return Err(expected()),
    };
    match n.checked_mul(scale) {
        Some(0) => Err(format!("must be at least 1 byte, got {}", shown(s))),
        Some(bytes) => Ok(bytes),
        None => Err(format!("too large for a size in bytes, got {}", shown(s))),
    }
}

/// A ratio between 0 and 1.
pub(super) fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("expected a ratio between 0 and 1 such as 0.5, got {}", shown(s))),
    }
}

/// A socket address to bind: `IP:PORT` (`[IPv6]:PORT`), or `localhost:PORT` for 127.0.0.1.
/// Other host names are refused: which of their addresses to bind would be a guess.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if t.parse::<std::net::IpAddr>().is_ok() || !t.contains(':') {
        return Err(format!("expected IP:PORT such as 127.0.0.1:6432 (an address and a port), got {}", shown(s)));
    }
    let (host, port) = t.rsplit_once(':').unwrap_or((t, ""));
    let port: u16 = port.parse().map_err(|_| format!("the port must be a number from 0 to 65535, got {}", shown(s)))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!(
        "expected IP:PORT such as 127.0.0.1:{port} (host names other than localhost are not looked up), got {}",
        shown(s)
    ))
}

/// `--disable-advice` values: advice kinds as the API names them.
pub fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s.trim()).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        format!("expected an advice kind, one of {}, got {s:?}", known.join(", "))
    })
}

/// `--ignore-fingerprints` values: 16 hex digits, as `/api/queries` and `/api/advice` show them.
pub fn parse_fingerprint_arg(s: &str) -> Result<Fingerprint, String> {
    parse_fingerprint(s)
        .ok_or_else(|| format!("expected a fingerprint of 16 hex digits such as 52867f37ae911b51, got {s:?}"))
}

/// Checks a `--tag` value: `key:value`, split at the first colon as the API does.
pub fn parse_tag(s: &str) -> Result<String, String> {
    match s.split_once(':') {
        Some((key, _)) if !key.trim().is_empty() => Ok(s.to_string()),
        _ => Err(format!("expected KEY:VALUE such as route:/users/:id, got {s:?}")),
    }
}

/// What was wrong with a value clap refused, as pgvisor's own parsers say it (`expected a
/// duration such as ..., got "fast"`), or `None` for errors about something other than a value.
pub fn value_error_reason(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::ValueValidation => std::error::Error::source(e).map(ToString::to_string),
        ErrorKind::InvalidValue => {
            let Some(ContextValue::String(given)) = e.get(ContextKind::InvalidValue) else { return None };
            let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) else { return None };
            Some(format!("expected one of {}, got {}", valid.join(", "), shown(given)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamAddr;

    #[test]
    fn tag_filters_are_key_colon_value() {
        assert_eq!(parse_tag("route:/users/:id").unwrap(), "route:/users/:id");
        assert_eq!(parse_tag("job:").unwrap(), "job:");
        assert!(parse_tag("route").unwrap_err().contains("KEY:VALUE"));
        assert!(parse_tag(":x").is_err());
    }

    #[test]
    fn upstream_addresses() {
        let a: UpstreamAddr = "db.internal:5433".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("db.internal", 5433));
        let a: UpstreamAddr = "localhost".parse().unwrap();
        assert_eq!(a.port, 5432);
        let a: UpstreamAddr = "[::1]:6000".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port, a.to_string()), ("::1", 6000, "[::1]:6000".to_string()));
        let err = |s: &str| s.parse::<UpstreamAddr>().unwrap_err();
        assert_eq!(err("host:notaport"), "the port must be a number from 1 to 65535, got \"host:notaport\"");
        assert_eq!(err(""), "expected HOST:PORT such as 127.0.0.1:5432, got \"\"");
        assert_eq!(err("host:0"), "the port must be a number from 1 to 65535, got \"host:0\"");
        assert_eq!(err("[::1"), "expected [IPv6]:PORT such as [::1]:5432, got \"[::1\"");
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen_addr("0.0.0.0:6432").unwrap(), "0.0.0.0:6432".parse().unwrap());
        assert_eq!(parse_listen_addr("[::1]:0").unwrap(), "[::1]:0".parse().unwrap());
        assert_eq!(parse_listen_addr("localhost:7000").unwrap(), "127.0.0.1:7000".parse().unwrap());
        assert_eq!(
            parse_listen_addr("db.internal:7000").unwrap_err(),
            "expected IP:PORT such as 127.0.0.1:7000 (host names other than localhost are not looked up), got \
             \"db.internal:7000\""
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1").unwrap_err(),
            "expected IP:PORT such as 127.0.0.1:6432 (an address and a port), got \"127.0.0.1\""
        );
        assert_eq!(
            parse_listen_addr("localhost:http").unwrap_err(),
            "the port must be a number from 0 to 65535, got \"localhost:http\""
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("fast").unwrap_err(), "expected a duration such as 100ms, 2s or 1.5s, got \"fast\"");
        assert_eq!(parse_duration("-1").unwrap_err(), "must not be negative, got -1");
        assert_eq!(parse_duration("-1s").unwrap_err(), "must not be negative, got \"-1s\"");
        assert_eq!(parse_duration("1e30").unwrap_err(), "must be at most 365 days, got 1e30", "no panic");
        assert_eq!(parse_duration("NaN").unwrap_err(), "expected a duration such as 100ms, 2s or 1.5s, got NaN");
        assert_eq!(parse_positive_duration("0").unwrap_err(), "must be at least 1ms, got 0");
        assert_eq!(parse_positive_duration("0ms").unwrap_err(), "must be at least 1ms, got \"0ms\"");
        assert_eq!(parse_positive_duration("1ms").unwrap(), Duration::from_millis(1));
    }

    #[test]
    fn counts() {
        let n_plus_one = count::<u64>(2, u64::MAX, "an N+1 needs a parent and several children");
        assert_eq!(n_plus_one("8").unwrap(), 8);
        assert_eq!(
            n_plus_one("1").unwrap_err(),
            "must be at least 2 (an N+1 needs a parent and several children), got 1"
        );
        assert_eq!(n_plus_one("-3").unwrap_err(), "must be a positive whole number, got -3");
        assert_eq!(n_plus_one("2.5").unwrap_err(), "must be a whole number, got 2.5");
        assert_eq!(n_plus_one("many").unwrap_err(), "expected a whole number, got \"many\"");
        assert_eq!(
            n_plus_one("99999999999999999999").unwrap_err(),
            "must be at most 18446744073709551615, got 99999999999999999999"
        );
        let columns = count::<usize>(0, usize::MAX as u64, "");
        assert_eq!(columns("0").unwrap(), 0);
        assert_eq!(columns("-1").unwrap_err(), "must not be negative, got -1");
        let threads = count::<u16>(1, 256, "");
        assert_eq!(threads("0").unwrap_err(), "must be at least 1, got 0");
        assert_eq!(threads("257").unwrap_err(), "must be at most 256, got 257");
        assert_eq!(threads("70000").unwrap_err(), "must be at most 256, got 70000");
    }

    #[test]
    fn sizes_and_ratios() {
        assert_eq!(parse_bytes("10MB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_bytes("1kB").unwrap(), 1024);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(
            parse_bytes("10 parsecs").unwrap_err(),
            "expected a size such as 10MB, 512kB or 1048576 (units B, kB, MB, GB), got \"10 parsecs\""
        );
        assert_eq!(parse_bytes("99999999999GB").unwrap_err(), "too large for a size in bytes, got \"99999999999GB\"");
        assert_eq!(parse_bytes("0kB").unwrap_err(), "must be at least 1 byte, got \"0kB\"");
        assert_eq!(parse_ratio("0.5").unwrap(), 0.5);
        assert_eq!(parse_ratio("1.5").unwrap_err(), "expected a ratio between 0 and 1 such as 0.5, got 1.5");
    }
}
