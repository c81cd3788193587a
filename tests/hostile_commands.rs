//! Command payloads that are valid but unusual (issue 12): the bridge's own parse and response
//! path, through the public API the daemon uses.

use serde_json::Value;
use trueconf2mqtt::bridge::command::{parse_request, parse_set, response};

/// Issue 12 case 11: a `transaction` is echoed as the caller wrote it, whatever number it is
/// (a big integer came back as `1.2345678901234568e+29`).
#[test]
fn a_transaction_comes_back_exactly_as_sent() {
    for text in [
        "123456789012345678901234567890",
        "-98765432109876543210987654321",
        "18446744073709551616",
        "0.1000000000000000055511151231257827",
        "-0",
        "7",
        "\"t-1\"",
        "{\"id\":123456789012345678901234567890,\"n\":[1.50]}",
    ] {
        let set = format!(r#"{{"mic_muted":true,"transaction":{text}}}"#);
        let command = parse_set(&set).unwrap();
        let echoed = response(Ok(Value::Null), command.transaction).to_string();
        assert!(
            echoed.ends_with(&format!(r#""transaction":{text}}}"#)),
            "sent {text}, got {echoed}"
        );
        // Refused commands echo it too.
        let request = format!(r#"{{"mute":"yes","transaction":{text}}}"#);
        let command = parse_request("setMicMute", &request).unwrap();
        let echoed = response(Err("refused".into()), command.transaction).to_string();
        assert!(
            echoed.contains(&format!(r#""transaction":{text}"#)),
            "{echoed}"
        );
    }
}
