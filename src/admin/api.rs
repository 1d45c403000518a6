//! The JSON API, as a function from a decoded request (`Call`) to a reply, so that it is
//! tested (and fuzzed) without sockets. Everything it changes goes through the `Backend`: the
//! daemon's commands (the same the command line sends) and the store.
//!
//! Routes (JSON in and out unless said; errors are `{"error": "..."}` with a 4xx or 5xx
//! status, validation problems are data):
//!
//! - `GET /`, `/console.js`, `/console.css`: the web console (no login needed to load it).
//! - `POST /api/login` `{"password"}`: a session cookie and the session's CSRF token;
//!   `GET /api/session` (who, and the CSRF token again after a page reload); `POST /api/logout`.
//! - `GET /api/status`: role, peer, channels, the IPVS table with its counters and the real
//!   servers' health, the recent log.
//! - `GET /api/config` (`{"revision", "toml", "config"}`: the text and the same as an object),
//!   `PUT /api/config` (the TOML as the body, or `{"toml", "comment"}` or `{"config", "comment"}`): refused with every problem and nothing changed, or a new revision;
//!   `GET /api/config/history`, `GET /api/config/diff?from=N&to=M`,
//!   `POST /api/config/rollback` `{"revision"}`.
//! - `POST /api/takeover`, `POST /api/release`, `POST /api/reboot`.
//! - `POST /api/real-server` `{"virtual_server", "real_server", "action": "drain" | "enable" |
//!   "weight", "weight"}`.
//! - `GET /metrics`: Prometheus' text format (`metrics`).
//! - `PUT /api/password` `{"current", "new"}`; `GET|POST /api/tokens` (`{"name"}`),
//!   `DELETE /api/tokens/NAME`; `PUT /api/certificate` `{"certificate", "key"}` (PEM).
//!
//! A caller is an API token (`Authorization: Bearer dtk_...`) or a session cookie; with a
//! cookie, anything but GET needs the session's token in `X-CSRF-Token`.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::auth::{self, Sessions, Throttle, Token};
use super::front::Counters;
use crate::config::{self, Rejected};
use crate::control::Request;

/// The largest request body taken; a configuration of thousands of real servers fits.
pub const MAX_BODY: usize = 4 << 20;

/// One decoded HTTP request.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    /// Path and query, as sent.
    pub url: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client, as the TLS front saw it.
    pub client: IpAddr,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    fn path(&self) -> &str {
        self.url.split('?').next().unwrap_or("")
    }

    fn query(&self, key: &str) -> Option<&str> {
        self.url
            .split_once('?')?
            .1
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// One HTTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: value.to_string().into_bytes(),
        }
    }

    pub fn error(status: u16, why: impl AsRef<str>) -> Reply {
        Reply::json(status, &json!({ "error": why.as_ref() }))
    }

    pub fn text(status: u16, text: String) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: text.into_bytes(),
        }
    }

    fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// One kept configuration revision, as the history lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub number: u64,
    pub time_ms: u64,
    pub author: String,
    pub comment: String,
}

/// What the API acts through: the daemon in the box, a fake in tests.
pub trait Backend: Send + Sync {
    /// Runs one of the daemon's commands, as `director ctl` would.
    fn command(&self, request: &Request) -> Result<String, String>;
    /// The box's state as JSON.
    fn status(&self) -> Value;
    /// The configuration in force and its revision (None: the built-in default).
    fn config(&self) -> (Option<u64>, Arc<config::Config>);
    fn history(&self) -> Result<Vec<Listed>, String>;
    fn tokens(&self) -> Result<Vec<Token>, String>;
    fn keep_tokens(&self, tokens: &[Token]) -> Result<(), String>;
    /// Keeps an uploaded certificate and key and presents them from now on; returns the new
    /// fingerprint.
    fn replace_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<String, String>;
    fn reboot(&self) -> Result<(), String>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// Who is asking.
#[derive(Clone, Debug)]
enum Caller {
    Session { user: String, csrf: String },
    Token { name: String },
}

impl Caller {
    /// The author of a revision this caller makes.
    fn author(&self, client: IpAddr) -> String {
        match self {
            Caller::Session { user, .. } => format!("{user}@{client} (web)"),
            Caller::Token { name } => format!("token {name}@{client}"),
        }
    }
}

/// The API's state: sessions and failed logins.
pub struct Api {
    backend: Arc<dyn Backend>,
    sessions: Mutex<Sessions>,
    throttle: Mutex<Throttle>,
    /// The backend's token list, once read.
    tokens: Mutex<Option<Vec<Token>>>,
    /// The TLS front's, for `/metrics`.
    pub counters: Arc<Counters>,
}

/// The one administrator's name, in sessions and revisions.
const ADMIN: &str = "admin";

impl Api {
    pub fn new(backend: Arc<dyn Backend>, idle: Duration, lifetime: Duration) -> Api {
        Api {
            backend,
            sessions: Mutex::new(Sessions::new(idle, lifetime)),
            throttle: Mutex::new(Throttle::new()),
            tokens: Mutex::new(None),
            counters: Arc::default(),
        }
    }

    /// Sets the sessions' lifetimes (the configuration changed).
    pub fn set_lifetimes(&self, idle: Duration, lifetime: Duration) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.idle = idle;
            sessions.lifetime = lifetime;
        }
    }

    pub fn handle(&self, call: &Call, now: Instant) -> Reply {
        let path = call.path().to_string();
        let method = call.method.as_str();
        if path == "/api/login" {
            return match method {
                "POST" => self.login(call, now),
                _ => not_allowed("POST"),
            };
        }
        if let Some(reply) = console(method, &path) {
            return reply;
        }
        if path == "/metrics" {
            if method != "GET" {
                return not_allowed("GET");
            }
            if let Err(reply) = self.caller(call, now) {
                return reply;
            }
            let text = super::metrics::render(&self.backend.status(), &self.counters);
            return Reply {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                headers: Vec::new(),
                body: text.into_bytes(),
            };
        }
        if !path.starts_with("/api/") {
            return Reply::error(404, format!("no such page: {path}"));
        }
        let caller = match self.caller(call, now) {
            Ok(caller) => caller,
            Err(reply) => return reply,
        };
        let author = caller.author(call.client);
        match (method, path.as_str()) {
            ("POST", "/api/logout") => {
                if let (Some(cookie), Ok(mut sessions)) =
                    (call.cookie(auth::COOKIE), self.sessions.lock())
                {
                    sessions.close(cookie);
                }
                Reply::json(200, &json!({ "logged_out": true }))
                    .with_header("Set-Cookie", clear_cookie())
            }
            ("GET", "/api/session") => match &caller {
                Caller::Session { user, csrf } => {
                    Reply::json(200, &json!({ "user": user, "csrf": csrf }))
                }
                Caller::Token { name } => Reply::json(
                    200,
                    &json!({ "user": format!("token {name}"), "csrf": null }),
                ),
            },
            ("GET", "/api/status") => Reply::json(200, &self.backend.status()),
            ("GET", "/api/config") => {
                let (revision, config) = self.backend.config();
                let structured = serde_json::to_value(&*config).map_err(|e| e.to_string());
                match (config::to_toml(&config), structured) {
                    (Ok(toml), Ok(structured)) => Reply::json(
                        200,
                        &json!({ "revision": revision, "toml": toml, "config": structured }),
                    ),
                    (Err(e), _) | (_, Err(e)) => Reply::error(500, e),
                }
            }
            ("PUT", "/api/config") => self.put_config(call, &author),
            ("GET", "/api/config/history") => match self.backend.history() {
                Ok(list) => {
                    let (current, _) = self.backend.config();
                    let revisions: Vec<Value> = list
                        .iter()
                        .map(|r| {
                            json!({
                                "revision": r.number,
                                "time_ms": r.time_ms,
                                "author": r.author,
                                "comment": r.comment,
                                "current": Some(r.number) == current,
                            })
                        })
                        .collect();
                    Reply::json(200, &json!({ "revisions": revisions }))
                }
                Err(e) => Reply::error(500, e),
            },
            ("GET", "/api/config/diff") => {
                let mut words = vec!["config".to_string(), "diff".to_string()];
                for key in ["from", "to"] {
                    match call.query(key) {
                        Some(n) if n.parse::<u64>().is_ok() => words.push(n.to_string()),
                        Some(n) => {
                            return Reply::error(
                                400,
                                format!("{key}: '{n}' is not a revision number"),
                            )
                        }
                        None if key == "to" => {}
                        None => return Reply::error(400, "from: a revision number is needed"),
                    }
                }
                match self.run(words, None, None, String::new()) {
                    Ok(diff) => Reply::json(200, &json!({ "diff": diff })),
                    Err(why) => Reply::error(400, why),
                }
            }
            ("POST", "/api/config/rollback") => {
                let body = match json_body(call) {
                    Ok(body) => body,
                    Err(reply) => return reply,
                };
                let Some(number) = body.get("revision").and_then(Value::as_u64) else {
                    return Reply::error(400, "revision: a revision number is needed");
                };
                let words = vec!["config".into(), "rollback".into(), number.to_string()];
                match self.run(words, Some(author), None, String::new()) {
                    Ok(said) => Reply::json(200, &json!({ "done": said.trim_end() })),
                    Err(why) => Reply::error(409, why),
                }
            }
            ("POST", "/api/takeover" | "/api/release") => {
                let word = path.trim_start_matches("/api/").to_string();
                match self.run(vec![word], Some(author), None, String::new()) {
                    Ok(said) => Reply::json(200, &json!({ "done": said.trim_end() })),
                    Err(why) => Reply::error(409, why),
                }
            }
            ("POST", "/api/reboot") => match self.backend.reboot() {
                Ok(()) => {
                    log::warn!("reboot asked by {author}");
                    Reply::json(202, &json!({ "rebooting": true }))
                }
                Err(why) => Reply::error(409, why),
            },
            ("POST", "/api/real-server") => self.real_server(call, &author),
            ("PUT", "/api/password") => self.password(call, &caller, &author),
            ("GET", "/api/tokens") => match self.tokens() {
                Ok(tokens) => {
                    let list: Vec<Value> = tokens
                        .iter()
                        .map(|t| json!({ "name": t.name, "created_ms": t.created_ms }))
                        .collect();
                    Reply::json(200, &json!({ "tokens": list }))
                }
                Err(e) => Reply::error(500, e),
            },
            ("POST", "/api/tokens") => self.new_token(call, &author),
            ("DELETE", p) if p.starts_with("/api/tokens/") => {
                let name = &p["/api/tokens/".len()..];
                match self.remove_token(name) {
                    Ok(()) => {
                        log::info!("API token '{name}' withdrawn by {author}");
                        Reply::json(200, &json!({ "removed": name }))
                    }
                    Err((status, why)) => Reply::error(status, why),
                }
            }
            ("PUT", "/api/certificate") => {
                let body = match json_body(call) {
                    Ok(body) => body,
                    Err(reply) => return reply,
                };
                let (Some(chain), Some(key)) = (
                    body.get("certificate").and_then(Value::as_str),
                    body.get("key").and_then(Value::as_str),
                ) else {
                    return Reply::error(400, "certificate and key: both PEM texts are needed");
                };
                match self.backend.replace_certificate(chain, key) {
                    Ok(fingerprint) => {
                        log::info!("a new certificate ({fingerprint}) from {author}");
                        Reply::json(200, &json!({ "fingerprint": fingerprint }))
                    }
                    Err(why) => Reply::error(422, why),
                }
            }
            (_, known) if KNOWN.contains(&known) || known.starts_with("/api/tokens/") => {
                not_allowed(allowed_methods(known))
            }
            _ => Reply::error(404, format!("no such API: {path}")),
        }
    }

    fn run(
        &self,
        words: Vec<String>,
        author: Option<String>,
        comment: Option<String>,
        body: String,
    ) -> Result<String, String> {
        self.backend.command(&Request {
            words,
            author,
            comment,
            body,
        })
    }

    /// The caller, or the reply that refuses the call.
    fn caller(&self, call: &Call, now: Instant) -> Result<Caller, Reply> {
        if let Some(value) = call.header("authorization") {
            let Some(token) = value.strip_prefix("Bearer ") else {
                return Err(Reply::error(
                    401,
                    "Authorization: only 'Bearer <token>' is understood",
                ));
            };
            let digest = auth::token_digest(token.trim());
            let tokens = self.tokens().map_err(|e| Reply::error(500, e))?;
            return match tokens.iter().find(|t| t.digest == digest) {
                Some(t) => Ok(Caller::Token {
                    name: t.name.clone(),
                }),
                None => Err(Reply::error(401, "unknown or withdrawn API token")),
            };
        }
        let Some(cookie) = call.cookie(auth::COOKIE) else {
            return Err(Reply::error(
                401,
                "log in first (POST /api/login) or send an API token",
            ));
        };
        let session = self
            .sessions
            .lock()
            .ok()
            .and_then(|mut sessions| sessions.touch(cookie, now));
        let Some(session) = session else {
            return Err(
                Reply::error(401, "the session has expired or ended: log in again")
                    .with_header("Set-Cookie", clear_cookie()),
            );
        };
        if !matches!(call.method.as_str(), "GET" | "HEAD") {
            let sent = call.header("x-csrf-token").unwrap_or("");
            // Compared as digests: equal time whatever the prefix in common.
            if auth::token_digest(sent) != auth::token_digest(&session.csrf) {
                return Err(Reply::error(
                    403,
                    "a change made with a session needs its CSRF token in X-CSRF-Token",
                ));
            }
        }
        Ok(Caller::Session {
            user: session.user,
            csrf: session.csrf,
        })
    }

    fn login(&self, call: &Call, now: Instant) -> Reply {
        if let Some(wait) = self
            .throttle
            .lock()
            .ok()
            .and_then(|t| t.wait(call.client, now))
        {
            let seconds = wait.as_secs().max(1);
            return Reply::error(
                429,
                format!(
                    "too many failed logins from {}: try again in {seconds} s",
                    call.client
                ),
            )
            .with_header("Retry-After", seconds.to_string());
        }
        let body = match json_body(call) {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let Some(password) = body.get("password").and_then(Value::as_str) else {
            return Reply::error(400, "password: needed");
        };
        let (_, config) = self.backend.config();
        let Some(stored) = config.admin.password_hash.as_deref() else {
            return Reply::error(
                503,
                "no admin password is set: set one on the console (director ctl admin password)",
            );
        };
        if !auth::verify_password(stored, password) {
            if let Ok(mut throttle) = self.throttle.lock() {
                throttle.failed(call.client, now);
            }
            log::warn!("failed login from {}", call.client);
            return Reply::error(401, "wrong password");
        }
        if let Ok(mut throttle) = self.throttle.lock() {
            throttle.succeeded(call.client);
        }
        let opened = match self.sessions.lock() {
            Ok(mut sessions) => sessions.open(ADMIN, call.client, now),
            Err(_) => Err("the sessions failed earlier".into()),
        };
        match opened {
            Ok((cookie, csrf)) => {
                log::info!("{ADMIN} logged in from {}", call.client);
                Reply::json(200, &json!({ "user": ADMIN, "csrf": csrf })).with_header(
                    "Set-Cookie",
                    format!(
                        "{}={cookie}; Path=/; Secure; HttpOnly; SameSite=Strict",
                        auth::COOKIE
                    ),
                )
            }
            Err(e) => Reply::error(500, e),
        }
    }

    fn put_config(&self, call: &Call, author: &str) -> Reply {
        let (text, comment) = if is_json(call) {
            let body = match json_body(call) {
                Ok(body) => body,
                Err(reply) => return reply,
            };
            let comment = body
                .get("comment")
                .and_then(Value::as_str)
                .map(String::from);
            let text = match (body.get("toml"), body.get("config")) {
                (Some(Value::String(text)), None) => text.clone(),
                (None, Some(structured)) => match from_structured(structured) {
                    Ok(text) => text,
                    Err(reply) => return reply,
                },
                _ => {
                    return Reply::error(
                        400,
                        "the configuration is needed: as TOML text (\"toml\") or as the object GET gives (\"config\")",
                    )
                }
            };
            (text, comment)
        } else {
            match std::str::from_utf8(&call.body) {
                Ok(text) => (text.to_string(), None),
                Err(_) => return Reply::error(400, "the configuration is not UTF-8 text"),
            }
        };
        // Checked here to answer with every problem as data; the store checks again.
        match config::from_toml(&text) {
            Err(Rejected::Syntax {
                line,
                column,
                message,
            }) => Reply::json(
                422,
                &json!({
                    "error": "rejected, nothing changed",
                    "syntax": { "line": line, "column": column, "message": message },
                }),
            ),
            Err(Rejected::Invalid(problems)) => Reply::json(
                422,
                &json!({
                    "error": "rejected, nothing changed",
                    "problems": problems
                        .iter()
                        .map(|p| json!({ "path": p.path, "message": p.message }))
                        .collect::<Vec<_>>(),
                }),
            ),
            Ok(_) => {
                let words = vec!["config".into(), "import".into()];
                let comment = comment.unwrap_or_else(|| "change from the admin endpoint".into());
                match self.run(words, Some(author.to_string()), Some(comment), text) {
                    Ok(said) => Reply::json(200, &revision_said(&said)),
                    Err(why) => Reply::error(409, why),
                }
            }
        }
    }

    fn real_server(&self, call: &Call, author: &str) -> Reply {
        let body = match json_body(call) {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let field = |name: &str| body.get(name).and_then(Value::as_str);
        let (Some(virtual_server), Some(real_server), Some(action)) = (
            field("virtual_server"),
            field("real_server"),
            field("action"),
        ) else {
            return Reply::error(400, "virtual_server, real_server and action: all needed");
        };
        let (config_field, value) = match action {
            "drain" => ("enabled", "false".to_string()),
            "enable" => ("enabled", "true".to_string()),
            "weight" => match body.get("weight").and_then(Value::as_u64) {
                Some(w) if w <= i32::MAX as u64 => ("weight", w.to_string()),
                _ => return Reply::error(400, "weight: a number from 0 to 2147483647 is needed"),
            },
            other => {
                return Reply::error(
                    400,
                    format!("action: '{other}' is not drain, enable or weight"),
                )
            }
        };
        let (_, config) = self.backend.config();
        let Some(vs) = config
            .virtual_servers
            .iter()
            .find(|v| v.name == virtual_server)
        else {
            return Reply::error(404, format!("no virtual server '{virtual_server}'"));
        };
        if !vs.real_servers.iter().any(|r| r.name == real_server) {
            return Reply::error(
                404,
                format!("virtual server '{virtual_server}' has no real server '{real_server}'"),
            );
        }
        let path =
            format!("virtual_servers.{virtual_server}.real_servers.{real_server}.{config_field}");
        let comment = format!("{action} {virtual_server}/{real_server}");
        let words = vec!["config".into(), "set".into(), path];
        match self.run(words, Some(author.to_string()), Some(comment), value) {
            Ok(said) => Reply::json(200, &revision_said(&said)),
            Err(why) => Reply::error(409, why),
        }
    }

    fn password(&self, call: &Call, caller: &Caller, author: &str) -> Reply {
        let body = match json_body(call) {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let Some(new) = body.get("new").and_then(Value::as_str) else {
            return Reply::error(400, "new: the new password is needed");
        };
        let (_, config) = self.backend.config();
        // With a session, the current password is asked again: a browser left open is not
        // enough to lock the owner out.
        if let (Caller::Session { .. }, Some(stored)) = (caller, &config.admin.password_hash) {
            let current = body.get("current").and_then(Value::as_str).unwrap_or("");
            if !auth::verify_password(stored, current) {
                return Reply::error(403, "current: wrong password");
            }
        }
        let hash = match auth::hash_password(new, auth::ITERATIONS) {
            Ok(hash) => hash,
            Err(why) => return Reply::error(422, format!("new: {why}")),
        };
        let words = vec!["config".into(), "set".into(), "admin.password_hash".into()];
        let comment = Some("the admin password changed".to_string());
        match self.run(words, Some(author.to_string()), comment, hash) {
            Ok(said) => {
                if let Ok(mut sessions) = self.sessions.lock() {
                    sessions.close_all();
                }
                log::info!("the password was changed by {author}; every session ended");
                Reply::json(200, &revision_said(&said)).with_header("Set-Cookie", clear_cookie())
            }
            Err(why) => Reply::error(409, why),
        }
    }

    fn new_token(&self, call: &Call, author: &str) -> Reply {
        let body = match json_body(call) {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let Some(name) = body.get("name").and_then(Value::as_str) else {
            return Reply::error(400, "name: the token's name is needed");
        };
        match self.add_token(name) {
            Ok(token) => {
                log::info!("API token '{name}' made by {author}");
                Reply::json(201, &json!({ "name": name, "token": token }))
            }
            Err((status, why)) => Reply::error(status, why),
        }
    }

    /// The tokens, read from the store once and kept (every change goes through `keep`).
    pub fn tokens(&self) -> Result<Vec<Token>, String> {
        let mut cached = self
            .tokens
            .lock()
            .map_err(|_| "the token list failed earlier")?;
        if let Some(tokens) = cached.as_ref() {
            return Ok(tokens.clone());
        }
        let tokens = self.backend.tokens()?;
        *cached = Some(tokens.clone());
        Ok(tokens)
    }

    /// Changes the token list with `change` (which may refuse) and keeps the result.
    fn change_tokens<T>(
        &self,
        change: impl FnOnce(&mut Vec<Token>) -> Result<T, (u16, String)>,
    ) -> Result<T, (u16, String)> {
        let mut cached = self
            .tokens
            .lock()
            .map_err(|_| (500, "the token list failed earlier".to_string()))?;
        let mut tokens = match cached.take() {
            Some(tokens) => tokens,
            None => self.backend.tokens().map_err(|e| (500, e))?,
        };
        let before = tokens.clone();
        let result = change(&mut tokens);
        let kept = match result {
            Ok(_) => self.backend.keep_tokens(&tokens).map_err(|e| (500, e)),
            Err(_) => Ok(()),
        };
        // What the store holds: the old list when the change was refused or not kept.
        *cached = Some(if result.is_ok() && kept.is_ok() {
            tokens
        } else {
            before
        });
        kept?;
        result
    }

    /// Makes and keeps a token named `name`; the token itself is returned once and never kept.
    pub fn add_token(&self, name: &str) -> Result<String, (u16, String)> {
        auth::check_token_name(name).map_err(|why| (400, why))?;
        let created_ms = self.backend.now_ms();
        self.change_tokens(|tokens| {
            if tokens.iter().any(|t| t.name == name) {
                return Err((
                    409,
                    format!("a token named '{name}' exists; remove it first"),
                ));
            }
            let (token, digest) = auth::new_token().map_err(|e| (500, e))?;
            tokens.push(Token {
                name: name.to_string(),
                digest,
                created_ms,
            });
            Ok(token)
        })
    }

    /// Withdraws the token named `name`.
    pub fn remove_token(&self, name: &str) -> Result<(), (u16, String)> {
        self.change_tokens(|tokens| {
            let before = tokens.len();
            tokens.retain(|t| t.name != name);
            if tokens.len() == before {
                return Err((404, format!("no token named '{name}'")));
            }
            Ok(())
        })
    }
}

const KNOWN: &[&str] = &[
    "/api/logout",
    "/api/session",
    "/api/status",
    "/api/config",
    "/api/config/history",
    "/api/config/diff",
    "/api/config/rollback",
    "/api/takeover",
    "/api/release",
    "/api/reboot",
    "/api/real-server",
    "/api/password",
    "/api/tokens",
    "/api/certificate",
];

fn allowed_methods(path: &str) -> &'static str {
    match path {
        "/api/status" | "/api/session" | "/api/config/history" | "/api/config/diff" => "GET",
        "/api/config" => "GET, PUT",
        "/api/tokens" => "GET, POST",
        "/api/password" | "/api/certificate" => "PUT",
        p if p.starts_with("/api/tokens/") => "DELETE",
        _ => "POST",
    }
}

fn not_allowed(allow: &'static str) -> Reply {
    Reply::error(405, format!("method not allowed here (only {allow})"))
        .with_header("Allow", allow.to_string())
}

fn clear_cookie() -> String {
    format!(
        "{}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        auth::COOKIE
    )
}

fn is_json(call: &Call) -> bool {
    call.header("content-type")
        .is_some_and(|t| t.trim_start().starts_with("application/json"))
}

fn json_body(call: &Call) -> Result<Value, Reply> {
    match serde_json::from_slice::<Value>(&call.body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(Reply::error(400, "the body must be a JSON object")),
        Err(e) => Err(Reply::error(
            400,
            format!(
                "the body is not JSON: line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
        )),
    }
}

/// The configuration as `GET /api/config` gives it (`config`), back as TOML; refused with every
/// problem when it does not fit the model or breaks the rules.
fn from_structured(structured: &Value) -> Result<String, Reply> {
    let rejected = |problems: Vec<Value>| {
        Reply::json(
            422,
            &json!({ "error": "rejected, nothing changed", "problems": problems }),
        )
    };
    let parsed: config::Config = serde_json::from_value(structured.clone())
        .map_err(|e| rejected(vec![json!({ "path": "config", "message": e.to_string() })]))?;
    let problems = config::validate(&parsed);
    if !problems.is_empty() {
        return Err(rejected(
            problems
                .iter()
                .map(|p| json!({ "path": p.path, "message": p.message }))
                .collect(),
        ));
    }
    config::to_toml(&parsed).map_err(|e| Reply::error(500, e))
}

/// The web console's files, served to anyone (they hold no data; the API asks for a login).
fn console(method: &str, path: &str) -> Option<Reply> {
    let (content_type, body): (&'static str, &'static str) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            include_str!("console/index.html"),
        ),
        "/console.js" => (
            "text/javascript; charset=utf-8",
            include_str!("console/console.js"),
        ),
        "/console.css" => (
            "text/css; charset=utf-8",
            include_str!("console/console.css"),
        ),
        _ => return None,
    };
    if method != "GET" && method != "HEAD" {
        return Some(not_allowed("GET"));
    }
    Some(Reply {
        status: 200,
        content_type,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    })
}

/// `revision N` (or `no change: ...`) from the daemon, as JSON.
fn revision_said(said: &str) -> Value {
    let first = said.lines().next().unwrap_or("");
    let revision = first
        .strip_prefix("revision ")
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    let warning = said.lines().find(|l| l.starts_with("warning:"));
    json!({ "revision": revision, "said": said.trim_end(), "warning": warning })
}

#[cfg(test)]
mod tests;
