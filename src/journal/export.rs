//! The journal export format (systemd's JOURNAL_EXPORT_FORMATS): what loghost stores for each
//! entry, byte for byte what `journalctl -o export` prints for it (systemd ≥ 254, which adds
//! `__SEQNUM` and `__SEQNUM_ID`), so `systemd-journal-remote` turns a stored day back into a
//! journal file. Also the way back (parsing stored entries) and journalctl's `short` and `json`
//! output for `loghost cat`.

use super::file::Entry;

/// Appends `e` (of a file whose seqnum id is `seqnum_id`) in export format to `out`. (The hot
/// path of reading a journal: written straight into `out`, no allocation.)
pub fn write_entry(out: &mut Vec<u8>, seqnum_id: &[u8; 16], e: &Entry) {
    use std::io::Write as _;
    out.extend_from_slice(b"__CURSOR=s=");
    hex_into(out, seqnum_id);
    let _ = write!(out, ";i={:x};b=", e.seqnum);
    hex_into(out, &e.boot_id);
    let _ = write!(
        out,
        ";m={:x};t={:x};x={:x}\n__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n__SEQNUM={}\n\
         __SEQNUM_ID=",
        e.monotonic, e.realtime, e.xor_hash, e.realtime, e.monotonic, e.seqnum
    );
    hex_into(out, seqnum_id);
    out.extend_from_slice(b"\n_BOOT_ID=");
    hex_into(out, &e.boot_id);
    out.push(b'\n');
    for f in &e.fields {
        // The boot id was printed from the entry's header (as journalctl does).
        if f.starts_with(b"_BOOT_ID=") {
            continue;
        }
        if printable(f) {
            out.extend_from_slice(f);
        } else {
            let eq = f.iter().position(|&b| b == b'=').unwrap_or(f.len());
            let value = f.get(eq + 1..).unwrap_or_default();
            out.extend_from_slice(&f[..eq]);
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// 32 lowercase hex digits.
fn hex_into(out: &mut Vec<u8>, id: &[u8; 16]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in id {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// systemd's `utf8_is_printable_newline(…, false)`: valid UTF-8 without control characters
/// other than TAB (and without LF).
fn printable(b: &[u8]) -> bool {
    // Most fields are plain ASCII text.
    if b.iter().all(|&c| (0x20..0x7f).contains(&c) || c == b'\t') {
        return true;
    }
    let Ok(s) = std::str::from_utf8(b) else {
        return false;
    };
    !s.chars()
        .any(|c| (c < ' ' && c != '\t') || ('\u{7f}'..='\u{9f}').contains(&c))
}

/// One exported entry, parsed back: its fields in order (`__CURSOR` and the other `__` fields
/// included), values binary-safe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exported {
    pub fields: Vec<(String, Vec<u8>)>,
}

impl Exported {
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| &v[..])
    }

    fn get_str(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn realtime(&self) -> Option<u64> {
        self.get_str("__REALTIME_TIMESTAMP")?.parse().ok()
    }

    pub fn seqnum(&self) -> Option<u64> {
        self.get_str("__SEQNUM")?.parse().ok()
    }
}

/// Why stored export bytes could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("malformed journal export data at byte {at}: {why}")]
pub struct ParseError {
    pub at: usize,
    pub why: &'static str,
}

/// One line (or binary field) of the export format, starting at byte `i`.
enum Token<'a> {
    /// The empty line that ends an entry.
    End,
    Field {
        name: &'a [u8],
        value: &'a [u8],
    },
}

/// Reads the token at `i`: the token and where the next one starts. Every length is checked
/// against what is left, so hostile input costs at most its own size.
fn token(data: &[u8], i: usize) -> Result<(Token<'_>, usize), ParseError> {
    let Some(nl) = memchr::memchr(b'\n', &data[i..]) else {
        return Err(ParseError {
            at: i,
            why: "a field without its line end",
        });
    };
    let line = &data[i..i + nl];
    if line.is_empty() {
        return Ok((Token::End, i + 1));
    }
    if let Some(eq) = memchr::memchr(b'=', line) {
        check_name(&line[..eq], i)?;
        return Ok((
            Token::Field {
                name: &line[..eq],
                value: &line[eq + 1..],
            },
            i + nl + 1,
        ));
    }
    check_name(line, i)?;
    let at = i + nl + 1;
    let Some(len) = data.get(at..at + 8) else {
        return Err(ParseError {
            at,
            why: "a binary field without its length",
        });
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(len);
    let start = at + 8;
    let end = usize::try_from(u64::from_le_bytes(n))
        .ok()
        .and_then(|n| start.checked_add(n))
        .filter(|&end| end < data.len())
        .ok_or(ParseError {
            at,
            why: "a binary field longer than the data",
        })?;
    if data[end] != b'\n' {
        return Err(ParseError {
            at: end,
            why: "a binary field not followed by a line end",
        });
    }
    Ok((
        Token::Field {
            name: line,
            value: &data[start..end],
        },
        end + 1,
    ))
}

/// Parses export-format bytes into entries.
pub fn parse(data: &[u8]) -> Result<Vec<Exported>, ParseError> {
    let mut out = Vec::new();
    let mut cur = Exported::default();
    let mut i = 0;
    while i < data.len() {
        let (t, next) = token(data, i)?;
        match t {
            Token::End if !cur.fields.is_empty() => out.push(std::mem::take(&mut cur)),
            Token::End => {}
            Token::Field { name, value } => cur
                .fields
                .push((String::from_utf8_lossy(name).into_owned(), value.to_vec())),
        }
        i = next;
    }
    if !cur.fields.is_empty() {
        return Err(ParseError {
            at: data.len(),
            why: "the last entry has no empty line after it",
        });
    }
    Ok(out)
}

/// Where each entry of export-format bytes is: `[start, end)`, its closing empty line
/// included. Checks the same structure as [`parse`] but keeps nothing (an audit sample picks one
/// entry of a stored frame and compares its bytes).
pub fn entry_spans(data: &[u8]) -> Result<Vec<(usize, usize)>, ParseError> {
    let mut out = Vec::new();
    let (mut start, mut fields, mut i) = (0, 0, 0);
    while i < data.len() {
        let (t, next) = token(data, i)?;
        match t {
            Token::End => {
                if fields > 0 {
                    out.push((start, next));
                }
                fields = 0;
                start = next;
            }
            Token::Field { .. } => fields += 1,
        }
        i = next;
    }
    if fields > 0 {
        return Err(ParseError {
            at: data.len(),
            why: "the last entry has no empty line after it",
        });
    }
    Ok(out)
}

fn check_name(b: &[u8], at: usize) -> Result<(), ParseError> {
    if b.is_empty()
        || b.len() > 256
        || !b
            .iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
    {
        return Err(ParseError {
            at,
            why: "not a field name",
        });
    }
    Ok(())
}

/// journalctl's `short` line for an entry (time in UTC): `Dec 02 03:15:03 web1 sshd[1048]: …`.
/// Continuation lines of a multi-line message are indented under the first.
pub fn short(e: &Exported) -> Vec<u8> {
    let mut out = Vec::new();
    let time = e
        .realtime()
        .and_then(|us| jiff::Timestamp::from_microsecond(us as i64).ok())
        .map(|t| t.strftime("%b %d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into());
    let host = e.get("_HOSTNAME").unwrap_or(b"-");
    let ident = e
        .get("SYSLOG_IDENTIFIER")
        .or_else(|| e.get("_COMM"))
        .unwrap_or(b"unknown");
    let pid = e.get("_PID").or_else(|| e.get("SYSLOG_PID"));
    out.extend_from_slice(time.as_bytes());
    out.push(b' ');
    out.extend_from_slice(host);
    out.push(b' ');
    out.extend_from_slice(ident);
    if let Some(pid) = pid {
        out.push(b'[');
        out.extend_from_slice(pid);
        out.push(b']');
    }
    out.extend_from_slice(b": ");
    let indent = out.len();
    match e.get("MESSAGE") {
        None => {}
        Some(m) if std::str::from_utf8(m).is_err() => {
            out.extend_from_slice(format!("[{} B blob data]", m.len()).as_bytes());
        }
        Some(m) => {
            let m = m.strip_suffix(b"\n").unwrap_or(m);
            for (k, line) in m.split(|&b| b == b'\n').enumerate() {
                if k > 0 {
                    out.push(b'\n');
                    out.extend(std::iter::repeat_n(b' ', indent));
                }
                out.extend_from_slice(line);
            }
        }
    }
    out.push(b'\n');
    out
}

/// journalctl's `json` line for an entry: text values as strings, binary values as arrays of
/// byte values, a field present several times as an array of those.
pub fn json(e: &Exported) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    for (name, value) in &e.fields {
        let v = match std::str::from_utf8(value) {
            Ok(s) if printable(value) || s.contains('\n') => serde_json::Value::String(s.into()),
            _ => serde_json::Value::Array(value.iter().map(|&b| b.into()).collect()),
        };
        match map.get_mut(name) {
            None => {
                map.insert(name.clone(), v);
            }
            Some(serde_json::Value::Array(a)) if !a.iter().all(|x| x.is_number()) => a.push(v),
            Some(old) => {
                let first = old.take();
                *old = serde_json::Value::Array(vec![first, v]);
            }
        }
    }
    let mut out = serde_json::to_vec(&serde_json::Value::Object(map)).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[&[u8]]) -> Entry {
        Entry {
            offset: 4096,
            seqnum: 26,
            realtime: 1_764_643_200_000_000,
            monotonic: 1_000_000,
            boot_id: [0x01; 16],
            xor_hash: 0xabc,
            fields: fields.iter().map(|f| f.to_vec()).collect(),
        }
    }

    #[test]
    fn export_is_journalctl_s_and_parses_back() {
        let e = entry(&[
            b"_BOOT_ID=01010101010101010101010101010101",
            b"_HOSTNAME=web1",
            b"MESSAGE=two\nlines",
            b"BIN=\x00\x01",
        ]);
        let mut out = Vec::new();
        write_entry(&mut out, &[0x02; 16], &e);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with(
            "__CURSOR=s=02020202020202020202020202020202;i=1a;b=01010101010101010101010101010101;\
             m=f4240;t=644ef03176000;x=abc\n__REALTIME_TIMESTAMP=1764643200000000\n"
        ), "{text}");
        assert_eq!(text.matches("_BOOT_ID=").count(), 1, "{text}");
        assert!(
            out.ends_with(b"BIN\n\x02\0\0\0\0\0\0\0\x00\x01\n\n"),
            "{text}"
        );
        let back = parse(&out).expect("parse");
        assert_eq!(back.len(), 1);
        let mut two = out.clone();
        two.extend_from_slice(&out);
        assert_eq!(
            entry_spans(&two).expect("spans"),
            vec![(0, out.len()), (out.len(), 2 * out.len())]
        );
        assert_eq!(back[0].get("MESSAGE"), Some(&b"two\nlines"[..]));
        assert_eq!(back[0].get("BIN"), Some(&b"\x00\x01"[..]));
        assert_eq!(back[0].seqnum(), Some(26));
        let s = String::from_utf8(short(&back[0])).expect("utf8");
        assert_eq!(
            s,
            format!(
                "Dec 02 02:40:00 web1 unknown: two\n{}lines\n",
                " ".repeat(30)
            )
        );
        let j: serde_json::Value = serde_json::from_slice(&json(&back[0])).expect("json");
        assert_eq!(j["BIN"], serde_json::json!([0, 1]));
        assert_eq!(j["MESSAGE"], "two\nlines");
    }

    #[test]
    fn hostile_export_data_is_refused_in_bounds() {
        for bad in [
            &b"MESSAGE=x"[..],
            b"BIN\n\x02\0\0\0\0\0\0\0abc\n\n",
            b"BIN\n\xff\xff\xff\xff\xff\xff\xff\xff",
            b"BIN\n\x05\0\0\0\0\0\0\0ab\n",
            b"lower=x\n\n",
            b"MESSAGE=x\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
            assert!(entry_spans(bad).is_err(), "{bad:?}");
        }
        assert!(parse(b"").expect("empty").is_empty());
    }
}
