//! The ldirectord.cf importer with heartbeat's files: the input is split at NUL bytes into
//! ldirectord.cf, ha.cf, haresources and authkeys. Never a panic, and a configuration it makes
//! survives a TOML round trip.
#![no_main]

use director::config::import::{import, Format, Source};
use director::config::{from_toml, to_toml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let main = parts.next().unwrap_or_default();
    let siblings: Vec<(&str, Option<String>)> = ["ha.cf", "haresources", "authkeys"]
        .into_iter()
        .map(|name| (name, parts.next().map(str::to_string)))
        .collect();
    let sibling = |name: &str| {
        siblings
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, text)| text.clone())
    };
    let source = Source {
        name: "ldirectord.cf",
        text: main,
    };
    if let Ok(imported) = import(Format::Ldirectord, source, &sibling) {
        let exported = to_toml(&imported.config).expect("an imported configuration exports");
        let again = from_toml(&exported).expect("an export imports");
        assert_eq!(again, imported.config, "export -> import is not exact");
    }
});
