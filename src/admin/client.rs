//! A small blocking HTTPS client for the admin API: the remote command line
//! (`director ctl --host`), and the tests. It trusts exactly one certificate, the one whose
//! SHA-256 fingerprint it is given (the box's self-signed one, read off its console), keeps its
//! connection alive between requests, and sends an API token or a session's cookie and CSRF
//! token.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned, SupportedProtocolVersion};
use serde_json::Value;

/// A TLS connection to the endpoint.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// The longest wait for any read or write.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response taken.
const MAX_RESPONSE: usize = 64 << 20;

/// Opens a TLS connection to `address` offering `versions`, trusting only the certificate
/// whose SHA-256 is `pin`; the handshake is done when it returns.
pub fn open(
    address: SocketAddr,
    versions: &[&'static SupportedProtocolVersion],
    pin: [u8; 32],
) -> io::Result<Tls> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::tls::Verifier::pinned(pin, provider)))
        .with_no_client_auth();
    // The name is not checked (the pin is); an address is a valid name for SNI purposes.
    let name = ServerName::from(address.ip());
    let conn = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
    let tcp = TcpStream::connect_timeout(&address, TIMEOUT)?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    let _ = tcp.set_nodelay(true);
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// A response: status, headers (names in lower case), body.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The API's `error`, or the status.
    pub fn error(&self) -> String {
        match self.json().get("error").and_then(Value::as_str) {
            Some(why) => why.to_string(),
            None => format!("HTTP status {}", self.status),
        }
    }
}

/// Reads one response (with a Content-Length, as tiny-http sends them) from `stream`.
pub fn read_response(stream: &mut impl Read) -> io::Result<Response> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 << 10 {
            return Err(bad("a response head over 64 KiB"));
        }
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).map_err(|_| bad("a response head that is not text"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = match headers.iter().find(|(n, _)| n == "content-length") {
        Some((_, v)) => v.parse().map_err(|_| bad("a bad Content-Length"))?,
        None => 0,
    };
    if length > MAX_RESPONSE {
        return Err(bad("a response over 64 MiB"));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Writes one request with a body.
pub fn write_request(
    stream: &mut impl Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: director\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    stream.flush()
}

/// A caller of the API: by token, or by a session it logs in to.
pub struct Client {
    address: SocketAddr,
    pin: [u8; 32],
    stream: Option<Tls>,
    token: Option<String>,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Client {
    pub fn new(address: SocketAddr, pin: [u8; 32]) -> Client {
        Client {
            address,
            pin,
            stream: None,
            token: None,
            cookie: None,
            csrf: None,
        }
    }

    /// Calls with `token` (`Authorization: Bearer`).
    pub fn with_token(mut self, token: &str) -> Client {
        self.token = Some(token.to_string());
        self
    }

    /// Opens a session with the admin password; the API's refusal as the error.
    pub fn login(&mut self, password: &str) -> io::Result<Response> {
        let body = serde_json::json!({ "password": password }).to_string();
        let response = self.call("POST", "/api/login", body.as_bytes(), None)?;
        if response.status == 200 {
            self.cookie = response
                .header("set-cookie")
                .and_then(|c| c.split(';').next())
                .map(str::to_string);
            self.csrf = response
                .json()
                .get("csrf")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(response)
    }

    /// GET `path`.
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.call("GET", path, &[], None)
    }

    /// `method` `path` with a JSON body.
    pub fn send_json(&mut self, method: &str, path: &str, body: &Value) -> io::Result<Response> {
        let text = body.to_string();
        self.call(method, path, text.as_bytes(), Some("application/json"))
    }

    /// `method` `path` with `body` of `content_type`, with the caller's credentials.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) -> io::Result<Response> {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(bearer) = &bearer {
            headers.push(("Authorization", bearer));
        }
        if let Some(cookie) = &self.cookie {
            headers.push(("Cookie", cookie));
        }
        if let Some(csrf) = &self.csrf {
            headers.push(("X-CSRF-Token", csrf));
        }
        if let Some(content_type) = content_type {
            headers.push(("Content-Type", content_type));
        }
        // A kept-alive connection the server has closed since fails at once: once more on a
        // new one.
        for attempt in 0..2 {
            if self.stream.is_none() {
                self.stream = Some(open(self.address, rustls::ALL_VERSIONS, self.pin)?);
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            let result = write_request(stream, method, path, &headers, body)
                .and_then(|()| read_response(stream));
            match result {
                Ok(response) => {
                    if response
                        .header("connection")
                        .is_some_and(|c| c.eq_ignore_ascii_case("close"))
                    {
                        self.stream = None;
                    }
                    return Ok(response);
                }
                Err(e) if attempt == 0 && stale(&e) => self.stream = None,
                Err(e) => {
                    self.stream = None;
                    return Err(e);
                }
            }
        }
        Err(io::Error::other("no connection"))
    }
}

/// An error of a kept-alive connection the server closed meanwhile.
fn stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_to_their_length() {
        let wire = b"HTTP/1.1 422 Unprocessable Entity\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"error\":\"nope\"}\nHTTP/1.1";
        let mut reader = &wire[..];
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.status, 422);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.error(), "nope");
        assert_eq!(reader, b"HTTP/1.1", "the next response is left unread");
        let mut cut = &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"[..];
        assert!(read_response(&mut cut).is_err());
        let mut huge = &b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n"[..];
        assert!(read_response(&mut huge).is_err());
    }

    #[test]
    fn requests_carry_their_length_and_headers() {
        let mut out = Vec::new();
        write_request(&mut out, "PUT", "/api/config", &[("X-A", "b")], b"body").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "PUT /api/config HTTP/1.1\r\nHost: director\r\nContent-Length: 4\r\nX-A: b\r\n\r\nbody"
        );
    }
}
