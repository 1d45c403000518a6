//! The serial console of the configuration (`node.console`) on the kernel command line: the
//! `console=` argument, and GRUB's configuration on a boot partition rewritten to carry it
//! (the serial terminal GRUB itself uses, and the kernel's `console=`).

use super::model::SerialPort;

/// The kernel's `console=` argument for `port` (8N1).
pub fn kernel_console(port: &SerialPort) -> String {
    format!("console={},{}n8", port.device, port.baud)
}

/// `grub.cfg` with `port` as the console: every `console=ttyS...` argument of a `linux` line,
/// and the `serial --unit=N --speed=B` command. Other lines stay as they are. An error when
/// there is no `linux` line with a serial `console=` to change.
pub fn rewrite_grub(text: &str, port: &SerialPort) -> Result<String, String> {
    let unit = port
        .device
        .strip_prefix("ttyS")
        .and_then(|n| n.parse::<u8>().ok())
        .ok_or_else(|| {
            format!(
                "{} is not a serial port GRUB knows (ttyS0-ttyS3)",
                port.device
            )
        })?;
    let mut changed_linux = false;
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let trimmed = body.trim_start();
        let indent = &body[..body.len() - trimmed.len()];
        let words: Vec<&str> = trimmed.split(' ').collect();
        let new = match words.first() {
            Some(&"linux") | Some(&"linux16") => {
                let mut seen = false;
                let replaced: Vec<String> = words
                    .iter()
                    .map(|w| {
                        if w.starts_with("console=ttyS") {
                            seen = true;
                            kernel_console(port)
                        } else {
                            w.to_string()
                        }
                    })
                    .collect();
                changed_linux |= seen;
                replaced.join(" ")
            }
            Some(&"serial") => words
                .iter()
                .map(|w| {
                    if w.starts_with("--unit=") {
                        format!("--unit={unit}")
                    } else if w.starts_with("--speed=") {
                        format!("--speed={}", port.baud)
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => trimmed.to_string(),
        };
        out.push_str(indent);
        out.push_str(&new);
        out.push_str(end);
    }
    if !changed_linux {
        return Err("no `linux` line with a console=ttyS... argument".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRUB: &str = "serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n\
terminal_input serial\n\
menuentry \"director\" {\n\
\tlinux /bzImage root=PARTUUID=4c565321-02 ro console=ttyS0,115200n8 director.data=/dev/sda3\n\
}\n";

    #[test]
    fn the_console_reaches_grub_and_the_kernel_line() {
        let port = SerialPort {
            device: "ttyS1".into(),
            baud: 9600,
        };
        assert_eq!(kernel_console(&port), "console=ttyS1,9600n8");
        let new = rewrite_grub(GRUB, &port).unwrap();
        assert!(
            new.starts_with("serial --unit=1 --speed=9600 --word=8"),
            "{new}"
        );
        assert!(
            new.contains("\tlinux /bzImage root=PARTUUID=4c565321-02 ro console=ttyS1,9600n8 director.data=/dev/sda3\n"),
            "{new}"
        );
        assert!(new.contains("terminal_input serial\n"));
        // The same again changes nothing.
        assert_eq!(rewrite_grub(&new, &port).unwrap(), new);
        // Back to the default: the file as it was.
        assert_eq!(rewrite_grub(&new, &SerialPort::default()).unwrap(), GRUB);
    }

    #[test]
    fn a_file_without_a_console_or_a_port_grub_cannot_drive_is_refused() {
        assert!(rewrite_grub("linux /bzImage ro\n", &SerialPort::default())
            .unwrap_err()
            .contains("no `linux` line"));
        let usb = SerialPort {
            device: "ttyUSB0".into(),
            baud: 115_200,
        };
        assert!(rewrite_grub(GRUB, &usb).unwrap_err().contains("ttyUSB0"));
    }
}
