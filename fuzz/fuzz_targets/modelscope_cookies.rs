//! Reads arbitrary bytes as ModelScope's saved cookie jar (a pickle): reading must never
//! panic, only find a session or say why there is none.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mp_credentials::modelscope::session_in;

fuzz_target!(|data: &[u8]| {
    for (host, https) in [
        ("modelscope.cn", true),
        ("www.modelscope.cn", false),
        ("127.0.0.1", false),
    ] {
        let _ = session_in(data, host, https, 1_790_000_000);
    }
});
