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
