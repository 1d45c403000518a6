//! The admin API's request decoding: never a panic, every reply a JSON object (or the console's
//! files or the metrics' text) with a status the API means to send, and nothing done without a credential. The input is a request as
//! lines (method, URL, `name: value` headers) and, after an empty line, the body; the backend
//! knows one API token (`dtk_fuzz`, in the seed corpus) so that the fuzzer reaches the routes
//! behind it, and refuses every command.
#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use director::admin::api::{Api, Backend, Call, Listed};
use director::admin::auth::{self, Token};
use director::config::Config;
use director::control::Request;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct Refusing(Arc<Config>);

impl Backend for Refusing {
    fn command(&self, _request: &Request) -> Result<String, String> {
        Err("refused while fuzzing".into())
    }
    fn status(&self) -> Value {
        serde_json::json!({ "version": "fuzz" })
    }
    fn config(&self) -> (Option<u64>, Arc<Config>) {
        (Some(1), Arc::clone(&self.0))
    }
    fn history(&self) -> Result<Vec<Listed>, String> {
        Ok(Vec::new())
    }
    fn tokens(&self) -> Result<Vec<Token>, String> {
        Ok(vec![Token {
            name: "fuzz".into(),
            digest: auth::token_digest("dtk_fuzz"),
            created_ms: 0,
        }])
    }
    fn keep_tokens(&self, _tokens: &[Token]) -> Result<(), String> {
        Err("refused while fuzzing".into())
    }
    fn replace_certificate(&self, _chain: &str, _key: &str) -> Result<String, String> {
        Err("refused while fuzzing".into())
    }
    fn reboot(&self) -> Result<(), String> {
        Err("refused while fuzzing".into())
    }
    fn now_ms(&self) -> u64 {
        0
    }
}

static API: LazyLock<Api> = LazyLock::new(|| {
    let mut config = Config::default();
    // Few rounds: the fuzzer tries many passwords.
    config.admin.password_hash = auth::hash_password("fuzzing-password", 1).ok();
    Api::new(
        Arc::new(Refusing(Arc::new(config))),
        Duration::from_secs(60),
        Duration::from_secs(600),
    )
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let method = lines.next().unwrap_or("").to_string();
    let url = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect();
    let credentials = headers
        .iter()
        .any(|(n, _)| n == "authorization" || n == "cookie");
    let call = Call {
        method,
        url,
        headers,
        body: body.as_bytes().to_vec(),
        client: IpAddr::from([192, 0, 2, 1]),
    };
    let reply = API.handle(&call, Instant::now());
    let known = [200, 201, 202, 400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 503];
    assert!(known.contains(&reply.status), "status {}", reply.status);
    if reply.content_type == "application/json" {
        let value: Value = serde_json::from_slice(&reply.body).expect("a JSON reply is JSON");
        assert!(value.is_object(), "every JSON reply is an object");
    } else {
        // The console's files and the metrics are the only replies that are not JSON.
        let path = call.url.split('?').next().unwrap_or("");
        let text = ["/", "/index.html", "/console.js", "/console.css", "/metrics"];
        assert!(reply.status == 200 && text.contains(&path), "{path}: only the console and metrics are text");
    }
    let path = call.url.split('?').next().unwrap_or("");
    let guarded = (path.starts_with("/api/") && path != "/api/login") || path == "/metrics";
    if !credentials && guarded && reply.status < 400 {
        panic!("{} {} answered {} without a credential", call.method, call.url, reply.status);
    }
});
