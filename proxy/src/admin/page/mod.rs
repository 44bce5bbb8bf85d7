//! `GET /`: the web page (live advice, top queries, sessions), served from files compiled into
//! the binary, so running pgvisor needs no build step and the page loads nothing from the network.
//!
//! The page holds no data of its own: its scripts read the same `/api` endpoints as every other
//! client, with the bearer token the user types into it. That is why these routes are served
//! without the token while `/api` stays behind it (see `router` in `admin/mod.rs`).

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Path, content type and body of each file of the page (plain ES modules, no bundler).
const FILES: [(&str, &str, &str); 12] = [
    ("/", HTML, include_str!("index.html")),
    ("/page.css", CSS, include_str!("page.css")),
    ("/page.js", JS, include_str!("page.js")),
    ("/http.js", JS, include_str!("http.js")),
    ("/feed.js", JS, include_str!("feed.js")),
    ("/tables.js", JS, include_str!("tables.js")),
    ("/callers.js", JS, include_str!("callers.js")),
    ("/format.js", JS, include_str!("format.js")),
    ("/suggestion.js", JS, include_str!("suggestion.js")),
    ("/setup.js", JS, include_str!("setup.js")),
    ("/chart.js", JS, include_str!("chart.js")),
    ("/favicon.svg", SVG, include_str!("favicon.svg")),
];

/// Our own files and our own origin only: a CDN or an injected script cannot load, and the API
/// can be called only from this page's origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page and its files, open to anyone who can reach the admin port.
pub(crate) fn routes() -> Router {
    FILES.iter().fold(Router::new(), |router, &(path, content_type, body)| {
        router.route(path, get(move || async move { file(content_type, body) }))
    })
}

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidate every time: after an upgrade the browser must not mix old and new files.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            // Not `no-referrer`: under it the Fetch standard sends `Origin: null` on the page's own
            // POSTs (reset, dismiss), which the admin port refuses. Nothing leaves this origin anyway.
            (header::REFERRER_POLICY, HeaderValue::from_static("same-origin")),
        ],
        body,
    )
}
