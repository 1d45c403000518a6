//! Tests of the configuration service: the `config` commands against a real store on disk,
//! provisioning at start, and field edits.

use super::*;
use crate::scratch::Scratch;

fn scratch(tag: &str) -> Scratch {
    let dir = Scratch::new(tag);
    std::fs::create_dir_all(dir.path().join("provision")).expect("scratch directory");
    dir
}

fn start(dir: &Scratch) -> Configuration {
    Configuration::start(&dir.path().join("store"), &dir.path().join("provision"))
}

fn provide(dir: &Scratch, text: &str) {
    std::fs::write(dir.path().join("provision").join(PROVISION_FILE), text).expect("write");
}

fn ask(service: &mut Configuration, words: &str, body: &str) -> Result<String, String> {
    let mut words: Vec<&str> = words.split_whitespace().collect();
    let mut body = body.to_string();
    // As the CLI sends it: the value of `set` is the body.
    if words.get(1) == Some(&"set") && words.len() > 3 {
        body = words[3..].join(" ");
        words.truncate(3);
    }
    let mut request = Request::new(&words);
    request.author = Some("alice".into());
    request.body = body;
    service.handle(&request)
}

const WEB: &str = r#"
[node]
hostname = "lvs-a"

[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80
scheduler = "wlc"

[[virtual_servers.real_servers]]
name = "web1"
address = "198.51.100.11"

[[virtual_servers.real_servers]]
name = "web2"
address = "198.51.100.12"

[admin]
listen = "0.0.0.0"
port = 3636
allowed = ["192.0.2.0/24"]
"#;

#[test]
fn without_anything_stored_the_builtin_default_applies() {
    let dir = scratch("default");
    let mut service = start(&dir);
    assert_eq!(
        *service.subscribe().borrow().as_ref(),
        config::builtin_default()
    );
    let shown = ask(&mut service, "config show", "").unwrap();
    assert!(shown.starts_with("# the built-in default"), "{shown}");
    assert!(ask(&mut service, "config history", "")
        .unwrap()
        .contains("no revision stored"));
    assert_eq!(
        ask(&mut service, "config validate", "").unwrap(),
        "the built-in default is valid\n"
    );
}

#[test]
fn import_set_history_diff_and_rollback() {
    let dir = scratch("cycle");
    let mut service = start(&dir);
    let changes = service.subscribe();
    assert_eq!(
        ask(&mut service, "config import", WEB).unwrap(),
        "revision 1\n"
    );
    assert_eq!(changes.borrow().node.hostname, "lvs-a");
    assert_eq!(
        ask(
            &mut service,
            "config set virtual_servers.web.real_servers.web2.weight 5",
            ""
        )
        .unwrap(),
        "revision 2\n"
    );
    assert_eq!(service.current.virtual_servers[0].real_servers[1].weight, 5);
    ask(
        &mut service,
        "config set virtual_servers.0.scheduler rr",
        "",
    )
    .unwrap();
    let history = ask(&mut service, "config history", "").unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(lines[2].starts_with("*    3  "), "{history}");
    assert!(lines[1].contains("alice  set virtual_servers.web.real_servers.web2.weight = 5"));
    assert_eq!(
        ask(&mut service, "config history 1", "")
            .unwrap()
            .lines()
            .count(),
        1
    );

    let diff = ask(&mut service, "config diff", "").unwrap();
    assert!(
        diff.contains("-scheduler = \"wlc\"\n+scheduler = \"rr\"\n"),
        "{diff}"
    );
    let diff = ask(&mut service, "config diff 1 2", "").unwrap();
    assert!(diff.contains("+weight = 5\n"), "{diff}");

    assert_eq!(
        ask(&mut service, "config rollback 1", "").unwrap(),
        "revision 4: revision 1 is in force again\n"
    );
    assert_eq!(
        changes.borrow().virtual_servers[0].real_servers[1].weight,
        1
    );
    assert!(ask(&mut service, "config show", "")
        .unwrap()
        .starts_with("# revision 4: "));
    // The same configuration again is no new revision.
    assert_eq!(
        ask(&mut service, "config import", WEB).unwrap(),
        "no change: revision 4 already says this\n"
    );
}

#[test]
fn the_store_survives_a_restart_of_the_service() {
    let dir = scratch("restart");
    {
        let mut service = start(&dir);
        ask(&mut service, "config import", WEB).unwrap();
        ask(&mut service, "config set pair.peer 198.51.100.3", "").unwrap_err();
        ask(&mut service, "config set node.hostname lvs-b", "").unwrap();
    }
    let service = start(&dir);
    assert_eq!(service.revision, Some(2));
    assert_eq!(service.current.node.hostname, "lvs-b");
}

#[test]
fn a_bad_change_changes_nothing_and_says_why() {
    let dir = scratch("bad");
    let mut service = start(&dir);
    ask(&mut service, "config import", WEB).unwrap();
    let before = service.current.clone();

    let why = ask(&mut service, "config import", "[node]\nhostname = 7\n").unwrap_err();
    assert!(why.contains("rejected, nothing changed"), "{why}");
    let why = ask(
        &mut service,
        "config set virtual_servers.web.real_servers.web1.address 198.51.100.12",
        "",
    )
    .unwrap_err();
    assert!(why.contains("virtual_servers[0].real_servers"), "{why}");
    let why = ask(&mut service, "config set virtual_servers.mail.port 25", "").unwrap_err();
    assert_eq!(why, "virtual_servers: no entry 'mail' (there are: web)");
    let why = ask(&mut service, "config set node.colour blue", "").unwrap_err();
    assert!(why.contains("node.colour"), "{why}");
    assert!(why.contains("unknown field"), "{why}");
    let why = ask(&mut service, "config unset pair.deadtime", "").unwrap_err();
    assert_eq!(why, "pair: not set");
    // Inside one virtual server (edited on its own): an unknown field, a wrong type.
    let why = ask(
        &mut service,
        "config set virtual_servers.web.colour blue",
        "",
    )
    .unwrap_err();
    assert!(
        why.starts_with("virtual_servers.web.colour: unknown field"),
        "{why}"
    );
    let why = ask(&mut service, "config set virtual_servers.0.port eighty", "").unwrap_err();
    assert!(
        why.starts_with("virtual_servers.0.port: invalid type"),
        "{why}"
    );
    let why = ask(
        &mut service,
        "config set virtual_servers.web.real_servers.nope.weight 2",
        "",
    )
    .unwrap_err();
    assert!(why.contains("no entry 'nope'"), "{why}");
    let why = ask(&mut service, "config set virtual_servers.web 1", "").unwrap_err();
    assert!(why.contains("a whole entry"), "{why}");
    let why = ask(&mut service, "config set node.hostname", "").unwrap_err();
    assert_eq!(why, "set node.hostname: no value given");
    assert!(ask(&mut service, "config rollback 9", "").is_err());
    assert!(ask(&mut service, "config diff x", "").is_err());
    assert!(ask(&mut service, "config frobnicate", "").is_err());

    assert_eq!(service.current, before);
    assert_eq!(service.revision, Some(1));
}

#[test]
fn unset_removes_an_optional_field() {
    let dir = scratch("unset");
    let mut service = start(&dir);
    ask(&mut service, "config import", WEB).unwrap();
    ask(
        &mut service,
        "config set virtual_servers.web.reentry 15s",
        "",
    )
    .unwrap();
    assert!(service.current.virtual_servers[0].reentry.is_some());
    ask(&mut service, "config unset virtual_servers.web.reentry", "").unwrap();
    assert!(service.current.virtual_servers[0].reentry.is_none());
}

#[test]
fn values_read_as_toml_or_as_words() {
    assert_eq!(parse_value("5"), toml::Value::Integer(5));
    assert_eq!(parse_value("true"), toml::Value::Boolean(true));
    assert_eq!(parse_value("lvs-a"), toml::Value::String("lvs-a".into()));
    assert_eq!(parse_value("\"5\""), toml::Value::String("5".into()));
    assert_eq!(
        parse_value("[\"192.0.2.0/24\"]"),
        toml::Value::Array(vec![toml::Value::String("192.0.2.0/24".into())])
    );
}

#[test]
fn provisioning_imports_a_new_file_once_and_refuses_a_bad_one() {
    let dir = scratch("provision");
    provide(&dir, WEB);
    {
        let service = start(&dir);
        assert_eq!(service.revision, Some(1));
        assert_eq!(service.current.node.hostname, "lvs-a");
    }
    // Same file at the next start: nothing new.
    assert_eq!(start(&dir).revision, Some(1));
    // A bad file: the old revision stays in force.
    provide(&dir, "[node]\nhostname = \"lvs a\"\n");
    let service = start(&dir);
    assert_eq!(service.revision, Some(1));
    assert_eq!(service.current.node.hostname, "lvs-a");
    drop(service);
    provide(&dir, &WEB.replace("lvs-a", "lvs-c"));
    let service = start(&dir);
    assert_eq!(service.revision, Some(2));
    assert_eq!(service.current.node.hostname, "lvs-c");
}

#[test]
fn times_are_shown_in_utc() {
    assert_eq!(utc(0), "1970-01-01 00:00:00");
    assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
    assert_eq!(utc(1_795_398_245_000), "2026-11-23 01:44:05");
}

#[test]
fn unset_removes_a_list_entry_and_set_keeps_spaces() {
    let dir = scratch("entries");
    let mut service = start(&dir);
    ask(&mut service, "config import", WEB).unwrap();
    ask(
        &mut service,
        "config unset virtual_servers.web.real_servers.web1",
        "",
    )
    .unwrap();
    let names: Vec<&str> = service.current.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, vec!["web2"]);
    let mut request = Request::new(&["config", "set", "virtual_servers.web.check"]);
    request.body =
        "{ interval = \"6s\", timeout = \"3s\", send_expect = { send = \"GET /  HTTP/1.0\" } }"
            .into();
    service.handle(&request).unwrap();
    let check = service.current.virtual_servers[0].check.clone().unwrap();
    assert_eq!(
        check.send_expect.and_then(|s| s.send).as_deref(),
        Some("GET /  HTTP/1.0")
    );
}

#[test]
fn an_unreadable_current_revision_keeps_the_last_good_one_in_force() {
    let dir = scratch("unreadable");
    {
        let mut service = start(&dir);
        ask(&mut service, "config import", WEB).unwrap();
        ask(&mut service, "config set node.hostname lvs-b", "").unwrap();
    }
    {
        // Damage revision 2 as a bad sector would.
        let store = Store::open(&dir.path().join("store")).unwrap();
        store.damage_for_tests(2);
    }
    let mut service = start(&dir);
    assert_eq!(service.revision, Some(1));
    assert_eq!(service.current.node.hostname, "lvs-a");
    let why = ask(&mut service, "config set node.hostname lvs-c", "").unwrap_err();
    assert!(why.contains("not the one in force"), "{why}");
    let history = ask(&mut service, "config history", "").unwrap();
    assert!(history.contains("*    1 "), "{history}");
    assert!(history.contains("revision 2 cannot be read"), "{history}");
    // A whole configuration replaces it and all is well again.
    assert_eq!(
        ask(&mut service, "config rollback 1", "").unwrap(),
        "revision 3: revision 1 is in force again\n"
    );
    ask(&mut service, "config set node.hostname lvs-c", "").unwrap();
}

#[test]
fn a_set_publishes_the_virtual_server_it_changed_between_the_two_configurations() {
    let dir = scratch("delta");
    let mut service = start(&dir);
    let configs = service.subscribe();
    let deltas = service.deltas();
    ask(&mut service, "config import", WEB).unwrap();
    let before = configs.borrow().clone();
    ask(
        &mut service,
        "config set virtual_servers.web.real_servers.web2.weight 5",
        "",
    )
    .unwrap();
    let after = configs.borrow().clone();
    let delta = deltas.borrow().clone();
    assert_eq!(
        delta.virtual_servers_between(&before, &after),
        Some(&[0][..])
    );
    // A change elsewhere is not one the IPVS side may take on trust.
    ask(&mut service, "config set node.hostname lvs-b", "").unwrap();
    let last = configs.borrow().clone();
    assert_eq!(deltas.borrow().virtual_servers_between(&after, &last), None);
}

#[test]
fn the_shared_part_goes_between_two_boxes_and_each_keeps_its_own() {
    let dir_a = scratch("replica-a");
    let dir_b = scratch("replica-b");
    let mut a = start(&dir_a);
    let mut b = start(&dir_b);
    // Nothing changed yet: both run the default part, serial 0, the same digest.
    assert_eq!(a.stamp(), b.stamp());
    assert_eq!(a.stamp().serial, 0);
    ask(&mut a, "config import", WEB).unwrap();
    ask(&mut b, "config set node.hostname lvs-b", "").unwrap();
    let part_a = a.shared().borrow().clone();
    assert_eq!(part_a.stamp.serial, 1);
    assert_eq!(part_a.revision, 1);
    // B's hostname is its own: its shared part did not change.
    assert_eq!(b.stamp().serial, 0);
    b.note_peer(part_a.stamp);
    let done = b.adopt(&part_a.text, part_a.stamp, "192.0.2.2").unwrap();
    assert_eq!(done, "revision 2\n");
    let in_force = b.in_force();
    assert_eq!(in_force.virtual_servers, a.in_force().virtual_servers);
    assert_eq!(in_force.node.hostname, "lvs-b");
    assert_eq!(in_force.admin, config::builtin_default().admin);
    assert_eq!(b.stamp(), part_a.stamp);
    let history = ask(&mut b, "config history", "").unwrap();
    assert!(
        history.contains("peer 192.0.2.2  the pair's shared part, serial 1"),
        "{history}"
    );

    // A change on B is numbered above both, and goes back to A.
    ask(&mut b, "config set virtual_servers.web.scheduler rr", "").unwrap();
    let part_b = b.shared().borrow().clone();
    assert_eq!(part_b.stamp.serial, 2);
    a.adopt(&part_b.text, part_b.stamp, "192.0.2.3").unwrap();
    assert_eq!(a.stamp(), part_b.stamp);
    assert_eq!(
        a.in_force().virtual_servers[0].scheduler,
        crate::config::model::Scheduler::Rr
    );
    assert_eq!(a.in_force().node.hostname, "lvs-a");
    // Taking the same content again commits nothing.
    assert!(a
        .adopt(&part_b.text, part_b.stamp, "192.0.2.3")
        .unwrap()
        .starts_with("no change"));

    // A part that does not fit this box changes nothing and says why.
    let before = ask(&mut a, "config history", "").unwrap();
    let bad =
        "[[virtual_servers]]\nname = \"x\"\nvip = \"192.0.2.9\"\nport = 80\nscheduler = \"nope\"\n";
    let stamp = crate::config::replica::Stamp {
        serial: 9,
        digest: crate::config::replica::digest(bad),
    };
    let err = a.adopt(bad, stamp, "192.0.2.3").unwrap_err();
    assert!(err.contains("not readable"), "{err}");
    assert_eq!(ask(&mut a, "config history", "").unwrap(), before);
    assert_eq!(a.stamp(), part_b.stamp);

    // The stamp survives a restart.
    drop(b);
    let b = start(&dir_b);
    assert_eq!(b.stamp(), part_b.stamp);
}
