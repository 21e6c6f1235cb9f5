//! The virtual GIC's register model on both versions; the input format
//! and the invariants checked are in `vgic_ops`.

#![no_main]

mod vgic_ops;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vgic_ops::run(data));
