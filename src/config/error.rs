//! What went wrong with a configuration: a list of precise problems.

use std::fmt;

/// One thing wrong with the configuration: which key, what is wrong, what is expected.
///
/// Messages never contain the value of a secret (MQTT password, Room PIN) nor the content of a
/// file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a dotted key such as `mqtt.port` or `rooms[1].id`, an environment variable name, or
    /// the configuration file for syntax errors.
    pub key: String,
    /// What is wrong, e.g. `70000 is out of range`.
    pub message: String,
    /// What would be accepted, e.g. `1–65535`.
    pub expected: String,
}

impl Problem {
    /// A problem at `key`.
    pub fn new(
        key: impl Into<String>,
        message: impl Into<String>,
        expected: impl Into<String>,
    ) -> Problem {
        Problem {
            key: key.into(),
            message: message.into(),
            expected: expected.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        if !self.expected.is_empty() {
            write!(f, " (expected {})", self.expected)?;
        }
        Ok(())
    }
}

/// The configuration could not be loaded: every problem found, not just the first.
///
/// `Display` prints one problem per line, e.g.
/// `rooms[0].port: 70000 is out of range (expected 1–65535)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// An error made of these problems (at least one is expected).
    pub fn new(problems: Vec<Problem>) -> ConfigError {
        ConfigError { problems }
    }

    /// The problems, in the order they were found (file order, then cross-checks).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Takes the problems out.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

impl From<Problem> for ConfigError {
    fn from(problem: Problem) -> ConfigError {
        ConfigError::new(vec![problem])
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Maps an error of the `config` crate to a problem, keeping the key it names and dropping the
/// values it quotes (they may be secrets) and the source excerpt a TOML syntax error carries.
pub(super) fn from_config_crate(
    error: ::config::ConfigError,
    file: &str,
    text: Option<&str>,
) -> Problem {
    use ::config::ConfigError as E;
    match error {
        E::FileParse { cause, .. } => syntax_problem(&cause.to_string(), file, text),
        E::Type {
            key,
            expected,
            unexpected,
            ..
        } => Problem::new(
            key.unwrap_or_else(|| file.to_owned()),
            format!(
                "has the wrong type ({})",
                unexpected_kind(&unexpected.to_string())
            ),
            expected,
        ),
        E::NotFound(key) => Problem::new(key, "is missing", "a value"),
        E::At { error, key, .. } => {
            let mut problem = from_config_crate(*error, file, text);
            if let Some(key) = key {
                problem.key = key;
            }
            problem
        }
        E::Frozen => Problem::new(file, "the configuration is frozen", "a fresh builder"),
        // Messages of these kinds do not carry values in the sources we use (TOML text and
        // string-valued environment variables); keep the text.
        other => Problem::new(file, other.to_string(), "a valid configuration"),
    }
}

/// The kind of a value from the `config` crate's description of it, without the value itself
/// (its `Unexpected` type cannot be named from outside the crate).
fn unexpected_kind(description: &str) -> &'static str {
    if description.starts_with("boolean") {
        "found a boolean"
    } else if description.contains("integer") {
        "found an integer"
    } else if description.starts_with("floating") {
        "found a number"
    } else if description.starts_with("string") {
        "found a string"
    } else if description.starts_with("sequence") {
        "found an array"
    } else if description.starts_with("map") {
        "found a table"
    } else {
        "found nothing"
    }
}

/// Turns the text of a TOML syntax error into a problem without the excerpt of the offending line
/// (which may hold a secret). The key is guessed from the line the error points at.
pub(super) fn syntax_problem(error_text: &str, file: &str, text: Option<&str>) -> Problem {
    let mut position: Option<(usize, usize)> = None;
    let mut message = Vec::new();
    for line in error_text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("TOML parse error at line ") {
            position = parse_position(rest);
            continue;
        }
        // Excerpt lines look like `  |`, `12 | pin = "…`, `   |      ^^^`.
        let excerpt = trimmed
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start()
            .starts_with('|');
        if excerpt || trimmed.is_empty() {
            continue;
        }
        message.push(trimmed.to_owned());
    }
    let message = if message.is_empty() {
        "invalid TOML".to_owned()
    } else {
        message.join("; ")
    };
    match position {
        Some((line, column)) => {
            let key = text
                .and_then(|t| key_at_line(t, line))
                .unwrap_or_else(|| format!("{file}:{line}"));
            Problem::new(
                key,
                format!("TOML syntax error at line {line}, column {column} of {file}: {message}"),
                "valid TOML: strings in double quotes, one key per line",
            )
        }
        None => Problem::new(
            file,
            format!("TOML syntax error: {message}"),
            "valid TOML: strings in double quotes, one key per line",
        ),
    }
}

fn parse_position(rest: &str) -> Option<(usize, usize)> {
    let (line, column) = rest.split_once(", column ")?;
    Some((line.trim().parse().ok()?, column.trim().parse().ok()?))
}

/// The dotted key that line `line` (1-based) of a TOML text sets, if it is a plain `key = value`
/// or a table header.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let mut section = String::new();
    for (n, raw) in text.lines().enumerate() {
        let l = raw.trim();
        let is_header = l.starts_with('[');
        if is_header {
            let name = l.trim_start_matches('[');
            let name = name.split(']').next().unwrap_or("").trim();
            section = name.to_owned();
        }
        if n + 1 == line {
            if is_header {
                return (!section.is_empty()).then(|| section.clone());
            }
            let (key, _) = l.split_once('=')?;
            let key = key.trim().trim_matches('"');
            if key.is_empty() || key.contains(char::is_whitespace) {
                return None;
            }
            return Some(if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    None
}
