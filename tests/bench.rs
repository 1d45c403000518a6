//! Boot figures of the image under QEMU (TCG), beside busybox init booting the same kernel and
//! initramfs in the same run. Run by `scripts/bench`; prints, asserts nothing about speed.

mod vm;

use std::time::Duration;

use vm::{test_dir, Boot, Vm};

const BOOT: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(20);

/// The kernel's timestamp (seconds since boot) of the console line that contains `needle`.
/// The stamp is the last `[...]` before the needle: a shell prompt may share the line.
fn stamp_of(console: &str, needle: &str) -> Option<f64> {
    let line = console.lines().find(|l| l.contains(needle))?;
    let before = &line[..line.find(needle)?];
    let open = before.rfind('[')?;
    let close = before[open..].find(']')? + open;
    before[open + 1..close].trim().parse().ok()
}

fn rss_kib(vm: &mut Vm, pid: &str) -> String {
    vm.sh(
        &format!("sed -n 's/^VmRSS:[[:space:]]*\\([0-9]*\\) kB/\\1/p' /proc/{pid}/status"),
        SHORT,
    )
}

fn row(figure: &str, director: String, reference: String, target: &str) {
    println!("| {figure:<44} | {director:>12} | {reference:>14} | {target:>10} |");
}

#[test]
#[ignore = "boots the image under QEMU: run by scripts/bench"]
fn boot_figures() {
    // The data disk is formatted by a first boot so that the measured boot is an ordinary one.
    let dir = test_dir("bench-director");
    let data = dir.join("data.img");
    {
        let mut vm = Vm::boot(
            &dir,
            Boot {
                no_reboot: true,
                data: Some(data.clone()),
                ..Boot::default()
            },
        );
        vm.wait_for("INFO  daemon: ready", BOOT);
        vm.send("director poweroff");
        vm.wait_exit(Duration::from_secs(60));
    }
    let mut vm = Vm::boot(
        &dir,
        Boot {
            no_reboot: true,
            data: Some(data),
            ..Boot::default()
        },
    );
    vm.wait_for("INFO  init: director", BOOT);
    let to_init = vm.started.elapsed();
    vm.wait_for("INFO  daemon: ready", BOOT);
    let to_ready = vm.started.elapsed();
    let daemon_pid = vm.sh("director ctl status | sed -n 's/^daemon pid //p'", SHORT);
    let init_rss = rss_kib(&mut vm, "1");
    let daemon_rss = rss_kib(&mut vm, &daemon_pid);
    let console = vm.console();
    let run_init = stamp_of(&console, "Run /init as init process").unwrap_or(f64::NAN);
    let init_line = stamp_of(&console, "INFO  init: director").unwrap_or(f64::NAN);
    let ready_line = stamp_of(&console, "INFO  daemon: ready").unwrap_or(f64::NAN);
    vm.send("director poweroff");
    vm.wait_exit(Duration::from_secs(60));

    let ref_dir = test_dir("bench-busybox");
    let mut reference = Vm::boot(
        &ref_dir,
        Boot {
            no_reboot: true,
            no_data: true,
            append: Some("rdinit=/bin/busybox -- init".into()),
            ..Boot::default()
        },
    );
    reference.wait_for("Please press Enter to activate this console", BOOT);
    let ref_to_prompt = reference.started.elapsed();
    reference.send("");
    reference.sh("mount -t proc proc /proc", SHORT);
    let ref_rss = rss_kib(&mut reference, "1");
    let ref_console = reference.console();
    let ref_started = ref_console.contains("Run /bin/busybox as init process");
    drop(reference);
    assert!(ref_started, "the reference did not boot busybox init");

    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!();
    println!("boot figures under QEMU TCG (reference: busybox init, same kernel and initramfs)");
    row("figure", "director".into(), "busybox init".into(), "target");
    row(
        "QEMU start -> PID 1 running (host clock)",
        secs(to_init),
        String::from("-"),
        "",
    );
    row(
        "QEMU start -> daemon ready / shell prompt",
        secs(to_ready),
        secs(ref_to_prompt),
        "",
    );
    row(
        "kernel runs init -> PID 1 first line",
        format!("{:.3} s", init_line - run_init),
        String::from("-"),
        "",
    );
    row(
        "kernel runs init -> daemon ready",
        format!("{:.3} s", ready_line - run_init),
        String::from("-"),
        "< 1 s",
    );
    row(
        "RSS of PID 1",
        format!("{init_rss} KiB"),
        format!("{ref_rss} KiB"),
        "< 2 MiB",
    );
    row(
        "RSS of the idle daemon",
        format!("{daemon_rss} KiB"),
        String::from("-"),
        "< 8 MiB",
    );
}

/// Seconds from busybox `time`'s "real" line ("real\t1m 2.34s" or "real\t0m 0.12s").
fn real_seconds(output: &str) -> f64 {
    output
        .lines()
        .find_map(|line| line.strip_prefix("real"))
        .and_then(|rest| {
            let (minutes, seconds) = rest.trim().split_once('m')?;
            let minutes: f64 = minutes.trim().parse().ok()?;
            let seconds: f64 = seconds.trim().trim_end_matches('s').parse().ok()?;
            Some(minutes * 60.0 + seconds)
        })
        .unwrap_or(f64::NAN)
}

/// The median of the `real` times in `output` (of several runs: one run under TCG varies
/// by up to ~2x with what the host does meanwhile).
fn median_real_seconds(output: &str) -> f64 {
    let mut times: Vec<f64> = output
        .lines()
        .filter(|line| line.starts_with("real"))
        .map(real_seconds)
        .filter(|t| t.is_finite())
        .collect();
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The duration in ms of the daemon's IPVS round whose log line contains `needle`.
fn round_ms(console: &str, needle: &str) -> f64 {
    console
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|line| {
            let at = line.rfind(" round, ")? + " round, ".len();
            line[at..].split(' ').next()?.parse().ok()
        })
        .unwrap_or(f64::NAN)
}

/// 10,000 virtual services with two real servers each: VIP 192.0.2.1-250, ports 1000-1039.
const SERVICES: usize = 10_000;
const GENERATE_RULES: &str = r#"awk 'BEGIN { for (i = 0; i < 10000; i++) { v = "192.0.2." (int(i / 40) + 1) ":" (1000 + i % 40); printf "-A -t %s -s wrr\n-a -t %s -r 198.51.100.1:80 -m -w 1\n-a -t %s -r 198.51.100.2:80 -m -w 1\n", v, v, v } }' >/tmp/rules"#;
const GENERATE_CONFIG: &str = r#"awk 'BEGIN { print "[node]\nhostname = \"bench\"\n"; for (i = 0; i < 10000; i++) { printf "[[virtual_servers]]\nname = \"v%d\"\nvip = \"192.0.2.%d\"\nport = %d\nscheduler = \"wrr\"\nforwarding = \"nat\"\nreal_servers = [{ name = \"a\", address = \"198.51.100.1\", port = 80 }, { name = \"b\", address = \"198.51.100.2\", port = 80 }]\n\n", i, int(i / 40) + 1, 1000 + i % 40 } }' >/tmp/big.toml"#;

#[test]
#[ignore = "boots the test image under QEMU: run by scripts/bench"]
fn ipvs_figures() {
    const LONG: Duration = Duration::from_secs(600);
    let dir = test_dir("bench-ipvs");
    let mut vm = Vm::boot(
        &dir,
        Boot {
            no_reboot: true,
            no_data: true,
            test_tools: true,
            // Parsing a 2 MB configuration peaks near 130 MB in the daemon (see the notes).
            memory: Some(1024),
            ..Boot::default()
        },
    );
    vm.wait_for("INFO  daemon: network: configured", BOOT);
    vm.sh(GENERATE_RULES, LONG);
    vm.sh(GENERATE_CONFIG, LONG);

    // The reference first, in a network namespace of its own that goes when it is done: each
    // side starts from an empty IPVS. (After a flush the kernel keeps the removed real servers
    // in a trash list for minutes and walks it on every add; whoever went second in the same
    // namespace would pay for the other's table.) ipvsadm -R, -Ln, one edit (20 of them,
    // averaged); the NAT real servers need a route in there.
    vm.sh(
        "unshare -n sh -c 'ip link set lo up; ip addr add 198.51.100.254/24 dev lo; \
         { time ipvsadm -R </tmp/rules; } 2>/tmp/ref-program; \
         ipvsadm -Ln | grep -c ^TCP >/tmp/ref-count; \
         for i in 1 2 3 4 5; do { time ipvsadm -Ln >/dev/null; } 2>>/tmp/ref-read; done; \
         { time sh -c \"for w in 2 3 4 5 6 7 8 9 10 11 2 3 4 5 6 7 8 9 10 11; do \
           ipvsadm -e -t 192.0.2.125:1019 -r 198.51.100.1:80 -m -w \\$w; done\"; } 2>/tmp/ref-edit'; \
         sleep 3",
        LONG,
    );
    let ref_program_out = vm.sh("cat /tmp/ref-program", SHORT);
    let ref_program = real_seconds(&ref_program_out);
    let ref_system = ref_program_out
        .lines()
        .find_map(|l| l.strip_prefix("sys"))
        .map(|rest| real_seconds(&format!("real{rest}")))
        .unwrap_or(f64::NAN);
    let ref_count = vm.sh("cat /tmp/ref-count", SHORT);
    let ref_read = median_real_seconds(&vm.sh("cat /tmp/ref-read", SHORT));
    let ref_edit = real_seconds(&vm.sh("cat /tmp/ref-edit", SHORT)) / 20.0;

    // The director: the same table from its configuration. The daemon's CPU time (user and
    // system, in clock ticks) is read around it to tell its own work from the kernel's.
    let daemon_pid = vm.sh("director ctl status | sed -n 's/^daemon pid //p'", SHORT);
    let cpu = |vm: &mut Vm| -> (f64, f64) {
        let stat = vm.sh(&format!("cut -d' ' -f14,15 /proc/{daemon_pid}/stat"), SHORT);
        let mut ticks = stat
            .split(' ')
            .map(|t| t.parse::<f64>().unwrap_or(f64::NAN) / 100.0);
        (
            ticks.next().unwrap_or(f64::NAN),
            ticks.next().unwrap_or(f64::NAN),
        )
    };
    let (user0, system0) = cpu(&mut vm);
    let import = vm.sh("time director config import /tmp/big.toml 2>&1", LONG);
    vm.wait_for(
        &format!("ipvs: table in force: {SERVICES} virtual server(s)"),
        LONG,
    );
    let console = vm.console();
    let program_ms = round_ms(
        &console,
        &format!("ipvs: table in force: {SERVICES} virtual server(s)"),
    );
    let (user1, system1) = cpu(&mut vm);
    let count = vm.sh("ipvsadm -Ln | grep -c '^TCP'", LONG);
    let read = median_real_seconds(&vm.sh(
        "for i in 1 2 3 4 5; do { time director ctl ipvs >/dev/null; } 2>&1; done",
        LONG,
    ));
    let same = vm.sh(
        "ipvsadm -Ln >/tmp/ref; director ctl ipvs >/tmp/ours; cmp -s /tmp/ref /tmp/ours && echo SAME",
        LONG,
    );
    let set = vm.sh(
        "time director config set virtual_servers.v5019.real_servers.a.weight 7 2>&1",
        LONG,
    );
    let needle = "1 change(s) applied, 0 failed (incremental round";
    let start = std::time::Instant::now();
    while !vm.console().contains(needle) && start.elapsed() < SHORT {
        std::thread::sleep(Duration::from_millis(100));
    }
    let edit_ms = round_ms(&vm.console(), needle);
    let edit_apply_ms = vm
        .console()
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split("apply ").nth(1))
        .and_then(|rest| {
            rest.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(f64::NAN);
    let edited = vm.sh("ipvsadm -Ln -t 192.0.2.126:1019", LONG);
    let daemon_rss = rss_kib(&mut vm, &daemon_pid);
    vm.send("director poweroff");
    vm.wait_exit(Duration::from_secs(120));

    assert_eq!(ref_count, SERVICES.to_string(), "ipvsadm -R programmed");
    assert_eq!(count, SERVICES.to_string(), "the director programmed");
    assert_eq!(same, "SAME", "director ctl ipvs differs from ipvsadm -Ln");
    assert!(
        edited.contains("198.51.100.1:80              Masq    7"),
        "{edited}"
    );
    let program = program_ms / 1000.0;
    println!();
    println!(
        "IPVS figures under QEMU TCG, one VM, one run: {SERVICES} services x 2 real servers \
         (reference: Debian's ipvsadm)"
    );
    row("figure", "director".into(), "ipvsadm".into(), "target");
    row(
        "program the table",
        format!("{program:.2} s"),
        format!("{ref_program:.2} s"),
        ">= 5x faster",
    );
    row(
        "  ratio",
        format!("{:.1}x", ref_program / program),
        String::new(),
        "",
    );
    row(
        "  daemon CPU in it: user (its own work)",
        format!("{:.2} s", user1 - user0),
        String::from("-"),
        "",
    );
    row(
        "  daemon CPU in it: system (the kernel's IPVS)",
        format!("{:.2} s", system1 - system0),
        format!("{ref_system:.2} s"),
        "",
    );
    row(
        "read back, median of 5 (ctl ipvs / ipvsadm -Ln)",
        format!("{read:.2} s"),
        format!("{ref_read:.2} s"),
        ">= 5x faster",
    );
    row(
        "  ratio",
        format!("{:.1}x", ref_read / read),
        String::new(),
        "",
    );
    row(
        "change one weight (whole reconcile / ipvsadm -e)",
        format!("{edit_ms:.1} ms"),
        format!("{:.1} ms", ref_edit * 1000.0),
        "< 10 ms",
    );
    row(
        "  of which the kernel call",
        format!("{edit_apply_ms:.1} ms"),
        String::new(),
        "",
    );
    row(
        "  config set end to end (CLI, store, reconcile)",
        format!("{:.2} s", real_seconds(&set)),
        String::from("-"),
        "",
    );
    row(
        "  config import of the table (CLI, store)",
        format!("{:.2} s", real_seconds(&import)),
        String::from("-"),
        "",
    );
    row(
        "RSS of the daemon with the table",
        format!("{daemon_rss} KiB"),
        String::from("-"),
        "",
    );
}
