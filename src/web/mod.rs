//! The web UI served at `/` on `http.listen`: a page, a script and a stylesheet compiled into
//! the binary (`src/web/assets/`, plain HTML/CSS/JS without a build step), talking to the
//! WebSocket API at `/api`.
//!
//! Served with the control surface (`http.control`, [`crate::control::web`]), behind the same
//! token: the page reads `?token=` from its own address and hands it to the WebSocket and to
//! `/api/schema`; the probes `/readyz` and `/metrics` it polls need none. Every response says
//! `no-cache` with a strong `ETag` (a hash of the asset), so a browser revalidates cheaply and
//! sees a new UI right after an upgrade; `Referrer-Policy: no-referrer` keeps the token out of
//! other sites' logs, and a strict `Content-Security-Policy` allows nothing but these files and
//! the WebSocket.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::control::web::Web;

/// One embedded file.
pub struct Asset {
    /// Path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// Every file of the UI.
pub static ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        path: "/assets/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/style.css"),
    },
    Asset {
        path: "/assets/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/icon.svg"),
    },
];

/// What the page may load: its own files, and connect to its own host (the WebSocket and the
/// health endpoints). `ws:`/`wss:` are listed because older browsers do not count them as
/// `'self'`.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The routes of the UI, to merge into the control surface's router. The page itself takes the
/// same token as `/api` (so a wrong address says so at once instead of showing a page that
/// cannot connect); its script, stylesheet and icon are the same for everyone and hold nothing,
/// and a browser cannot add the token to them.
pub fn routes<S: Clone + Send + Sync + 'static>(web: Arc<Web>) -> Router<S> {
    let mut router = Router::new();
    for asset in ASSETS {
        let web = web.clone();
        let page = asset.path == "/";
        router = router.route(
            asset.path,
            get(move |uri: Uri, headers: HeaderMap| async move {
                if page && let Err(refused) = web.authorize(&headers, uri.query()) {
                    return refused;
                }
                serve(asset, &headers)
            }),
        );
    }
    router
}

/// FNV-1a over the bytes: a stable validator, computed at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

impl Asset {
    /// The strong entity tag of the asset, quoted.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", fnv1a(self.body))
    }
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let etag = asset.etag();
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut headers = HeaderMap::new();
    let static_header = |v: &'static str| HeaderValue::from_static(v);
    headers.insert(header::CACHE_CONTROL, static_header("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, static_header("nosniff"));
    headers.insert(header::REFERRER_POLICY, static_header("no-referrer"));
    headers.insert(header::CONTENT_SECURITY_POLICY, static_header(CSP));
    headers.insert(header::X_FRAME_OPTIONS, static_header("DENY"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, static_header(asset.content_type));
    (StatusCode::OK, headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_distinct_and_tagged_by_content() {
        let tags: std::collections::HashSet<String> = ASSETS.iter().map(Asset::etag).collect();
        assert_eq!(tags.len(), ASSETS.len());
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
        }
    }

    #[test]
    fn the_script_never_writes_markup() {
        // Room data (names, titles, devices) is untrusted: it reaches the page as text only.
        let script = std::str::from_utf8(ASSETS[1].body).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(sink), "app.js uses {sink}");
        }
    }
}
