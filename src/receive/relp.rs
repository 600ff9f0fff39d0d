//! RELP, the Reliable Event Logging Protocol as librelp (rsyslog's `omrelp`/`imrelp`) speaks
//! it: frames, the `open` offers, responses. Pure: bytes in, frames out; the session (acks only
//! after the messages are durable) is in [`crate::receive`].
//!
//! A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`: TXNR 1–999,999,999 (then 1 again; 0
//! is the server's `serverclose` hint), COMMAND 1–32 letters, DATALEN the length of DATA (0:
//! no data; librelp then writes the LF right after DATALEN, some senders a SP first). Commands
//! from a client: `open` (offers, one `name=value` a line: `relp_version`, `relp_software`,
//! `commands`), `syslog` (one message), `close`. The server answers each with `rsp`, in txnr
//! order: `200 OK`, or `500 reason`.

/// The largest transaction number; the one after it is 1.
pub const TXNR_MAX: u64 = 999_999_999;
/// The longest command name.
const MAX_COMMAND: usize = 32;
/// The longest header: 9 digits, SP, 32 letters, SP, 9 digits, SP.
const MAX_HEADER: usize = 9 + 1 + MAX_COMMAND + 1 + 9 + 1;

/// One RELP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub txnr: u64,
    pub command: String,
    pub data: Vec<u8>,
}

/// Why a stream of frames cannot be read on: the session is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Cuts a byte stream into frames; holds at most one frame's bytes.
#[derive(Debug)]
pub struct Deframer {
    max_data: usize,
    buf: Vec<u8>,
    /// Where parsing resumes in `buf`.
    at: usize,
}

impl Deframer {
    /// Frames whose DATA is longer than `max_data` are an error (the session is closed).
    pub fn new(max_data: usize) -> Deframer {
        Deframer {
            max_data,
            buf: Vec::new(),
            at: 0,
        }
    }

    /// Bytes the buffer may hold: one whole frame, the rest waits in the socket.
    pub fn room(&self) -> usize {
        (MAX_HEADER + self.max_data + 2).saturating_sub(self.buf.len() - self.at)
    }

    /// Adds bytes read from the connection (at most [`Deframer::room`] of them are kept
    /// without a frame taken out; the caller reads no more than that).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at > self.buf.len() / 2 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let b = &self.buf[self.at..];
        let Some((txnr, i)) = number(b, 0, "transaction number")? else {
            return Ok(None);
        };
        let Some(&sp) = b.get(i) else {
            return Ok(None);
        };
        if sp != b' ' {
            return Err(bad(format!("byte {sp:#04x} after the transaction number")));
        }
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j].is_ascii_alphabetic() {
            j += 1;
            if j - start > MAX_COMMAND {
                return Err(bad("a command longer than 32 letters".into()));
            }
        }
        let Some(&sp) = b.get(j) else {
            return Ok(None);
        };
        if j == start || sp != b' ' {
            return Err(bad(format!("byte {sp:#04x} where a command should be")));
        }
        let command = String::from_utf8_lossy(&b[start..j]).into_owned();
        let Some((len, k)) = number(b, j + 1, "data length")? else {
            return Ok(None);
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.max_data {
            return Err(bad(format!(
                "a {command} frame of {len} bytes, more than the {} allowed",
                self.max_data
            )));
        }
        let end = if len == 0 {
            // LF, or SP LF.
            match (b.get(k), b.get(k + 1)) {
                (Some(b'\n'), _) => k + 1,
                (Some(b' '), Some(b'\n')) => k + 2,
                (None, _) | (Some(b' '), None) => return Ok(None),
                (Some(c), _) => return Err(bad(format!("byte {c:#04x} after a data length of 0"))),
            }
        } else {
            match b.get(k) {
                None => return Ok(None),
                Some(b' ') => {}
                Some(c) => return Err(bad(format!("byte {c:#04x} after the data length"))),
            }
            let data_end = k + 1 + len;
            match b.get(data_end) {
                None => return Ok(None),
                Some(b'\n') => data_end + 1,
                Some(c) => {
                    return Err(bad(format!(
                        "byte {c:#04x} where a frame of {len} data bytes should end (LF)"
                    )));
                }
            }
        };
        let data = if len == 0 {
            Vec::new()
        } else {
            b[k + 1..k + 1 + len].to_vec()
        };
        self.at += end;
        Ok(Some(Frame {
            txnr,
            command,
            data,
        }))
    }
}

fn bad(why: String) -> FrameError {
    FrameError(format!("not RELP: {why}"))
}

/// A decimal number of 1–9 digits at `b[from..]` ended by a non-digit: (value, index after).
fn number(b: &[u8], from: usize, what: &str) -> Result<Option<(u64, usize)>, FrameError> {
    let mut i = from;
    let mut v = 0u64;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        v = v * 10 + u64::from(c - b'0');
        i += 1;
        if i - from > 9 {
            return Err(bad(format!("a {what} longer than 9 digits")));
        }
    }
    if i == b.len() {
        return Ok(None);
    }
    if i == from {
        return Err(bad(format!("byte {:#04x} where a {what} should be", b[i])));
    }
    Ok(Some((v, i)))
}

/// The transaction number that follows `txnr`.
pub fn next_txnr(txnr: u64) -> u64 {
    if txnr >= TXNR_MAX { 1 } else { txnr + 1 }
}

/// The offers of an `open` (`name=value` lines; a name alone has an empty value).
pub fn offers(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = String::from_utf8_lossy(l);
            match l.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => (l.to_string(), String::new()),
            }
        })
        .collect()
}

/// A response frame: `TXNR rsp LEN DATA LF`.
pub fn rsp(txnr: u64, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{txnr} rsp {}", data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// The answer to an acceptable `open`: what this server speaks.
pub fn open_answer() -> Vec<u8> {
    format!(
        "200 OK\nrelp_version=0\nrelp_software=loghost,{},https://github.com/loghost\ncommands=syslog",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// The hint a server sends before it closes a session: the client reconnects and resends what
/// was not acknowledged.
pub const SERVERCLOSE: &[u8] = b"0 serverclose 0\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], max: usize) -> (Vec<Frame>, Option<FrameError>) {
        let mut d = Deframer::new(max);
        d.push(input);
        let mut out = Vec::new();
        loop {
            match d.next_frame() {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn frames_as_librelp_writes_them() {
        let offered = "relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog";
        let open = format!("1 open {} {offered}\n", offered.len());
        let input = [
            open.as_bytes(),
            b"2 syslog 11 <13>hello x\n",
            b"3 close 0\n",
            b"4 syslog 3 a\nb\n",
            b"5 close 0 \n",
        ]
        .concat();
        let (frames, err) = all(&input, 1024);
        assert_eq!(err, None);
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[0].command, "open");
        assert_eq!(
            offers(&frames[0].data),
            vec![
                ("relp_version".into(), "0".into()),
                (
                    "relp_software".into(),
                    "librelp,1.11.0,http://librelp.adiscon.com".into()
                ),
                ("commands".into(), "syslog".into())
            ]
        );
        assert_eq!(frames[1].data, b"<13>hello x");
        assert_eq!((frames[2].txnr, &*frames[2].command), (3, "close"));
        assert_eq!(
            frames[3].data, b"a\nb",
            "data may hold LF: its length decides"
        );
        assert_eq!(frames[4].command, "close");
    }

    /// Cut anywhere, the same frames come out.
    #[test]
    fn any_cut_gives_the_same_frames() {
        let input = b"7 syslog 5 hello\n8 syslog 0\n9 close 0\n".to_vec();
        let (want, _) = all(&input, 100);
        for cut in 0..input.len() {
            let mut d = Deframer::new(100);
            let mut got = Vec::new();
            d.push(&input[..cut]);
            while let Ok(Some(f)) = d.next_frame() {
                got.push(f);
            }
            d.push(&input[cut..]);
            while let Ok(Some(f)) = d.next_frame() {
                got.push(f);
            }
            assert_eq!(got, want, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_and_oversized_frames_are_errors() {
        for bad in [
            &b"x open 0\n"[..],
            b"1open 0\n",
            b"1  open 0\n",
            b"1 op3n 0\n",
            b"1 syslog 5 hello!\n",
            b"1 syslog 5hello\n",
            b"1234567890 syslog 1 a\n",
            b"1 syslog 12345678901 a\n",
            b"1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0\n",
            b"1 close 0x\n",
        ] {
            let (_, err) = all(bad, 100);
            assert!(err.is_some(), "{:?}", String::from_utf8_lossy(bad));
        }
        let (_, err) = all(b"1 syslog 101 ", 100);
        assert!(err.is_some_and(|e| e.0.contains("more than the 100 allowed")));
        let (f, err) = all(b"1 syslog 100 ", 100);
        assert!(f.is_empty() && err.is_none(), "waits for the data");
    }

    #[test]
    fn the_buffer_holds_one_frame_at_most() {
        let mut d = Deframer::new(10);
        assert!(d.room() <= MAX_HEADER + 12);
        d.push(b"1 syslog 10 0123456789\n2 sys");
        assert_eq!(
            d.next_frame().ok().flatten().map(|f| f.data),
            Some(b"0123456789".to_vec())
        );
        assert!(matches!(d.next_frame(), Ok(None)));
        d.push(b"log 1 x\n");
        assert_eq!(d.next_frame().ok().flatten().map(|f| f.txnr), Some(2));
    }

    #[test]
    fn transaction_numbers_wrap_to_1() {
        assert_eq!(next_txnr(1), 2);
        assert_eq!(next_txnr(TXNR_MAX), 1);
    }

    #[test]
    fn responses() {
        let mut out = Vec::new();
        rsp(5, b"200 OK", &mut out);
        rsp(6, b"", &mut out);
        assert_eq!(out, b"5 rsp 6 200 OK\n6 rsp 0\n");
        let (frames, err) = all(
            &[
                &b"1 rsp "[..],
                format!("{} ", open_answer().len()).as_bytes(),
                &open_answer(),
                b"\n",
            ]
            .concat(),
            1000,
        );
        assert_eq!(err, None);
        assert!(offers(&frames[0].data).contains(&("commands".into(), "syslog".into())));
    }
}
