//! Request decoding and the protocol entry point on a live VMM: the input
//! is a sequence of requests, each `[client, label, length, payload...]`.
//! Nothing may panic, every answer is 0 or a known errno, and a refused
//! request leaves the whole state exactly as it was.
//!
//! "Exactly as it was" is checked by a hash of everything `==` compares,
//! taken once per request, rather than by a clone and a comparison: the
//! copy and the walk of the model's maps cost most of each run, under the
//! sanitizers' instrumentation many times more.

#![no_main]

mod world;

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vmm_abi::ClientId;

/// A multiply-rotate hash (FxHash's): a word per step, where SipHash's
/// byte-wise rounds, under the fuzzer's comparison tracing, cost most of a
/// run. Collisions only matter if a refused request changed the state and
/// the change hashed alike.
#[derive(Default)]
struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        for b in chunks.remainder() {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The whole state, hashed: what `==` compares (the core's tables and the
/// model's observable state), without the copy a clone would make.
fn fingerprint(v: &world::World) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = Fx::default();
    v.hash(&mut h);
    h.finish()
}

fuzz_target!(|data: &[u8]| {
    static WORLD: OnceLock<(Box<world::World>, u64)> = OnceLock::new();
    let (template, print) = WORLD.get_or_init(|| {
        let v = world::world().0;
        let print = fingerprint(&v);
        (v, print)
    });
    let mut v = template.clone();
    let mut rest = data;
    // The state before each request is the state after the one before.
    let mut before = *print;
    while let [client, label, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        let response = v.handle(ClientId(u32::from(*client % 4)), u64::from(*label % 18), payload);
        let after = fingerprint(&v);
        if response.result.is_err() {
            assert!(after == before, "a refused request changed the state");
        }
        before = after;
        rest = next;
    }
    v.kernel().check_consistency().expect("model consistent");
});
