//! Reads arbitrary bytes as a GGUF header: it must never panic, and never read or allocate
//! past what the bytes hold; a header it accepts keeps its tensor data inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_info::{Problem, gguf};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    match gguf::read(data, len) {
        Ok(header) => {
            assert!(header.data_end <= len, "data past the end was accepted");
            assert!(header.data_start <= header.data_end);
        }
        Err(Problem::Io(e)) => panic!("an in-memory read failed: {e}"),
        Err(_) => {}
    }
});
