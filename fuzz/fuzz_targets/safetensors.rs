//! Reads arbitrary bytes as a safetensors header: it must never panic; a header it accepts
//! has no more tensors than its bytes could describe.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_info::{Problem, safetensors};

fuzz_target!(|data: &[u8]| {
    match safetensors::read(data, data.len() as u64) {
        Ok(header) => assert!(header.names.len() <= data.len()),
        Err(Problem::Io(e)) => panic!("an in-memory read failed: {e}"),
        Err(_) => {}
    }
});
