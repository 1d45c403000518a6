//! The keepalived.conf importer: never a panic, and a configuration it makes survives a TOML round trip.
#![no_main]

use director::config::import::{import, Format, Source};
use director::config::{from_toml, to_toml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Source {
        name: "keepalived.conf",
        text,
    };
    if let Ok(imported) = import(Format::Keepalived, source, &|_| None) {
        let exported = to_toml(&imported.config).expect("an imported configuration exports");
        let again = from_toml(&exported).expect("an export imports");
        assert_eq!(again, imported.config, "export -> import is not exact");
    }
});
