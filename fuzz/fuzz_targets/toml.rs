//! director TOML: never a panic, and whatever is accepted comes back the same from its export.
#![no_main]

use director::config::{from_toml, to_toml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = from_toml(text) {
        let exported = to_toml(&config).expect("an accepted configuration exports");
        let again = from_toml(&exported).expect("an export imports");
        assert_eq!(again, config, "export -> import is not exact");
    }
});
