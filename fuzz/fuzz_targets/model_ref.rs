//! Parses arbitrary text as a model reference: it must never panic, and an accepted
//! reference must display as a string that parses back to the same value.
#![no_main]

use catalog_core::ModelRef;
use libfuzzer_sys::fuzz_target;

fn check(s: &str) {
    if let Ok(r) = s.parse::<ModelRef>() {
        let shown = r.to_string();
        let again = shown
            .parse::<ModelRef>()
            .unwrap_or_else(|e| panic!("{s:?} displays as {shown:?}, which does not parse: {e}"));
        assert_eq!(again, r, "{s:?} displays as {shown:?}");
        assert_eq!(again.to_string(), shown);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        check(s);
    }
    check(&String::from_utf8_lossy(data));
});
