//! The daemon's local control socket: one request, one reply. A request is a command line,
//! optional `Key: value` header lines, an empty line, and a body (a configuration being
//! imported), ended by the client closing its side. The reply's first line is `ok` or
//! `error: <why>`; the lines after it are the answer.

use std::path::PathBuf;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/director/control.sock";
/// Longest request accepted, body included.
pub const MAX_REQUEST: usize = 16 << 20;

/// One request to the daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The command and its arguments.
    pub words: Vec<String>,
    /// Who asks for a change (recorded in the configuration's history).
    pub author: Option<String>,
    /// Why (the one-line comment of a new revision).
    pub comment: Option<String>,
    pub body: String,
}

impl Request {
    pub fn new(words: &[&str]) -> Request {
        Request {
            words: words.iter().map(|w| w.to_string()).collect(),
            ..Request::default()
        }
    }

    /// The request as sent on the wire.
    pub fn encode(&self) -> String {
        let mut out = self.words.join(" ");
        out.push('\n');
        for (key, value) in [("Author", &self.author), ("Comment", &self.comment)] {
            if let Some(value) = value {
                out.push_str(&format!("{key}: {}\n", one_line(value)));
            }
        }
        out.push('\n');
        out.push_str(&self.body);
        out
    }

    /// Reads a request from the wire.
    pub fn decode(text: &str) -> Result<Request, String> {
        let (line, mut rest) = text
            .split_once('\n')
            .ok_or("the request is not ended by a newline")?;
        let mut request = Request {
            words: line.split_whitespace().map(str::to_string).collect(),
            ..Request::default()
        };
        loop {
            let (header, after) = rest.split_once('\n').unwrap_or((rest, ""));
            rest = after;
            if header.is_empty() {
                break;
            }
            let (key, value) = header
                .split_once(": ")
                .ok_or_else(|| format!("malformed header line {header:?}"))?;
            match key {
                "Author" => request.author = Some(value.to_string()),
                "Comment" => request.comment = Some(value.to_string()),
                _ => return Err(format!("unknown header {key:?}")),
            }
        }
        request.body = rest.to_string();
        Ok(request)
    }
}

/// Newlines in a header value would end the header early.
fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}

/// The socket path: `--socket` first, then `DIRECTOR_SOCKET`, then the default.
pub fn socket_path(flag: Option<&str>) -> PathBuf {
    match flag {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("DIRECTOR_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
    }
}

/// A reply as sent on the wire.
pub fn encode_reply(result: &Result<String, String>) -> String {
    match result {
        Ok(body) if body.is_empty() => "ok\n".to_string(),
        Ok(body) if body.ends_with('\n') => format!("ok\n{body}"),
        Ok(body) => format!("ok\n{body}\n"),
        Err(why) => format!("error: {}\n", why.replace('\n', " ")),
    }
}

/// Splits a reply from the wire into its result.
pub fn decode_reply(text: &str) -> Result<String, String> {
    let (first, body) = text.split_once('\n').unwrap_or((text, ""));
    match first {
        "ok" => Ok(body.to_string()),
        _ => match first.strip_prefix("error: ") {
            Some(why) => Err(why.to_string()),
            None => Err(format!("malformed reply from the daemon: {first:?}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip() {
        for result in [
            Ok(String::new()),
            Ok("pid 7\nuptime 3 s\n".to_string()),
            Err("unknown command 'x'".to_string()),
        ] {
            assert_eq!(decode_reply(&encode_reply(&result)), result);
        }
    }

    #[test]
    fn a_body_without_final_newline_gets_one() {
        assert_eq!(encode_reply(&Ok("a".into())), "ok\na\n");
    }

    #[test]
    fn requests_round_trip() {
        let mut request = Request::new(&["config", "import"]);
        request.author = Some("alice".into());
        request.comment = Some("new web pool".into());
        request.body = "[node]\nhostname = \"a\"\n\n[admin]\n".into();
        assert_eq!(Request::decode(&request.encode()), Ok(request));
        let plain = Request::new(&["status"]);
        assert_eq!(Request::decode(&plain.encode()), Ok(plain));
    }

    #[test]
    fn a_bare_line_is_a_request() {
        assert_eq!(Request::decode("log 5\n"), Ok(Request::new(&["log", "5"])));
        assert!(Request::decode("status").is_err());
        assert!(Request::decode("x\nAuthor alice\n\n").is_err());
        assert!(Request::decode("x\nColour: red\n\n").is_err());
    }

    #[test]
    fn a_comment_stays_on_one_line() {
        let mut request = Request::new(&["config", "rollback", "3"]);
        request.comment = Some("first\nAuthor: mallory".into());
        let decoded = Request::decode(&request.encode()).unwrap();
        assert_eq!(decoded.comment.as_deref(), Some("first"));
        assert_eq!(decoded.author, None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_reply("HTTP/1.1 200 OK\n").is_err());
        assert!(decode_reply("").is_err());
    }
}
