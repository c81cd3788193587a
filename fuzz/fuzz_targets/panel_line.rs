//! The panel protocol's lines (`[panel] listen`): bytes → bounded line framing → parser, as a
//! connection reads them (`control::panel::line`).
//!
//! Input: any bytes, fed to the framer in two pieces (split at the first byte's value) so
//! lines that span reads are covered. Checked:
//!
//! * `Lines::next_line` and `parse` never panic;
//! * no line handed out is longer than `MAX_LINE` (plus a trailing CR);
//! * every error is a non-empty string;
//! * parsed words hold no line end, and the words of GET/SET/CALL are non-empty where the
//!   grammar requires them;
//! * `one_line` leaves no control character.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trueconf2mqtt::control::panel::line::{Lines, MAX_LINE, Request, Target, one_line, parse};

fn check(line: &str) {
    assert!(line.len() <= MAX_LINE + 1, "a line of {} bytes", line.len());
    assert!(!line.contains('\n'));
    match parse(line) {
        Err(error) => assert!(!error.to_string().is_empty()),
        Ok(request) => {
            let words: Vec<&str> = match request {
                Request::Auth(token) => vec![token],
                Request::Subscribe(Target::Room(room)) | Request::Unsubscribe(Target::Room(room)) => {
                    vec![room]
                }
                Request::Get { room, field } => vec![room, field],
                Request::Set { room, field, value } => vec![room, field, value],
                Request::Call { room, method, .. } => vec![room, method],
                _ => vec![],
            };
            for word in words {
                assert!(!word.is_empty(), "an empty word in {line:?}");
                assert!(!word.ends_with('\r'), "a CR kept in {line:?}");
            }
        }
    }
    assert!(!one_line(line).chars().any(char::is_control));
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b).min(data.len()));
    let mut lines = Lines::default();
    for piece in [&data[..split], &data[split..]] {
        lines.buffer().extend_from_slice(piece);
        while let Some(line) = lines.next_line() {
            match line {
                Ok(line) => check(&line),
                Err(error) => assert!(!error.to_string().is_empty()),
            }
        }
    }
    // A whole input that is one line: parsed directly too.
    if let Ok(text) = std::str::from_utf8(data)
        && text.len() <= MAX_LINE
        && !text.contains('\n')
    {
        check(text);
    }
});
