//! Safe printing of text an attacker controls: remote file names, log content.
//!
//! A compromised server chooses its file names and its log lines. Printed raw to an admin's
//! terminal, escape sequences in them can rewrite the screen, hide lines or worse. Everything that
//! came from a remote host goes through [`Shown`] (names, in messages) or [`escape_for_terminal`]
//! (content, when stdout is a terminal) before it is printed.

use std::fmt;

/// Displays a string with control and invisible formatting characters escaped (`\u{1b}`), so
/// what is printed is exactly one line and shows every character the string holds.
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if is_dangerous(c) || c == '\\' {
                if c == '\\' {
                    f.write_str("\\\\")?;
                } else {
                    write!(f, "\\u{{{:x}}}", c as u32)?;
                }
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// Control characters, and formatting characters that change how text around them looks
/// (bidirectional overrides, zero-width characters, the byte-order mark).
fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{fffd}')
}

/// Copies log content for a terminal: newlines and tabs pass, every other control byte and every
/// byte that is not part of valid UTF-8 is written as rsyslog writes them, `#` and three octal
/// digits (`#033` for ESC), and dangerous formatting characters likewise byte by byte.
pub fn escape_for_terminal(input: &[u8], out: &mut Vec<u8>) {
    let mut rest = input;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                escape_str(s, out);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // `good` is valid UTF-8: from_utf8 said so.
                escape_str(std::str::from_utf8(good).unwrap_or_default(), out);
                let n = e.error_len().unwrap_or(bad.len());
                for &b in &bad[..n] {
                    octal(b, out);
                }
                rest = &bad[n..];
            }
        }
    }
}

fn escape_str(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        if c == '\n' || c == '\t' || !is_dangerous(c) {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        } else {
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                octal(b, out);
            }
        }
    }
}

fn octal(b: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("#{b:03o}").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_escapes_controls_and_bidi() {
        assert_eq!(Shown("auth.log").to_string(), "auth.log");
        assert_eq!(Shown("a\x1b[2Jb").to_string(), "a\\u{1b}[2Jb");
        assert_eq!(Shown("x\ny").to_string(), "x\\u{a}y");
        assert_eq!(
            Shown("evil\u{202e}gol.txt").to_string(),
            "evil\\u{202e}gol.txt"
        );
        assert_eq!(
            Shown("a\\u{1b}").to_string(),
            "a\\\\u{1b}",
            "no ambiguity with escapes"
        );
        assert_eq!(Shown("café").to_string(), "café");
    }

    #[test]
    fn terminal_escape_keeps_text_and_neutralises_the_rest() {
        let mut out = Vec::new();
        escape_for_terminal(b"ok line\n\ttab\x1b]0;pwned\x07 \xff\xfe end\r\n", &mut out);
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "ok line\n\ttab#033]0;pwned#007 #377#376 end#015\n"
        );
        let mut out = Vec::new();
        escape_for_terminal("naïve \u{9b}31m".as_bytes(), &mut out);
        assert_eq!(String::from_utf8(out).expect("ascii"), "naïve #302#23331m");
    }
}
