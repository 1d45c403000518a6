//! The booted image under QEMU: PID 1, supervision, reaping, persistence, clean power-down.
//! These boot real VMs; `scripts/test` builds the image and runs them with `--ignored`.

mod vm;

use std::time::Duration;

use vm::{ext_clean, test_dir, Boot, Vm};

const BOOT: Duration = Duration::from_secs(90);
const SHORT: Duration = Duration::from_secs(20);
/// The daemon is up and the network applied: the console is quiet from here on.
const READY: &str = "INFO  daemon: network: configured";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
#[ignore = "boots the image under QEMU: run by scripts/test"]
fn boots_with_director_as_pid1_and_powers_off_cleanly() {
    let dir = test_dir("poweroff");
    let mut vm = Vm::boot(
        &dir,
        Boot {
            no_reboot: true,
            ..Boot::default()
        },
    );
    vm.wait_for("INFO  init: director", BOOT);
    vm.wait_for("is blank: making an ext4 filesystem", BOOT);
    vm.wait_for("mounted /dev/vda on /data", BOOT);
    vm.wait_for(READY, BOOT);

    assert_eq!(vm.sh("readlink /proc/1/exe", SHORT), "/sbin/director");
    assert_eq!(
        vm.sh("tr '\\0' ' ' </proc/1/cmdline", SHORT).trim(),
        "/init"
    );
    let status = vm.sh("director ctl status", SHORT);
    assert!(status.contains("daemon pid "), "{status}");
    let mounts = vm.sh("cut -d' ' -f2,3 /proc/mounts", SHORT);
    for expected in [
        "/proc proc",
        "/sys sysfs",
        "/dev devtmpfs",
        "/dev/pts devpts",
        "/run tmpfs",
        "/tmp tmpfs",
        "/data ext4",
    ] {
        assert!(mounts.contains(expected), "{expected} missing in\n{mounts}");
    }
    let modules = vm.sh("cut -d' ' -f1 /proc/modules", SHORT);
    for module in ["ip_vs", "ip_vs_ftp", "virtio_net", "i6300esb", "ext4"] {
        assert!(
            modules.lines().any(|m| m == module),
            "{module} not loaded:\n{modules}"
        );
    }
    // The board's list loads before the shared one: its hardware watchdog registers before
    // softdog and is /dev/watchdog.
    let identity = vm.sh("cat /sys/class/watchdog/watchdog0/identity", SHORT);
    assert!(identity.contains("i6300ESB"), "watchdog0 is {identity}");
    let release = vm.sh("cat /etc/director/board/release", SHORT);
    assert!(release.contains("board=qemu_x86_64"), "{release}");
    // Schedulers are not loaded at boot; the kernel asks for them through /sbin/modprobe,
    // which finds them in the image.
    assert!(!modules.lines().any(|m| m == "ip_vs_mh"), "{modules}");
    assert_eq!(
        vm.sh("cat /proc/sys/kernel/modprobe", SHORT),
        "/sbin/modprobe"
    );
    for scheduler in ["ip_vs_mh", "ip_vs_wlc", "ip_vs_pe_sip"] {
        vm.sh(&format!("modprobe {scheduler}"), SHORT);
    }
    let modules = vm.sh("cut -d' ' -f1 /proc/modules", SHORT);
    for module in ["ip_vs_mh", "ip_vs_wlc", "ip_vs_pe_sip"] {
        assert!(
            modules.lines().any(|m| m == module),
            "{module} cannot be loaded on demand:\n{modules}"
        );
    }
    assert_eq!(vm.sh("hostname", SHORT), "director");

    vm.send("director poweroff");
    vm.wait_for("SIGUSR2 received", SHORT);
    vm.wait_for("shutting down for poweroff", SHORT);
    vm.wait_for("daemon (pid", SHORT);
    vm.wait_for("stopped: exited with status 0", SHORT);
    vm.wait_for("unmounted /data (/dev/vda)", SHORT);
    vm.wait_for("INFO  init: poweroff", SHORT);
    let status = vm.wait_exit(secs(30));
    assert!(status.success(), "QEMU ended with {status}");
    assert_eq!(
        ext_clean(&dir.join("data.img")),
        Some(true),
        "/data not clean"
    );
}

#[test]
#[ignore = "boots the image under QEMU: run by scripts/test"]
fn a_killed_daemon_is_restarted_and_a_crash_loop_backs_off() {
    let dir = test_dir("supervision");
    let mut vm = Vm::boot(&dir, Boot::without_data());
    vm.wait_for("NO PERSISTENT STORAGE", BOOT);
    vm.wait_for(READY, BOOT);

    let mut delays = Vec::new();
    for round in 0..7 {
        let pid = vm.sh("director ctl status | sed -n 's/^daemon pid //p'", SHORT);
        assert!(
            pid.parse::<u32>().is_ok(),
            "round {round}: no daemon pid: {pid}"
        );
        vm.send(&format!("kill -9 {pid}"));
        let line = vm.wait_for("restarting in ", SHORT);
        let line = line.lines().last().unwrap_or_default().to_string();
        assert!(
            line.contains(&format!("daemon (pid {pid}) killed by signal 9 (SIGKILL)")),
            "{line}"
        );
        let text = vm.wait_for(" s", SHORT);
        let delay: f64 = text.trim_end_matches(" s").trim().parse().unwrap_or(-1.0);
        delays.push((delay, line.contains("crash loop")));
        vm.wait_for(READY, secs(60));
    }
    // 0.1, 0.2, 0.4, ... seconds: each wait at least doubles, so a loop never spins.
    for pair in delays.windows(2) {
        assert!(pair[1].0 >= pair[0].0 * 2.0 - 0.01, "{delays:?}");
    }
    assert!(delays[0].0 > 0.0, "{delays:?}");
    assert!(
        !delays[0].1,
        "first exit reported as a crash loop: {delays:?}"
    );
    assert!(
        delays[6].1,
        "seven exits in a row not reported as a crash loop: {delays:?}"
    );
    // The console is a supervised child too.
    let shell = vm.sh("echo $$", SHORT);
    vm.send(&format!("kill -9 {shell}"));
    vm.wait_for(&format!("console (pid {shell}) killed by signal 9"), SHORT);
    vm.wait_for("built-in shell", SHORT);
    assert_eq!(vm.sh("echo alive", SHORT), "alive");
}

#[test]
#[ignore = "boots the image under QEMU: run by scripts/test"]
fn orphaned_grandchildren_are_reaped_by_pid1() {
    let dir = test_dir("reaping");
    let mut vm = Vm::boot(&dir, Boot::without_data());
    vm.wait_for(READY, BOOT);
    // A subshell that leaves a background child and exits: the child is re-parented to PID 1.
    vm.sh("(sleep 30 &)", SHORT);
    let parent = vm.sh(
        "for p in /proc/[0-9]*; do read -r c <$p/comm; [ \"$c\" = sleep ] && awk '{print $4}' $p/stat; done",
        SHORT,
    );
    assert_eq!(parent.trim(), "1", "the orphan's parent is not PID 1");
    vm.sh("pkill_sleep() { kill $(pidof sleep); }; pkill_sleep", SHORT);
    // Many short-lived orphans: none may stay a zombie.
    vm.sh(
        "for i in $(seq 40); do (sleep 0.$((i % 5)) &); done; sleep 2",
        secs(60),
    );
    let zombies = vm.sh(
        "cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"' | wc -l",
        SHORT,
    );
    assert_eq!(zombies.trim(), "0", "zombies left");
}

#[test]
#[ignore = "boots the image under QEMU: run by scripts/test"]
fn data_written_under_data_survives_a_reboot() {
    let dir = test_dir("persistence");
    let mut vm = Vm::boot(&dir, Boot::default());
    vm.wait_for("is blank: making an ext4 filesystem", BOOT);
    vm.wait_for(READY, BOOT);
    let token = format!("token-{}", std::process::id());
    vm.sh(&format!("echo {token} > /data/persist; sync"), SHORT);
    vm.send("director reboot");
    vm.wait_for("shutting down for reboot", SHORT);
    vm.wait_for("unmounted /data (/dev/vda)", SHORT);
    // The same QEMU boots again.
    vm.wait_for("INFO  init: director", BOOT);
    let second_boot = vm.wait_for(READY, BOOT);
    assert!(
        !second_boot.contains("is blank"),
        "the data disk was formatted again"
    );
    assert!(
        !second_boot.contains("was not unmounted cleanly"),
        "the reboot left /data unclean"
    );
    assert_eq!(vm.sh("cat /data/persist", SHORT), token);
}
