//! One harness per invariant. Under `cargo test` each runs a fixed number
//! of random bounded sequences (bolero); under `cargo kani` the same code is
//! a proof over every sequence up to the Kani bound.

use bolero::{check, produce, TypeGenerator};
use verification::invariants::*;
use verification::ops::{step, Op, VmRef, Who};
use verification::System;
use vmm_abi::protocol::{label, Request, MAX_PAYLOAD};
use vmm_abi::{Errno, VcpuId, VmId};

/// Operations per sequence: long enough to create, bind, lock, fault and
/// destroy; short under Kani, where every sequence up to it is proved.
#[cfg(not(kani))]
const MAX_OPS: usize = 20;
#[cfg(kani)]
const MAX_OPS: usize = 3;

/// Random sequences per harness under `cargo test` (fixed, so CI is
/// repeatable in cost; `VERIFY_ITERATIONS` raises it for longer runs).
fn iterations() -> usize {
    std::env::var("VERIFY_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(400)
}

type StepCheck = fn(&System, &Op, &Result<u64, Errno>, &System) -> Check;

/// Every sequence starts with both clients owning a VM, client 1 a vCPU
/// and a guest_memfd file: random operations then mostly meet something
/// (the prefix is checked like any other step).
const PREFIX: [Op; 4] = [
    Op::CreateVm { who: Who::C1 },
    Op::CreateVm { who: Who::C2 },
    Op::CreateVcpu { who: Who::C1, vm: VmRef::Own, vcpu: 0 },
    Op::CreateGmem { who: Who::C1, vm: VmRef::Own, pages: 4 },
];

/// Applies the prefix and `ops` from the initial system, checking `inv`
/// after every step.
fn run(ops: &[Op], inv: StepCheck) {
    let mut sys = System::new();
    for op in PREFIX.iter().chain(ops) {
        let before = sys.clone();
        let result = step(&mut sys, *op);
        if let Err(why) = inv(&before, op, &result, &sys) {
            panic!("{why}\nafter {op:?} -> {result:?}\nsequence: {ops:?}");
        }
    }
}

macro_rules! harness {
    ($(#[$doc:meta])* $name:ident, $inv:expr) => {
        $(#[$doc])*
        #[test]
        #[cfg_attr(kani, kani::proof)]
        #[cfg_attr(kani, kani::unwind(4))]
        fn $name() {
            check!()
                .with_generator(produce::<Vec<Op>>().with().len(0..=MAX_OPS))
                .with_iterations(iterations())
                .for_each(|ops: &Vec<Op>| run(ops, $inv));
        }
    };
}

harness!(
    /// I1.
    i1_guest_memfd_frames_only_in_their_vm,
    |_, _, _, s| i1_private_frames_stay_in_their_vm(s)
);
harness!(
    /// I2.
    i2_bindings_never_overlap_and_stay_inside,
    |_, _, _, s| i2_bindings_disjoint_and_inside(s)
);
harness!(
    /// I3.
    i3_memslots_never_overlap,
    |_, _, _, s| i3_memslots_disjoint(s)
);
harness!(
    /// I4.
    i4_guest_rights_never_exceed_slot_flags,
    |_, _, _, s| i4_guest_rights_within_slots(s)
);
harness!(
    /// I5.
    i5_memlock_charge_equals_locked_pages_within_budget,
    |_, _, _, s| i5_memlock_charges(s)
);
harness!(
    /// I6.
    i6_locked_slot_never_changed_moved_or_deleted,
    |b, op, _, a| i6_locked_slots_untouched(b, op, a)
);
harness!(
    /// I7.
    i7_failed_request_changes_nothing,
    |b, _, r, a| i7_failure_changes_nothing(b, r, a)
);
harness!(
    /// I8.
    i8_usage_count_and_hooks_exactly_once,
    |b, _, _, a| i8_usage_count_and_hooks(b, a)
);
harness!(
    /// I9.
    i9_destroyed_and_closed_leaves_nothing_behind,
    |_, _, _, s| i9_nothing_left_behind(s)
);
harness!(
    /// I10.
    i10_no_client_changes_what_it_does_not_own,
    i10_authority
);

/// I11, first half: any label and any bytes decode to a request or an errno.
#[test]
#[cfg_attr(kani, kani::proof)]
#[cfg_attr(kani, kani::unwind(50))]
fn i11_decoding_any_bytes_is_total() {
    check!()
        .with_generator((0u64..=16, produce::<Vec<u8>>().with().len(0usize..=MAX_PAYLOAD + 8)))
        .with_iterations(iterations() * 10)
        .for_each(|(label, bytes): &(u64, Vec<u8>)| {
            if let Err(why) = i11_decode(*label, bytes) {
                panic!("{why}");
            }
        });
}

/// The fields of any request, for the round trip.
#[derive(Clone, Copy, Debug, TypeGenerator)]
struct AnyRequest {
    #[generator(0..14)]
    kind: u8,
    a: u32,
    b: u32,
    c: u32,
    d: u64,
    e: u64,
    f: u64,
}

impl AnyRequest {
    fn request(&self) -> Request {
        let vm = VmId(self.a);
        match self.kind {
            0 => Request::CreateVm,
            1 => Request::DestroyVm { vm },
            2 => Request::CreateVcpu { vm, vcpu: VcpuId(self.b) },
            3 => Request::RunVcpu { vm, vcpu: VcpuId(self.b), entry: self.d, arg: self.e },
            4 => Request::StopVcpu { vm, vcpu: VcpuId(self.b) },
            5 => Request::GetReg { vm, vcpu: VcpuId(self.b), reg: self.c },
            6 => Request::SetReg { vm, vcpu: VcpuId(self.b), reg: self.c, value: self.d },
            7 => Request::IrqLine { vm, irq: self.b, level: self.c },
            8 => Request::SetMemoryRegion {
                vm,
                region: vmm_abi::memslot::MemoryRegion {
                    slot: self.b,
                    flags: self.c,
                    guest_phys_addr: self.d,
                    memory_size: self.e,
                    userspace_addr: self.f,
                    guest_memfd_offset: self.d ^ self.e,
                    guest_memfd: self.a ^ self.b,
                },
            },
            9 => Request::CreateGuestMemfd { vm, size: self.d, flags: self.e },
            10 => Request::CloseGuestMemfd { handle: vmm_abi::GmemHandle(self.a) },
            11 => Request::LockMemslot { vm, slot: self.b, flags: self.d },
            12 => Request::UnlockMemslot { vm, slot: self.b, flags: self.d },
            _ => Request::EnableCap { vm, cap: self.b, arg: self.d },
        }
    }
}

/// I11, second half: every request encodes and decodes back to itself.
#[test]
#[cfg_attr(kani, kani::proof)]
#[cfg_attr(kani, kani::unwind(50))]
fn i11_requests_round_trip() {
    check!().with_type::<AnyRequest>().with_iterations(iterations() * 10).for_each(|any: &AnyRequest| {
        let req = any.request();
        let mut buf = [0u8; MAX_PAYLOAD];
        let (l, n) = req.encode(&mut buf);
        assert!((label::CREATE_VM..=label::ENABLE_CAP).contains(&l));
        assert_eq!(Request::decode(l, &buf[..n]), Ok(req));
        assert!(i11_decode(l, &buf[..n]).is_ok());
    });
}

/// The harnesses can fail: a sequence that breaks I7 by hand is caught.
#[test]
fn a_harness_reports_a_broken_invariant() {
    let result = std::panic::catch_unwind(|| run(&[], |_, _, _, _| Err("I0: planted".into())));
    assert!(result.is_err());
}

/// The random sequences reach what the invariants are about: every kind of
/// operation succeeds in some sequence (else the harnesses above would be
/// checking empty systems).
#[test]
fn random_sequences_reach_every_kind_of_success() {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    let seen = Mutex::new(BTreeSet::new());
    // Ten times the harnesses' count: the seeds are random, and a mapping
    // fault needs a slot and a fault on it in the same short sequence, so
    // at 400 sequences a run without one came up now and then.
    let n = iterations().saturating_mul(10);
    check!().with_generator(produce::<Vec<Op>>().with().len(0..=MAX_OPS)).with_iterations(n).for_each(
        |ops: &Vec<Op>| {
            let mut sys = System::new();
            for op in PREFIX.iter().chain(ops) {
                if let Ok(v) = step(&mut sys, *op) {
                    let kind = format!("{op:?}").split([' ', '{']).next().unwrap_or("").to_string();
                    // A fault counts when it mapped a page (outcome 0).
                    if !matches!(op, Op::Fault { .. }) || v == 0 {
                        seen.lock().unwrap().insert(kind);
                    }
                }
            }
        },
    );
    let seen = seen.into_inner().unwrap();
    for kind in [
        "CreateVm",
        "DestroyVm",
        "CreateVcpu",
        "RunVcpu",
        "SetRam",
        "SetGmem",
        "Delete",
        "CreateGmem",
        "CloseGmem",
        "Lock",
        "Unlock",
        "EnableCap",
        "Fault",
    ] {
        assert!(seen.contains(kind), "no {kind} ever succeeded; seen: {seen:?}");
    }
}
