//! Fuzz targets for guest exits (rule 6.4: a guest
//! can never make the VMM panic or touch another VM).
//!
//! - `fuzz_exits_through_handle_exit`: up to four exits, each a label in
//!   0..=12, up to 13 MRs and a vCPU in 0..=3 (vCPU 3 does not exist), most
//!   of them steered towards well-formed messages, applied through
//!   `handle_exit` to a world with a running vCPU, RAM and READONLY
//!   memslots and a PL011 (VM A), beside a second VM (B). After each exit:
//!   no panic, every invariant holds, B is exactly as before, and a stop
//!   tells A's owner.
//! - `fuzz_mmio_access_decoding`: arbitrary (gpa, ESR, raw value) through
//!   `Access::decode`, `load_result` and `store_value`, checked against the
//!   Arm rules computed here: which syndromes are refused, that a load
//!   result fits its register, and sign extension against i8/i16/i32 casts.
//!
//! Under `cargo test` each target runs a fixed number of random inputs (the
//! CI's bounded run, about a second each). To run longer, set the number of
//! inputs or a time budget:
//!
//! ```text
//! BOLERO_RANDOM_ITERATIONS=2000000 cargo test -p vmm --release --test exit_fuzz
//! BOLERO_RANDOM_TEST_TIME_MS=600000 cargo test -p vmm --release --test exit_fuzz
//! ```
//!
//! or with a coverage-guided engine (`cargo install cargo-bolero`):
//!
//! ```text
//! cargo bolero test -p vmm --test exit_fuzz fuzz_exits_through_handle_exit
//! cargo bolero test -p vmm --test exit_fuzz fuzz_mmio_access_decoding
//! ```
//!
//! A failure prints `BOLERO_RANDOM_SEED=...`; set it to replay the input.

mod common;

use common::exit_guest::{self, RAM_GPA, ROM_GPA, ROM_PAGES, SLOT_PAGES, UART};
use common::*;
use vmm::arch::aarch64::esr::Esr;
use vmm::arch::aarch64::mmio::{Access, MmioError};
use vmm::devices::pl011::{self, Console};
use vmm::{ExitAction, StopReason};
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::{ClientId, VcpuId, VmId};

/// Inputs per target under `cargo test` (overridden by
/// `BOLERO_RANDOM_ITERATIONS`).
const EXIT_ITERATIONS: usize = 5_000;
const ACCESS_ITERATIONS: usize = 1_000_000;

/// ESR_EL2: EC 31:26, IL 25, ISV 24, SAS 23:22, SSE 21, SRT 20:16, SF 15,
/// WnR 6 (Arm ARM).
const EC_IABT_LOWER: u64 = 0x20;
const EC_DABT_LOWER: u64 = 0x24;
const EC_SMC64: u64 = 0x17;

struct Sink;

impl Console for Sink {
    fn put(&mut self, _byte: u8) {}
}

/// VM A (client A): vCPUs 0-2, vCPU 0 running; RAM, READONLY and PL011.
/// VM B (client B): the same layout on other RAM pages, with pages mapped.
fn template() -> (Box<TestVmm>, VmId, VmId) {
    let mut v = world();
    let mut ids = Vec::new();
    for (owner, ram, vcpus) in [(A, 0, 3), (B, 64, 1)] {
        ids.push(exit_guest::guest(&mut v, owner, ram, vcpus, 0x4400_0000));
    }
    let b = ids[1];
    for gpa in [RAM_GPA, RAM_GPA + 3 * PAGE_SIZE, ROM_GPA] {
        v.stage2_fault(b, Gpa(gpa), gpa < ROM_GPA).unwrap();
    }
    check_invariants(&v);
    (v, ids[0], b)
}

/// One fuzzed exit: label, MRs, vCPU, how many MRs to send, and steering
/// bits. Arbitrary values rarely make a well-formed message, an address in
/// memory or the device, or a PSCI call, so most inputs are steered there
/// (labels the VMM handles, the length seL4 sends); the rest stay arbitrary.
type FuzzExit = (u8, [u64; 13], u8, u8, u8);

/// Labels the VMM handles, VM faults and vCPU faults twice.
const HANDLED: [u8; 9] = [2, 3, 6, 6, 6, 7, 8, 8, 9];

/// PSCI function ids (SMC32 0x84.., SMC64 0xc4..), implemented or not.
const PSCI_IDS: [u64; 10] = [
    0x8400_0000,
    0x8400_0002,
    0x8400_0003,
    0xc400_0003,
    0x8400_0008,
    0x8400_0009,
    0x8400_000a,
    0xc400_0001,
    0xc400_0004,
    0x1_8400_0000,
];

/// The message of a fuzzed exit: (label in 0..=12, at most 13 MRs, vCPU in
/// 0..=3).
fn message(&(label, mut mrs, vcpu, len, steer): &FuzzExit) -> (u64, Vec<u64>, u32) {
    let label = if label < 192 { HANDLED[usize::from(label) % HANDLED.len()] } else { label % 13 };
    // seL4's message lengths (RESEARCH.md section 2).
    let full = match label {
        2 => 13,
        3 => 5,
        6 => 4,
        7..=9 => 1,
        _ => 13,
    };
    let len = if len < 224 { full } else { usize::from(len % 14) };
    let pick = |x: u64, n: u64| x % n;
    match (label, steer & 3) {
        // VM fault address: in and around a memslot or the device.
        (6, 1) if mrs[1] >> 63 == 0 => mrs[1] = RAM_GPA - 8 + pick(mrs[1], SLOT_PAGES * PAGE_SIZE + 16),
        (6, 1) => mrs[1] = ROM_GPA - 8 + pick(mrs[1], ROM_PAGES * PAGE_SIZE + 16),
        (6, 2) => mrs[1] = UART - 8 + pick(mrs[1], pl011::SIZE + 16),
        // PSCI over HVC: a known function, a target vCPU, an entry in RAM.
        (2, 1 | 2) => {
            mrs[0] = PSCI_IDS[pick(mrs[0], PSCI_IDS.len() as u64) as usize];
            mrs[1] = pick(mrs[1], 9);
            mrs[2] = RAM_GPA + pick(mrs[2], SLOT_PAGES * PAGE_SIZE);
        }
        // vCPU fault: WFx, SMC or a system register trap.
        (8, 1 | 2) => {
            let class = [0x01, EC_SMC64, 0x18][pick(mrs[0] >> 32, 3) as usize];
            mrs[0] = (class << 26) | (mrs[0] & ((1 << 26) - 1));
        }
        // A PPI in range; a list register index or "none".
        (9, 1 | 2) => mrs[0] = 16 + pick(mrs[0], 16),
        (7, 1 | 2) => mrs[0] = if mrs[0] & 1 == 0 { pick(mrs[0], 64) } else { u64::MAX },
        _ => {}
    }
    if label == 6 && steer & 12 != 0 {
        // Prefetch flag and class agree; the rest of the syndrome stays
        // arbitrary.
        let class = if mrs[2] & 1 == 1 { EC_IABT_LOWER } else { EC_DABT_LOWER };
        mrs[2] &= 1;
        mrs[3] = (class << 26) | (mrs[3] & ((1 << 26) - 1));
    }
    if label == 6 && steer & 8 != 0 {
        // ... and the syndrome is valid (ISV) and the access one that loads
        // and stores can make: no sign-extending store, 8 bytes only in X.
        let wnr = mrs[3] & (1 << 6) != 0;
        if wnr || (mrs[3] >> 22) & 3 == 3 {
            mrs[3] &= !(1 << 21);
        }
        if (mrs[3] >> 22) & 3 == 3 {
            mrs[3] |= 1 << 15;
        }
        mrs[3] |= 1 << 24;
    }
    (u64::from(label), mrs[..len].to_vec(), u32::from(vcpu % 4))
}

#[test]
fn fuzz_exits_through_handle_exit() {
    let (template, a, b) = template();
    let b_before = view(&template, b);
    bolero::check!().with_type::<(u8, [FuzzExit; 4])>().with_iterations(EXIT_ITERATIONS).for_each(|(n, exits)| {
        let mut v = template.clone();
        for e in exits.iter().take(usize::from(n % 4) + 1) {
            let (label, mrs, vcpu) = message(e);
            let action = v.handle_exit(a, VcpuId(vcpu), label, &mrs, &mut Sink);
            match action {
                // An exit from a vCPU the VMM does not run tells nobody.
                ExitAction::Stop { reason: StopReason::NoSuchVcpu, notify } => assert_eq!(notify, None),
                ExitAction::Stop { notify, .. } => assert_eq!(notify, Some(ClientId(1)), "{action:?}"),
                // Only an `hvc` is answered with registers; only PSCI parks.
                ExitAction::ResumeWith(_) => assert_eq!(label, 2),
                ExitAction::Park => assert!(label == 2 || label == 8),
                ExitAction::Resume => {}
            }
            check_invariants(&v);
            assert!(view(&v, b) == b_before, "exit {label} {mrs:x?} on vCPU {vcpu} changed VM B");
        }
    });
}

/// The register after a load of `size` bytes of `raw`, by the Arm rules:
/// zero- or sign-extended to the register's width (i8/i16/i32 casts); a W
/// register's bits 63:32 are zero.
fn reference_load(size: u8, sse: bool, wide: bool, raw: u64) -> u64 {
    match (size, sse, wide) {
        (1, false, _) => u64::from(raw as u8),
        (2, false, _) => u64::from(raw as u16),
        (4, false, _) => u64::from(raw as u32),
        (8, false, true) => raw,
        (1, true, false) => u64::from((raw as u8 as i8) as i32 as u32),
        (1, true, true) => (raw as u8 as i8) as i64 as u64,
        (2, true, false) => u64::from((raw as u16 as i16) as i32 as u32),
        (2, true, true) => (raw as u16 as i16) as i64 as u64,
        (4, true, true) => (raw as u32 as i32) as i64 as u64,
        _ => panic!("no load of {size} bytes with SSE={sse} SF={wide}"),
    }
}

#[test]
fn fuzz_mmio_access_decoding() {
    bolero::check!().with_type::<(u64, u64, u64)>().with_iterations(ACCESS_ITERATIONS).for_each(|&(gpa, esr, raw)| {
        let bit = |n: u32| (esr >> n) & 1 == 1;
        let (isv, sse, sf, wnr) = (bit(24), bit(21), bit(15), bit(6));
        let size = 1u8 << ((esr >> 22) & 3);
        let srt = ((esr >> 16) & 0x1f) as u8;
        // No load or store has these: a store that sign-extends; 8 bytes in a
        // W register; sign extension of 8 bytes; LDRSW into a W register.
        let impossible = (wnr && sse) || (size == 8 && !sf) || (size == 8 && sse) || (sse && !sf && size == 4);
        let got = Access::decode(Gpa(gpa), Esr(esr));
        if !isv {
            assert_eq!(got, Err(MmioError::NoSyndrome));
            return;
        }
        if impossible {
            assert_eq!(got, Err(MmioError::BadSyndrome), "{esr:#x}");
            return;
        }
        let access = got.unwrap_or_else(|e| panic!("{esr:#x} refused: {e:?}"));
        let reg = if srt == 31 { None } else { Some(srt) };
        assert_eq!(access, Access { gpa: Gpa(gpa), size, write: wnr, reg, sign_extend: sse, wide: sf });
        let mask = if size == 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
        assert_eq!(access.store_value(raw), raw & mask);
        let loaded = access.load_result(raw);
        if !sf {
            assert_eq!(loaded >> 32, 0, "a W register load set bits 63:32: {esr:#x} {raw:#x} -> {loaded:#x}");
        }
        if !sse {
            assert_eq!(loaded, raw & mask);
        }
        assert_eq!(loaded, reference_load(size, sse, sf, raw), "{esr:#x} {raw:#x}");
    });
}
