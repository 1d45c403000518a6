//! Tests of the revision store on a real disk: revisions, history, rollback, diff, refusal of
//! invalid changes, and crash consistency with a writer process killed at random moments.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;
use crate::config::model::{RealServer, VirtualServer};
use crate::scratch::Scratch;

/// The configuration the test writes as revision `n`: a distinct hostname and a number of
/// virtual servers that varies, so records differ in size.
fn config_for(n: u64) -> Config {
    let mut config = Config::default();
    config.node.hostname = format!("rev-{n}");
    for i in 0..(n % 7) {
        config.virtual_servers.push(VirtualServer {
            name: format!("svc{i}"),
            vip: Some(format!("192.0.2.{}", 10 + i).parse().expect("address")),
            port: Some(80),
            real_servers: vec![RealServer {
                name: "web1".into(),
                address: format!("198.51.100.{}", 10 + i).parse().expect("address"),
                port: None,
                weight: 1 + (n % 50) as u32,
                upper_threshold: 0,
                lower_threshold: 0,
                enabled: true,
            }],
            ..minimal_service()
        });
    }
    config
}

fn minimal_service() -> VirtualServer {
    let text = "[[virtual_servers]]\nname = \"x\"\nvip = \"192.0.2.1\"\nport = 1\n";
    from_toml(text)
        .expect("a minimal service")
        .virtual_servers
        .remove(0)
}

#[test]
fn an_empty_store_has_no_current_revision() {
    let dir = Scratch::new("empty");
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.current_number().unwrap(), None);
    assert!(store.current().unwrap().is_none());
    assert!(store.history().unwrap().is_empty());
    assert!(matches!(store.get(1), Err(StoreError::NoSuchRevision(1))));
}

#[test]
fn the_node_id_stays_and_the_incarnation_rises_across_reopening() {
    let dir = Scratch::new("pair-identity");
    let (id, first) = {
        let store = Store::open(dir.path()).unwrap();
        let id = store.node_id().unwrap();
        assert_ne!(id, 0);
        assert_eq!(store.node_id().unwrap(), id);
        let first = store.next_incarnation().unwrap();
        assert_eq!(store.next_incarnation().unwrap(), first + 1);
        (id, first + 1)
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.node_id().unwrap(), id);
    assert_eq!(store.next_incarnation().unwrap(), first + 1);
    // Another store (another box) has another id.
    let other = Scratch::new("pair-identity-other");
    assert_ne!(Store::open(other.path()).unwrap().node_id().unwrap(), id);
}

#[test]
fn the_shared_stamp_is_kept_across_reopening() {
    use crate::config::replica::Stamp;
    let dir = Scratch::new("shared-stamp");
    let stamp = Stamp {
        serial: 7,
        digest: 0xdead_beef,
    };
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.shared_stamp().unwrap(), None);
        store.keep_shared_stamp(stamp).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.shared_stamp().unwrap(), Some(stamp));
}

#[test]
fn admin_data_is_kept_across_reopening_and_apart_from_revisions() {
    let dir = Scratch::new("admin-data");
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.admin_data("certificate").unwrap(), None);
        store.keep_admin_data("certificate", b"der bytes").unwrap();
        store.keep_admin_data("tokens", b"").unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.admin_data("certificate").unwrap().as_deref(),
        Some(&b"der bytes"[..])
    );
    assert_eq!(
        store.admin_data("tokens").unwrap().as_deref(),
        Some(&b""[..])
    );
    assert_eq!(
        store.current_number().unwrap(),
        None,
        "no revision came of it"
    );
    assert!(store.history().unwrap().is_empty());
}

#[test]
fn commits_are_numbered_and_survive_reopening() {
    let dir = Scratch::new("numbered");
    {
        let store = Store::open(dir.path()).unwrap();
        for n in 1..=5 {
            let number = store
                .commit(&config_for(n), "alice", &format!("change {n}"), 1000 * n)
                .unwrap();
            assert_eq!(number, n);
        }
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.current_number().unwrap(), Some(5));
    let current = store.current().unwrap().unwrap();
    assert_eq!(current.config, config_for(5));
    assert_eq!(current.author, "alice");
    assert_eq!(current.comment, "change 5");
    assert_eq!(current.time_ms, 5000);
    let history: Vec<Revision> = store
        .history()
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        history.iter().map(|r| r.number).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    for revision in history {
        assert_eq!(revision.config, config_for(revision.number));
    }
}

#[test]
fn a_comment_keeps_its_first_line_only() {
    let dir = Scratch::new("comment");
    let store = Store::open(dir.path()).unwrap();
    store
        .commit(&config_for(1), "bob", "  first line \nsecond line", 1)
        .unwrap();
    assert_eq!(store.get(1).unwrap().comment, "first line");
}

#[test]
fn an_invalid_change_changes_nothing() {
    let dir = Scratch::new("invalid");
    let store = Store::open(dir.path()).unwrap();
    store.commit(&config_for(3), "alice", "good", 1).unwrap();
    let mut bad = config_for(3);
    bad.node.hostname = "not a hostname!".into();
    let twice = bad.virtual_servers[0].clone();
    bad.virtual_servers.push(twice);
    match store.commit(&bad, "mallory", "bad", 2) {
        Err(StoreError::Invalid(problems)) => {
            assert!(
                problems.len() >= 2,
                "every problem is reported: {problems:?}"
            );
            assert!(problems.iter().any(|p| p.path == "node.hostname"));
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(store.current_number().unwrap(), Some(1));
    assert_eq!(store.history().unwrap().len(), 1);
    assert!(store.history().unwrap()[0].is_ok());
    assert_eq!(store.current().unwrap().unwrap().config, config_for(3));
}

#[test]
fn rollback_makes_an_old_revision_current_as_a_new_one() {
    let dir = Scratch::new("rollback");
    let store = Store::open(dir.path()).unwrap();
    for n in 1..=3 {
        store.commit(&config_for(n), "alice", "edit", n).unwrap();
    }
    let number = store.rollback(1, "bob", 99).unwrap();
    assert_eq!(number, 4);
    let current = store.current().unwrap().unwrap();
    assert_eq!(current.config, config_for(1));
    assert_eq!(current.author, "bob");
    assert_eq!(current.comment, "rollback to revision 1");
    // Nothing of the history is lost: revision 3 is still there to roll forward to.
    assert_eq!(store.get(3).unwrap().config, config_for(3));
    assert!(matches!(
        store.rollback(17, "bob", 100),
        Err(StoreError::NoSuchRevision(17))
    ));
    assert_eq!(store.current_number().unwrap(), Some(4));
}

#[test]
fn diff_shows_removed_and_added_lines() {
    let dir = Scratch::new("diff");
    let store = Store::open(dir.path()).unwrap();
    store.commit(&config_for(1), "a", "", 1).unwrap();
    store.commit(&config_for(2), "a", "", 2).unwrap();
    let diff = store.diff(1, 2).unwrap();
    assert!(diff.contains("-hostname = \"rev-1\"\n"), "{diff}");
    assert!(diff.contains("+hostname = \"rev-2\"\n"), "{diff}");
    assert!(diff.contains("+name = \"svc1\"\n"), "{diff}");
    assert!(diff.contains(" [network]\n"), "{diff}");
    assert!(store
        .diff(1, 1)
        .unwrap()
        .lines()
        .all(|l| l.starts_with(' ')));
    assert!(matches!(
        store.diff(1, 9),
        Err(StoreError::NoSuchRevision(9))
    ));
}

#[test]
fn line_diff_of_edits_is_minimal() {
    assert_eq!(line_diff("a\nb\nc\n", "a\nx\nc\n"), " a\n-b\n+x\n c\n");
    assert_eq!(line_diff("", "a\n"), "+a\n");
    assert_eq!(line_diff("a\n", ""), "-a\n");
    assert_eq!(
        line_diff("h\na\nb\nt\n", "h\nb\nc\nt\n"),
        " h\n-a\n b\n+c\n t\n"
    );
}

#[test]
fn a_huge_diff_stays_in_bounded_memory() {
    let old: String = (0..5000).map(|i| format!("old {i}\n")).collect();
    let new: String = (0..5000).map(|i| format!("new {i}\n")).collect();
    let diff = line_diff(&format!("same\n{old}end\n"), &format!("same\n{new}end\n"));
    assert!(diff.starts_with(" same\n-old 0\n"));
    assert!(diff.ends_with("+new 4999\n end\n"));
    assert_eq!(diff.lines().count(), 10_002);
}

#[test]
fn a_revision_stricter_rules_reject_stays_readable() {
    let dir = Scratch::new("stricter");
    let store = Store::open(dir.path()).unwrap();
    store.commit(&config_for(1), "a", "", 1).unwrap();
    // As if a later firmware no longer accepted the hostname: stored text, read back as is.
    let text = to_toml(&config_for(2)).unwrap().replace("rev-2", "rev two");
    let record = encode(2, 2, "a", "old rules", &text).unwrap();
    store.revisions.insert(2u64.to_be_bytes(), record).unwrap();
    let revision = store.get(2).unwrap();
    assert_eq!(revision.config.node.hostname, "rev two");
    assert!(!validate(&revision.config).is_empty());
}

#[test]
fn a_damaged_record_is_reported_not_trusted() {
    let dir = Scratch::new("damaged");
    let store = Store::open(dir.path()).unwrap();
    store.commit(&config_for(1), "a", "", 1).unwrap();
    store
        .revisions
        .insert(2u64.to_be_bytes(), &b"\x85garbage"[..])
        .unwrap();
    assert!(matches!(
        store.get(2),
        Err(StoreError::Corrupt { revision: 2, .. })
    ));
    // A record that claims another number is not accepted either.
    let record = encode(7, 1, "a", "", &to_toml(&config_for(1)).unwrap()).unwrap();
    store.revisions.insert(3u64.to_be_bytes(), record).unwrap();
    assert!(matches!(
        store.get(3),
        Err(StoreError::Corrupt { revision: 3, .. })
    ));
}

#[test]
fn a_provisioning_file_is_imported_once() {
    let dir = Scratch::new("provision");
    let store = Store::open(dir.path()).unwrap();
    let text = to_toml(&config_for(4)).unwrap();
    assert_eq!(
        store.provision(&text, "DIRCONFIG", 10).unwrap(),
        Provisioned::Imported(1)
    );
    let revision = store.current().unwrap().unwrap();
    assert_eq!(revision.config, config_for(4));
    assert_eq!(revision.author, "provisioning");
    assert_eq!(revision.comment, "provisioned from DIRCONFIG");
    // The same file at the next boot changes nothing, even after other changes.
    store
        .commit(&config_for(5), "alice", "by hand", 11)
        .unwrap();
    assert_eq!(
        store.provision(&text, "DIRCONFIG", 12).unwrap(),
        Provisioned::Unchanged
    );
    assert_eq!(store.current_number().unwrap(), Some(2));
    // A different file is imported.
    let other = to_toml(&config_for(6)).unwrap();
    assert_eq!(
        store.provision(&other, "DIRCONFIG", 13).unwrap(),
        Provisioned::Imported(3)
    );
}

#[test]
fn a_bad_provisioning_file_changes_nothing() {
    let dir = Scratch::new("provision-bad");
    let store = Store::open(dir.path()).unwrap();
    store.commit(&config_for(2), "alice", "", 1).unwrap();
    let bad = "[node]\nhostname = \"-bad-\"\n";
    assert!(matches!(
        store.provision(bad, "DIRCONFIG", 2),
        Err(StoreError::Rejected(Rejected::Invalid(_)))
    ));
    assert!(matches!(
        store.provision("[node", "DIRCONFIG", 2),
        Err(StoreError::Rejected(Rejected::Syntax { line: 1, .. }))
    ));
    assert_eq!(store.current_number().unwrap(), Some(1));
    assert_eq!(store.current().unwrap().unwrap().config, config_for(2));
}

/// The environment variable that turns `crash_writer` into the writer of the crash test.
const CRASH_DIR: &str = "DIRECTOR_STORE_CRASH_DIR";

/// In the crash test's child process: commit revisions as fast as possible, saying on standard
/// output which one has been committed, until killed. Elsewhere: nothing.
#[test]
fn crash_writer() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let store = Store::open(Path::new(&dir)).expect("open the store");
    println!("opened");
    let mut next = store.current_number().expect("read current").unwrap_or(0) + 1;
    loop {
        let number = store
            .commit(&config_for(next), "crash", "crash test", next)
            .expect("commit");
        assert_eq!(number, next);
        println!("committed {number}");
        next += 1;
    }
}

/// Takes the revision number from a writer's "committed N" line. The test harness prints its
/// own words before the first line of the test.
fn note(line: &str, last: &mut u64) {
    if let Some((_, n)) = line.split_once("committed ") {
        *last = n.trim().parse().expect("a revision number");
    }
}

/// A small deterministic generator, so a failing trial can be repeated from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Kills a writer process at random moments, 200 times, and checks after each kill that the
/// store opens at a committed revision: never older than the last one the writer reported
/// committed, every revision up to it readable and exactly what was written.
#[test]
fn a_killed_writer_never_loses_or_mixes_revisions() {
    let dir = Scratch::new("crash");
    let exe = std::env::current_exe().expect("the test binary");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut random = XorShift(seed);
    let trials = 200;
    let mut reported_total = 0;
    let mut checked = 0;
    let mut committed_max = 0;
    for trial in 0..trials {
        let mut child = Command::new(&exe)
            .args([
                "config::store::tests::crash_writer",
                "--exact",
                "--nocapture",
            ])
            .arg("--test-threads=1")
            .env(CRASH_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the writer");
        let out = child.stdout.take().expect("the writer's output");
        let mut lines = BufReader::new(out).lines();
        let mut last_reported = 0;
        if trial % 2 == 0 {
            // Any moment from the start: during start-up and recovery as well.
            std::thread::sleep(Duration::from_micros(random.next() % 150_000));
        } else {
            // A moment while it writes, however long the start took on a loaded machine.
            for line in lines.by_ref() {
                let line = line.expect("read the writer's output");
                note(&line, &mut last_reported);
                if line.contains("opened") {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(random.next() % 30_000));
        }
        child.kill().expect("kill the writer");
        for line in lines {
            let line = line.expect("read the writer's output");
            note(&line, &mut last_reported);
        }
        let _ = child.wait();
        reported_total += u64::from(last_reported > 0);
        committed_max = committed_max.max(last_reported);

        let store = Store::open(dir.path())
            .unwrap_or_else(|e| panic!("trial {trial} (seed {seed}): cannot reopen: {e}"));
        let current = store.current_number().expect("read current").unwrap_or(0);
        assert!(
            current >= last_reported,
            "trial {trial} (seed {seed}): revision {last_reported} was committed, \
             the store is at {current}"
        );
        // Every record up to the current one is there, in order; those written since the
        // last trial (and a few older ones) are decoded and must be exactly what was written.
        let numbers: Vec<u64> = store
            .revisions
            .iter()
            .keys()
            .map(|key| decode_number(&key.expect("read a key")))
            .collect();
        assert!(
            numbers.len() as u64 >= current,
            "trial {trial} (seed {seed}): {} records for revision {current}",
            numbers.len()
        );
        for (i, number) in numbers.iter().take(current as usize).enumerate() {
            assert_eq!(*number, i as u64 + 1, "trial {trial}: a gap in history");
        }
        let older = (0..3).map(|_| 1 + random.next() % current.max(1));
        for number in (checked + 1..=current).chain(older.filter(|_| current > 0)) {
            let revision = store
                .get(number)
                .unwrap_or_else(|e| panic!("trial {trial} (seed {seed}): {e}"));
            assert_eq!(
                revision.config,
                config_for(number),
                "trial {trial} (seed {seed}): revision {number} is not what was written"
            );
        }
        checked = current;
    }
    // The kills must have landed during writing, not only before the first commit.
    assert!(
        reported_total >= trials / 4,
        "only {reported_total} of {trials} trials got as far as a commit"
    );
    println!(
        "{trials} kills, {reported_total} during writes, {committed_max} revisions at the end"
    );
}
