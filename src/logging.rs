//! The daemon's log output: one record per line, whatever the logged values contain.
//!
//! Logged values come from the network (MQTT topics and payloads, Room frames, web pages), so
//! they are hostile input. Three guarantees, for both formats:
//!
//! - **One record, one line.** Every control character a record contains (newline, carriage
//!   return, NUL, escape sequences…) is written escaped (`\n`, `\x1b`, `\u{9b}`); only the
//!   record's final newline is written as is. A payload cannot forge a log line or drive the
//!   terminal.
//! - **Colour only for a person:** when stderr is a terminal and `NO_COLOR` is unset or empty
//!   (<https://no-color.org>); never into files, pipes or journald. The colour codes are the
//!   formatter's own; escape characters inside values are escaped by it.
//! - **JSON keys are unique.** `--log-format json` writes `timestamp`, `level`, `target`,
//!   `message`, then the event's fields; a field that would repeat a key (a field called
//!   `message`, say) is written as `field_<name>` instead of a second key.

use std::fmt::{self, Write as _};
use std::io::{self, IsTerminal, Write};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Whether text logs may be coloured: stderr is a terminal and `NO_COLOR` is unset or empty.
pub fn colour_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && io::stderr().is_terminal()
}

/// How [`escape_controls`] writes a control character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Text records without colour: `\n`, `\x1b`, `\u{9b}`.
    Text,
    /// Text records with the formatter's colour codes: as `Text`, but ESC passes (the
    /// formatter escapes ESC inside values itself).
    TextColour,
    /// JSON records (serde_json escapes C0 already): `\u009b`, valid inside a JSON string.
    Json,
}

/// A [`MakeWriter`] that writes each record to `inner` with its control characters escaped.
///
/// The formatter hands over one whole record per `write` call (it formats into a buffer first);
/// a trailing newline is the record's end and stays.
#[derive(Debug, Clone)]
pub struct OneLine<M> {
    inner: M,
    escape: Escape,
}

impl<M> OneLine<M> {
    /// Wraps `inner`, escaping in the given style.
    pub fn new(inner: M, escape: Escape) -> OneLine<M> {
        OneLine { inner, escape }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLine<M> {
    type Writer = OneLineWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter {
            inner: self.inner.make_writer(),
            escape: self.escape,
        }
    }
}

/// The writer of [`OneLine`].
#[derive(Debug)]
pub struct OneLineWriter<W> {
    inner: W,
    escape: Escape,
}

impl<W: Write> Write for OneLineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, end) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let mut line = escape_controls(body, self.escape);
        line.push_str(end);
        self.inner.write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `text` with every control character (C0, DEL, C1) escaped in the given style.
pub fn escape_controls(text: &str, style: Escape) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\x1b' if style == Escape::TextColour => out.push(ch),
            ch if style == Escape::Json && ch.is_control() => {
                let _ = write!(out, "\\u{:04x}", ch as u32);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ch if (ch as u32) < 0x20 || ch == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", ch as u32);
            }
            ch if ch.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", ch as u32);
            }
            ch => out.push(ch),
        }
    }
    out
}

/// One JSON object per record, with unique keys (see the module documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

/// Keys the record itself uses; fields by these names are renamed.
const RECORD_KEYS: &[&str] = &["timestamp", "level", "target", "message", "spans"];

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut record = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        record.insert("timestamp".into(), timestamp.into());
        record.insert("level".into(), event.metadata().level().as_str().into());
        record.insert("target".into(), event.metadata().target().into());
        // The macro's message is the last field named `message`; an earlier one is a field.
        let message = fields.0.iter().rposition(|(name, _)| *name == "message");
        if let Some(at) = message {
            let (_, text) = fields.0.remove(at);
            record.insert("message".into(), text);
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope.from_root().map(|span| span.name().into()).collect();
            record.insert("spans".into(), spans.into());
        }
        for (name, value) in fields.0 {
            let mut key = if RECORD_KEYS.contains(&name) || record.contains_key(name) {
                format!("field_{name}")
            } else {
                name.to_owned()
            };
            let mut n = 2;
            while record.contains_key(&key) {
                key = format!("field_{name}_{n}");
                n += 1;
            }
            record.insert(key, value);
        }
        writeln!(writer, "{}", Value::Object(record))
    }
}

/// An event's fields in the order they were recorded.
#[derive(Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), value.into()));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.into()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push((field.name(), format!("{value:?}").into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_colour_codes_kept_only_when_asked() {
        let hostile = "a\nb\r\0c\x1b]0;t\x07d\u{9b}e\x7f\tf";
        assert_eq!(
            escape_controls(hostile, Escape::Text),
            "a\\nb\\r\\x00c\\x1b]0;t\\x07d\\u{9b}e\\x7f\\tf"
        );
        assert_eq!(escape_controls("\x1b[2mx", Escape::TextColour), "\x1b[2mx");
        assert_eq!(escape_controls("\x1b[2mx", Escape::Text), "\\x1b[2mx");
        assert_eq!(
            escape_controls("plain, ünïcode", Escape::Text),
            "plain, ünïcode"
        );
        let json = escape_controls("{\"m\":\"a\u{9b}b\x7f\"}", Escape::Json);
        assert_eq!(json, "{\"m\":\"a\\u009bb\\u007f\"}");
        let parsed: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["m"], "a\u{9b}b\x7f");
    }

    #[test]
    fn a_record_keeps_only_its_own_newline() {
        let mut out = Vec::new();
        let mut writer = OneLineWriter {
            inner: &mut out,
            escape: Escape::Text,
        };
        writer.write_all(b"INFO x=1\nFORGED\n").unwrap();
        assert_eq!(out, b"INFO x=1\\nFORGED\n");
    }
}
