//! The API and HTTP tokens a Room issues (`auth`, `getTokenForHttpServer`): shaped like the
//! documented ones, bounded in number, valid until the Room restarts.

use std::collections::VecDeque;

/// API tokens and HTTP tokens issued by `auth` / `getTokenForHttpServer`. Bounded: the oldest
/// are forgotten first. They stay valid until the Room restarts (SPEC §4.3: "until the app
/// closes"; the lifetimes of 5 min / 24 h are not simulated).
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    pub(super) api: VecDeque<String>,
    pub(super) http: VecDeque<String>,
}

pub(super) const MAX_TOKENS: usize = 256;

impl Tokens {
    pub fn issue_api(&mut self) -> String {
        Self::issue(&mut self.api, 1)
    }

    pub fn issue_http(&mut self) -> String {
        Self::issue(&mut self.http, 4)
    }

    pub fn api_valid(&self, token: &str) -> bool {
        self.api.iter().any(|t| t == token)
    }

    pub fn http_valid(&self, token: &str) -> bool {
        !token.is_empty() && self.http.iter().any(|t| t == token)
    }

    pub(super) fn issue(list: &mut VecDeque<String>, prefix: u8) -> String {
        let token = new_token(prefix);
        if list.len() == MAX_TOKENS {
            list.pop_front();
        }
        list.push_back(token.clone());
        token
    }
}

/// A token shaped like the documented ones: `<n>*<16 chars>*<8 digits>*<64 hex>` (SPEC §4.3).
pub(super) fn new_token(prefix: u8) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut token = format!("{prefix}*");
    for _ in 0..16 {
        token.push(char::from(ALNUM[fastrand::usize(..ALNUM.len())]));
    }
    token.push('*');
    for _ in 0..8 {
        token.push(fastrand::digit(10));
    }
    token.push('*');
    for _ in 0..64 {
        token.push(fastrand::digit(16).to_ascii_uppercase());
    }
    token
}
