//! A Go string-literal unquoter, enough for the `build` lines of Go build info.
//!
//! Go quotes a build setting's key or value with `strconv.Quote` when it contains characters that
//! would break the line format (space, tab, newline, quotes), so `-ldflags="-s -w"` appears quoted.
//! No Rust crate decodes Go literals, and the grammar is small, so it lives here.

/// Why a Go string literal could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuoteError(pub(crate) String);

/// Decodes the Go string literal at the start of `s` (`"..."` or `` `...` ``).
///
/// Returns the decoded text and how many bytes of `s` the literal used, so callers can go on
/// parsing after it (Go's `strconv.QuotedPrefix` + `strconv.Unquote`).
pub(crate) fn unquote_prefix(s: &str) -> Result<(String, usize), QuoteError> {
    let bytes = s.as_bytes();
    match bytes.first() {
        Some(b'`') => {
            let end = bytes[1..]
                .iter()
                .position(|&b| b == b'`')
                .ok_or_else(|| QuoteError(format!("unterminated raw string: {s:?}")))?;
            // Go drops carriage returns from raw strings.
            let text: String = s[1..1 + end].chars().filter(|&c| c != '\r').collect();
            Ok((text, end + 2))
        }
        Some(b'"') => unquote_interpreted(bytes),
        _ => Err(QuoteError(format!("not a Go string literal: {s:?}"))),
    }
}

/// Decodes a string that must consist of exactly one Go string literal.
pub(crate) fn unquote(s: &str) -> Result<String, QuoteError> {
    let (text, used) = unquote_prefix(s)?;
    if used != s.len() {
        return Err(QuoteError(format!(
            "trailing text after Go string literal: {s:?}"
        )));
    }
    Ok(text)
}

/// Go's `strconv.Quote` for the text kiln meets in build settings: printable characters stay,
/// the usual C escapes are used, other control characters become `\xNN` / `\uNNNN`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() && (c as u32) < 0x10000 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn unquote_interpreted(bytes: &[u8]) -> Result<(String, usize), QuoteError> {
    let lossy = || String::from_utf8_lossy(bytes).into_owned();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 1;
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err(QuoteError(format!("unterminated string: {:?}", lossy())));
        };
        match b {
            b'"' => {
                // \xNN escapes may produce bytes that are not UTF-8; keep what we can rather than
                // failing a whole build-info parse over one odd setting.
                let text = match String::from_utf8(out) {
                    Ok(text) => text,
                    Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
                };
                return Ok((text, i + 1));
            }
            b'\n' => {
                return Err(QuoteError(format!(
                    "newline in string literal: {:?}",
                    lossy()
                )))
            }
            b'\\' => {
                let esc = *bytes
                    .get(i + 1)
                    .ok_or_else(|| QuoteError(format!("unterminated escape: {:?}", lossy())))?;
                i += 2;
                match esc {
                    b'a' => out.push(0x07),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(0x0b),
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'x' => {
                        out.push(hex_value(bytes, i, 2)? as u8);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let width = if esc == b'u' { 4 } else { 8 };
                        let code = hex_value(bytes, i, width)?;
                        i += width;
                        let c = char::from_u32(code).ok_or_else(|| {
                            QuoteError(format!("invalid code point \\{}{code:x}", esc as char))
                        })?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    b'0'..=b'7' => {
                        let digits = bytes.get(i - 1..i + 2).unwrap_or_default();
                        if digits.len() != 3 || !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                            return Err(QuoteError(format!(
                                "invalid octal escape in {:?}",
                                lossy()
                            )));
                        }
                        let value = digits
                            .iter()
                            .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                        let byte = u8::try_from(value).map_err(|_| {
                            QuoteError(format!("octal escape out of range in {:?}", lossy()))
                        })?;
                        out.push(byte);
                        i += 2;
                    }
                    other => {
                        return Err(QuoteError(format!(
                            "unknown escape \\{} in {:?}",
                            other as char,
                            lossy()
                        )))
                    }
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
}

fn hex_value(bytes: &[u8], start: usize, width: usize) -> Result<u32, QuoteError> {
    let digits = bytes
        .get(start..start + width)
        .ok_or_else(|| QuoteError("truncated hex escape".to_owned()))?;
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char)
            .to_digit(16)
            .ok_or_else(|| QuoteError(format!("invalid hex digit {:?}", d as char)))?;
        Ok(acc * 16 + v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_simple_escapes() {
        assert_eq!(unquote(r#""-s -w""#).unwrap(), "-s -w");
        assert_eq!(unquote(r#""a\tb\nc\"d\\e""#).unwrap(), "a\tb\nc\"d\\e");
        assert_eq!(unquote(r#""\a\b\f\r\v""#).unwrap(), "\x07\x08\x0c\r\x0b");
    }

    #[test]
    fn hex_unicode_and_octal_escapes() {
        assert_eq!(unquote(r#""\x41\u00e9\U0001F600\101""#).unwrap(), "Aé😀A");
        // A lone \xff is not UTF-8: decoded lossily instead of failing.
        assert_eq!(unquote(r#""a\xffb""#).unwrap(), "a\u{fffd}b");
    }

    #[test]
    fn raw_strings_keep_backslashes_and_drop_cr() {
        assert_eq!(unquote("`a\\n b`").unwrap(), "a\\n b");
        assert_eq!(unquote("`x\r\ny`").unwrap(), "x\ny");
    }

    #[test]
    fn prefix_reports_consumed_length() {
        let (key, used) = unquote_prefix(r#""a=b"=c"#).unwrap();
        assert_eq!(key, "a=b");
        assert_eq!(&r#""a=b"=c"#[used..], "=c");
        let (raw, used) = unquote_prefix("`k`=v").unwrap();
        assert_eq!((raw.as_str(), used), ("k", 3));
    }

    #[test]
    fn quote_round_trips_through_unquote() {
        assert_eq!(quote("-s -w"), r#""-s -w""#);
        assert_eq!(quote("a\"b\\c\td\u{1}é"), r#""a\"b\\c\td\x01é""#);
        for text in [
            "",
            "plain",
            "x='y \"z\"'",
            "tab\tnl\ncr\r",
            "\u{7f}\u{85}\u{10ffff}",
        ] {
            assert_eq!(unquote(&quote(text)).unwrap(), text);
        }
    }

    #[test]
    fn malformed_literals_are_errors() {
        for bad in [
            "",
            "abc",
            "\"abc",
            "`abc",
            "\"a\\",
            "\"\\q\"",
            "\"\\x4\"",
            "\"\\xZZ\"",
            "\"\\u12\"",
            "\"\\UFFFFFFFF\"",
            "\"\\uD800\"",
            "\"\\400\"",
            "\"\\12\"",
            "\"a\nb\"",
            "\"a\"b",
        ] {
            assert!(unquote(bad).is_err(), "{bad:?} should not decode");
        }
    }
}
