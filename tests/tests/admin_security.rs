//! The admin port refuses what a web page on another site could send it: a cross-site
//! `POST /api/reset` (CSRF) and a read through a name rebound to 127.0.0.1 (DNS rebinding), with
//! or without a token, while its own page's origin and clients that send no `Origin` (curl,
//! `pgvisor watch`, `pgvisor report`) go on working.

use std::net::SocketAddr;

use pgvisor_tests::{connect, shared_cluster, start_proxy, start_proxy_with};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The status and body of `method path` on `addr` with exactly `headers` (no `Host` unless given),
/// the way a browser or curl would send it.
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = format!("{method} {path} HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.expect("connect to the admin port");
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not HTTP: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_string();
    (status, body)
}

fn listed(queries: &Value, needle: &str) -> bool {
    queries["queries"]
        .as_array()
        .is_some_and(|rows| rows.iter().any(|q| q["query"].as_str().is_some_and(|t| t.contains(needle))))
}

/// Without a token: another site's Origin, `Origin: null` and a foreign Host are refused (and a
/// refused reset resets nothing); the admin address's own origin and no Origin are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_rebound_requests_are_refused() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let admin = proxy.admin_addr();
    let host = admin.to_string();
    let client = connect(&proxy.endpoint()).await.unwrap();
    // Waits until the marker statement is listed, so what follows sees it counted.
    proxy.drained_through(&client).await;
    let before = proxy.admin_get("/api/queries?limit=1000").await;
    assert!(listed(&before, "drained"), "{before}");

    // CSRF: a page on evil.example posts to the admin port.
    let (status, body) = send(admin, "POST", "/api/reset", &[("Host", &host), ("Origin", "http://evil.example")]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Origin http://evil.example"), "the refusal says why: {body}");
    let after = proxy.admin_get("/api/queries?limit=1000").await;
    assert!(listed(&after, "drained"), "a refused reset reset the statistics: {after}");

    // `Origin: null` (sandboxed frames, data: pages) is nobody to trust.
    let (status, body) = send(admin, "POST", "/api/reset", &[("Host", &host), ("Origin", "null")]).await;
    assert_eq!(status, 403, "{body}");
    assert!(listed(&proxy.admin_get("/api/queries?limit=1000").await, "drained"));

    // DNS rebinding: evil.example now resolves to 127.0.0.1, so the browser sends its own name as Host.
    let rebound = format!("evil.example:{}", admin.port());
    let (status, body) = send(admin, "GET", "/api/queries", &[("Host", &rebound)]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Host evil.example"), "{body}");
    let (status, _) = send(admin, "GET", "/", &[("Host", &rebound)]).await;
    assert_eq!(status, 403, "the page is refused to a rebound name too");

    // The admin address's own origin, as its page sends it, in each loopback spelling.
    for (host, origin) in [
        (host.clone(), format!("http://{admin}")),
        (format!("localhost:{}", admin.port()), format!("http://localhost:{}", admin.port())),
    ] {
        let (status, body) = send(admin, "GET", "/api/queries", &[("Host", &host), ("Origin", &origin)]).await;
        assert_eq!(status, 200, "{origin}: {body}");
        assert!(body.contains("drained"), "{body}");
    }
    // curl, pgvisor watch and pgvisor report send no Origin; HTTP/1.0 clients may send no Host.
    let (status, body) = send(admin, "GET", "/api/queries", &[("Host", &host)]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(admin, "GET", "/healthz", &[]).await;
    assert_eq!(status, 200, "{body}");

    // The page's own reset is answered, and resets.
    let (status, body) =
        send(admin, "POST", "/api/reset", &[("Host", &host), ("Origin", &format!("http://{admin}"))]).await;
    assert_eq!((status, body.contains("\"reset\":true")), (200, true), "{body}");
    assert!(!listed(&proxy.admin_get("/api/queries?limit=1000").await, "drained"));
    proxy.shutdown().await;
}

/// With a token the Origin and Host rules still hold: the right token from another site is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_does_not_let_other_sites_in() {
    let cluster = shared_cluster();
    let proxy = start_proxy_with(cluster, |s| s.admin_token = Some("s3cret".into())).await;
    let admin = proxy.admin_addr();
    let host = admin.to_string();
    let own_origin = format!("http://{admin}");
    let cases: [(&str, Option<&str>, Option<&str>, u16); 6] = [
        ("no token", None, None, 401),
        ("wrong token", Some("Bearer nope"), None, 401),
        ("wrong token of the same length", Some("Bearer s3creT"), None, 401),
        ("right token, other site", Some("Bearer s3cret"), Some("http://evil.example"), 403),
        ("right token, no Origin", Some("Bearer s3cret"), None, 200),
        ("right token, own origin", Some("Bearer s3cret"), Some(own_origin.as_str()), 200),
    ];
    for (what, authorization, origin, expected) in cases {
        let mut headers = vec![("Host", host.as_str())];
        headers.extend(authorization.map(|a| ("Authorization", a)));
        headers.extend(origin.map(|o| ("Origin", o)));
        let (status, body) = send(admin, "GET", "/api/queries", &headers).await;
        assert_eq!(status, expected, "{what}: {body}");
    }
    let rebound = format!("evil.example:{}", admin.port());
    let (status, body) =
        send(admin, "GET", "/api/queries", &[("Host", &rebound), ("Authorization", "Bearer s3cret")]).await;
    assert_eq!(status, 403, "right token, rebound name: {body}");
    // `pgvisor report`'s client (no Origin, Host is the address it connects to) still works.
    let report = pgvisor::cli::report::report(admin, Some("s3cret"), "calls", 5, None).await;
    assert!(report.is_ok(), "{report:?}");
    proxy.shutdown().await;
}
