//! Request decoding and the protocol entry point on a live VMM: the input
//! is a sequence of requests, each `[client, label, length, payload...]`.
//! Nothing may panic, every answer is 0 or a known errno, and a refused
//! request leaves the whole state exactly as it was.

#![no_main]

mod world;

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vmm::config::ClientId;

fuzz_target!(|data: &[u8]| {
    static WORLD: OnceLock<Box<world::World>> = OnceLock::new();
    let mut v = WORLD.get_or_init(|| world::world().0).clone();
    let mut rest = data;
    while let [client, label, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        let before = v.clone();
        let response = v.handle(ClientId(u32::from(*client % 4)), u64::from(*label % 18), payload);
        if response.result.is_err() {
            assert!(*v == *before, "a refused request changed the state");
        }
        v.kernel().check_consistency().expect("model consistent");
        rest = next;
    }
});
