//! The environment CMD runs in: libpq's variables and DATABASE_URL pointed at pgvisor, and
//! PGVISOR_ADMIN for scripts that ask the admin API.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where CMD must connect.
#[derive(Debug, Clone)]
pub struct Destination<'a> {
    /// pgvisor's client address (an unspecified IP is reached through loopback).
    pub listen: SocketAddr,
    /// The admin HTTP address, when served.
    pub admin: Option<SocketAddr>,
    /// The embedded server's superuser; `None` when forwarding to `--upstream`.
    pub embedded_superuser: Option<&'a str>,
}

/// The database the embedded server's superuser connects to.
const EMBEDDED_DATABASE: &str = "postgres";

/// Variables to set (`Some`) or remove (`None`), in a stable order, given the current environment
/// `get`. PGHOSTADDR is removed: libpq would prefer it to PGHOST.
pub fn changes(to: &Destination<'_>, get: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, Option<String>)> {
    let host = connect_ip(to.listen.ip());
    let port = to.listen.port();
    let mut out: Vec<(&'static str, Option<String>)> =
        vec![("PGHOST", Some(host.to_string())), ("PGPORT", Some(port.to_string())), ("PGHOSTADDR", None)];
    let unset = |name: &str| !matches!(get(name), Some(v) if !v.is_empty());
    if let Some(user) = to.embedded_superuser {
        if unset("PGUSER") {
            out.push(("PGUSER", Some(user.to_string())));
        }
        if unset("PGDATABASE") {
            out.push(("PGDATABASE", Some(EMBEDDED_DATABASE.to_string())));
        }
    }
    let host_port = SocketAddr::new(host, port).to_string();
    match get("DATABASE_URL").filter(|v| !v.is_empty()) {
        Some(url) => {
            if let Some(rewritten) = rewrite_database_url(&url, &host_port) {
                out.push(("DATABASE_URL", Some(rewritten)));
            }
        }
        None => {
            if let Some(user) = to.embedded_superuser {
                let user = get("PGUSER").filter(|v| !v.is_empty()).unwrap_or_else(|| user.to_string());
                let db = get("PGDATABASE").filter(|v| !v.is_empty()).unwrap_or_else(|| EMBEDDED_DATABASE.to_string());
                out.push(("DATABASE_URL", Some(format!("postgresql://{user}@{host_port}/{db}"))));
            }
        }
    }
    if let Some(admin) = to.admin {
        out.push(("PGVISOR_ADMIN", Some(SocketAddr::new(connect_ip(admin.ip()), admin.port()).to_string())));
    }
    out
}

/// The address to connect to for a socket bound on `ip`: loopback for an unspecified address.
fn connect_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(v6) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    }
}

/// `url` with its host and port replaced by `host_port`, keeping the scheme, user, password,
/// database and query parameters except `host`, `hostaddr` and `port` (libpq would let them win).
/// `None` for a URL that is not PostgreSQL's (`mysql://...`) or has no `scheme://`.
pub fn rewrite_database_url(url: &str, host_port: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    // postgres://, postgresql://, postgresql+psycopg://, jdbc:postgresql://, ...
    if !scheme.to_ascii_lowercase().contains("postgres") {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let userinfo = authority.rfind('@').map(|at| &authority[..=at]).unwrap_or("");
    let (path, fragment) = match tail.find('#') {
        Some(at) => tail.split_at(at),
        None => (tail, ""),
    };
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let mut out = format!("{scheme}://{userinfo}{host_port}{path}");
    let kept: Vec<&str> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            !pair.is_empty() && !matches!(key, "host" | "hostaddr" | "port")
        })
        .collect();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    out.push_str(fragment);
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TO: &str = "127.0.0.1:40001";

    #[test]
    fn database_urls_keep_everything_but_the_address() {
        let cases = [
            (
                "postgres://app:s3cret@db.internal:5432/shop?sslmode=disable",
                "postgres://app:s3cret@127.0.0.1:40001/shop?sslmode=disable",
            ),
            ("postgresql://localhost/shop", "postgresql://127.0.0.1:40001/shop"),
            ("postgresql+psycopg://u@[::1]:5433/db", "postgresql+psycopg://u@127.0.0.1:40001/db"),
            (
                "postgresql://u@h1:5432,h2:5432/db?target_session_attrs=any",
                "postgresql://u@127.0.0.1:40001/db?target_session_attrs=any",
            ),
            (
                "postgresql:///db?host=/var/run/postgresql&application_name=x&port=5433",
                "postgresql://127.0.0.1:40001/db?application_name=x",
            ),
            ("postgres://u:p%40ss@h", "postgres://u:p%40ss@127.0.0.1:40001"),
            ("jdbc:postgresql://h:5432/db#frag", "jdbc:postgresql://127.0.0.1:40001/db#frag"),
        ];
        for (url, want) in cases {
            assert_eq!(rewrite_database_url(url, TO).as_deref(), Some(want), "{url}");
        }
        assert_eq!(rewrite_database_url("mysql://u@h/db", TO), None);
        assert_eq!(rewrite_database_url("host=h port=5432", TO), None);
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn embedded_mode_fills_in_user_database_and_url() {
        let to = Destination {
            listen: "127.0.0.1:40001".parse().unwrap(),
            admin: Some("0.0.0.0:40002".parse().unwrap()),
            embedded_superuser: Some("postgres"),
        };
        let set: HashMap<_, _> = changes(&to, env(&[])).into_iter().collect();
        assert_eq!(set["PGHOST"].as_deref(), Some("127.0.0.1"));
        assert_eq!(set["PGPORT"].as_deref(), Some("40001"));
        assert_eq!(set["PGHOSTADDR"], None, "removed");
        assert_eq!(set["PGUSER"].as_deref(), Some("postgres"));
        assert_eq!(set["PGDATABASE"].as_deref(), Some("postgres"));
        assert_eq!(set["DATABASE_URL"].as_deref(), Some("postgresql://postgres@127.0.0.1:40001/postgres"));
        assert_eq!(set["PGVISOR_ADMIN"].as_deref(), Some("127.0.0.1:40002"), "reached through loopback");

        let set: HashMap<_, _> = changes(&to, env(&[("PGUSER", "ci"), ("PGDATABASE", "app")])).into_iter().collect();
        assert!(!set.contains_key("PGUSER") && !set.contains_key("PGDATABASE"), "the user's own are kept");
        assert_eq!(set["DATABASE_URL"].as_deref(), Some("postgresql://ci@127.0.0.1:40001/app"));
    }

    #[test]
    fn upstream_mode_only_redirects() {
        let to = Destination { listen: "[::1]:40001".parse().unwrap(), admin: None, embedded_superuser: None };
        let set: HashMap<_, _> =
            changes(&to, env(&[("DATABASE_URL", "postgres://app@db:5432/shop")])).into_iter().collect();
        assert_eq!(set["PGHOST"].as_deref(), Some("::1"));
        assert_eq!(set["DATABASE_URL"].as_deref(), Some("postgres://app@[::1]:40001/shop"));
        assert!(!set.contains_key("PGUSER") && !set.contains_key("PGVISOR_ADMIN"));
        let set: HashMap<_, _> = changes(&to, env(&[])).into_iter().collect();
        assert!(!set.contains_key("DATABASE_URL"), "nothing to point when the user has none");
    }
}
