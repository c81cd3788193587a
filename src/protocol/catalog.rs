//! The method and event catalog: the one table that describes the TrueConf Room API.
//!
//! The table is `protocol/catalog.json` (copied from the project's protocol research), embedded in
//! the binary and parsed once. Everything that needs to know about a method — parameter validation
//! before a request is sent, the dangerous-method policy, secret redaction, the simulator's generic
//! replies and the generated method reference (`trueconf2mqtt catalog --markdown`) — reads it from
//! here. There is no second copy of the method list anywhere in the code.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The catalog file, embedded at compile time.
const CATALOG_JSON: &str = include_str!("../../protocol/catalog.json");

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    // The file is part of the crate; a parse failure is a build defect caught by the unit tests.
    let raw: RawCatalog =
        serde_json::from_str(CATALOG_JSON).expect("protocol/catalog.json is valid");
    Catalog::new(raw)
});

/// The parsed API catalog.
pub fn catalog() -> &'static Catalog {
    &CATALOG
}

#[derive(Deserialize)]
struct RawCatalog {
    methods: Vec<MethodSpec>,
    events: Vec<EventSpec>,
    app_states: HashMap<String, AppStateSpec>,
    reject_causes: HashMap<String, String>,
    enums: HashMap<String, HashMap<String, String>>,
}

/// Every method and event the TrueConf Room API is known to have.
pub struct Catalog {
    methods: Vec<MethodSpec>,
    methods_by_name: HashMap<String, usize>,
    events: Vec<EventSpec>,
    events_by_name: HashMap<String, usize>,
    app_states: HashMap<String, AppStateSpec>,
    reject_causes: HashMap<String, String>,
    enums: HashMap<String, HashMap<String, String>>,
}

/// One API method: its name, parameters and policy flags.
#[derive(Debug, Clone, Deserialize)]
pub struct MethodSpec {
    /// Wire name, e.g. `setMicMute`.
    pub name: String,
    /// Functional group (`media_mute`, `ptz`, `call_conference`, …).
    pub category: String,
    /// Parameters, flat members of the request object.
    pub params: Vec<ParamSpec>,
    /// Data members of a successful reply, as far as they are known.
    pub response_fields: Vec<FieldSpec>,
    /// Shuts down, reboots, changes credentials or licences, deletes data, logs out, or carries or
    /// reveals a credential, token or licence key: refused by the bridge unless allowed per room
    /// in config.
    pub dangerous: bool,
    /// Why the method is dangerous, when the catalog says.
    #[serde(default)]
    pub danger_reason: Option<String>,
    /// The request or the reply carries a secret (password, PIN, token, licence key). Every
    /// sensitive method is also dangerous.
    pub sensitive: bool,
    /// The reply says whether a secret (PIN, password) was right: an oracle, so failed replies
    /// are rate-limited per room even where the method is allowed.
    #[serde(default)]
    pub checks_credentials: bool,
    /// How well the shape is known: `documented`, `client`, `client-2024`.
    pub doc_status: String,
    /// Free-text remarks from the research.
    #[serde(default)]
    pub note: String,
}

/// One parameter of a method.
#[derive(Debug, Clone, Deserialize)]
pub struct ParamSpec {
    /// Wire name of the member.
    pub name: String,
    /// Expected JSON type.
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// Whether the request must carry it.
    pub required: bool,
    /// Free-text remarks.
    #[serde(default)]
    pub note: String,
}

/// One field of a reply or an event.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldSpec {
    /// Wire name of the member.
    pub name: String,
    /// Expected JSON type.
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// The official Python client ignores a message without this member (SPEC §15.1).
    #[serde(default)]
    pub python_handler_requires: bool,
}

/// One notification the Room can push.
#[derive(Debug, Clone, Deserialize)]
pub struct EventSpec {
    /// Wire name, e.g. `appStateChanged`.
    pub name: String,
    /// Known members.
    pub fields: Vec<FieldSpec>,
    /// How well the shape is known.
    pub doc_status: String,
}

#[derive(Debug, Clone, Deserialize)]
struct AppStateSpec {
    name: String,
    meaning: String,
}

/// JSON types used by the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ValueType {
    /// A JSON string.
    #[serde(rename = "string")]
    String,
    /// A JSON number without a fractional part.
    #[serde(rename = "int")]
    Int,
    /// Any JSON number.
    #[serde(rename = "number")]
    Number,
    /// `true` or `false`.
    #[serde(rename = "bool")]
    Bool,
    /// A JSON object.
    #[serde(rename = "object")]
    Object,
    /// A JSON array of anything.
    #[serde(rename = "array")]
    Array,
    /// A JSON array of strings.
    #[serde(rename = "array<string>")]
    ArrayOfStrings,
    /// A JSON array of objects.
    #[serde(rename = "array<object>")]
    ArrayOfObjects,
    /// Not known: anything is accepted.
    #[serde(rename = "any")]
    Any,
}

impl ValueType {
    /// Whether `value` has this type.
    pub fn matches(self, value: &Value) -> bool {
        match self {
            ValueType::String => value.is_string(),
            ValueType::Int => value.is_i64() || value.is_u64(),
            ValueType::Number => value.is_number(),
            ValueType::Bool => value.is_boolean(),
            ValueType::Object => value.is_object(),
            ValueType::Array => value.is_array(),
            ValueType::ArrayOfStrings => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            ValueType::ArrayOfObjects => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_object)),
            ValueType::Any => true,
        }
    }

    /// The name used in the catalog and in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Int => "int",
            ValueType::Number => "number",
            ValueType::Bool => "bool",
            ValueType::Object => "object",
            ValueType::Array => "array",
            ValueType::ArrayOfStrings => "array<string>",
            ValueType::ArrayOfObjects => "array<object>",
            ValueType::Any => "any",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request does not fit the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The method is not in the catalog.
    #[error("unknown method '{0}'")]
    UnknownMethod(String),
    /// A required parameter is absent.
    #[error("{method}: missing required parameter '{param}' ({ty})")]
    Missing {
        /// Method name.
        method: String,
        /// Parameter name.
        param: String,
        /// Expected type.
        ty: ValueType,
    },
    /// A parameter has the wrong JSON type.
    #[error("{method}: parameter '{param}' must be {ty}, got {got}")]
    WrongType {
        /// Method name.
        method: String,
        /// Parameter name.
        param: String,
        /// Expected type.
        ty: ValueType,
        /// The JSON type that was given.
        got: &'static str,
    },
    /// A member the method does not take.
    #[error("{method}: unknown parameter '{param}' (expected: {expected})")]
    Unknown {
        /// Method name.
        method: String,
        /// Parameter name.
        param: String,
        /// The parameters the method takes.
        expected: String,
    },
    /// The parameters are not a JSON object.
    #[error("parameters must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// `method` and `requestId` are set by the client itself.
    #[error("{method}: '{param}' is reserved and set by the client")]
    Reserved {
        /// Method name.
        method: String,
        /// The reserved member.
        param: String,
    },
}

/// The JSON type name of a value, for error messages.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl MethodSpec {
    /// Checks `params` against this method's parameter list: required members present, every
    /// member known and of the right type.
    pub fn validate(&self, params: &Map<String, Value>) -> Result<(), ParamError> {
        for (key, value) in params {
            if key == "method" || key == "requestId" {
                return Err(ParamError::Reserved {
                    method: self.name.clone(),
                    param: key.clone(),
                });
            }
            let Some(spec) = self.params.iter().find(|p| &p.name == key) else {
                return Err(ParamError::Unknown {
                    method: self.name.clone(),
                    param: key.clone(),
                    expected: self.signature(),
                });
            };
            if !spec.ty.matches(value) {
                return Err(ParamError::WrongType {
                    method: self.name.clone(),
                    param: key.clone(),
                    ty: spec.ty,
                    got: json_type_name(value),
                });
            }
        }
        if let Some(missing) = self
            .params
            .iter()
            .find(|p| p.required && !params.contains_key(&p.name))
        {
            return Err(ParamError::Missing {
                method: self.name.clone(),
                param: missing.name.clone(),
                ty: missing.ty,
            });
        }
        Ok(())
    }

    /// A one-line parameter list such as `mute: bool` or `(none)`.
    pub fn signature(&self) -> String {
        if self.params.is_empty() {
            return "(none)".to_owned();
        }
        self.params
            .iter()
            .map(|p| {
                let optional = if p.required { "" } else { "?" };
                format!("{}{optional}: {}", p.name, p.ty)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Catalog {
    fn new(raw: RawCatalog) -> Self {
        let methods_by_name = raw
            .methods
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        let events_by_name = raw
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        Catalog {
            methods: raw.methods,
            methods_by_name,
            events: raw.events,
            events_by_name,
            app_states: raw.app_states,
            reject_causes: raw.reject_causes,
            enums: raw.enums,
        }
    }

    /// All methods, in catalog order (alphabetical).
    pub fn methods(&self) -> &[MethodSpec] {
        &self.methods
    }

    /// All events, in catalog order.
    pub fn events(&self) -> &[EventSpec] {
        &self.events
    }

    /// Looks a method up by its wire name.
    pub fn method(&self, name: &str) -> Option<&MethodSpec> {
        self.methods_by_name.get(name).map(|&i| &self.methods[i])
    }

    /// Looks an event up by its wire name.
    pub fn event(&self, name: &str) -> Option<&EventSpec> {
        self.events_by_name.get(name).map(|&i| &self.events[i])
    }

    /// Validates a request against the table.
    pub fn validate(
        &self,
        method: &str,
        params: &Map<String, Value>,
    ) -> Result<&MethodSpec, ParamError> {
        let spec = self
            .method(method)
            .ok_or_else(|| ParamError::UnknownMethod(method.to_owned()))?;
        spec.validate(params)?;
        Ok(spec)
    }

    /// Human text for a reject cause code (`rejectReceived`/`rejectSent`).
    pub fn reject_cause(&self, cause: i64) -> Option<&str> {
        self.reject_causes
            .get(&cause.to_string())
            .map(String::as_str)
    }

    /// Text for a value of one of the catalog's enumerations (`login_results`,
    /// `auth_needed_causes`, `conference_types_int`, …).
    pub fn enum_text(&self, enumeration: &str, value: i64) -> Option<&str> {
        self.enums
            .get(enumeration)?
            .get(&value.to_string())
            .map(String::as_str)
    }

    /// Name and meaning of an `appState` value.
    pub fn app_state(&self, value: i64) -> Option<(&str, &str)> {
        self.app_states
            .get(&value.to_string())
            .map(|s| (s.name.as_str(), s.meaning.as_str()))
    }

    /// The method reference as Markdown (`docs/METHODS.md` is generated from this).
    pub fn markdown(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        out.push_str("# TrueConf Room API methods\n\n");
        out.push_str(
            "Generated from the method table (`protocol/catalog.json`) by \
             `trueconf2mqtt catalog --markdown`; do not edit by hand.\n\n\
             Every method is reachable over MQTT as `<base>/<room>/request/<method>` with a JSON \
             object of parameters (`?` marks optional ones). Methods marked **dangerous** are \
             refused unless listed in the room's `allow_dangerous` setting; so is every method that \
             carries or reveals a credential, token or licence key (**sensitive**). A method that \
             checks credentials answers at most a few failures per minute per room, even when \
             allowed.\n\n",
        );
        let mut categories: Vec<&str> = self.methods.iter().map(|m| m.category.as_str()).collect();
        categories.sort_unstable();
        categories.dedup();
        for category in categories {
            let _ = writeln!(out, "## {category}\n");
            out.push_str("| method | parameters | reply fields | flags |\n|---|---|---|---|\n");
            for m in self.methods.iter().filter(|m| m.category == category) {
                let reply = if m.response_fields.is_empty() {
                    "—".to_owned()
                } else {
                    m.response_fields
                        .iter()
                        .map(|f| format!("{}: {}", f.name, f.ty))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let mut flags = Vec::new();
                if m.dangerous {
                    flags.push("**dangerous**");
                }
                if m.sensitive {
                    flags.push("sensitive");
                }
                if m.checks_credentials {
                    flags.push("checks credentials (failures rate-limited)");
                }
                if m.doc_status != "documented" {
                    flags.push("inferred shape");
                }
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    m.name,
                    m.signature().replace('|', "\\|"),
                    reply.replace('|', "\\|"),
                    flags.join(", ")
                );
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "## Events\n\n{} events are known; unknown ones are passed through as they come.\n",
            self.events.len()
        );
        out.push_str("| event | fields |\n|---|---|\n");
        for e in &self.events {
            let fields = e
                .fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(out, "| `{}` | {} |", e.name, fields);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catalog_loads_every_method_and_event() {
        let c = catalog();
        assert_eq!(c.methods().len(), 260);
        assert_eq!(c.events().len(), 180);
        assert!(c.method("setMicMute").is_some());
        assert!(c.event("appStateChanged").is_some());
        assert!(c.method("rebootSystem").unwrap().dangerous);
        assert_eq!(c.app_state(5).unwrap().0, "conference");
    }

    #[test]
    fn validation_reports_precise_problems() {
        let c = catalog();
        let params = |v: Value| v.as_object().unwrap().clone();
        assert!(
            c.validate("setMicMute", &params(json!({"mute": true})))
                .is_ok()
        );
        assert_eq!(
            c.validate("setMicMute", &params(json!({"mute": "yes"})))
                .unwrap_err()
                .to_string(),
            "setMicMute: parameter 'mute' must be bool, got string"
        );
        assert!(matches!(
            c.validate("setMicMute", &params(json!({}))),
            Err(ParamError::Missing { .. })
        ));
        assert!(matches!(
            c.validate("setMicMute", &params(json!({"mute": true, "x": 1}))),
            Err(ParamError::Unknown { .. })
        ));
        assert!(matches!(
            c.validate("noSuchMethod", &params(json!({}))),
            Err(ParamError::UnknownMethod(_))
        ));
        assert!(matches!(
            c.validate("getAppState", &params(json!({"requestId": "1"}))),
            Err(ParamError::Reserved { .. })
        ));
    }

    /// Issue 12 case 4: whatever carries or reveals a secret, or answers whether one is right,
    /// is dangerous (refused unless allowed), from this one table.
    #[test]
    fn secrets_and_credential_checks_are_dangerous() {
        for m in catalog().methods() {
            if m.sensitive || m.checks_credentials {
                assert!(m.dangerous, "{} carries or checks a secret", m.name);
            }
            if m.checks_credentials {
                assert!(m.sensitive, "{} checks a secret it must carry", m.name);
            }
        }
        for name in [
            "auth",
            "setAuthParams",
            "checkFileTransferPIN",
            "getFileTransferPIN",
        ] {
            assert!(catalog().method(name).unwrap().dangerous, "{name}");
        }
        assert!(catalog().method("auth").unwrap().checks_credentials);
    }

    #[test]
    fn markdown_lists_every_method() {
        let md = catalog().markdown();
        for m in catalog().methods() {
            assert!(md.contains(&format!("`{}`", m.name)), "{} missing", m.name);
        }
    }
}
