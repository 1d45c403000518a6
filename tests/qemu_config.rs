//! The configuration on the booted image: provisioning from a DIRCONFIG disk, the `director
//! config` commands against the daemon, and the store after the power is cut during writes.
//! These boot real VMs; `scripts/test` builds the image and runs them with `--ignored`.

mod vm;

use std::path::{Path, PathBuf};
use std::time::Duration;

use vm::{test_dir, Boot, Vm};

const BOOT: Duration = Duration::from_secs(90);
const SHORT: Duration = Duration::from_secs(20);
/// The daemon is up and the network applied: the console is quiet from here on.
const READY: &str = "INFO  daemon: network: configured";

const GOOD: &str = r#"
[node]
hostname = "lvs-prov"

[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80
scheduler = "rr"

[[virtual_servers.real_servers]]
name = "web1"
address = "198.51.100.11"

[admin]
listen = "0.0.0.0"
port = 3636
allowed = ["192.0.2.0/24"]
"#;

/// Two problems: a hostname with a space, and a real server listed twice.
const BAD: &str = r#"
[node]
hostname = "lvs bad"

[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80

[[virtual_servers.real_servers]]
name = "web1"
address = "198.51.100.11"

[[virtual_servers.real_servers]]
name = "web1"
address = "198.51.100.11"

[admin]
listen = "0.0.0.0"
port = 3636
allowed = []
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the configuration file");
    path
}

#[test]
#[ignore = "boots the image under QEMU: run by scripts/test"]
fn a_dirconfig_disk_provisions_and_a_bad_file_changes_nothing() {
    let dir = test_dir("provisioning");
    let data = dir.join("data.img");

    // First boot: the good file becomes revision 1.
    let good = write(&dir, "good.toml", GOOD);
    let mut vm = Vm::boot(
        &dir,
        Boot {
            no_reboot: true,
            data: Some(data.clone()),
            config: Some(good.clone()),
            ..Boot::default()
        },
    );
    vm.wait_for("provisioning disk DIRCONFIG found on /dev/vdb", BOOT);
    vm.wait_for("imported as revision 1", BOOT);
    vm.wait_for(READY, BOOT);
    let shown = vm.sh("director config show", SHORT);
    assert!(shown.contains("# revision 1: "), "{shown}");
    assert!(shown.contains("by provisioning"), "{shown}");
    assert!(shown.contains("hostname = \"lvs-prov\""), "{shown}");
    // A change by hand on top of it.
    let set = vm.sh(
        "director config --author tester set virtual_servers.web.scheduler wlc",
        SHORT,
    );
    assert_eq!(set, "revision 2");
    vm.send("director poweroff");
    vm.wait_exit(SHORT);
    drop(vm);

    // Same file again: nothing new, the hand-made revision stays in force.
    let mut vm = Vm::boot(
        &dir,
        Boot {
            no_reboot: true,
            data: Some(data.clone()),
            config: Some(good),
            ..Boot::default()
        },
    );
    vm.wait_for("was imported before", BOOT);
    vm.wait_for(READY, BOOT);
    let history = vm.sh("director config history", SHORT);
    assert_eq!(history.lines().count(), 2, "{history}");
    assert!(
        history.lines().nth(1).unwrap_or("").starts_with("*    2 "),
        "{history}"
    );
    vm.send("director poweroff");
    vm.wait_exit(SHORT);
    drop(vm);

    // A bad file: reported on the console with every problem, nothing changes.
    let bad = write(&dir, "bad.toml", BAD);
    let mut vm = Vm::boot(
        &dir,
        Boot {
            no_reboot: true,
            data: Some(data),
            config: Some(bad),
            ..Boot::default()
        },
    );
    vm.wait_for("is rejected, the configuration is unchanged", BOOT);
    let report = vm.wait_for(READY, BOOT);
    assert!(report.contains("node.hostname"), "{report}");
    assert!(
        report.contains("virtual_servers[0].real_servers"),
        "{report}"
    );
    let shown = vm.sh("director config show", SHORT);
    assert!(shown.contains("# revision 2: "), "{shown}");
    assert!(shown.contains("scheduler = \"wlc\""), "{shown}");
    vm.send("director poweroff");
    vm.wait_exit(SHORT);
}

#[test]
#[ignore = "boots the image under QEMU: run by scripts/test"]
fn config_commands_work_against_the_daemon() {
    let dir = test_dir("config-cli");
    let mut vm = Vm::boot(&dir, Boot::without_data());
    vm.wait_for(
        "configuration: none stored, the built-in default applies",
        BOOT,
    );
    vm.wait_for(READY, BOOT);
    let shown = vm.sh("director config show", SHORT);
    assert!(shown.starts_with("# the built-in default"), "{shown}");
    // Import a keepalived.conf written on the box, as a migrating engineer would.
    vm.sh(
        "printf 'virtual_server 192.0.2.50 443 {\\n  lb_algo sh\\n  lb_kind DR\\n  protocol TCP\\n  real_server 198.51.100.21 443 {\\n    weight 3\\n    TCP_CHECK {\\n      connect_timeout 3\\n    }\\n  }\\n}\\n' > /tmp/keepalived.conf",
        SHORT,
    );
    let imported = vm.sh(
        "director config -m 'from keepalived' import /tmp/keepalived.conf 2>&1",
        SHORT,
    );
    assert!(imported.ends_with("revision 1"), "{imported}");
    let exported = vm.sh("director config export", SHORT);
    assert!(exported.contains("scheduler = \"sh\""), "{exported}");
    assert!(exported.contains("weight = 3"), "{exported}");
    let refused = vm.sh(
        "director config set node.hostname 'not valid'; echo status=$?",
        SHORT,
    );
    assert!(refused.contains("rejected, nothing changed"), "{refused}");
    assert!(refused.ends_with("status=1"), "{refused}");
    assert_eq!(
        vm.sh("director config set node.hostname lvs-z", SHORT),
        "revision 2"
    );
    let diff = vm.sh("director config diff", SHORT);
    assert!(diff.contains("+hostname = \"lvs-z\""), "{diff}");
    assert_eq!(
        vm.sh("director config rollback 1", SHORT),
        "revision 3: revision 1 is in force again"
    );
    assert!(vm
        .sh("director config history", SHORT)
        .contains("rollback to revision 1"));
    assert_eq!(
        vm.sh("director config validate", SHORT),
        "revision 3 is valid"
    );
    vm.send("director poweroff");
    vm.wait_exit(SHORT);
}

/// Cuts the power while the box commits revision after revision, boots again, and checks the
/// store: at or past the last revision the shell saw acknowledged, every revision readable.
#[test]
#[ignore = "boots the image under QEMU: run by scripts/test"]
fn a_power_cut_during_writes_keeps_every_committed_revision() {
    let dir = test_dir("power-cut");
    let data = dir.join("data.img");
    let trials: u64 = 4;
    let mut acknowledged = 0u64;
    for trial in 0..=trials {
        let mut vm = Vm::boot(
            &dir,
            Boot {
                no_reboot: true,
                data: Some(data.clone()),
                ..Boot::default()
            },
        );
        let booted = vm.wait_for(READY, BOOT);
        if trial > 0 {
            assert!(
                !booted.contains("cannot be read") && !booted.contains("store unavailable"),
                "trial {trial}: the store did not come back:\n{booted}"
            );
            let history = vm.sh("director config history 1", SHORT);
            let current: u64 = history
                .trim_start_matches('*')
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| vm.fail(&format!("no current revision: {history}")));
            assert!(
                current >= acknowledged,
                "trial {trial}: revision {acknowledged} was acknowledged, the store is at {current}"
            );
            let all = vm.sh("director config history | wc -l", SHORT);
            assert_eq!(
                all.trim(),
                current.to_string(),
                "trial {trial}: history has gaps"
            );
            let shown = vm.sh("director config show | head -3", SHORT);
            assert!(shown.contains(&format!("# revision {current}:")), "{shown}");
            assert_eq!(
                vm.sh("director config validate", SHORT),
                format!("revision {current} is valid")
            );
        }
        if trial == trials {
            vm.send("director poweroff");
            vm.wait_exit(SHORT);
            break;
        }
        // A bounded loop of commits; each acknowledged number is printed.
        vm.send(&format!(
            "i=0; while [ $i -lt 400 ]; do director config set node.hostname t{trial}-$i \
             | sed 's/^revision /ACK /'; i=$((i + 1)); done"
        ));
        // Let some commits land, then pull the plug mid-stream: from 2 to 5 s.
        let wait = 2000 + (trial * 997 + u64::from(std::process::id())) % 3000;
        std::thread::sleep(Duration::from_millis(wait));
        vm.power_kill();
        let console = vm.console();
        let last = console
            .lines()
            .filter_map(|line| line.trim().strip_prefix("ACK "))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .max();
        let Some(last) = last else {
            vm.fail(&format!(
                "trial {trial}: no commit acknowledged before the cut"
            ));
        };
        acknowledged = last;
    }
}
