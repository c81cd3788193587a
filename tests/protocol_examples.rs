//! Every wire example of `protocol/examples/` goes through the typed model and back unchanged;
//! every request example fits the method table.

use std::fs;
use std::path::Path;

use serde_json::Value;
use trueconf2mqtt::protocol::{EventKind, Incoming, catalog, parse_incoming};
use trueconf2mqtt::room::discovery::parse_config;

fn examples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/examples");
    let mut files: Vec<(String, String)> = fs::read_dir(&dir)
        .expect("protocol/examples exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 90, "examples copied into the repository");
    files
}

fn kind(name: &str) -> &str {
    name.rsplit('.').nth(1).unwrap_or("")
}

#[test]
fn replies_and_events_round_trip_through_the_typed_model() {
    let mut typed_events = 0;
    for (name, text) in examples() {
        let original: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        match kind(&name) {
            "response" | "error" => {
                let Ok(Incoming::Response(r)) = parse_incoming(&text) else {
                    panic!("{name}: not parsed as a response")
                };
                assert_eq!(
                    Value::Object(r.fields.clone()),
                    original,
                    "{name}: round trip"
                );
                assert_eq!(
                    r.result,
                    original["result"].as_bool().unwrap_or(false),
                    "{name}"
                );
                if kind(&name) == "error" {
                    assert!(!r.result, "{name}: an error reply");
                    assert!(r.error_text().is_some(), "{name}: carries an error text");
                }
            }
            "event" => {
                let Ok(Incoming::Event(e)) = parse_incoming(&text) else {
                    panic!("{name}: not parsed as an event")
                };
                assert_eq!(
                    Value::Object(e.fields.clone()),
                    original,
                    "{name}: round trip"
                );
                assert_eq!(e.name, original["event"].as_str().unwrap());
                let known = catalog().event(&e.name).is_some();
                assert!(known, "{name}: event {} is in the catalog", e.name);
                if e.kind != EventKind::Other {
                    typed_events += 1;
                }
            }
            "request" => {
                let object = original.as_object().unwrap();
                let method = object["method"].as_str().unwrap();
                let params = object
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "method" | "requestId"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                // `auth` examples include the admin→user switch without `type`; its parameters
                // are optional in the table.
                catalog()
                    .validate(method, &params)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "http" => {
                let ports = parse_config(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(ports.websocket, 8765);
            }
            other => panic!("{name}: unexpected kind {other}"),
        }
    }
    assert!(
        typed_events >= 20,
        "typed view covers the common events ({typed_events})"
    );
}

#[test]
fn the_method_reference_is_generated_from_the_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/METHODS.md");
    let committed = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == catalog().markdown(),
        "docs/METHODS.md is out of date: run `cargo run -- catalog --markdown > docs/METHODS.md`"
    );
}

#[test]
fn the_readme_field_tables_are_generated_from_the_field_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = fs::read_to_string(&path).expect("README.md");
    let (begin, end) = ("-->\n", "<!-- /fields -->");
    let start = readme
        .find("<!-- fields:")
        .and_then(|i| readme[i..].find(begin).map(|j| i + j + begin.len()))
        .expect("README.md has a <!-- fields: --> block");
    let stop = start
        + readme[start..]
            .find(end)
            .expect("<!-- /fields --> after it");
    let generated = trueconf2mqtt::surface::fields::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{generated}{}", &readme[..start], &readme[stop..]);
        fs::write(&path, updated).expect("write README.md");
        return;
    }
    assert!(
        readme[start..stop] == generated,
        "README.md's field tables are out of date: run `UPDATE_DOCS=1 cargo test --test protocol_examples readme`"
    );
}
