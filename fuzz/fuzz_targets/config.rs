//! Configuration: arbitrary TOML text (and environment) → `Settings::load_from`.
//!
//! Input: `<toml> [NUL <environment>]`, the environment as `NAME=value` lines (without a NUL the
//! environment is empty, as in `Settings::load_from(Some(text), HashMap::new())`). Checked:
//!
//! * loading never panics;
//! * secrets never leak: when the marker `Zq7Secret` appears only as the value of `pin` /
//!   `password` / `auth_token` lines (or `…__PIN` / `…__PASSWORD` / `…__AUTH_TOKEN` variables),
//!   neither the error's `Display`
//!   nor, on success, `explain()` and the settings' `Debug` contain it. The seeds carry the marker
//!   so mutations keep exercising this;
//! * a loaded configuration yields valid MQTT topics for every room.
//!
//! Inputs that mention `dev`, `proc` or a `\u` escape are skipped: `pin_file = "/dev/zero"` would
//! make the loader read forever, which is the operator's problem, not a bug worth a crash report.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use trueconf2mqtt::config::{Settings, explain};
use trueconf2mqtt::surface::Topics;

const MARKER: &str = "Zq7Secret";

/// Whether the environment line `NAME=value` names a secret (`…__PIN`, `…__PASSWORD`, any
/// case) and has the marker only in its value.
fn secret_variable(line: &str) -> bool {
    line.split_once('=').is_some_and(|(name, _)| {
        let name = name.to_ascii_lowercase();
        !name.contains(&MARKER.to_ascii_lowercase())
            && (name.ends_with("__pin")
                || name.ends_with("__password")
                || name.ends_with("__auth_token"))
    })
}

/// Whether the marker occurs, and only where a secret value goes.
fn marker_only_in_secrets(toml: &str, env: &str) -> bool {
    if !toml.contains(MARKER) && !env.contains(MARKER) {
        return false;
    }
    // Multi-line strings could put a `pin = …` line inside another value.
    if toml.contains("\"\"\"") || toml.contains("'''") {
        return false;
    }
    let toml_ok = toml
        .lines()
        .filter(|l| l.contains(MARKER))
        .all(|l| exact_key(l, &["pin", "password", "auth_token"]));
    let env_ok = env
        .lines()
        .filter(|l| l.contains(MARKER))
        .all(secret_variable);
    toml_ok && env_ok
}

/// The TOML key is exactly one of `keys` (not `pin_file`, not `rooms.pin`).
fn exact_key(line: &str, keys: &[&str]) -> bool {
    line.split_once('=')
        .is_some_and(|(key, _)| keys.contains(&key.trim()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lower = text.to_ascii_lowercase();
    if lower.contains("dev") || lower.contains("proc") || lower.contains("\\u") {
        return;
    }
    let (toml, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let env: HashMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let check_secret = marker_only_in_secrets(toml, env_text);

    match Settings::load_from(Some(toml), env) {
        Err(error) => {
            let shown = error.to_string();
            assert!(!shown.is_empty());
            if check_secret {
                assert!(!shown.contains(MARKER), "secret in the error: {shown}");
            }
        }
        Ok(settings) => {
            if check_secret {
                let explained = explain(&settings);
                assert!(
                    !explained.contains(MARKER),
                    "secret in explain(): {explained}"
                );
                let debug = format!("{settings:?}");
                assert!(!debug.contains(MARKER), "secret in Debug: {debug}");
            }
            let topics = Topics::new(settings.mqtt.base_topic.clone());
            for room in &settings.rooms {
                for topic in [
                    topics.room(&room.id),
                    topics.availability(&room.id),
                    topics.set_field(&room.id, "mic_muted"),
                ] {
                    assert!(rumqttc::valid_topic(&topic), "{topic}");
                    assert!(
                        !topic.split('/').any(str::is_empty),
                        "empty level in {topic}"
                    );
                }
            }
        }
    }
});
