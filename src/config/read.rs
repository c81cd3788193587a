//! Reading typed values out of the merged `config` tree while collecting every problem.
//!
//! The tree is walked by hand instead of deserialized with serde so that *all* problems are
//! reported at once (serde stops at the first one), every key is named with its full path
//! (`rooms[1].pin`), unknown keys are reported all together with a "did you mean", and secret
//! values never reach a message.

use std::ops::RangeInclusive;

use ::config::{Map, Value, ValueKind};

use super::Problem;
use crate::secret::Secret;

/// Prefix of the environment variables that override the file.
pub(super) const ENV_PREFIX: &str = "TRUECONF2MQTT";

/// The origin the `config` crate gives to values from its `Environment` source.
const CONFIG_ENV_ORIGIN: &str = "the environment";

/// The environment variable that sets a (non-room) dotted key, e.g. `mqtt.tls.ca_file` →
/// `TRUECONF2MQTT__MQTT__TLS__CA_FILE`.
pub(super) fn env_var_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}__{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// One table of the tree, with the keys not read yet.
pub(super) struct Section {
    path: String,
    entries: Map<String, Value>,
}

impl Section {
    /// A table at `path` (`""` for the root).
    pub(super) fn new(path: impl Into<String>, entries: Map<String, Value>) -> Section {
        Section {
            path: path.into(),
            entries,
        }
    }

    /// The full key of `name` in this table, e.g. `rooms[0].port`.
    pub(super) fn key(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// Removes and returns the value of `name`.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.entries.remove(name)
    }

    /// Peeks at a string value without consuming it.
    pub(super) fn peek_str(&self, name: &str) -> Option<&str> {
        match &self.entries.get(name)?.kind {
            ValueKind::String(s) => Some(s),
            _ => None,
        }
    }

    /// Sets `name`, replacing what the file said (used for per-room environment overrides).
    pub(super) fn set(&mut self, name: &str, value: Value) {
        self.entries.insert(name.to_owned(), value);
    }
}

/// The problems found so far.
#[derive(Default)]
pub(super) struct Problems {
    pub(super) list: Vec<Problem>,
}

/// ", set by VAR" when the value came from the environment, so the user knows where to look.
fn origin_note(key: &str, value: &Value) -> String {
    match value.origin() {
        Some(CONFIG_ENV_ORIGIN) => format!(", set by {}", env_var_for(key)),
        Some(var) if var.starts_with(ENV_PREFIX) => format!(", set by {var}"),
        _ => String::new(),
    }
}

/// "a string", "an integer", … for messages that must not quote the value.
fn kind_name(value: &Value) -> &'static str {
    match value.kind {
        ValueKind::Nil => "nothing",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            "an integer"
        }
        ValueKind::Float(_) => "a decimal number",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a table",
        ValueKind::Array(_) => "an array",
    }
}

/// A short rendering of a (non-secret) value for messages.
pub(super) fn show(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(s) => quote(s),
        ValueKind::Boolean(b) => b.to_string(),
        ValueKind::I64(n) => n.to_string(),
        ValueKind::I128(n) => n.to_string(),
        ValueKind::U64(n) => n.to_string(),
        ValueKind::U128(n) => n.to_string(),
        ValueKind::Float(n) => n.to_string(),
        _ => kind_name(value).to_owned(),
    }
}

/// A string in double quotes, escaped, cut at 60 characters.
pub(super) fn quote(s: &str) -> String {
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{:?}…", cut)
    } else {
        format!("{s:?}")
    }
}

/// Human form of an accepted range.
fn range_text(range: &RangeInclusive<u64>, unit: &str) -> String {
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    if *range.end() == u64::MAX {
        format!("at least {}{unit}", range.start())
    } else {
        format!("{}–{}{unit}", range.start(), range.end())
    }
}

impl Problems {
    /// Records a problem.
    pub(super) fn push(
        &mut self,
        key: impl Into<String>,
        message: impl Into<String>,
        expected: impl Into<String>,
    ) {
        self.list.push(Problem::new(key, message, expected));
    }

    /// Records a problem about the value `value` of `key`, noting the environment variable it
    /// came from, if any.
    fn bad(&mut self, key: &str, value: &Value, message: String, expected: impl Into<String>) {
        let note = origin_note(key, value);
        self.push(key, format!("{message}{note}"), expected);
    }

    /// A string; `None` when absent or wrong.
    pub(super) fn string(&mut self, sec: &mut Section, name: &str) -> Option<String> {
        let value = sec.take(name)?;
        let key = sec.key(name);
        match value.kind {
            ValueKind::String(s) => Some(s),
            _ => {
                let msg = format!("must be a string, found {}", show(&value));
                self.bad(&key, &value, msg, "a string in double quotes");
                None
            }
        }
    }

    /// A string where `""` means "not set".
    pub(super) fn opt_string(&mut self, sec: &mut Section, name: &str) -> Option<String> {
        self.string(sec, name).filter(|s| !s.is_empty())
    }

    /// A secret string; messages never show the value. `""` means "not set".
    pub(super) fn secret(&mut self, sec: &mut Section, name: &str) -> Option<Secret> {
        let value = sec.take(name)?;
        let key = sec.key(name);
        match value.kind {
            ValueKind::String(s) if s.is_empty() => None,
            ValueKind::String(s) => Some(Secret::new(s)),
            _ => {
                let msg = format!("must be a string, found {}", kind_name(&value));
                self.bad(
                    &key,
                    &value,
                    msg,
                    format!("a string in double quotes, e.g. {name} = \"0123\""),
                );
                None
            }
        }
    }

    /// A whole number within `range`; strings (from the environment) are parsed.
    pub(super) fn uint(
        &mut self,
        sec: &mut Section,
        name: &str,
        range: RangeInclusive<u64>,
        unit: &str,
    ) -> Option<u64> {
        let expected = range_text(&range, unit);
        self.uint_with(sec, name, range, &expected)
    }

    /// [`Problems::uint`] with a custom description of what is accepted.
    pub(super) fn uint_with(
        &mut self,
        sec: &mut Section,
        name: &str,
        range: RangeInclusive<u64>,
        expected: &str,
    ) -> Option<u64> {
        let value = sec.take(name)?;
        let key = sec.key(name);
        let number: Option<i128> = match &value.kind {
            ValueKind::I64(n) => Some((*n).into()),
            ValueKind::I128(n) => Some(*n),
            ValueKind::U64(n) => Some((*n).into()),
            ValueKind::U128(n) => Some(i128::try_from(*n).unwrap_or(i128::MAX)),
            ValueKind::String(s) => match s.trim().parse::<i128>() {
                Ok(n) => Some(n),
                Err(_) => {
                    let msg = format!("{} is not a whole number", quote(s));
                    self.bad(&key, &value, msg, expected);
                    return None;
                }
            },
            _ => {
                let msg = format!("must be a whole number, found {}", show(&value));
                self.bad(&key, &value, msg, expected);
                return None;
            }
        };
        let number = number?;
        match u64::try_from(number) {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                let msg = format!("{number} is out of range");
                self.bad(&key, &value, msg, expected);
                None
            }
        }
    }

    /// A TCP port, 1–65535.
    pub(super) fn port(&mut self, sec: &mut Section, name: &str) -> Option<u16> {
        self.uint(sec, name, 1..=65535, "")
            .and_then(|n| u16::try_from(n).ok())
    }

    /// One of `choices` (compared case-insensitively); numbers are compared by their text, so
    /// `version = 5` works like `version = "5"`.
    pub(super) fn choice<T: Copy>(
        &mut self,
        sec: &mut Section,
        name: &str,
        choices: &[(&str, T)],
        expected: &str,
    ) -> Option<T> {
        let value = sec.take(name)?;
        let key = sec.key(name);
        let text = match &value.kind {
            ValueKind::String(s) => s.trim().to_owned(),
            ValueKind::Table(_) | ValueKind::Array(_) | ValueKind::Nil => String::new(),
            _ => show(&value),
        };
        match choices.iter().find(|(c, _)| c.eq_ignore_ascii_case(&text)) {
            Some((_, v)) => Some(*v),
            None => {
                let msg = format!("{} is not supported", show(&value));
                self.bad(&key, &value, msg, expected);
                None
            }
        }
    }

    /// A boolean; strings `true/false/yes/no/on/off/1/0` (from the environment) are accepted.
    pub(super) fn boolean(&mut self, sec: &mut Section, name: &str) -> Option<bool> {
        let value = sec.take(name)?;
        let key = sec.key(name);
        match &value.kind {
            ValueKind::Boolean(b) => Some(*b),
            ValueKind::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => {
                    let msg = format!("{} is not a boolean", quote(s));
                    self.bad(&key, &value, msg, "true or false");
                    None
                }
            },
            _ => {
                let msg = format!("must be true or false, found {}", show(&value));
                self.bad(&key, &value, msg, "true or false");
                None
            }
        }
    }

    /// A list of strings: a TOML array, or a comma-separated string (the only way to give a list
    /// in an environment variable).
    pub(super) fn list(&mut self, sec: &mut Section, name: &str) -> Option<Vec<String>> {
        let value = sec.take(name)?;
        let key = sec.key(name);
        let expected = "an array of strings, e.g. [\"a\", \"b\"] (or \"a,b\" in the environment)";
        match &value.kind {
            ValueKind::String(s) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            ValueKind::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match &item.kind {
                        ValueKind::String(s) => out.push(s.clone()),
                        _ => {
                            let msg = format!("must be a string, found {}", show(item));
                            self.bad(&format!("{key}[{i}]"), item, msg, "a string");
                        }
                    }
                }
                Some(out)
            }
            _ => {
                let msg = format!("must be a list, found {}", show(&value));
                self.bad(&key, &value, msg, expected);
                None
            }
        }
    }

    /// A sub-table; `None` when absent or not a table.
    pub(super) fn table(&mut self, sec: &mut Section, name: &str) -> Option<Section> {
        let value = sec.take(name)?;
        let key = sec.key(name);
        match value.kind {
            ValueKind::Table(entries) => Some(Section::new(key, entries)),
            _ => {
                let msg = format!("must be a table, found {}", show(&value));
                self.bad(&key, &value, msg, format!("a [{key}] section"));
                None
            }
        }
    }

    /// An array of values; `None` when absent or not an array.
    pub(super) fn array(&mut self, sec: &mut Section, name: &str) -> Option<Vec<Value>> {
        let value = sec.take(name)?;
        let key = sec.key(name);
        match value.kind {
            ValueKind::Array(items) => Some(items),
            _ => {
                let msg = format!("must be an array of tables, found {}", show(&value));
                self.bad(&key, &value, msg, format!("[[{key}]] sections"));
                None
            }
        }
    }

    /// Reports every key of `sec` that was not read as unknown (sorted, with a suggestion when a
    /// known key is close).
    pub(super) fn finish(&mut self, sec: Section, known: &[&str]) {
        let mut left: Vec<(String, Value)> = sec.entries.into_iter().collect();
        left.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, value) in left {
            let key = if sec.path.is_empty() {
                name.clone()
            } else {
                format!("{}.{name}", sec.path)
            };
            let hint = known
                .iter()
                .filter(|k| edit_distance(k, &name) <= 2.max(name.len() / 4))
                .min_by_key(|k| edit_distance(k, &name))
                .map(|k| format!("; did you mean {k:?}?"))
                .unwrap_or_default();
            self.bad(
                &key,
                &value,
                format!("unknown key{hint}"),
                format!("one of: {}", known.join(", ")),
            );
        }
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j] + 1).min(row[j + 1] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("password", "passwrd"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn env_names() {
        assert_eq!(
            env_var_for("mqtt.tls.ca_file"),
            "TRUECONF2MQTT__MQTT__TLS__CA_FILE"
        );
    }
}
