//! The kernel command line: the settings PID 1 takes from it.

use std::path::PathBuf;

/// Where persistent data lives when the command line does not say.
pub const DEFAULT_DATA_DEVICE: &str = "/dev/vda";
/// The console when the command line names no serial console.
pub const DEFAULT_CONSOLE: &str = "ttyS0";
pub const DEFAULT_BAUD: u32 = 115_200;

/// Settings read from /proc/cmdline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootOptions {
    /// `director.data=DEV`; `director.data=none` runs without persistent storage.
    pub data_device: Option<PathBuf>,
    /// `director.log=LEVEL`, passed on to the daemon.
    pub log_level: Option<String>,
    /// The last `console=ttySN[,baud...]` on the line, as the kernel uses it for /dev/console.
    pub console: String,
    pub baud: u32,
    /// `director.console=shell`: a root shell on the console instead of the operator's
    /// console (setup dialogue, login, CLI). For the test lab; whoever can change the kernel
    /// command line can as well boot with init=/bin/sh.
    pub console_shell: bool,
    /// `director.console_idle=SECONDS`: the operator's console logs out after this long idle.
    pub console_idle: Option<u64>,
}

impl BootOptions {
    pub fn parse(cmdline: &str) -> BootOptions {
        let mut options = BootOptions {
            data_device: Some(PathBuf::from(DEFAULT_DATA_DEVICE)),
            log_level: None,
            console: DEFAULT_CONSOLE.to_string(),
            baud: DEFAULT_BAUD,
            console_shell: false,
            console_idle: None,
        };
        for word in split_words(cmdline) {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, v),
                None => (word.as_str(), ""),
            };
            match key {
                "director.data" if value == "none" => options.data_device = None,
                "director.data" if !value.is_empty() => {
                    options.data_device = Some(PathBuf::from(value))
                }
                "director.log" if !value.is_empty() => options.log_level = Some(value.into()),
                "director.console" => options.console_shell = value == "shell",
                "director.console_idle" => options.console_idle = value.parse().ok(),
                "console" if value.starts_with("tty") => {
                    let (device, settings) = value.split_once(',').unwrap_or((value, ""));
                    options.console = device.to_string();
                    let digits: String = settings
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    options.baud = digits.parse().unwrap_or(DEFAULT_BAUD);
                }
                _ => {}
            }
        }
        options
    }
}

/// Splits a command line into words; double quotes group words with spaces (the quotes go).
fn split_words(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in cmdline.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_options() {
        let options = BootOptions::parse("quiet\n");
        assert_eq!(options.data_device, Some(PathBuf::from("/dev/vda")));
        assert_eq!(options.console, "ttyS0");
        assert_eq!(options.baud, 115_200);
        assert_eq!(options.log_level, None);
    }

    #[test]
    fn reads_data_log_and_last_console() {
        let options = BootOptions::parse(
            "console=tty0 console=ttyS1,57600n8 director.data=/dev/sda3 director.log=debug",
        );
        assert_eq!(options.data_device, Some(PathBuf::from("/dev/sda3")));
        assert_eq!(options.console, "ttyS1");
        assert_eq!(options.baud, 57_600);
        assert_eq!(options.log_level.as_deref(), Some("debug"));
    }

    #[test]
    fn data_none_and_quotes() {
        let options = BootOptions::parse("director.data=none x=\"a b\" console=ttyS0");
        assert_eq!(options.data_device, None);
        assert_eq!(options.baud, 115_200);
        assert_eq!(split_words("x=\"a b\" y"), vec!["x=a b", "y"]);
    }
}
