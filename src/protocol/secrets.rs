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
    }
}
