//! Syslog over TLS, the bytes (pure, no I/O): RFC 6587 framing, message classification, and the
//! stored form.
//!
//! - **Framing**, detected per frame by its first byte: a digit starts octet counting
//!   (`LEN SP MSG`), anything else is LF framing (`MSG LF`). A frame longer than the maximum is
//!   skipped whole (octet counting: its declared length; LF: up to the next LF), so the stream
//!   stays in sync and the next frame is read normally.
//! - **Classification**: RFC 5424 strictly (PRI, VERSION 1, timestamp, field lengths, structured
//!   data syntax), else RFC 3164 loosely (a valid PRI), else unknown. The raw message is always
//!   what is stored; classification only feeds counters and the HOSTNAME check.
//! - **Stored form**: one message a line. Control characters are written as rsyslog writes them,
//!   `#` and three octal digits (`#012` for LF); a `#` that is followed by three octal digits in
//!   the message is itself written `#043`, so the escaping is reversible ([`unescape_line`]) and
//!   the received bytes can always be recovered exactly, but for one trailing LF of an
//!   octet-counted message, which is dropped as rsyslog drops it (its own templates add it).

/// What the deframer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Message(&'a [u8]),
    /// A frame over the maximum, skipped (`len` bytes, or as many as were seen before its LF).
    Oversized {
        len: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a frame.
    Start,
    /// Skipping the rest of an oversized octet-counted frame.
    Skip(u64),
    /// Skipping an oversized LF-framed message up to its LF.
    SkipLine(u64),
}

/// A framing error that ends the connection: the stream cannot be followed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid octet count {0:?}: the stream cannot be followed")]
pub struct BadCount(String);

/// Splits a byte stream into syslog frames. Feed it what was read; it returns how many bytes it
/// consumed; keep the rest (an incomplete frame) and feed it again with more appended.
#[derive(Debug)]
pub struct Deframer {
    max: usize,
    state: State,
}

/// Most digits an octet count may have (a count above 2^31 is not a syslog message).
const MAX_COUNT_DIGITS: usize = 10;

impl Deframer {
    pub fn new(max_message: usize) -> Deframer {
        Deframer {
            max: max_message,
            state: State::Start,
        }
    }

    /// Emits every complete frame in `buf` and returns the number of bytes consumed.
    pub fn feed(&mut self, buf: &[u8], emit: &mut dyn FnMut(Frame<'_>)) -> Result<usize, BadCount> {
        let mut pos = 0;
        while pos < buf.len() {
            match self.state {
                State::Skip(left) => {
                    let n = left.min((buf.len() - pos) as u64);
                    pos += n as usize;
                    self.state = if n == left {
                        State::Start
                    } else {
                        State::Skip(left - n)
                    };
                }
                State::SkipLine(seen) => match memchr::memchr(b'\n', &buf[pos..]) {
                    Some(i) => {
                        emit(Frame::Oversized {
                            len: seen + i as u64,
                        });
                        pos += i + 1;
                        self.state = State::Start;
                    }
                    None => {
                        self.state = State::SkipLine(seen + (buf.len() - pos) as u64);
                        pos = buf.len();
                    }
                },
                State::Start => {
                    let rest = &buf[pos..];
                    if rest[0].is_ascii_digit() && rest[0] != b'0' {
                        // Octet counting: LEN SP MSG.
                        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                        if digits == rest.len() {
                            if digits > MAX_COUNT_DIGITS {
                                return Err(BadCount(String::from_utf8_lossy(rest).into_owned()));
                            }
                            break; // the count is still arriving
                        }
                        if rest[digits] != b' ' || digits > MAX_COUNT_DIGITS {
                            return Err(BadCount(
                                String::from_utf8_lossy(&rest[..(digits + 1).min(rest.len())])
                                    .into_owned(),
                            ));
                        }
                        let len: u64 = std::str::from_utf8(&rest[..digits])
                            .ok()
                            .and_then(|d| d.parse().ok())
                            .ok_or_else(|| {
                                BadCount(String::from_utf8_lossy(&rest[..digits]).into_owned())
                            })?;
                        let body = digits + 1;
                        if len > self.max as u64 {
                            emit(Frame::Oversized { len });
                            pos += body;
                            self.state = State::Skip(len);
                            continue;
                        }
                        let Some(mut msg) = rest.get(body..body + len as usize) else {
                            break; // incomplete
                        };
                        // Senders such as rsyslog end each MSG with LF even when counting
                        // octets; like rsyslog (DropTrailingLFOnReception), drop that one LF.
                        if let Some(m) = msg.strip_suffix(b"\n") {
                            msg = m;
                        }
                        emit(Frame::Message(msg));
                        pos += body + len as usize;
                    } else {
                        // LF framing.
                        // An oversized line's length counts every byte before its LF (a CR
                        // too), as a line skipped across reads is counted.
                        match memchr::memchr(b'\n', rest) {
                            Some(i) => {
                                let mut msg = &rest[..i];
                                if let Some(m) = msg.strip_suffix(b"\r") {
                                    msg = m;
                                }
                                if msg.len() > self.max {
                                    emit(Frame::Oversized { len: i as u64 });
                                } else if !msg.is_empty() {
                                    emit(Frame::Message(msg));
                                }
                                pos += i + 1;
                            }
                            // max + 1: the last byte may be the CR of a CR LF ending a message
                            // of exactly the maximum size.
                            None if rest.len() > self.max + 1 => {
                                self.state = State::SkipLine(rest.len() as u64);
                                pos = buf.len();
                            }
                            None => break, // incomplete
                        }
                    }
                }
            }
        }
        Ok(pos)
    }
}

/// The syslog dialect of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
    Unknown,
}

/// Classifies a message and finds its HOSTNAME (`None` when absent or `-`).
pub fn classify(msg: &[u8]) -> (Format, Option<&[u8]>) {
    let Some(rest) = pri(msg) else {
        return (Format::Unknown, None);
    };
    if let Some(host) = rfc5424(rest) {
        return (Format::Rfc5424, host);
    }
    (Format::Rfc3164, rfc3164_host(rest))
}

/// `<PRIVAL>` with PRIVAL 0..=191 and no leading zero; returns what follows.
fn pri(msg: &[u8]) -> Option<&[u8]> {
    let rest = msg.strip_prefix(b"<")?;
    let digits = rest
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 3 || rest.get(digits) != Some(&b'>') {
        return None;
    }
    if digits > 1 && rest[0] == b'0' {
        return None;
    }
    (digits_value(&rest[..digits]) <= 191).then_some(&rest[digits + 1..])
}

/// Splits off a header field ending in SP.
fn field(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(b' ', s)?;
    Some((&s[..i], &s[i + 1..]))
}

fn printusascii(f: &[u8], max: usize) -> bool {
    !f.is_empty() && f.len() <= max && f.iter().all(|b| (33..=126).contains(b))
}

/// Strict RFC 5424 after the PRI: returns the HOSTNAME (None for `-`) if the header and
/// structured data are valid.
fn rfc5424(s: &[u8]) -> Option<Option<&[u8]>> {
    let s = s.strip_prefix(b"1 ")?;
    let (ts, s) = field(s)?;
    if ts != b"-" && !timestamp(ts) {
        return None;
    }
    let (host, s) = field(s)?;
    let (app, s) = field(s)?;
    let (procid, s) = field(s)?;
    let (msgid, s) = field(s)?;
    if !(printusascii(host, 255)
        && printusascii(app, 48)
        && printusascii(procid, 128)
        && printusascii(msgid, 32))
    {
        return None;
    }
    let after = structured_data(s)?;
    if !(after.is_empty() || after.starts_with(b" ")) {
        return None;
    }
    Some((host != b"-").then_some(host))
}

/// `FULL-DATE "T" FULL-TIME`: `YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|±HH:MM)`. (RFC 5424 allows 6
/// fractional digits; real senders use 9, which is accepted.)
fn timestamp(t: &[u8]) -> bool {
    let d = |r: std::ops::Range<usize>| t.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if t.len() < 20 || !(d(0..4) && t[4] == b'-' && d(5..7) && t[7] == b'-' && d(8..10)) {
        return false;
    }
    if t[10] != b'T' || !(d(11..13) && t[13] == b':' && d(14..16) && t[16] == b':' && d(17..19)) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| digits_value(&t[r]);
    if !(1..=12).contains(&num(5..7))
        || !(1..=31).contains(&num(8..10))
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 60
    {
        return false;
    }
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        b"Z" => true,
        [s, h1, h2, b':', m1, m2] if (*s == b'+' || *s == b'-') => {
            [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// `-` or one or more `[SD-ID *(SP PARAM="VALUE")]`; returns what follows.
fn structured_data(s: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(b"-") {
        return Some(rest);
    }
    let mut s = s;
    let mut any = false;
    while let Some(rest) = s.strip_prefix(b"[") {
        let name_len = rest
            .iter()
            .take_while(|b| (33..=126).contains(*b) && !matches!(b, b'=' | b']' | b'"' | b' '))
            .count();
        if name_len == 0 || name_len > 32 {
            return None;
        }
        let mut r = &rest[name_len..];
        loop {
            if let Some(after) = r.strip_prefix(b"]") {
                r = after;
                break;
            }
            r = r.strip_prefix(b" ")?;
            let p = r
                .iter()
                .take_while(|b| (33..=126).contains(*b) && !matches!(b, b'=' | b']' | b'"' | b' '))
                .count();
            if p == 0 || p > 32 {
                return None;
            }
            r = r[p..].strip_prefix(b"=\"")?;
            // PARAM-VALUE: `"`, `\` and `]` must be escaped with `\`.
            let mut i = 0;
            loop {
                match r.get(i)? {
                    b'\\' => i += 2,
                    b'"' => break,
                    b']' => return None,
                    _ => i += 1,
                }
            }
            std::str::from_utf8(&r[..i]).ok()?;
            r = &r[i + 1..];
        }
        s = r;
        any = true;
    }
    any.then_some(s)
}

/// RFC 3164, loosely: after the PRI, an optional `Mmm dd hh:mm:ss ` timestamp, then the
/// HOSTNAME when the next token is not a tag (`name:` or `name[pid]:`).
fn rfc3164_host(s: &[u8]) -> Option<&[u8]> {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let s = match s.get(..16) {
        Some(ts)
            if MONTHS.contains(&&ts[..3])
                && ts[3] == b' '
                && ts[6] == b' '
                && ts[9] == b':'
                && ts[12] == b':'
                && ts[15] == b' ' =>
        {
            &s[16..]
        }
        _ => return None,
    };
    let (token, _) = field(s)?;
    let is_tag = token.ends_with(b":") || token.contains(&b'[');
    (!is_tag && printusascii(token, 255) && token != b"-").then_some(token)
}

/// True when a message's HOSTNAME is not the host its certificate names: neither the host's
/// name, nor its `tls_name`, nor the first label of the `tls_name`.
pub fn hostname_mismatch(hostname: &[u8], host: &str, tls_name: &str) -> bool {
    let short = tls_name.split('.').next().unwrap_or(tls_name);
    ![host, tls_name, short]
        .iter()
        .any(|n| n.as_bytes().eq_ignore_ascii_case(hostname))
}

/// The value of ASCII decimal digits (the caller checked they are digits).
fn digits_value(d: &[u8]) -> u32 {
    d.iter().fold(0u32, |v, b| {
        v.saturating_mul(10).saturating_add(u32::from(b - b'0'))
    })
}

/// Appends a message in stored form: escaped, then a newline.
pub fn escape_line(msg: &[u8], out: &mut Vec<u8>) {
    // Fast path: nothing to escape. A fold without early exit vectorizes.
    let special = msg.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == 0x7f) | (b == b'#')
    });
    if !special {
        out.extend_from_slice(msg);
        out.push(b'\n');
        return;
    }
    for (i, &b) in msg.iter().enumerate() {
        let escape = b < 0x20
            || b == 0x7f
            || (b == b'#'
                && msg
                    .get(i + 1..i + 4)
                    .is_some_and(|d| d.iter().all(|c| (b'0'..=b'7').contains(c))));
        if escape {
            out.push(b'#');
            out.push(b'0' + (b >> 6));
            out.push(b'0' + ((b >> 3) & 7));
            out.push(b'0' + (b & 7));
        } else {
            out.push(b);
        }
    }
    out.push(b'\n');
}

/// The received message back from a stored line (without its newline).
pub fn unescape_line(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'#'
            && let Some(d) = line.get(i + 1..i + 4)
            && d.iter().all(|c| (b'0'..=b'7').contains(c))
            && d[0] <= b'3'
        {
            out.push(((d[0] - b'0') << 6) | ((d[1] - b'0') << 3) | (d[2] - b'0'));
            i += 4;
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(d: &mut Deframer, input: &[u8]) -> (Vec<String>, usize) {
        let mut out = Vec::new();
        let n = d
            .feed(input, &mut |f| {
                out.push(match f {
                    Frame::Message(m) => String::from_utf8_lossy(m).into_owned(),
                    Frame::Oversized { len } => format!("OVERSIZED {len}"),
                })
            })
            .expect("valid");
        (out, n)
    }

    #[test]
    fn octet_counting_and_lf_framing_mix_per_frame() {
        let mut d = Deframer::new(100);
        let input = b"11 <13>1 hello<13>plain line\n5 <1>ab\r\n\n";
        let (out, n) = frames(&mut d, input);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0], "<13>1 hello");
        assert_eq!(out[1], "<13>plain line");
        assert_eq!(out[2], "<1>ab");
        assert_eq!(n, input.len());
        let (trailing, _) = frames(&mut Deframer::new(100), b"6 <1>ab\n");
        assert_eq!(
            trailing,
            vec!["<1>ab".to_string()],
            "one trailing LF dropped"
        );
    }

    #[test]
    fn incomplete_frames_wait_for_more() {
        let mut d = Deframer::new(100);
        let (out, n) = frames(&mut d, b"11 <13>1 hel");
        assert!(out.is_empty());
        assert_eq!(n, 0);
        let (out, n) = frames(&mut d, b"1");
        assert!(out.is_empty() && n == 0, "a count still arriving");
        let (out, n) = frames(&mut d, b"<13>no newline yet");
        assert!(out.is_empty() && n == 0);
    }

    #[test]
    fn oversized_frames_are_skipped_and_the_stream_stays_in_sync() {
        let mut d = Deframer::new(10);
        let mut input = b"20 ".to_vec();
        input.extend_from_slice(&[b'x'; 20]);
        input.extend_from_slice(b"5 <1>ok");
        let (out, n) = frames(&mut d, &input);
        assert_eq!(out, vec!["OVERSIZED 20".to_string(), "<1>ok".to_string()]);
        assert_eq!(n, input.len());
        // Split across reads.
        let mut d = Deframer::new(10);
        let (out, n) = frames(&mut d, b"20 xxxxx");
        assert_eq!((out, n), (vec!["OVERSIZED 20".to_string()], 8));
        let (out, n) = frames(&mut d, b"xxxxxxxxxxxxxxx5 <1>ok");
        assert_eq!(out, vec!["<1>ok".to_string()]);
        assert_eq!(n, 22);
        // LF framing: an endless line is skipped up to its LF.
        let mut d = Deframer::new(10);
        let (out, n) = frames(&mut d, b"<1>aaaaaaaaaaaaaaaaaaaa");
        assert!(out.is_empty() && n == 23);
        let (out, _) = frames(&mut d, b"aaa\n<1>next\n");
        assert_eq!(out, vec!["OVERSIZED 26".to_string(), "<1>next".to_string()]);
    }

    /// Found by the `syslog_framing` fuzz target: where a read boundary fell changed the
    /// reported length of an oversized CR LF line, or turned a message of exactly the maximum
    /// size ending in CR LF into an oversized one.
    #[test]
    fn read_boundaries_never_change_the_frames() {
        let mut crash = vec![0xff; 61];
        crash.extend_from_slice(&[b'\r'; 38]);
        crash.extend_from_slice(&[b'B'; 46]);
        crash.extend_from_slice(&[b'\r'; 32]);
        crash.push(b'\n');
        let streams: Vec<(usize, Vec<u8>)> = vec![
            (53, crash),
            (10, b"<1>4567890\r\n<1>next\n".to_vec()),
            (10, b"<1>45678901\r\n<1>next\r\n".to_vec()),
            (10, b"12 <1>4567890\n5 <1>ok".to_vec()),
        ];
        for (max, stream) in streams {
            let whole = frames(&mut Deframer::new(max), &stream);
            for at in 0..=stream.len() {
                let mut d = Deframer::new(max);
                let (mut out, n) = frames(&mut d, &stream[..at]);
                let mut rest = stream[n..at].to_vec();
                rest.extend_from_slice(&stream[at..]);
                let (more, m) = frames(&mut d, &rest);
                out.extend(more);
                assert_eq!(
                    (out, n + m),
                    whole.clone(),
                    "cut at {at} of {:?}",
                    String::from_utf8_lossy(&stream)
                );
            }
        }
    }

    #[test]
    fn broken_counts_end_the_stream() {
        let mut d = Deframer::new(100);
        assert!(d.feed(b"12x <1>", &mut |_| {}).is_err());
        let mut d = Deframer::new(100);
        assert!(d.feed(b"99999999999 ", &mut |_| {}).is_err());
        // Garbage that does not start with a digit is LF-framed, not an error.
        let mut d = Deframer::new(100);
        let (out, _) = frames(&mut d, b"\x00\x01garbage\n");
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn rfc5424_strictly() {
        let ok = b"<165>1 2003-10-11T22:14:15.003000Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] BOMAn application event log entry";
        assert_eq!(
            classify(ok),
            (Format::Rfc5424, Some(&b"mymachine.example.com"[..]))
        );
        let nine = b"<13>1 2026-11-28T10:00:00.123456789+01:00 web1 app 123 - - hello";
        assert_eq!(classify(nine).0, Format::Rfc5424);
        let nil = b"<13>1 - - - - - -";
        assert_eq!(classify(nil), (Format::Rfc5424, None));
        let escaped = b"<13>1 - h a p m [x@1 k=\"a\\]b\\\"c\"][y@2] msg";
        assert_eq!(classify(escaped).0, Format::Rfc5424);
        for bad in [
            &b"<13>2 - h a p m - msg"[..],                          // version
            b"<13>1 2026-13-28T10:00:00Z h a p m - x",              // month
            b"<13>1 2026-11-28 10:00:00Z h a p m - x",              // no T
            b"<13>1 - h a p m [x k=\"v] x",                         // unescaped ]
            b"<13>1 - h a p m nosd",                                // SD
            b"<13>1 - h a p thirtythreecharactersmsgidxxxxxxxxx -", // MSGID > 32
        ] {
            assert_ne!(
                classify(bad).0,
                Format::Rfc5424,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rfc3164_loosely_and_garbage() {
        let bsd = b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8";
        assert_eq!(classify(bsd), (Format::Rfc3164, Some(&b"mymachine"[..])));
        let no_host = b"<13>Nov  8 10:00:00 sshd[123]: Accepted publickey";
        assert_eq!(classify(no_host), (Format::Rfc3164, None));
        assert_eq!(classify(b"<13>just text").0, Format::Rfc3164);
        assert_eq!(classify(b"no pri").0, Format::Unknown);
        assert_eq!(classify(b"<192>too big").0, Format::Unknown);
        assert_eq!(classify(b"<013>leading zero").0, Format::Unknown);
    }

    #[test]
    fn hostname_checks() {
        assert!(!hostname_mismatch(b"web1", "web1", "web1.example.org"));
        assert!(!hostname_mismatch(
            b"WEB1.example.org",
            "w",
            "web1.example.org"
        ));
        assert!(hostname_mismatch(b"db1", "web1", "web1.example.org"));
    }

    #[test]
    fn escaping_is_rsyslog_like_and_reversible() {
        let mut out = Vec::new();
        escape_line(b"a\nb\tc\x1b[0m #012 # 1#x", &mut out);
        assert_eq!(out, b"a#012b#011c#033[0m #043012 # 1#x\n");
        assert_eq!(
            unescape_line(&out[..out.len() - 1]),
            b"a\nb\tc\x1b[0m #012 # 1#x"
        );
        for msg in [
            &b"plain"[..],
            b"\x00\x7f#377#",
            b"#0",
            b"##123",
            b"\xff\xfe",
        ] {
            let mut o = Vec::new();
            escape_line(msg, &mut o);
            assert_eq!(o.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
            assert_eq!(unescape_line(&o[..o.len() - 1]), msg);
        }
    }
}
