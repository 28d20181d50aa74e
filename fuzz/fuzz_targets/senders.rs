#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| up42webhooks::fuzz::senders(data));
