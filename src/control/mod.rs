//! The daemon's local control socket: one request line, one reply. The reply's first line is
//! `ok` or `error: <why>`; the lines after it are the answer.

use std::path::PathBuf;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/director/control.sock";
/// Longest request line accepted.
pub const MAX_REQUEST: usize = 4096;

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
    fn garbage_is_an_error() {
        assert!(decode_reply("HTTP/1.1 200 OK\n").is_err());
        assert!(decode_reply("").is_err());
    }
}
