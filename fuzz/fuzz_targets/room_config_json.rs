//! The Room web page's `config.json` body → `parse_config`, the one parser of port discovery.
//!
//! Input: the body bytes, as the HTTP client hands them over. Checked: `parse_config` never
//! panics on any byte sequence; a result's WebSocket and HTTP ports are real ports (never 0);
//! an error says something, and never more than a short quote of the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trueconf2mqtt::room::discovery::parse_config;

/// An error names at most a short quote of the bad value, never the whole page.
const MAX_ERROR_CHARS: usize = 300;

fuzz_target!(|data: &[u8]| {
    match parse_config(data) {
        Ok(ports) => {
            assert_ne!(ports.websocket, 0);
            assert_ne!(ports.http, 0);
        }
        Err(error) => {
            let text = error.to_string();
            assert!(!text.is_empty());
            assert!(text.chars().count() <= MAX_ERROR_CHARS, "{text}");
        }
    }
});
