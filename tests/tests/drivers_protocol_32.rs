//! Protocol 3.2 and `_pq_.` protocol options through pgvisor, with a hand-built StartupMessage on
//! a raw TCP connection: PostgreSQL 15 speaks only 3.0, so it answers NegotiateProtocolVersion
//! (newest version 3.0, the options it does not know) and the session goes on in 3.0. Through pgvisor
//! the client must receive the same messages, in the same order, as directly (only the
//! BackendKeyData contents, a per-session secret, are masked), and the session must then work:
//! a simple query and an extended-protocol round, counted in pgvisor's statistics.

mod drivers_common;

use bytes::{Buf, BytesMut};
use pgvisor_tests::wire::{protocol_version, startup_packet, BackendMessage, ErrorFields, RawConnection};
use pgvisor_tests::{shared_cluster, start_proxy, Endpoint};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;

/// `s` up to its first NUL, and what follows the NUL.
fn cstr(s: &[u8]) -> (String, &[u8]) {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    (String::from_utf8_lossy(&s[..end]).into_owned(), s.get(end + 1..).unwrap_or_default())
}

/// A readable line for one backend message, with what legitimately differs between two
/// sessions masked: the BackendKeyData contents (its length is kept), SCRAM's random exchange.
fn describe(m: &BackendMessage) -> String {
    let body = &m.body[..];
    match m.tag {
        b'v' => {
            let mut b = body;
            // PostgreSQL sends the whole version code (3.0 = 196608) where the documentation
            // says "newest minor version".
            let newest = b.get_u32();
            let count = b.get_i32();
            let mut options = Vec::new();
            for _ in 0..count {
                let (option, rest) = cstr(b);
                options.push(option);
                b = rest;
            }
            format!("NegotiateProtocolVersion newest={}.{} unrecognized={options:?}", newest >> 16, newest & 0xffff)
        }
        b'R' => {
            let code = u32::from_be_bytes(body[..4].try_into().expect("auth code"));
            match code {
                10 => {
                    let mechanisms: Vec<String> = body[4..]
                        .split(|&b| b == 0)
                        .filter(|m| !m.is_empty())
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                        .collect();
                    format!("AuthenticationSASL {mechanisms:?}")
                }
                11 => "AuthenticationSASLContinue (random)".into(),
                12 => "AuthenticationSASLFinal (server signature)".into(),
                other => format!("Authentication {other}"),
            }
        }
        b'K' => format!("BackendKeyData ({} bytes, masked)", body.len()),
        b'S' => {
            let (name, rest) = cstr(body);
            let (value, _) = cstr(rest);
            format!("ParameterStatus {name}={value}")
        }
        b'Z' => format!("ReadyForQuery {}", body.first().map(|&b| b as char).unwrap_or('?')),
        b'C' => format!("CommandComplete {}", cstr(body).0),
        b'E' | b'N' => format!("{} {:?}", m.tag as char, ErrorFields::parse(body)),
        b'1' => "ParseComplete".into(),
        b'2' => "BindComplete".into(),
        b'T' => format!("RowDescription {}", hex(body)),
        b'D' => format!("DataRow {}", hex(body)),
        other => format!("{} {}", other as char, hex(body)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Logs in with a StartupMessage of protocol `version` carrying `options` (SCRAM-SHA-256 with the
/// endpoint's password), runs `select 1` as a simple query and as Parse/Bind/Execute/Sync, and
/// terminates; returns every backend message described, in order, with the client's steps as
/// `-- ` lines.
async fn conversation(endpoint: &Endpoint, version: u32, options: &[(&str, &str)]) -> Vec<String> {
    let addr = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let mut conn = RawConnection::connect(addr).await.expect("connect");
    let mut params = Vec::new();
    for (name, value) in [("user", endpoint.user.as_str()), ("database", endpoint.dbname.as_str())]
        .into_iter()
        .chain(options.iter().copied())
    {
        params.extend_from_slice(name.as_bytes());
        params.push(0);
        params.extend_from_slice(value.as_bytes());
        params.push(0);
    }
    params.push(0);
    conn.send(&startup_packet(version, &params)).await.expect("send the StartupMessage");

    let password = endpoint.password.clone().expect("the cluster's login has a password");
    let mut seen = Vec::new();
    let mut scram: Option<ScramSha256> = None;
    // Login, up to ReadyForQuery.
    loop {
        let m = conn.read_message().await.expect("read").unwrap_or_else(|| panic!("closed during login: {seen:#?}"));
        seen.push(describe(&m));
        let mut out = BytesMut::new();
        match m.tag {
            b'R' => match u32::from_be_bytes(m.body[..4].try_into().expect("auth code")) {
                0 => {}
                10 => {
                    let exchange = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, exchange.message(), &mut out).expect("encode");
                    scram = Some(exchange);
                }
                11 => {
                    let exchange = scram.as_mut().expect("SASLContinue after SASL");
                    exchange.update(&m.body[4..]).expect("SCRAM server-first message");
                    frontend::sasl_response(exchange.message(), &mut out).expect("encode");
                }
                12 => scram.as_mut().expect("SASLFinal after SASL").finish(&m.body[4..]).expect("server signature"),
                other => panic!("unexpected authentication request {other}: {seen:#?}"),
            },
            b'E' => panic!("login failed: {seen:#?}"),
            b'Z' => break,
            _ => {}
        }
        if !out.is_empty() {
            conn.send(&out).await.expect("send");
        }
    }

    let mut out = BytesMut::new();
    frontend::query("select 1", &mut out).expect("encode");
    seen.push("-- Query select 1".into());
    conn.send(&out).await.expect("send");
    read_until_ready(&mut conn, &mut seen).await;

    let mut out = BytesMut::new();
    frontend::parse("", "select $1::int + 1", [], &mut out).expect("encode");
    let text = |v: &str, buf: &mut BytesMut| {
        buf.extend_from_slice(v.as_bytes());
        Ok(postgres_protocol::IsNull::No)
    };
    if frontend::bind("", "", [0], ["41"], text, [0], &mut out).is_err() {
        panic!("encode Bind");
    }
    frontend::execute("", 0, &mut out).expect("encode");
    frontend::sync(&mut out);
    seen.push("-- Parse/Bind/Execute/Sync select $1::int + 1 ($1 = '41')".into());
    conn.send(&out).await.expect("send");
    read_until_ready(&mut conn, &mut seen).await;

    let mut out = BytesMut::new();
    frontend::terminate(&mut out);
    conn.send(&out).await.expect("send");
    match conn.read_message().await {
        Ok(None) => seen.push("-- closed".into()),
        other => panic!("expected the connection to close after Terminate, got {other:?}: {seen:#?}"),
    }
    seen
}

async fn read_until_ready(conn: &mut RawConnection, seen: &mut Vec<String>) {
    loop {
        let m = conn.read_message().await.expect("read").unwrap_or_else(|| panic!("closed: {seen:#?}"));
        seen.push(describe(&m));
        if m.tag == b'Z' {
            return;
        }
    }
}

/// Runs the conversation directly and through a proxy and asserts both see the same messages;
/// returns them.
async fn same_both_ways(version: u32, options: &[(&str, &str)]) -> Vec<String> {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let direct = conversation(&cluster.endpoint(), version, options).await;
    let proxied = conversation(&proxy.endpoint(), version, options).await;
    pgvisor_tests::compare::assert_same_text(
        &format!("the messages of a protocol {}.{} session with {options:?}", version >> 16, version & 0xffff),
        &direct.join("\n"),
        &proxied.join("\n"),
    );
    let queries = drivers_common::assert_stats_sane(&proxy, &[]).await;
    let plus_one = drivers_common::query_with(&queries, "select $1::int + $2");
    assert_eq!((plus_one["calls"].as_u64(), plus_one["rows"].as_u64()), (Some(1), Some(1)), "{plus_one}");
    direct
}

/// The session's queries worked: `select 1` and `41 + 1` came back.
fn assert_session_works(messages: &[String]) {
    // DataRow: 1 column, length 1, "1"; then 1 column, length 2, "42".
    for row in ["DataRow 00010000000131", "DataRow 0001000000023432"] {
        assert!(messages.iter().any(|m| m == row), "no {row} in {messages:#?}");
    }
    assert_eq!(messages.iter().filter(|m| m.starts_with("CommandComplete SELECT 1")).count(), 2, "{messages:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_3_2_with_an_unknown_option_negotiates_down_the_same_through_pgvisor() {
    let messages = same_both_ways(protocol_version(3, 2), &[("_pq_.unknown_option", "on")]).await;
    assert_eq!(
        messages[0], "NegotiateProtocolVersion newest=3.0 unrecognized=[\"_pq_.unknown_option\"]",
        "{messages:#?}"
    );
    assert_eq!(messages[1], "AuthenticationSASL [\"SCRAM-SHA-256\"]", "{messages:#?}");
    assert!(messages.iter().any(|m| m == "BackendKeyData (8 bytes, masked)"), "a 3.0 cancel key: {messages:#?}");
    assert_session_works(&messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_3_2_without_options_negotiates_down_the_same_through_pgvisor() {
    let messages = same_both_ways(protocol_version(3, 2), &[]).await;
    assert_eq!(messages[0], "NegotiateProtocolVersion newest=3.0 unrecognized=[]", "{messages:#?}");
    assert_session_works(&messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_3_0_with_an_unknown_option_gets_it_listed_the_same_through_pgvisor() {
    let messages = same_both_ways(protocol_version(3, 0), &[("_pq_.unknown_option", "on")]).await;
    assert_eq!(
        messages[0], "NegotiateProtocolVersion newest=3.0 unrecognized=[\"_pq_.unknown_option\"]",
        "{messages:#?}"
    );
    assert_session_works(&messages);
}
