//! The wire format: JSON lines, byte fields as base64 strings (Go's `[]byte` JSON encoding), a
//! `put` body as a base64 JSON string on its own line after its request.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::GoCacheError;

/// The commands this server answers, announced in the first message.
pub(crate) const KNOWN_COMMANDS: [&str; 3] = ["get", "put", "close"];

/// One request from go (`cacheprog.Request`), without its body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    /// Unique per request; echoed in the answer.
    #[serde(rename = "ID")]
    pub id: i64,
    /// `get`, `put`, `close` (or a command a newer go might send).
    #[serde(default)]
    pub command: String,
    /// The cache key of a `get` or `put`.
    #[serde(
        rename = "ActionID",
        default,
        with = "b64",
        skip_serializing_if = "Option::is_none"
    )]
    pub action_id: Option<Vec<u8>>,
    /// The sha256 of a `put` body.
    #[serde(
        rename = "OutputID",
        default,
        with = "b64",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_id: Option<Vec<u8>>,
    /// Length of the body that follows a `put`; zero means no body line follows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub body_size: i64,
}

/// One answer to go (`cacheprog.Response`). Empty fields are left out, as go's `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    /// The request's ID (0 for the first, unsolicited message).
    #[serde(rename = "ID")]
    pub id: i64,
    /// Non-empty when the request failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub err: String,
    /// Only in the first message: the commands this server supports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_commands: Vec<String>,
    /// A `get` found nothing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub miss: bool,
    /// A `get` hit: the `OutputID` stored with the body.
    #[serde(
        rename = "OutputID",
        default,
        with = "b64",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_id: Option<Vec<u8>>,
    /// A `get` hit: the body's size.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: i64,
    /// A `get` hit: when the entry was stored, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// A `get` hit or a `put`: the absolute path of a file holding the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_path: Option<String>,
}

impl Response {
    /// The first message: which commands this server answers.
    pub fn hello() -> Self {
        Self {
            known_commands: KNOWN_COMMANDS.iter().map(|c| c.to_string()).collect(),
            ..Self::default()
        }
    }

    /// A failed request.
    pub fn error(id: i64, err: impl Into<String>) -> Self {
        Self {
            id,
            err: err.into(),
            ..Self::default()
        }
    }

    /// A `get` that found nothing.
    pub fn miss(id: i64) -> Self {
        Self {
            id,
            miss: true,
            ..Self::default()
        }
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Optional byte fields as go's JSON encodes `[]byte`: base64 strings.
mod b64 {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&B64.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| B64.decode(s.as_bytes()).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Formats nanoseconds since 1970 as RFC 3339 with nanoseconds, the form go's `time.Time` reads.
pub(crate) fn rfc3339_nanos(unix_nanos: u64) -> String {
    let secs = i64::try_from(unix_nanos / 1_000_000_000).unwrap_or(i64::MAX);
    let whole = kiln_types::format_rfc3339(secs);
    let frac = unix_nanos % 1_000_000_000;
    match whole.strip_suffix('Z') {
        Some(w) => format!("{w}.{frac:09}Z"),
        None => whole,
    }
}

fn excerpt(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    let s = s.trim();
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// What the reader got from go.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A request and, for a `put`, its body (or why the body could not be decoded: the request
    /// is then answered with an error, the stream stays in step).
    Request(Request, Result<Vec<u8>, String>),
    /// go closed the pipe.
    Eof,
}

/// Reads requests and their bodies from go's side of the pipe.
pub(crate) struct RequestReader<R> {
    input: R,
    line: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> RequestReader<R> {
    pub(crate) fn new(input: R) -> Self {
        Self {
            input,
            line: Vec::new(),
        }
    }

    /// The next line that is not blank (go writes an empty line between a request and its body),
    /// or `None` at the end of input.
    async fn next_line(&mut self) -> Result<Option<&[u8]>, GoCacheError> {
        loop {
            self.line.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.line)
                .await
                .map_err(|source| GoCacheError::Pipe {
                    doing: "reading a request",
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            if !self.line.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(self.line.trim_ascii()));
            }
        }
    }

    /// The next request, with its body read and decoded for a `put`.
    pub(crate) async fn next(&mut self) -> Result<Incoming, GoCacheError> {
        let Some(line) = self.next_line().await? else {
            return Ok(Incoming::Eof);
        };
        let req: Request = serde_json::from_slice(line).map_err(|e| GoCacheError::Protocol {
            message: format!("not a request: {e}"),
            line: excerpt(line),
        })?;
        if req.body_size < 0 {
            return Err(GoCacheError::Protocol {
                message: "negative BodySize".into(),
                line: excerpt(line),
            });
        }
        if req.body_size == 0 {
            return Ok(Incoming::Request(req, Ok(Vec::new())));
        }
        let Some(body) = self.next_line().await? else {
            return Err(GoCacheError::Protocol {
                message: format!("input ended before the body of request {}", req.id),
                line: String::new(),
            });
        };
        let decoded = decode_body(body);
        Ok(Incoming::Request(req, decoded))
    }
}

/// A body line: a JSON string holding standard base64.
fn decode_body(line: &[u8]) -> Result<Vec<u8>, String> {
    let inner = line
        .strip_prefix(b"\"")
        .and_then(|l| l.strip_suffix(b"\""))
        .ok_or_else(|| format!("body is not a JSON string: `{}`", excerpt(line)))?;
    // go writes plain base64 between the quotes; a JSON escape would only appear from another
    // writer, so only then pay for a JSON parse.
    let decoded = if inner.contains(&b'\\') {
        let s: String = serde_json::from_slice(line).map_err(|e| format!("body: {e}"))?;
        B64.decode(s.as_bytes())
    } else {
        B64.decode(inner)
    };
    decoded.map_err(|e| format!("body is not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_use_go_field_names_and_omit_empty_fields() {
        assert_eq!(
            serde_json::to_string(&Response::hello()).unwrap(),
            r#"{"ID":0,"KnownCommands":["get","put","close"]}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::miss(7)).unwrap(),
            r#"{"ID":7,"Miss":true}"#
        );
        let hit = Response {
            id: 3,
            output_id: Some(vec![1, 2, 255]),
            size: 5,
            time: Some(rfc3339_nanos(1_700_000_000_123_456_789)),
            disk_path: Some("/c/o".into()),
            ..Response::default()
        };
        assert_eq!(
            serde_json::to_string(&hit).unwrap(),
            r#"{"ID":3,"OutputID":"AQL/","Size":5,"Time":"2023-11-14T22:13:20.123456789Z","DiskPath":"/c/o"}"#
        );
    }

    #[tokio::test]
    async fn reads_requests_blank_lines_and_put_bodies() {
        let input = concat!(
            "{\"ID\":1,\"Command\":\"get\",\"ActionID\":\"AAEC\"}\n",
            "\n",
            "{\"ID\":2,\"Command\":\"put\",\"ActionID\":\"AAEC\",\"OutputID\":\"AQ==\",\"BodySize\":5}\n",
            "\n",
            "\"aGVsbG8=\"\n",
            "{\"ID\":3,\"Command\":\"put\",\"ActionID\":\"AAEC\",\"OutputID\":\"AQ==\",\"BodySize\":2}\n",
            "\n",
            "\"!!\"\n",
            "{\"ID\":4,\"Command\":\"close\"}\n",
        );
        let mut r = RequestReader::new(input.as_bytes());
        let Incoming::Request(get, body) = r.next().await.unwrap() else {
            panic!("get")
        };
        assert_eq!((get.id, get.command.as_str()), (1, "get"));
        assert_eq!(get.action_id.as_deref(), Some(&[0u8, 1, 2][..]));
        assert_eq!(body.unwrap(), b"");
        let Incoming::Request(put, body) = r.next().await.unwrap() else {
            panic!("put")
        };
        assert_eq!((put.id, put.body_size), (2, 5));
        assert_eq!(body.unwrap(), b"hello");
        let Incoming::Request(bad, body) = r.next().await.unwrap() else {
            panic!("bad put")
        };
        assert_eq!(bad.id, 3);
        assert!(body.unwrap_err().contains("base64"));
        let Incoming::Request(close, _) = r.next().await.unwrap() else {
            panic!("close")
        };
        assert_eq!(close.command, "close");
        assert!(matches!(r.next().await.unwrap(), Incoming::Eof));
    }

    #[tokio::test]
    async fn a_line_that_is_not_json_is_a_protocol_error() {
        let mut r = RequestReader::new(&b"hello\n"[..]);
        let e = r.next().await.unwrap_err();
        assert!(e.to_string().contains("protocol error"), "{e}");
        assert!(e.to_string().contains("hello"), "{e}");
    }
}
