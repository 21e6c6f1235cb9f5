//! Fault-message decoding and exit handling (MMIO emulation, PSCI, stage-2
//! faults) on a live VMM: the input is a sequence of exits, each
//! `[label, vcpu, count, count x 8-byte message registers]`. Nothing may
//! panic and the model stays consistent.

#![no_main]

mod world;

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vmm_abi::VcpuId;

fuzz_target!(|data: &[u8]| {
    static WORLD: OnceLock<(Box<world::World>, vmm_abi::VmId)> = OnceLock::new();
    let (template, vm) = WORLD.get_or_init(world::world);
    let mut v = template.clone();
    let mut rest = data;
    while let [label, vcpu, count, tail @ ..] = rest {
        let count = usize::from(*count % 14);
        let mut mrs = [0u64; 13];
        let mut take = tail;
        let mut n = 0;
        while n < count.min(13) {
            let Some((word, after)) = take.split_first_chunk::<8>() else { break };
            mrs[n] = u64::from_le_bytes(*word);
            take = after;
            n += 1;
        }
        let _ = v.handle_exit(*vm, VcpuId(u32::from(*vcpu % 3)), u64::from(*label % 12), &mrs[..n], &mut world::Sink);
        v.kernel().check_consistency().expect("model consistent");
        if rest.len() == take.len() {
            break;
        }
        rest = take;
    }
});
