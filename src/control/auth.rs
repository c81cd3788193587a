//! Tokens of the control surfaces: `http.auth_token` and `panel.auth_token`.
//!
//! HTTP and WebSocket clients send it as `Authorization: Bearer <token>` or, since a browser
//! cannot set headers on a WebSocket, as `?token=<token>`; the TCP protocol as `AUTH <token>`.
//! Comparison takes the same time whatever the guess. Tokens are [`Secret`]s: never logged.

use std::net::SocketAddr;

use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Whether `given` is the token (constant time in the contents).
pub fn matches(token: &Secret, given: &str) -> bool {
    bool::from(token.expose().as_bytes().ct_eq(given.as_bytes()))
}

/// The token an HTTP request carries: `Authorization: Bearer …`, else `?token=…` (decoded).
pub fn from_request(headers: &axum::http::HeaderMap, query: Option<&str>) -> Option<String> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
        });
    bearer.or_else(|| {
        form_urlencoded::parse(query?.as_bytes())
            .find(|(key, _)| key == "token")
            .map(|(_, value)| value.into_owned())
    })
}

/// Whether a request may use the control surface: no token configured (loopback only, see
/// [`needs_token`]) or the right one given.
pub fn allowed(token: Option<&Secret>, given: Option<&str>) -> bool {
    match token {
        None => true,
        Some(token) => given.is_some_and(|g| matches(token, g)),
    }
}

/// Why a control surface listening on `listen` without a token may not start: anything but a
/// loopback address is reachable by others.
pub fn needs_token(listen: SocketAddr) -> bool {
    !listen.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn token_from_header_or_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            from_request(&headers, Some("a=1&token=s%2Fx+y")),
            Some("s/x y".into())
        );
        assert_eq!(from_request(&headers, Some("a=1")), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc "),
        );
        assert_eq!(
            from_request(&headers, Some("token=zzz")),
            Some("abc".into())
        );
        let token = Secret::new("abc");
        assert!(allowed(Some(&token), Some("abc")));
        assert!(!allowed(Some(&token), Some("abd")));
        assert!(!allowed(Some(&token), Some("ab")));
        assert!(!allowed(Some(&token), None));
        assert!(allowed(None, None));
        assert!(needs_token("0.0.0.0:1".parse().unwrap()));
        assert!(!needs_token("[::1]:1".parse().unwrap()));
        assert!(!needs_token("127.0.0.2:1".parse().unwrap()));
    }
}
