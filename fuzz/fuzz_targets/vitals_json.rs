//! The canonical vitals decoder (`vigil score`, the evaluation harness), fed
//! arbitrary messages: it never panics, and a flush holds exactly the messages it
//! accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_core::time::TimeBounds;
use vigil_formats::VitalsJsonDecoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = VitalsJsonDecoder::new(TimeBounds::HISTORICAL).with_max_message_bytes(4096);
    let mut accepted = 0;
    for message in data.split(|&b| b == b'\n') {
        if decoder.decode(message).is_ok() {
            accepted += 1;
        }
    }
    let batch = decoder.flush().expect("flush");
    assert_eq!(batch.num_rows(), accepted);
});
