//! The vGIC fuzz target's operations and invariants (`vgic_ops`, shared
//! with `fuzz/`) under `cargo test`: its seed corpus, then a fixed number
//! of random continuations of the seeds (the CI's bounded run). To run
//! longer:
//!
//! ```text
//! BOLERO_RANDOM_ITERATIONS=200000 cargo test -p vmm --release --test vgic_fuzz
//! ```
//!
//! A failure prints `BOLERO_RANDOM_SEED=...`; set it to replay the input.

#[path = "../../fuzz/fuzz_targets/vgic_ops.rs"]
mod vgic_ops;

/// Random inputs per run under `cargo test`.
const ITERATIONS: usize = 5_000;

/// The seed corpus, each a whole input.
fn seeds() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/vgic");
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn seed_corpus_holds_the_invariants() {
    let seeds = seeds();
    assert!(seeds.len() >= 3, "the seed corpus is there");
    for seed in &seeds {
        vgic_ops::run(seed);
    }
}

/// Records per random input. Random records rarely enable the
/// distributor, an interrupt and its group together, so each input
/// continues a seed (which boots a guest's GIC and raises interrupts)
/// rather than starting from reset.
const RECORDS: usize = 24;

#[test]
fn fuzz_vgic_operations() {
    let seeds = seeds();
    bolero::check!().with_type::<(u8, [[u8; 14]; RECORDS])>().with_iterations(ITERATIONS).for_each(
        |(pick, records)| {
            let mut data = seeds.get(usize::from(*pick) % seeds.len()).cloned().unwrap_or_default();
            data.extend(records.iter().flatten());
            vgic_ops::run(&data);
        },
    );
}
