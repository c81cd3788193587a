//! Keeping secrets out of logs, MQTT and error messages.

use serde_json::Value;

/// Members that carry a secret anywhere in the API (SPEC §14.7 plus the sensitive catalog methods):
/// their values are replaced by `"***"` before a message is logged or published.
pub const SECRET_FIELDS: &[&str] = &[
    "credentials",
    "password",
    "token",
    "tokenForHttpServer",
    "newPin",
    "pin",
    "key",
    "licenseKey",
    "hardwareKey",
    "fileTransferPIN",
    "url",
];

/// Returns a copy of `value` with every secret member (at any depth) masked.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    if SECRET_FIELDS.contains(&k.as_str()) && !v.is_null() {
                        (k.clone(), Value::String("***".into()))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// Whether `value` holds a secret field at any depth (what [`redact`] would mask).
pub fn has_secret(value: &Value) -> bool {
    match value {
        Value::Object(map) => has_secret_field(map),
        Value::Array(items) => items.iter().any(has_secret),
        _ => false,
    }
}

/// [`has_secret`] for an object's members (an event's fields), without building a `Value`.
pub fn has_secret_field(map: &serde_json::Map<String, Value>) -> bool {
    map.iter()
        .any(|(k, v)| (SECRET_FIELDS.contains(&k.as_str()) && !v.is_null()) || has_secret(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_nested_secrets() {
        let v = json!({"method":"auth","credentials":"1234","x":[{"token":"abc","ok":1}]});
        assert_eq!(
            redact(&v),
            json!({"method":"auth","credentials":"***","x":[{"token":"***","ok":1}]})
        );
        assert!(has_secret(&v));
        assert!(has_secret(&json!({"a":{"b":[{"pin":"0123"}]}})));
        assert!(!has_secret(&json!({"a":{"b":[{"pin":null,"mute":true}]}})));
    }
}
