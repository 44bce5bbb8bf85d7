//! `pgvisor watch`: follows a running pgvisor's live advice stream (`GET /api/advice/stream`)
//! and prints one readable block per finding, or one JSON line with `--json`. It waits for a
//! pgvisor that is not up yet and reconnects when pgvisor restarts.

mod printer;
mod render;
mod sse;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, StatusCode};

use crate::cli::admin_client::{self, RequestError};

pub use printer::Printer;
pub use render::{block, AdviceView, Style};
pub use sse::{SseError, SseEvent, SseParser};

/// First pause before reconnecting; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// pgvisor sends a keep-alive every 15 s; this long without a byte means the connection is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// The live advice stream (DESIGN.md, "Admin API").
const STREAM_PATH: &str = "/api/advice/stream";
/// Time allowed to read the short body of a refusal.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// The admin port refused the request for another reason (its Host or Origin checks).
    #[error("pgvisor at {addr} refused the request (403 Forbidden: {reason})")]
    Forbidden {
        /// The address.
        addr: SocketAddr,
        /// pgvisor's explanation.
        reason: String,
    },
    /// The request could not be made (a token no HTTP header can carry).
    #[error("cannot ask pgvisor at {addr}: {source}")]
    Request {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: RequestError,
    },
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
    // A pgvisor that is shutting down may close at once; something else that never speaks HTTP
    // does the same, so only an address that was pgvisor before gets the benefit of the doubt.
    let not_pgvisor = |what: String| -> Result<Ended, WatchError> {
        if followed_before {
            Ok(Ended::Lost(what))
        } else {
            Err(WatchError::NotPgvisor { addr, what })
        }
    };
    let token = options.token.as_deref();
    let response = match admin_client::send(addr, Method::GET, STREAM_PATH, token, Some("text/event-stream")).await {
        Ok(response) => response,
        Err(e) if e.is_unreachable() => return Ok(Ended::Unreachable(e.to_string())),
        Err(e @ RequestError::Invalid(_)) => return Err(WatchError::Request { addr, source: e }),
        Err(e @ RequestError::Http(_)) => return Ok(Ended::Lost(e.to_string())),
        Err(e) => return not_pgvisor(e.to_string()),
    };
    let status = response.status();
    let is_event_stream = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
    match status {
        StatusCode::OK if is_event_stream => {}
        StatusCode::OK => return not_pgvisor("it does not serve /api/advice/stream as an event stream".into()),
        StatusCode::UNAUTHORIZED if options.token.is_some() => return Err(WatchError::TokenRejected(addr)),
        StatusCode::UNAUTHORIZED => return Err(WatchError::TokenRequired(addr)),
        StatusCode::FORBIDDEN => return Err(WatchError::Forbidden { addr, reason: refusal_reason(response).await }),
        StatusCode::NOT_FOUND => {
            return Err(WatchError::NotPgvisor {
                addr,
                what: "it answered 404 for /api/advice/stream (an HTTP server, but not a pgvisor with live advice)"
                    .into(),
            })
        }
        s if s.is_server_error() => return Ok(Ended::Lost(format!("it answered {s}"))),
        s => return not_pgvisor(format!("it answered {s}")),
    }
    on_followed();
    let mut body = response.into_body();
    let mut parser = SseParser::default();
    loop {
        let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => return Ok(Ended::Lost(e.to_string())),
            Ok(None) => return Ok(Ended::Lost("pgvisor ended the stream".into())),
            Err(_) => return Ok(Ended::Lost(format!("nothing received for {IDLE_TIMEOUT:?}"))),
        };
        // Trailers carry no events.
        let Ok(data) = frame.into_data() else { continue };
        for event in parser.feed(&data).map_err(|e| not_pgvisor_stream(addr, e))? {
            print_event(&event, printer, out)?;
        }
    }
}

/// The reason pgvisor gave for a refusal.
async fn refusal_reason(response: hyper::Response<hyper::body::Incoming>) -> String {
    match tokio::time::timeout(REFUSAL_TIMEOUT, response.into_body().collect()).await {
        Ok(Ok(body)) => admin_client::error_text(&body.to_bytes()),
        _ => "no reason given".into(),
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
