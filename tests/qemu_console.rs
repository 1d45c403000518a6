//! The operator's console on ttyS0, driven through QEMU's socket chardev as a person with a
//! console cable would: the first-boot dialogue on a factory-fresh box (wrong answers refused
//! with their reason), the box on the network afterwards, login (wrong passwords refused and
//! slowed), the shell (completion, help, an event arriving while a line is typed, the logged
//! escape to sh), idle logout, a reboot without dialogue, and a factory reset that brings the
//! dialogue back.

mod vm;

use std::time::{Duration, Instant};

use vm::lab::{in_ns, Lab};
use vm::{test_dir, Boot, Vm};

const BOOT: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(30);
/// PBKDF2 of 200,000 rounds under TCG takes seconds.
const HASHING: Duration = Duration::from_secs(90);
const PASSWORD: &str = "console-secret-1";
const IDLE_SECONDS: u64 = 20;
const PROMPT: &str = "lvs-c> ";

/// Answers a question: waits for its prompt, types the answer.
fn answer(vm: &mut Vm, prompt: &str, text: &str) {
    vm.wait_for(prompt, SHORT);
    vm.send(text);
}

/// Gives a refused answer, checks the reason, then the accepted one.
fn refused_then(vm: &mut Vm, prompt: &str, wrong: &str, reason: &str, right: &str) {
    answer(vm, prompt, wrong);
    vm.wait_for("refused: ", SHORT);
    let said = vm.wait_for("\n", SHORT);
    assert!(
        said.contains(reason),
        "'{wrong}' refused with '{said}', not '{reason}'"
    );
    answer(vm, prompt, right);
}

/// Logs in with the right password and waits for the shell.
fn log_in(vm: &mut Vm) {
    answer(vm, "password: ", PASSWORD);
    vm.wait_for("Type help for the commands", HASHING);
    vm.wait_for(PROMPT, SHORT);
}

/// Runs a command in the director's shell and returns what it printed up to the next prompt
/// (after the echo of the line: events may write the prompt again before that).
fn command(vm: &mut Vm, line: &str) -> String {
    command_echoed(vm, line, line)
}

/// `command` for a line whose echo differs from what was typed (a completion).
fn command_echoed(vm: &mut Vm, typed: &str, echo: &str) -> String {
    vm.send(typed);
    vm.wait_for(&format!("{echo}\r\n"), SHORT);
    vm.wait_for(PROMPT, SHORT)
}

#[test]
#[ignore = "boots the image under QEMU on a bridge (root): run by scripts/test"]
fn a_fresh_box_is_set_up_on_the_console_and_reset_to_the_factory_state() {
    let dir = test_dir("console");
    let mut lab = Lab::new("dcon");
    let eth0 = lab.tap("t0");
    let eth1 = lab.tap("t1");
    let client = lab.host("client", "192.0.2.10/24");
    let mut vm = Vm::boot(
        &dir,
        Boot {
            taps: Some((eth0.clone(), eth1)),
            operator_console: true,
            append: Some(format!("director.console_idle={IDLE_SECONDS}")),
            ..Boot::default()
        },
    );
    lab.plug(&eth0);

    // The dialogue, with a wrong answer to each question first.
    vm.wait_for("This director has no configuration yet", BOOT);
    refused_then(
        &mut vm,
        "hostname [director]: ",
        "lvs_c",
        "'_' is not allowed",
        "lvs-c",
    );
    refused_then(
        &mut vm,
        "eth0 address/prefix",
        "192.0.2.300/24",
        "not an IP address",
        "192.0.2.2/24",
    );
    refused_then(
        &mut vm,
        "eth0 gateway [none]: ",
        "198.51.100.1",
        "is not on 192.0.2.2/24",
        "192.0.2.1",
    );
    answer(&mut vm, "eth1 address/prefix", "198.51.100.2/24");
    refused_then(
        &mut vm,
        "the peer's eth1 address",
        "198.51.100.2",
        "this box's own address",
        "198.51.100.3",
    );
    refused_then(
        &mut vm,
        "heartbeat key",
        "short",
        "the key needs at least 16",
        "a heartbeat key for the console test",
    );
    answer(
        &mut vm,
        "the same again: ",
        "a heartbeat key for the console test",
    );
    refused_then(
        &mut vm,
        "role preference",
        "master",
        "primary, backup or equal",
        "primary",
    );
    refused_then(
        &mut vm,
        "admin password (8 characters or more): ",
        "short",
        "the password needs at least 8",
        PASSWORD,
    );
    answer(&mut vm, "the same again: ", PASSWORD);
    refused_then(
        &mut vm,
        "networks allowed",
        "192.0.2.0",
        "no prefix length",
        "192.0.2.0/24",
    );
    let summary = vm.wait_for("store it? [yes/no] ", HASHING);
    assert!(
        summary.contains("eth0              192.0.2.2/24"),
        "{summary}"
    );
    assert!(
        summary.contains("198.51.100.3 (heartbeat key set)"),
        "{summary}"
    );
    assert!(
        !summary.contains(PASSWORD),
        "the summary shows the password"
    );
    vm.send("yes");
    vm.wait_for("stored; starting the box with it", SHORT);

    // The box is on the network with what was answered.
    let start = Instant::now();
    loop {
        let (ok, out) = in_ns(&client, &["ping", "-c", "1", "-W", "1", "192.0.2.2"]);
        if ok {
            break;
        }
        assert!(
            start.elapsed() < BOOT,
            "192.0.2.2 unreachable after the setup: {out}"
        );
    }
    let banner = vm.wait_for("password: ", SHORT);
    assert!(
        banner.contains("admin endpoint: https://192.0.2.2:3636/"),
        "{banner}"
    );
    assert!(banner.contains("certificate: SHA256 "), "{banner}");

    // Wrong passwords are refused, each wait longer than the one before.
    vm.send("not-the-password");
    vm.wait_for("wrong password; the next try in 1 s", HASHING);
    let refused_at = Instant::now();
    vm.wait_for("password: ", SHORT);
    assert!(refused_at.elapsed() >= Duration::from_millis(900));
    vm.send("still-not-it");
    vm.wait_for("wrong password; the next try in 2 s", HASHING);
    log_in(&mut vm);

    // The shell: completion, help, the stored revision.
    let status = command_echoed(&mut vm, "sta\t", "status ");
    assert!(status.contains("configuration: revision 1"), "{status}");
    let help = command(&mut vm, "help");
    for name in [
        "status",
        "ipvs",
        "config",
        "takeover",
        "release",
        "passwd",
        "factory-reset",
    ] {
        assert!(help.contains(name), "{name} missing in help:\n{help}");
    }
    let history = command(&mut vm, "config history");
    assert!(history.contains("console setup"), "{history}");
    let unknown = command(&mut vm, "frobnicate");
    assert!(unknown.contains("no command 'frobnicate'"), "{unknown}");

    // The emergency shell is logged; an event that arrives while a line is being typed is
    // printed above it, and the line goes on.
    vm.send("sh");
    vm.wait_for("busybox sh: `exit` returns", SHORT);
    vm.send("(sleep 4; director ctl console note event-while-typing) >/dev/null 2>&1 &");
    vm.send("exit");
    vm.wait_for(PROMPT, SHORT);
    vm.type_keys("sta");
    vm.wait_for("console: event-while-typing", SHORT);
    let redrawn = vm.wait_for(&format!("{PROMPT}sta"), SHORT);
    assert!(
        redrawn.len() < 200,
        "the line was not written again: {redrawn}"
    );
    vm.type_keys("tus\r");
    let status = vm.wait_for(PROMPT, SHORT);
    assert!(status.contains("configuration: revision 1"), "{status}");
    let log = command(&mut vm, "log 40");
    assert!(
        log.contains("emergency shell (busybox sh) started"),
        "the escape is not logged:\n{log}"
    );

    // Idle logout.
    let idle_from = Instant::now();
    vm.wait_for(
        &format!("idle for {IDLE_SECONDS} s: logged out"),
        Duration::from_secs(IDLE_SECONDS + 30),
    );
    assert!(idle_from.elapsed() >= Duration::from_secs(IDLE_SECONDS - 1));

    // After a reboot: no dialogue, the login prompt.
    vm.wait_for("password: ", SHORT);
    log_in(&mut vm);
    vm.send("reboot");
    answer(&mut vm, "reboot now? [yes/no] ", "yes");
    vm.wait_for("INFO  init: director", BOOT);
    let after_reboot = vm.wait_for("password: ", BOOT);
    assert!(
        !after_reboot.contains("no configuration yet"),
        "the dialogue came back after a reboot:\n{after_reboot}"
    );

    // Factory reset: the dialogue again, nothing of the configuration left.
    log_in(&mut vm);
    vm.send("factory-reset");
    answer(&mut vm, "type factory-reset to go on: ", "factory-reset");
    vm.wait_for("factory reset: ", BOOT);
    vm.wait_for("This director has no configuration yet", BOOT);
    let (ok, _) = in_ns(&client, &["ping", "-c", "2", "-W", "1", "192.0.2.2"]);
    assert!(!ok, "192.0.2.2 still answers after the factory reset");

    // Stop: the dialogue's ^C starts again, the QEMU monitor ends the VM.
    vm.monitor("quit");
}

#[test]
#[ignore = "boots the image under QEMU (root): run by scripts/test"]
fn the_configured_console_reaches_the_kernel_command_line_and_grub() {
    let dir = test_dir("console-boot");
    // The APU2's boot partition: FAT labelled DIRBOOT with the board's own grub.cfg.
    let boot = dir.join("boot.img");
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "truncate -s 8M {img} && mkfs.vfat -n DIRBOOT {img} >/dev/null && mcopy -i {img} {cfg} ::grub.cfg",
            img = boot.display(),
            cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/board/apu2/grub.cfg"),
        ))
        .status()
        .unwrap();
    assert!(made.success(), "making the DIRBOOT disk");
    let config = dir.join("director.toml");
    std::fs::write(
        &config,
        "[node]\nhostname = \"lvs-boot\"\nconsole = { device = \"ttyS0\", baud = 57600 }\n",
    )
    .unwrap();
    let mut vm = Vm::boot(
        &dir,
        Boot {
            no_reboot: true,
            config: Some(config),
            disks: vec![boot.clone()],
            ..Boot::default()
        },
    );
    vm.wait_for("INFO  daemon: ready", BOOT);
    // qemu/run read the provisioned file's console.
    let cmdline = vm.sh("cat /proc/cmdline", SHORT);
    assert!(cmdline.contains("console=ttyS0,57600n8"), "{cmdline}");
    // The daemon wrote it into grub.cfg for the next boot (logged at any time since its start:
    // looked for in the whole console, the shell's output included).
    let written = "the console is ttyS0 at 57600 from the next boot";
    let start = Instant::now();
    while !vm.console().contains(written) {
        if start.elapsed() > SHORT {
            vm.fail(&format!("'{written}' never appeared"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    vm.send("director poweroff");
    let status = vm.wait_exit(SHORT);
    assert!(status.success(), "QEMU ended with {status}");
    let out = std::process::Command::new("mtype")
        .arg("-i")
        .arg(&boot)
        .arg("::grub.cfg")
        .output()
        .unwrap();
    let grub = String::from_utf8_lossy(&out.stdout);
    assert!(grub.contains("serial --unit=0 --speed=57600"), "{grub}");
    assert!(grub.contains(" console=ttyS0,57600n8 "), "{grub}");
    assert!(grub.contains("root=PARTUUID=4c565321-02"), "{grub}");
}
