//! `pgvisor watch`: follows a running pgvisor's live advice stream (`GET /api/advice/stream`)
//! and prints one readable block per finding, or one JSON line with `--json`. It waits for a
//! pgvisor that is not up yet and reconnects when pgvisor restarts.

mod printer;
mod render;
mod sse;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use printer::Printer;
pub use render::{block, AdviceView, Style};
pub use sse::{Dechunker, SseError, SseEvent, SseParser};

/// First pause before reconnecting; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Time allowed to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed for the response head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// pgvisor sends a keep-alive every 15 s; this long without a byte means the connection is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// What `pgvisor watch` follows and how it prints.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// pgvisor's admin port.
    pub admin: SocketAddr,
    /// Bearer token for the admin port.
    pub token: Option<String>,
    /// One JSON line per advice instead of blocks.
    pub json: bool,
    /// Colours and wrapping of blocks.
    pub style: Style,
}

/// Why watching stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The admin port wants a token that was not given.
    #[error("pgvisor at {0} requires an admin token: pass --admin-token T (or set PGVISOR_ADMIN_TOKEN)")]
    TokenRequired(SocketAddr),
    /// The admin port refused the token given.
    #[error("pgvisor at {0} rejected the admin token: check --admin-token (or PGVISOR_ADMIN_TOKEN)")]
    TokenRejected(SocketAddr),
    /// Something answers at the address, but not pgvisor's admin API.
    #[error(
        "{addr} does not look like pgvisor's admin port: {what}. Pass the address of --admin \
         (default 127.0.0.1:6480), not the proxy's --listen port or PostgreSQL's"
    )]
    NotPgvisor {
        /// The address.
        addr: SocketAddr,
        /// What it did instead.
        what: String,
    },
    /// Writing the output failed (a closed pipe ends watching quietly; see [`WatchError::is_closed_output`]).
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

impl WatchError {
    /// True when the reader of the output went away (`pgvisor watch | head`).
    pub fn is_closed_output(&self) -> bool {
        matches!(self, WatchError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// How one connection ended, short of a [`WatchError`].
#[derive(Debug)]
enum Ended {
    /// No connection could be made.
    Unreachable(String),
    /// The stream was followed and then ended or broke.
    Lost(String),
}

/// Follows the advice stream until the process is stopped or a [`WatchError`] ends it; status
/// lines ("watching...", "pgvisor went away, retrying...") go to stderr.
pub async fn watch(options: &WatchOptions, out: &mut dyn Write) -> Result<(), WatchError> {
    let mut printer = Printer::new(options.style, options.json);
    let mut backoff = MIN_BACKOFF;
    let mut ever_followed = false;
    let mut told_down = false;
    loop {
        let mut followed = false;
        let ended = follow(options, ever_followed, &mut printer, out, &mut || {
            followed = true;
            let verb = if ever_followed { "reconnected to" } else { "watching" };
            eprintln!("{verb} pgvisor at {} (Ctrl-C to stop)", options.admin);
        })
        .await?;
        if followed {
            ever_followed = true;
            told_down = false;
            backoff = MIN_BACKOFF;
        }
        if !told_down {
            told_down = true;
            match &ended {
                Ended::Lost(why) | Ended::Unreachable(why) if ever_followed => {
                    eprintln!("pgvisor went away, retrying... ({why})")
                }
                Ended::Lost(why) | Ended::Unreachable(why) => eprintln!(
                    "pgvisor is not answering at {} ({why}); retrying until it is up. Is pgvisor running? \
                     Its admin port is --admin (default 127.0.0.1:6480).",
                    options.admin
                ),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: request the stream, check the answer, print events until it ends.
async fn follow(
    options: &WatchOptions,
    followed_before: bool,
    printer: &mut Printer,
    out: &mut dyn Write,
    on_followed: &mut dyn FnMut(),
) -> Result<Ended, WatchError> {
    let addr = options.admin;
    let mut tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Ok(Ended::Unreachable(e.to_string())),
        Err(_) => return Ok(Ended::Unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    };
    let auth = options.token.as_deref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "GET /api/advice/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{auth}Connection: keep-alive\r\n\r\n"
    );
    if let Err(e) = tcp.write_all(request.as_bytes()).await {
        return Ok(Ended::Unreachable(e.to_string()));
    }
    // A pgvisor that is shutting down may close at once; something else that never speaks HTTP
    // does the same, so only an address that was pgvisor before gets the benefit of the doubt.
    let not_pgvisor = |what: String| -> Result<Ended, WatchError> {
        if followed_before {
            Ok(Ended::Lost(what))
        } else {
            Err(WatchError::NotPgvisor { addr, what })
        }
    };
    let (head, body_start) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut tcp)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => return not_pgvisor("it closed the connection without an HTTP answer".into()),
        Ok(Err(e)) => return Ok(Ended::Lost(e.to_string())),
        Err(_) => return not_pgvisor(format!("no HTTP answer within {HEAD_TIMEOUT:?}")),
    };
    let Some(status) = head.status() else {
        return not_pgvisor(head.first_line().to_string());
    };
    match status {
        200 if head.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")) => {}
        200 => return not_pgvisor("it does not serve /api/advice/stream as an event stream".into()),
        401 if options.token.is_some() => return Err(WatchError::TokenRejected(addr)),
        401 => return Err(WatchError::TokenRequired(addr)),
        404 => {
            return Err(WatchError::NotPgvisor {
                addr,
                what: "it answered 404 for /api/advice/stream (an HTTP server, but not a pgvisor with live advice)"
                    .into(),
            })
        }
        500.. => return Ok(Ended::Lost(format!("it answered {}", head.first_line()))),
        _ => return not_pgvisor(format!("it answered {}", head.first_line())),
    }
    on_followed();
    let mut dechunker =
        head.header("transfer-encoding").is_some_and(|t| t.contains("chunked")).then(Dechunker::default);
    let mut parser = SseParser::default();
    let mut body = Vec::new();
    let mut pending = body_start;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        body.clear();
        match &mut dechunker {
            Some(d) => d.feed(&pending, &mut body).map_err(|e| not_pgvisor_stream(addr, e))?,
            None => body.extend_from_slice(&pending),
        }
        for event in parser.feed(&body).map_err(|e| not_pgvisor_stream(addr, e))? {
            print_event(&event, printer, out)?;
        }
        if dechunker.as_ref().is_some_and(Dechunker::is_done) {
            return Ok(Ended::Lost("pgvisor ended the stream".into()));
        }
        let n = match tokio::time::timeout(IDLE_TIMEOUT, tcp.read(&mut buf)).await {
            Ok(Ok(0)) => return Ok(Ended::Lost("connection closed".into())),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Ok(Ended::Lost(e.to_string())),
            Err(_) => return Ok(Ended::Lost(format!("nothing received for {IDLE_TIMEOUT:?}"))),
        };
        pending = buf[..n].to_vec();
    }
}

fn not_pgvisor_stream(addr: SocketAddr, e: SseError) -> WatchError {
    WatchError::NotPgvisor { addr, what: format!("its event stream is unreadable ({e})") }
}

/// Prints one `advice` event; other events and undecodable data are skipped.
fn print_event(event: &SseEvent, printer: &mut Printer, out: &mut dyn Write) -> Result<(), WatchError> {
    if event.event != "advice" {
        return Ok(());
    }
    match serde_json::from_str::<AdviceView>(&event.data) {
        Ok(advice) => printer.print(&advice, Some(&event.data), out).map(drop).map_err(WatchError::Output),
        Err(e) => {
            eprintln!("skipping an advice event pgvisor watch cannot read ({e})");
            Ok(())
        }
    }
}

/// An HTTP/1.1 response head.
struct Head {
    text: String,
}

impl Head {
    fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    /// The status code of an `HTTP/1.x NNN reason` line.
    fn status(&self) -> Option<u16> {
        let mut parts = self.first_line().split_whitespace();
        let version = parts.next()?;
        if !version.starts_with("HTTP/1.") {
            return None;
        }
        parts.next()?.parse().ok()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.text.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_ascii_lowercase())
        })
    }
}

/// Reads up to the blank line ending the head; returns it and the body bytes read past it, or
/// `None` when the peer closed before answering anything.
async fn read_head(tcp: &mut TcpStream) -> std::io::Result<Option<(Head, Vec<u8>)>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&raw[..end]).into_owned();
            return Ok(Some((Head { text }, raw[end + 4..].to_vec())));
        }
        if raw.len() > MAX_HEAD || (raw.len() >= 5 && !raw.starts_with(b"HTTP/")) {
            return Ok(Some((Head { text: describe_non_http(&raw) }, Vec::new())));
        }
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok((!raw.is_empty()).then(|| (Head { text: describe_non_http(&raw) }, Vec::new())));
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// What a peer that does not speak HTTP answered, for the error message.
fn describe_non_http(raw: &[u8]) -> String {
    // A PostgreSQL server or pgvisor's client port rejects "GET ..." as a startup packet with an
    // ErrorResponse: 'E', then a 4-byte length.
    if raw.first() == Some(&b'E') && raw.len() >= 5 && raw[1] == 0 {
        return "it answered with a PostgreSQL error message, not HTTP".into();
    }
    let shown: String = String::from_utf8_lossy(&raw[..raw.len().min(40)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    format!("it answered something other than HTTP ({shown:?})")
}
