//! The admin endpoint on a booted box, reached over HTTPS from the lab's client namespace:
//! the certificate's fingerprint from the console pins the connection, the password set on the
//! console logs in, a bad configuration comes back with every problem and changes nothing, a
//! real server's new weight reaches the kernel's IPVS table, a token drives the remote command
//! line, and a source outside `admin.allowed` is reset before the handshake; and headless
//! Chromium logs in to the web console and sets a weight that shows in the kernel's table
//! (screenshots in `target/qemu-tests/admin-browser/`). Needs root and QEMU; `scripts/test`
//! runs it with `--ignored`.

mod vm;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use director::admin::cert::parse_fingerprint;
use director::admin::client::Client;
use serde_json::json;
use vm::browser::Browser;
use vm::lab::{dr_virtual_servers, enter_netns, Node, PairSpec};
use vm::test_dir;

const BOOT: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "lab-admin-password";

/// Runs `f` on a thread inside network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns).unwrap_or_else(|e| panic!("{e}"));
        f()
    })
    .join()
    .unwrap_or_else(|_| panic!("the client thread failed"))
}

#[test]
#[ignore = "boots two VMs under QEMU on bridges (root): run by scripts/test"]
fn the_admin_endpoint_answers_over_https_and_changes_go_through_the_store() {
    let dir = test_dir("admin");
    let mut spec = PairSpec::new("dadm", &dir);
    spec.config_a = spec
        .config_a
        .replace("allowed = []", "allowed = [\"192.0.2.0/24\"]");
    spec.config_a.push_str(&dr_virtual_servers(
        &[("web", 80)],
        &[("rs1", "192.0.2.21"), ("rs2", "192.0.2.22")],
    ));
    let mut pair = spec.boot();
    pair.wait_ready(BOOT);
    pair.logged(Node::A, "admin: certificate fingerprint SHA256 ", SHORT);
    pair.logged(Node::A, "admin: 0.0.0.0:3636 admits 192.0.2.0/24", SHORT);

    // The console: the password (no echo needed: not a terminal) and the fingerprint.
    let said = pair.sh(
        Node::A,
        &format!("echo {PASSWORD} | director ctl admin password"),
        SHORT,
    );
    assert!(said.contains("revision"), "{said}");
    let fingerprint = pair.console_line(Node::A, "director ctl admin fingerprint", "SHA256 ");
    let pin = parse_fingerprint(&fingerprint).unwrap();
    let history_before = pair.sh(Node::A, "director config history", SHORT);

    let box_a: SocketAddr = format!("{}:3636", Node::A.public()).parse().unwrap();
    let (bad, status, changed) = in_netns(pair.client(), move || {
        let mut wrong_pin = pin;
        wrong_pin[31] ^= 0xff;
        let err = Client::new(box_a, wrong_pin)
            .get("/api/status")
            .unwrap_err();
        assert!(err.to_string().contains("pinned"), "{err}");
        let mut client = Client::new(box_a, pin);
        assert_eq!(client.login("not the password").unwrap().status, 401);
        let login = client.login(PASSWORD).unwrap();
        assert_eq!(login.status, 200, "{}", login.error());
        let status = client.get("/api/status").unwrap();
        assert_eq!(status.status, 200, "{}", status.error());
        // Two problems at once: a port of 0 and a real server without an address.
        let config = client.get("/api/config").unwrap().json();
        let text = config["toml"].as_str().unwrap().to_string();
        let broken = text
            .replace("port = 3636", "port = 0")
            .replace("address = \"192.0.2.22\"", "address = \"not-an-address\"");
        let bad = client
            .send_json("PUT", "/api/config", &json!({ "toml": broken }))
            .unwrap();
        let broken = text.replace("port = 3636", "port = 0").replace(
            "allowed = [\"192.0.2.0/24\"]",
            "allowed = [\"192.0.2.0/24\", \"192.0.2.0/24\"]",
        );
        let invalid = client
            .send_json("PUT", "/api/config", &json!({ "toml": broken }))
            .unwrap();
        assert_eq!(invalid.status, 422, "{}", invalid.error());
        let problems = invalid.json()["problems"].as_array().unwrap().len();
        assert_eq!(problems, 2, "{:?}", invalid.json());
        let changed = client
            .send_json(
                "POST",
                "/api/real-server",
                &json!({ "virtual_server": "web", "real_server": "rs2", "action": "weight", "weight": 5 }),
            )
            .unwrap();
        (bad, status, changed)
    });
    assert_eq!(bad.status, 422, "{}", bad.error());
    assert!(bad.json().get("syntax").is_some() || bad.json().get("problems").is_some());
    let status = status.json();
    assert_eq!(status["hostname"], "lvs-a");
    assert!(
        status["ipvs"].to_string().contains("192.0.2.100"),
        "{status}"
    );
    assert_eq!(changed.status, 200, "{}", changed.error());
    let history_after_bad = pair.sh(Node::A, "director config history", SHORT);
    // The bad changes added nothing; the weight added exactly one revision.
    assert_eq!(
        history_after_bad.lines().count(),
        history_before.lines().count() + 1,
        "before:\n{history_before}\nafter:\n{history_after_bad}"
    );
    assert!(
        history_after_bad.contains("admin@192.0.2.10 (web)"),
        "{history_after_bad}"
    );
    pair.logged(Node::A, "ipvs: table in force", SHORT);
    let table = pair.sh(Node::A, "director ctl ipvs", SHORT);
    let rs2 = table
        .lines()
        .find(|l| l.contains("192.0.2.22:80"))
        .unwrap_or_else(|| panic!("rs2 not in\n{table}"));
    assert!(
        rs2.split_whitespace().nth(3) == Some("5"),
        "weight 5 in the kernel: {rs2}\n{table}"
    );

    // A token for the remote command line, run from the client's namespace.
    let token = pair.console_line(Node::A, "director ctl admin token new lab-script", "dtk_");
    let binary = env!("CARGO_BIN_EXE_director");
    let output = std::process::Command::new("ip")
        .args(["netns", "exec", pair.client(), binary, "ctl", "--host"])
        .arg(Node::A.public())
        .args(["--token", &token, "--fingerprint", &fingerprint])
        .args(["drain", "web", "rs1"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let history = pair.sh(Node::A, "director config history", SHORT);
    assert!(history.contains("token lab-script@192.0.2.10"), "{history}");

    // A source outside admin.allowed: the heartbeat network, on A's heartbeat address.
    let stranger = pair.heartbeat_host("strg", "198.51.100.9/24");
    let heartbeat_a: SocketAddr = format!("{}:3636", Node::A.heartbeat()).parse().unwrap();
    let reply = in_netns(&stranger, move || {
        let mut tcp = TcpStream::connect(heartbeat_a).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x01, 0x01]);
        let mut reply = Vec::new();
        let _ = tcp.read_to_end(&mut reply);
        reply
    });
    assert!(
        reply.is_empty(),
        "not a byte of TLS to a refused source: {reply:?}"
    );
}

#[test]
#[ignore = "boots two VMs under QEMU on bridges (root) and runs Chromium: run by scripts/test"]
fn a_browser_logs_in_and_a_weight_set_in_the_console_reaches_the_kernel() {
    let dir = test_dir("admin-browser");
    let mut spec = PairSpec::new("dbrw", &dir);
    spec.config_a.push_str(&dr_virtual_servers(
        &[("web", 80)],
        &[("rs1", "192.0.2.21"), ("rs2", "192.0.2.22")],
    ));
    let mut pair = spec.boot();
    pair.wait_ready(BOOT);
    let said = pair.sh(
        Node::A,
        &format!("echo {PASSWORD} | director ctl admin password"),
        SHORT,
    );
    assert!(said.contains("revision"), "{said}");
    pair.logged(Node::A, "ipvs: table in force", SHORT);

    let mut browser =
        Browser::launch(pair.client(), &dir.join("chromium")).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("https://{}:3636/", Node::A.public());
    browser.open(&url).unwrap_or_else(|e| panic!("{e}"));
    let wait = Duration::from_secs(20);
    browser
        .wait_for("!document.querySelector('#login').hidden", wait)
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .screenshot(&dir.join("1-login.png"))
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .eval(&format!(
            "document.querySelector('#password').value = '{PASSWORD}'; \
             document.querySelector('#login-form').requestSubmit(); true"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    // The monitoring panel with the table, rs2 among the real servers.
    let rs2 = "document.querySelector('input.weight[data-rs=\"rs2\"]')";
    browser
        .wait_for(&format!("{rs2} !== null"), wait)
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .screenshot(&dir.join("2-monitoring.png"))
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .eval(&format!(
            "const input = {rs2}; input.value = '9'; \
             input.closest('tr').querySelector('button.set-weight').click(); true"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .wait_for(
            "document.querySelector('#message').textContent.includes('weight web/rs2')",
            wait,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let message = browser
        .eval("document.querySelector('#message').className")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(message, "good", "the console says the change failed");
    // The page refreshes from the kernel's table: the new weight shows there.
    browser
        .wait_for(&format!("{rs2}.value === '9'"), wait)
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .screenshot(&dir.join("3-weight-set.png"))
        .unwrap_or_else(|e| panic!("{e}"));
    let table = pair.sh(Node::A, "director ctl ipvs", SHORT);
    let line = table
        .lines()
        .find(|l| l.contains("192.0.2.22:80"))
        .unwrap_or_else(|| panic!("rs2 not in\n{table}"));
    assert_eq!(line.split_whitespace().nth(3), Some("9"), "{table}");
    let history = pair.sh(Node::A, "director config history", SHORT);
    assert!(history.contains("admin@192.0.2.10 (web)"), "{history}");
    // The global settings panel renders the configuration's fields.
    browser
        .eval("document.querySelector('button[data-panel=\"global\"]').click(); true")
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .wait_for(
            "document.querySelector('#global input[data-path=\"node.hostname\"]')?.value === 'lvs-a'",
            wait,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .screenshot(&dir.join("4-global-settings.png"))
        .unwrap_or_else(|e| panic!("{e}"));
    for shot in [
        "1-login",
        "2-monitoring",
        "3-weight-set",
        "4-global-settings",
    ] {
        let bytes = std::fs::read(dir.join(format!("{shot}.png"))).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{shot} is a PNG");
    }
}
