use super::*;
use crate::admin::testing::{Fake, PASSWORD};
use crate::config::Config;

fn client() -> IpAddr {
    "192.0.2.50".parse().unwrap()
}

fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Call {
    Call {
        method: method.into(),
        url: url.into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
        client: client(),
    }
}

/// Asserts the reply's status, showing its body when it is another.
fn expect(reply: &Reply, status: u16) {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

fn body(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap()
}

fn api(backend: Arc<Fake>) -> Api {
    Api::new(backend, Duration::from_secs(60), Duration::from_secs(3600))
}

/// Logs in: the cookie header to send and the CSRF token.
fn login(api: &Api, now: Instant) -> (String, String) {
    let body_text = json!({ "password": PASSWORD }).to_string();
    let reply = api.handle(&call("POST", "/api/login", &[], &body_text), now);
    assert_eq!(
        reply.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    let set = &reply
        .headers
        .iter()
        .find(|(n, _)| *n == "Set-Cookie")
        .unwrap()
        .1;
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let csrf = body(&reply)["csrf"].as_str().unwrap().to_string();
    (cookie, csrf)
}

#[test]
fn nothing_without_a_login_or_a_token() {
    let api = api(Fake::new(Some(PASSWORD)));
    let now = Instant::now();
    for (method, url) in [
        ("GET", "/api/status"),
        ("GET", "/api/config"),
        ("POST", "/api/takeover"),
    ] {
        let reply = api.handle(&call(method, url, &[], ""), now);
        assert_eq!(reply.status, 401, "{method} {url}");
    }
    let reply = api.handle(
        &call(
            "GET",
            "/api/status",
            &[("cookie", "director_session=forged")],
            "",
        ),
        now,
    );
    assert_eq!(reply.status, 401);
    let reply = api.handle(
        &call(
            "GET",
            "/api/status",
            &[("authorization", "Bearer dtk_00")],
            "",
        ),
        now,
    );
    assert_eq!(reply.status, 401);
}

#[test]
fn a_login_opens_a_session_and_a_wrong_password_does_not() {
    let api = api(Fake::new(Some(PASSWORD)));
    let now = Instant::now();
    let wrong = json!({ "password": "guess" }).to_string();
    let reply = api.handle(&call("POST", "/api/login", &[], &wrong), now);
    assert_eq!(reply.status, 401);
    assert!(reply.headers.is_empty(), "no cookie for a wrong password");
    let (cookie, _) = login(&api, now);
    let reply = api.handle(&call("GET", "/api/status", &[("cookie", &cookie)], ""), now);
    assert_eq!(reply.status, 200);
    assert_eq!(body(&reply)["role"], "active");
}

#[test]
fn without_a_password_set_nobody_logs_in() {
    let api = api(Fake::new(None));
    let reply = api.handle(
        &call(
            "POST",
            "/api/login",
            &[],
            r#"{"password":"anything-at-all"}"#,
        ),
        Instant::now(),
    );
    assert_eq!(reply.status, 503);
    assert!(body(&reply)["error"].as_str().unwrap().contains("console"));
}

#[test]
fn an_expired_session_is_refused() {
    let api = api(Fake::new(Some(PASSWORD)));
    let now = Instant::now();
    let (cookie, _) = login(&api, now);
    let later = now + Duration::from_secs(61);
    let reply = api.handle(
        &call("GET", "/api/status", &[("cookie", &cookie)], ""),
        later,
    );
    assert_eq!(reply.status, 401);
    assert!(body(&reply)["error"].as_str().unwrap().contains("expired"));
}

#[test]
fn a_change_with_a_cookie_needs_the_csrf_token() {
    let backend = Fake::new(Some(PASSWORD));
    let api = api(backend.clone());
    let now = Instant::now();
    let (cookie, csrf) = login(&api, now);
    for sent in [None, Some("0123"), Some("")] {
        let mut headers = vec![("cookie", cookie.as_str())];
        if let Some(sent) = sent {
            headers.push(("x-csrf-token", sent));
        }
        let reply = api.handle(&call("POST", "/api/takeover", &headers, ""), now);
        assert_eq!(reply.status, 403, "{sent:?}");
    }
    assert!(backend.commands().is_empty(), "nothing ran");
    let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let reply = api.handle(&call("POST", "/api/takeover", &headers, ""), now);
    assert_eq!(reply.status, 200);
    assert_eq!(backend.commands(), vec![vec!["takeover".to_string()]]);
    let recorded = backend.commands.lock().unwrap()[0].author.clone().unwrap();
    assert_eq!(recorded, "admin@192.0.2.50 (web)");
}

#[test]
fn failed_logins_are_slowed_down_per_source() {
    let api = api(Fake::new(Some(PASSWORD)));
    let now = Instant::now();
    let wrong = json!({ "password": "guess" }).to_string();
    for _ in 0..=auth::FREE_FAILURES {
        let reply = api.handle(&call("POST", "/api/login", &[], &wrong), now);
        assert_eq!(reply.status, 401);
    }
    // Now even the right password waits.
    let right = json!({ "password": PASSWORD }).to_string();
    let reply = api.handle(&call("POST", "/api/login", &[], &right), now);
    assert_eq!(reply.status, 429);
    assert!(reply
        .headers
        .iter()
        .any(|(n, v)| *n == "Retry-After" && v == "1"));
    let mut other = call("POST", "/api/login", &[], &right);
    other.client = "192.0.2.51".parse().unwrap();
    assert_eq!(
        api.handle(&other, now).status,
        200,
        "another source is not slowed"
    );
    login(&api, now + Duration::from_secs(1));
}

#[test]
fn tokens_are_made_used_and_withdrawn() {
    let backend = Fake::new(Some(PASSWORD));
    let api = api(backend.clone());
    let now = Instant::now();
    let token = api.add_token("nms").unwrap();
    assert!(!format!("{:?}", backend.tokens().unwrap()).contains(&token[4..]));
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];
    // No CSRF token needed: a token is no ambient credential.
    let reply = api.handle(&call("POST", "/api/release", &headers, ""), now);
    assert_eq!(reply.status, 200);
    let author = backend.commands.lock().unwrap()[0].author.clone().unwrap();
    assert_eq!(author, "token nms@192.0.2.50");
    let reply = api.handle(
        &call("POST", "/api/tokens", &headers, r#"{"name":"nms"}"#),
        now,
    );
    assert_eq!(reply.status, 409, "names are unique");
    let reply = api.handle(
        &call("POST", "/api/tokens", &headers, r#"{"name":"a b"}"#),
        now,
    );
    assert_eq!(reply.status, 400);
    let reply = api.handle(&call("GET", "/api/tokens", &headers, ""), now);
    assert_eq!(body(&reply)["tokens"][0]["name"], "nms");
    let reply = api.handle(&call("DELETE", "/api/tokens/nms", &headers, ""), now);
    assert_eq!(reply.status, 200);
    let reply = api.handle(&call("GET", "/api/status", &headers, ""), now);
    assert_eq!(reply.status, 401, "a withdrawn token no longer works");
}

fn with_token(api: &Api) -> String {
    format!("Bearer {}", api.add_token("test").unwrap())
}

#[test]
fn a_bad_configuration_returns_every_problem_and_changes_nothing() {
    let backend = Fake::new(Some(PASSWORD));
    let api = api(backend.clone());
    let bearer = with_token(&api);
    let headers = [("authorization", bearer.as_str())];
    let now = Instant::now();
    let text = config::to_toml(&Config::default())
        .unwrap()
        .replace("port = 3636", "port = 0")
        .replace(
            "allowed = []",
            "allowed = [\"192.0.2.0/24\", \"192.0.2.0/24\"]",
        );
    let reply = api.handle(&call("PUT", "/api/config", &headers, &text), now);
    expect(&reply, 422);
    let problems = body(&reply)["problems"].as_array().unwrap().clone();
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["admin.port", "admin.allowed[1]"]);
    let reply = api.handle(&call("PUT", "/api/config", &headers, "[admin\nport ="), now);
    assert_eq!(reply.status, 422);
    assert_eq!(body(&reply)["syntax"]["line"], 1);
    assert!(backend.commands().is_empty(), "nothing reached the daemon");
    assert_eq!(backend.config().0, None);
}

#[test]
fn a_good_configuration_becomes_a_revision_by_its_author() {
    let backend = Fake::new(Some(PASSWORD));
    let api = api(backend.clone());
    let bearer = with_token(&api);
    let now = Instant::now();
    let text = config::to_toml(&backend.config().1)
        .unwrap()
        .replace("port = 3636", "port = 8443");
    let sent = json!({ "toml": text, "comment": "move the admin port" }).to_string();
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let reply = api.handle(&call("PUT", "/api/config", &headers, &sent), now);
    expect(&reply, 200);
    assert_eq!(body(&reply)["revision"], 1);
    assert_eq!(backend.config().1.admin.port, 8443);
    let request = backend.commands.lock().unwrap()[0].clone();
    assert_eq!(request.comment.as_deref(), Some("move the admin port"));
    assert_eq!(request.author.as_deref(), Some("token test@192.0.2.50"));
    let reply = api.handle(&call("GET", "/api/config", &headers, ""), now);
    assert_eq!(body(&reply)["revision"], 1);
    let reply = api.handle(&call("GET", "/api/config/history", &headers, ""), now);
    assert_eq!(body(&reply)["revisions"][0]["current"], true);
}

#[test]
fn a_real_server_is_drained_and_weighted_through_revisions() {
    let backend = Fake::new(Some(PASSWORD));
    let api = api(backend.clone());
    let bearer = with_token(&api);
    let headers = [("authorization", bearer.as_str())];
    let now = Instant::now();
    let mut config = Config::default();
    let vs: crate::config::model::VirtualServer = toml::from_str(
        "name = \"web\"\nvip = \"192.0.2.100\"\nport = 80\n\n[[real_servers]]\nname = \"web1\"\naddress = \"198.51.100.11\"\n",
    )
    .unwrap();
    config.virtual_servers.push(vs);
    *backend.config.lock().unwrap() = (Some(1), Arc::new(config));
    let set =
        |body_text: &str| api.handle(&call("POST", "/api/real-server", &headers, body_text), now);
    let reply =
        set(r#"{"virtual_server":"web","real_server":"web1","action":"weight","weight":7}"#);
    expect(&reply, 200);
    assert_eq!(
        backend.config().1.virtual_servers[0].real_servers[0].weight,
        7
    );
    let reply = set(r#"{"virtual_server":"web","real_server":"web1","action":"drain"}"#);
    assert_eq!(reply.status, 200);
    assert!(!backend.config().1.virtual_servers[0].real_servers[0].enabled);
    assert_eq!(backend.config().0, Some(3));
    let reply = set(r#"{"virtual_server":"web","real_server":"web9","action":"drain"}"#);
    assert_eq!(reply.status, 404);
    let reply =
        set(r#"{"virtual_server":"web","real_server":"web1","action":"weight","weight":-1}"#);
    assert_eq!(reply.status, 400);
    let reply = set(r#"{"virtual_server":"web","real_server":"web1","action":"explode"}"#);
    assert_eq!(reply.status, 400);
    let reply = set("not json");
    assert_eq!(reply.status, 400);
    assert_eq!(
        backend.config().0,
        Some(3),
        "the refused ones changed nothing"
    );
}

#[test]
fn a_new_password_needs_the_old_one_and_ends_the_sessions() {
    let backend = Fake::new(Some(PASSWORD));
    let api = api(backend.clone());
    let now = Instant::now();
    let (cookie, csrf) = login(&api, now);
    let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let wrong = json!({ "current": "nope", "new": "another-secret" }).to_string();
    assert_eq!(
        api.handle(&call("PUT", "/api/password", &headers, &wrong), now)
            .status,
        403
    );
    let short = json!({ "current": PASSWORD, "new": "short" }).to_string();
    assert_eq!(
        api.handle(&call("PUT", "/api/password", &headers, &short), now)
            .status,
        422
    );
    let good = json!({ "current": PASSWORD, "new": "another-secret" }).to_string();
    assert_eq!(
        api.handle(&call("PUT", "/api/password", &headers, &good), now)
            .status,
        200
    );
    let stored = backend.config().1.admin.password_hash.clone().unwrap();
    assert!(auth::verify_password(&stored, "another-secret"));
    let reply = api.handle(&call("GET", "/api/status", &[("cookie", &cookie)], ""), now);
    assert_eq!(reply.status, 401, "the old session ended");
}

#[test]
fn unknown_pages_and_methods_are_named() {
    let api = api(Fake::new(Some(PASSWORD)));
    let bearer = with_token(&api);
    let headers = [("authorization", bearer.as_str())];
    let now = Instant::now();
    let reply = api.handle(&call("DELETE", "/api/status", &headers, ""), now);
    assert_eq!(reply.status, 405);
    assert!(reply.headers.contains(&("Allow", "GET".to_string())));
    assert_eq!(
        api.handle(&call("GET", "/api/nothing", &headers, ""), now)
            .status,
        404
    );
    assert_eq!(
        api.handle(&call("GET", "/api/login", &[], ""), now).status,
        405
    );
    let reply = api.handle(&call("GET", "/api/config/diff?from=x", &headers, ""), now);
    assert_eq!(reply.status, 400);
}

#[test]
fn the_console_loads_without_a_login_and_asks_for_one() {
    let api = api(Fake::new(Some(PASSWORD)));
    let now = Instant::now();
    for (path, kind, needle) in [
        ("/", "text/html", "/console.js"),
        ("/console.js", "text/javascript", "/api/login"),
        ("/console.css", "text/css", "body"),
    ] {
        let reply = api.handle(&call("GET", path, &[], ""), now);
        assert_eq!(reply.status, 200, "{path}");
        assert!(
            reply.content_type.starts_with(kind),
            "{path}: {}",
            reply.content_type
        );
        assert!(
            String::from_utf8_lossy(&reply.body).contains(needle),
            "{path}"
        );
    }
    assert_eq!(api.handle(&call("POST", "/", &[], ""), now).status, 405);
    assert_eq!(
        api.handle(&call("GET", "/api/session", &[], ""), now)
            .status,
        401
    );
}

#[test]
fn a_session_gives_its_csrf_token_again_after_a_reload() {
    let api = api(Fake::new(Some(PASSWORD)));
    let now = Instant::now();
    let (cookie, csrf) = login(&api, now);
    let reply = api.handle(
        &call("GET", "/api/session", &[("cookie", &cookie)], ""),
        now,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(body(&reply)["csrf"], csrf.as_str());
    let bearer = with_token(&api);
    let reply = api.handle(
        &call("GET", "/api/session", &[("authorization", &bearer)], ""),
        now,
    );
    assert_eq!(body(&reply)["user"], "token test");
    assert_eq!(body(&reply)["csrf"], Value::Null);
}

#[test]
fn the_configuration_as_an_object_goes_back_through_the_same_rules() {
    let backend = Fake::new(Some(PASSWORD));
    let api = api(backend.clone());
    let bearer = with_token(&api);
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let now = Instant::now();
    let got = body(&api.handle(&call("GET", "/api/config", &headers, ""), now));
    let mut structured = got["config"].clone();
    assert_eq!(structured["admin"]["port"], 3636);
    structured["admin"]["port"] = json!(0);
    structured["admin"]["allowed"] = json!(["192.0.2.0/24", "192.0.2.0/24"]);
    let sent = json!({ "config": structured }).to_string();
    let reply = api.handle(&call("PUT", "/api/config", &headers, &sent), now);
    assert_eq!(reply.status, 422);
    let paths: Vec<String> = body(&reply)["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths, ["admin.port", "admin.allowed[1]"]);
    structured["admin"]["port"] = json!("not a port");
    let sent = json!({ "config": structured }).to_string();
    let reply = api.handle(&call("PUT", "/api/config", &headers, &sent), now);
    assert_eq!(reply.status, 422);
    assert_eq!(body(&reply)["problems"][0]["path"], "config");
    assert!(backend.commands().is_empty(), "nothing reached the daemon");
    structured["admin"]["port"] = json!(8443);
    structured["admin"]["allowed"] = json!(["192.0.2.0/24"]);
    let sent = json!({ "config": structured, "comment": "from the console" }).to_string();
    let reply = api.handle(&call("PUT", "/api/config", &headers, &sent), now);
    expect(&reply, 200);
    assert_eq!(backend.config().1.admin.port, 8443);
    let both = json!({ "config": structured, "toml": "" }).to_string();
    assert_eq!(
        api.handle(&call("PUT", "/api/config", &headers, &both), now)
            .status,
        400
    );
}
