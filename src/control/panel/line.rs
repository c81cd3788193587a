//! The panel protocol's lines: splitting a byte stream into bounded lines and parsing a line
//! into a [`Request`]. Pure: no I/O (fuzzed by `fuzz/fuzz_targets/panel_line.rs`).
//!
//! ```text
//! AUTH <token>                 SUBSCRIBE <room>|*         UNSUBSCRIBE <room>|*
//! GET <room> <field>           SET <room> <field> <value, spaces allowed>
//! CALL <room> <method> [<json>]                          PING       HELP       QUIT
//! ```
//!
//! Keywords are case-insensitive; words are separated by spaces or tabs; a line ends with LF
//! or CRLF. The value of `SET` and the JSON of `CALL` are the rest of the line.

use bytes::BytesMut;

/// Longest line accepted (bytes, without the line end).
pub const MAX_LINE: usize = 8192;

/// One client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `AUTH <token>`.
    Auth(&'a str),
    /// `SUBSCRIBE <room>|*`.
    Subscribe(Target<'a>),
    /// `UNSUBSCRIBE <room>|*`.
    Unsubscribe(Target<'a>),
    /// `GET <room> <field>`.
    Get {
        /// Room id.
        room: &'a str,
        /// Field name.
        field: &'a str,
    },
    /// `SET <room> <field> <value>`.
    Set {
        /// Room id.
        room: &'a str,
        /// Field name.
        field: &'a str,
        /// The rest of the line.
        value: &'a str,
    },
    /// `CALL <room> <method> [<json>]`.
    Call {
        /// Room id.
        room: &'a str,
        /// Catalog method.
        method: &'a str,
        /// Parameters (JSON object text; empty for none).
        params: &'a str,
    },
    /// `PING`.
    Ping,
    /// `HELP`.
    Help,
    /// `QUIT`.
    Quit,
    /// An empty line (ignored).
    Empty,
}

/// The rooms a subscription is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `*`: every room.
    All,
    /// One room.
    Room(&'a str),
}

/// Why a line is not a request; the text of the `ERROR` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not a keyword of the protocol.
    #[error("unknown command '{0}'; send HELP")]
    Unknown(String),
    /// A keyword with the wrong words after it.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// The line exceeds [`MAX_LINE`].
    #[error("line too long (at most {MAX_LINE} bytes); ignored")]
    TooLong,
    /// The line is not UTF-8.
    #[error("line is not UTF-8 text; ignored")]
    NotUtf8,
    /// A control character other than tab (a CR before the LF is fine).
    #[error("line holds a control character (only tab is allowed); ignored")]
    Control,
}

/// Splits off the first word: `(word, rest with leading blanks removed)`.
fn word(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches([' ', '\t']);
    match text.find([' ', '\t']) {
        Some(end) => (&text[..end], text[end..].trim_start_matches([' ', '\t'])),
        None => (text, ""),
    }
}

/// Parses one line (without its line end; a trailing CR is ignored).
pub fn parse(line: &str) -> Result<Request<'_>, LineError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let line = line.trim_end_matches([' ', '\t']);
    // A stray CR, NUL or escape inside a word would reach room ids, methods and logs.
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(LineError::Control);
    }
    let (keyword, rest) = word(line);
    let usage = LineError::Usage;
    let upper = keyword.to_ascii_uppercase();
    let no_more = |request: Request<'static>, text: &'static str| {
        if rest.is_empty() {
            Ok(request)
        } else {
            Err(usage(text))
        }
    };
    match upper.as_str() {
        "" => Ok(Request::Empty),
        "AUTH" => match rest {
            "" => Err(usage("AUTH <token>")),
            token => Ok(Request::Auth(token)),
        },
        "SUBSCRIBE" | "UNSUBSCRIBE" => {
            let (room, extra) = word(rest);
            let text = if upper == "SUBSCRIBE" {
                "SUBSCRIBE <room>|*"
            } else {
                "UNSUBSCRIBE <room>|*"
            };
            if room.is_empty() || !extra.is_empty() {
                return Err(usage(text));
            }
            let target = if room == "*" {
                Target::All
            } else {
                Target::Room(room)
            };
            Ok(if upper == "SUBSCRIBE" {
                Request::Subscribe(target)
            } else {
                Request::Unsubscribe(target)
            })
        }
        "GET" => {
            let (room, rest) = word(rest);
            let (field, extra) = word(rest);
            if field.is_empty() || !extra.is_empty() {
                return Err(usage("GET <room> <field>"));
            }
            Ok(Request::Get { room, field })
        }
        "SET" => {
            let (room, rest) = word(rest);
            let (field, value) = word(rest);
            if value.is_empty() {
                return Err(usage("SET <room> <field> <value>"));
            }
            Ok(Request::Set { room, field, value })
        }
        "CALL" => {
            let (room, rest) = word(rest);
            let (method, params) = word(rest);
            if method.is_empty() {
                return Err(usage("CALL <room> <method> [<json object>]"));
            }
            Ok(Request::Call {
                room,
                method,
                params,
            })
        }
        "PING" => no_more(Request::Ping, "PING"),
        "HELP" => Ok(Request::Help),
        "QUIT" | "EXIT" => no_more(Request::Quit, "QUIT"),
        _ => Err(LineError::Unknown(crate::surface::fields::shorten(keyword))),
    }
}

/// Bounded line framing of a byte stream: bytes in ([`Lines::buffer`]), lines out.
#[derive(Debug, Default)]
pub struct Lines {
    buffer: BytesMut,
    /// Skipping the rest of an over-long line.
    discarding: bool,
}

impl Lines {
    /// Where to read more bytes into.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buffer
    }

    /// The next complete line (without LF), an error for one too long or not UTF-8, or
    /// `None` until more bytes come. The buffer never holds more than [`MAX_LINE`] bytes and
    /// one read.
    pub fn next_line(&mut self) -> Option<Result<String, LineError>> {
        loop {
            let newline = self.buffer.iter().position(|b| *b == b'\n');
            match newline {
                Some(at) => {
                    let line = self.buffer.split_to(at + 1);
                    if std::mem::take(&mut self.discarding) {
                        continue;
                    }
                    let line = &line[..at];
                    if line.len() > MAX_LINE + 1 {
                        return Some(Err(LineError::TooLong));
                    }
                    return Some(match std::str::from_utf8(line) {
                        Ok(text) => Ok(text.to_owned()),
                        Err(_) => Err(LineError::NotUtf8),
                    });
                }
                None if self.buffer.len() > MAX_LINE + 1 => {
                    self.buffer.clear();
                    if !std::mem::replace(&mut self.discarding, true) {
                        return Some(Err(LineError::TooLong));
                    }
                    return None;
                }
                None => return None,
            }
        }
    }
}

/// A value made safe for a line: line breaks and other control characters become spaces.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar() {
        assert_eq!(parse("auth s3cret\r"), Ok(Request::Auth("s3cret")));
        // Found by the fuzzer: a CR inside the line stayed in the method's word.
        for line in [
            "CALL bS\t\u{1}\0\r\tx",
            "SET r mic_muted ON\rOFF",
            "GET r\u{1b}[31m f",
        ] {
            assert_eq!(parse(line), Err(LineError::Control), "{line:?}");
        }
        assert_eq!(parse("SUBSCRIBE *"), Ok(Request::Subscribe(Target::All)));
        assert_eq!(
            parse("subscribe boardroom"),
            Ok(Request::Subscribe(Target::Room("boardroom")))
        );
        assert_eq!(
            parse("GET boardroom mic_muted"),
            Ok(Request::Get {
                room: "boardroom",
                field: "mic_muted"
            })
        );
        assert_eq!(
            parse("SET  boardroom\tcall  alice@example.com now please \r"),
            Ok(Request::Set {
                room: "boardroom",
                field: "call",
                value: "alice@example.com now please"
            })
        );
        assert_eq!(
            parse(r#"CALL boardroom call {"peerId": "a b"}"#),
            Ok(Request::Call {
                room: "boardroom",
                method: "call",
                params: r#"{"peerId": "a b"}"#
            })
        );
        assert_eq!(
            parse("CALL boardroom getAppState"),
            Ok(Request::Call {
                room: "boardroom",
                method: "getAppState",
                params: ""
            })
        );
        assert_eq!(parse("ping"), Ok(Request::Ping));
        assert_eq!(parse(""), Ok(Request::Empty));
        assert_eq!(parse(" \r"), Ok(Request::Empty));
        for bad in [
            "SET r f",
            "GET r",
            "GET r f x",
            "SUBSCRIBE",
            "PING x",
            "AUTH",
            "CALL r",
        ] {
            assert!(matches!(parse(bad), Err(LineError::Usage(_))), "{bad}");
        }
        assert!(matches!(parse("FOO"), Err(LineError::Unknown(_))));
    }

    #[test]
    fn lines_are_bounded() {
        let mut lines = Lines::default();
        lines.buffer().extend_from_slice(b"PING\r\nGET a");
        assert_eq!(lines.next_line(), Some(Ok("PING\r".into())));
        assert_eq!(lines.next_line(), None);
        lines.buffer().extend_from_slice(b" b\n\xff\n");
        assert_eq!(lines.next_line(), Some(Ok("GET a b".into())));
        assert_eq!(lines.next_line(), Some(Err(LineError::NotUtf8)));
        lines.buffer().extend_from_slice(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(lines.next_line(), Some(Err(LineError::TooLong)));
        lines.buffer().extend_from_slice(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(lines.next_line(), None, "one error per long line");
        lines.buffer().extend_from_slice(b"xx\nPING\n");
        assert_eq!(lines.next_line(), Some(Ok("PING".into())));
        assert_eq!(one_line("a\r\nb\tc"), "a  b c");
    }
}
