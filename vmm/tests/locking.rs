//! Section 5 of the rules: memslot LOCK / UNLOCK / UNLOCK_ALL:
//! flags, the memlock budget, pinning and stage-2 mapping, all-or-nothing,
//! rights, the VM-wide capability, unlocking and VM destruction.
//!
//! Every refused request goes through `refused`, which checks the errno, the
//! error variant (which rule fired) and, through `fails_unchanged`, that
//! nothing observable changed.

mod common;
use common::*;

use std::collections::BTreeMap;

use vmm::caps::{Rights, Slot};
use vmm::kernel::KernelError;
use vmm::registry::{Owner, RegistryError};
use vmm::vm::lock::LockError;
use vmm::vm::memslots::Memslot;
use vmm::vm::VmError;
use vmm::FaultOutcome;
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::memslot::{MemoryRegion, LOCK_READ, LOCK_WRITE, LOG_DIRTY_PAGES, READONLY, UNLOCK_ALL};
use vmm_abi::protocol::CAP_MEM_TAGGING;
use vmm_abi::{Errno, MemslotId, VmId};

const PG: u64 = PAGE_SIZE;
const GPA: u64 = 0x8000_0000;
const RW: u64 = LOCK_READ | LOCK_WRITE;

// ---- Helpers ----

fn set(v: &mut TestVmm, owner: Owner, vm: VmId, req: MemoryRegion) {
    v.set_memory_region(owner, vm, &req).unwrap_or_else(|e| panic!("{req:?} refused: {e}"));
    check_invariants(v);
}

fn lock(v: &mut TestVmm, owner: Owner, vm: VmId, slot: u32, flags: u64) {
    v.lock_memslot(owner, vm, slot, flags).unwrap_or_else(|e| panic!("lock of slot {slot} refused: {e}"));
    check_invariants(v);
}

fn unlock(v: &mut TestVmm, owner: Owner, vm: VmId, slot: u32, flags: u64) {
    v.unlock_memslot(owner, vm, slot, flags).unwrap_or_else(|e| panic!("unlock of slot {slot} refused: {e}"));
    check_invariants(v);
}

fn fault(v: &mut TestVmm, vm: VmId, gpa: u64, write: bool) -> FaultOutcome {
    let r = v.stage2_fault(vm, Gpa(gpa), write).unwrap();
    check_invariants(v);
    r
}

fn slot_of(v: &TestVmm, vm: VmId, id: u16) -> Memslot {
    let t = &v.registry().entry(vm).unwrap().vm().memslots();
    *t.get(t.index_of(MemslotId(id)).unwrap_or_else(|| panic!("no slot {id}"))).unwrap()
}

fn ram_slot(page: u64) -> Slot {
    Slot(RAM_FRAMES.0 + page)
}

/// The frame object of guest RAM page `page`.
fn ram_obj(v: &TestVmm, page: u64) -> u64 {
    v.kernel().object_at(ram_slot(page)).unwrap()
}

/// What the guest sees of `pages` pages at `gpa` backed from RAM page
/// `ram_page`, all with `rights`.
fn expect_pages(v: &TestVmm, gpa: u64, pages: u64, ram_page: u64, rights: Rights) -> BTreeMap<u64, (u64, Rights)> {
    (0..pages).map(|i| (gpa + i * PG, (ram_obj(v, ram_page + i), rights))).collect()
}

/// Guest RAM pages that have no capability but guest RAM's own, so nothing
/// pins them.
fn unpinned(v: &TestVmm, ram_pages: std::ops::Range<u64>) -> bool {
    ram_pages.into_iter().all(|p| v.kernel().caps_to(ram_obj(v, p)) == [ram_slot(p)])
}

// ---- Rule 5.1: flags and slot ----

#[test]
fn lock_without_read_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    for flags in [0, LOCK_WRITE] {
        refused(&mut v, Errno::EINVAL, LockError::BadFlags.into(), |v| v.lock_memslot(A, vm, 0, flags));
    }
    lock(&mut v, A, vm, 0, LOCK_READ);
}

#[test]
fn lock_with_unknown_bits_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    for flags in [LOCK_READ | 4, RW | 1 << 63, 4, u64::MAX] {
        refused(&mut v, Errno::EINVAL, LockError::BadFlags.into(), |v| v.lock_memslot(A, vm, 0, flags));
    }
    lock(&mut v, A, vm, 0, RW);
}

#[test]
fn lock_of_a_slot_that_does_not_exist_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    // Slot 0 with address-space bits set is not slot 0.
    for slot in [1, 511, 512, 1 << 16, u32::MAX] {
        refused(&mut v, Errno::EINVAL, LockError::NoSuchSlot.into(), |v| v.lock_memslot(A, vm, slot, LOCK_READ));
    }
    set(&mut v, A, vm, MemoryRegion { slot: 0, ..MemoryRegion::default() });
    refused(&mut v, Errno::EINVAL, LockError::NoSuchSlot.into(), |v| v.lock_memslot(A, vm, 0, LOCK_READ));
}

/// Rule 5.1 (vmm/src/vm/lock.rs): guest_memfd frames are held
/// by the file and never move; there is nothing to pin.
#[test]
fn lock_of_a_guest_memfd_slot_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    set(&mut v, A, vm, gmem_region(0, GPA, 4, h, 0));
    for flags in [LOCK_READ, RW] {
        refused(&mut v, Errno::EINVAL, LockError::GmemSlot.into(), |v| v.lock_memslot(A, vm, 0, flags));
    }
}

// ---- Rule 5.2: WRITE on read-only or dirty-logging slots, already locked ----

#[test]
fn write_lock_of_a_readonly_slot_is_eperm() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, MemoryRegion { flags: READONLY, ..ram_region(0, GPA, 2, 0) });
    refused(&mut v, Errno::EPERM, LockError::WriteNotAllowed.into(), |v| v.lock_memslot(A, vm, 0, RW));
    lock(&mut v, A, vm, 0, LOCK_READ);
    assert_eq!(guest_pages(&v, vm), expect_pages(&v, GPA, 2, 0, Rights::READ));
}

#[test]
fn write_lock_of_a_dirty_logging_slot_is_eperm() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, MemoryRegion { flags: LOG_DIRTY_PAGES, ..ram_region(0, GPA, 2, 0) });
    set(&mut v, A, vm, MemoryRegion { flags: LOG_DIRTY_PAGES | READONLY, ..ram_region(1, GPA + 4 * PG, 2, 4) });
    for slot in [0, 1] {
        refused(&mut v, Errno::EPERM, LockError::WriteNotAllowed.into(), |v| v.lock_memslot(A, vm, slot, RW));
        lock(&mut v, A, vm, slot, LOCK_READ);
    }
    assert_eq!(guest_pages(&v, vm).values().filter(|(_, r)| *r == Rights::READ).count(), 4);
}

#[test]
fn locking_a_locked_slot_is_ebusy() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    set(&mut v, A, vm, ram_region(1, GPA + 4 * PG, 2, 4));
    lock(&mut v, A, vm, 0, LOCK_READ);
    lock(&mut v, A, vm, 1, RW);
    for (slot, flags) in [(0, LOCK_READ), (0, RW), (1, LOCK_READ), (1, RW)] {
        refused(&mut v, Errno::EBUSY, LockError::AlreadyLocked.into(), |v| v.lock_memslot(A, vm, slot, flags));
    }
    assert_eq!(v.charges().charged(A), 4, "charged twice");
}

/// Rule 8.2: a platform that can pin no memory refuses with EOPNOTSUPP,
/// changing nothing, every LOCK the core would carry out, and leaves every
/// LOCK the core refuses to the core's own error.
#[test]
fn a_platform_that_cannot_pin_refuses_only_what_the_core_would_lock() {
    let (mut v, vm) = world_with_vm(A); // budget 16 pages
    let other = v.create_vm(B).unwrap();
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    set(&mut v, A, vm, MemoryRegion { flags: READONLY, ..ram_region(1, GPA + 4 * PG, 2, 4) });
    let h = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    set(&mut v, A, vm, gmem_region(2, GPA + 8 * PG, 4, h, 0));
    set(&mut v, A, vm, ram_region(3, GPA + 16 * PG, 2, 16));
    lock(&mut v, A, vm, 3, LOCK_READ);
    set(&mut v, A, vm, ram_region(4, GPA + 32 * PG, 15, 32)); // 2 + 15 > 16
    let mut answered = BTreeMap::new();
    for caller in [A, B] {
        for id in [vm, other, VmId(99)] {
            for slot in [0, 1, 2, 3, 4, 99] {
                for flags in [0, LOCK_READ, RW, LOCK_READ | 4] {
                    let mut w = v.clone();
                    let locked = w.lock_memslot(caller, id, slot, flags);
                    let mut no_pins = v.clone();
                    no_pins.hooks_mut().pinnable = Some(0..0);
                    let before = no_pins.clone();
                    let refused = no_pins.lock_memslot(caller, id, slot, flags);
                    assert!(*no_pins == *before, "a refused lock changed the state");
                    let case = (caller, id, slot, flags);
                    match (locked, refused) {
                        (Ok(()), Err(e)) => {
                            assert_eq!(e, LockError::CannotPin.into(), "{case:?}");
                            assert_eq!(e.errno(), Errno::EOPNOTSUPP);
                            *answered.entry("locked".to_string()).or_insert(0) += 1;
                        }
                        (Err(a), Err(b)) => {
                            assert_eq!(a, b, "{case:?}");
                            *answered.entry(format!("{a:?}")).or_insert(0) += 1;
                        }
                        (l, r) => panic!("{case:?}: lock {l:?}, with nothing pinnable {r:?}"),
                    }
                }
            }
        }
    }
    // Every answer LOCK gives came up.
    assert!(answered.contains_key("locked"), "no case locked: {answered:?}");
    let refusals: [vmm::Error; 8] = [
        RegistryError::NoSuchVm.into(),
        RegistryError::NotOwner.into(),
        LockError::BadFlags.into(),
        LockError::NoSuchSlot.into(),
        LockError::GmemSlot.into(),
        LockError::WriteNotAllowed.into(),
        LockError::AlreadyLocked.into(),
        LockError::OverBudget.into(),
    ];
    for e in refusals {
        assert!(answered.contains_key(&format!("{e:?}")), "no case refused with {e}: {answered:?}");
    }
}

/// A platform that can pin only part of guest memory: a slot inside it
/// locks, one reaching outside it is refused.
#[test]
fn a_lock_reaching_outside_what_the_platform_can_pin_is_eopnotsupp() {
    let (mut v, vm) = world_with_vm(A);
    v.hooks_mut().pinnable = Some(GPA..GPA + 4 * PG);
    set(&mut v, A, vm, ram_region(0, GPA, 4, 0));
    set(&mut v, A, vm, ram_region(1, GPA + 3 * PG + 4 * PG, 2, 4));
    lock(&mut v, A, vm, 0, LOCK_READ);
    refused(&mut v, Errno::EOPNOTSUPP, LockError::CannotPin.into(), |v| v.lock_memslot(A, vm, 1, LOCK_READ));
}

// ---- Rule 5.3: memlock budget ----

#[test]
fn lock_over_the_client_budget_is_enomem_and_pins_nothing() {
    let (mut v, vm) = world_with_vm(B); // budget 4 pages
    set(&mut v, B, vm, ram_region(0, GPA, 5, 0));
    set(&mut v, B, vm, ram_region(1, GPA + 8 * PG, 4, 8));
    for flags in [LOCK_READ, RW] {
        refused(&mut v, Errno::ENOMEM, LockError::OverBudget.into(), |v| v.lock_memslot(B, vm, 0, flags));
    }
    assert!(unpinned(&v, 0..5), "a refused lock pinned a page");
    assert!(guest_pages(&v, vm).is_empty(), "a refused lock mapped a page");
    assert_eq!(v.charges().charged(B), 0);
    // Exactly the budget is allowed.
    lock(&mut v, B, vm, 1, RW);
    assert_eq!(v.charges().charged(B), 4);
}

#[test]
fn budget_counts_pages_already_locked() {
    let (mut v, vm) = world_with_vm(A); // budget 16 pages
    set(&mut v, A, vm, ram_region(0, GPA, 10, 0));
    set(&mut v, A, vm, ram_region(1, GPA + 16 * PG, 7, 16));
    set(&mut v, A, vm, ram_region(2, GPA + 32 * PG, 6, 32));
    lock(&mut v, A, vm, 0, LOCK_READ);
    // 10 + 7 > 16.
    refused(&mut v, Errno::ENOMEM, LockError::OverBudget.into(), |v| v.lock_memslot(A, vm, 1, LOCK_READ));
    assert!(unpinned(&v, 16..23));
    // 10 + 6 = 16: up to the limit.
    lock(&mut v, A, vm, 2, LOCK_READ);
    assert_eq!(v.charges().charged(A), 16);
    // Unlocking gives the budget back.
    unlock(&mut v, A, vm, 0, 0);
    assert_eq!(v.charges().charged(A), 6);
    lock(&mut v, A, vm, 1, LOCK_READ);
    assert_eq!(v.charges().charged(A), 13);
}

#[test]
fn budget_is_per_client_across_its_vms() {
    let mut v = world();
    let vm1 = v.create_vm(A).unwrap();
    let vm2 = v.create_vm(A).unwrap();
    let vm_b = v.create_vm(B).unwrap();
    set(&mut v, A, vm1, ram_region(0, GPA, 10, 0));
    set(&mut v, A, vm2, ram_region(0, GPA, 7, 16));
    set(&mut v, B, vm_b, ram_region(0, GPA, 4, 32));
    lock(&mut v, A, vm1, 0, LOCK_READ);
    refused(&mut v, Errno::ENOMEM, LockError::OverBudget.into(), |v| v.lock_memslot(A, vm2, 0, LOCK_READ));
    // Another client's budget is its own.
    lock(&mut v, B, vm_b, 0, LOCK_READ);
    assert_eq!((v.charges().charged(A), v.charges().charged(B)), (10, 4));
}

#[test]
fn privileged_client_has_no_limit() {
    let (mut v, vm) = world_with_vm(P);
    set(&mut v, P, vm, ram_region(0, GPA, 64, 0));
    set(&mut v, P, vm, ram_region(1, GPA + 0x20_0000, 200, 64));
    lock(&mut v, P, vm, 0, RW);
    lock(&mut v, P, vm, 1, LOCK_READ);
    assert_eq!(v.charges().charged(P), 264);
    assert_eq!(guest_pages(&v, vm).len(), 264);
}

// ---- Rule 5.4: pin every page, map it with 4 KiB pages, all or nothing ----

#[test]
fn lock_pins_every_page_with_a_capability_to_its_frame() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 8, 100));
    lock(&mut v, A, vm, 0, LOCK_READ);
    let pins = slot_of(&v, vm, 0).lock().unwrap().pins();
    assert_eq!(pins.len, 8);
    for i in 0..8 {
        let obj = ram_obj(&v, 100 + i);
        let pin = pins.get(i).unwrap();
        assert_eq!(v.kernel().object_at(pin), Some(obj), "pin {i} does not name its frame");
        let mut want = vec![ram_slot(100 + i), pin];
        want.sort();
        assert_eq!(v.kernel().caps_to(obj), want);
    }
    assert!(unpinned(&v, 0..100) && unpinned(&v, 108..RAM_PAGES), "a frame outside the slot was pinned");
    assert_eq!(v.charges().charged(A), 8);
}

#[test]
fn read_lock_maps_every_page_read_only_with_4k_pages() {
    let (mut v, vm) = world_with_vm(A);
    // Across a 1 GiB and a 2 MiB boundary: tables are created as needed.
    let gpa = 0x4000_0000 - 3 * PG;
    set(&mut v, A, vm, ram_region(0, gpa, 8, 50));
    lock(&mut v, A, vm, 0, LOCK_READ);
    assert_eq!(guest_pages(&v, vm), expect_pages(&v, gpa, 8, 50, Rights::READ));
}

#[test]
fn write_lock_maps_every_page_read_write_with_4k_pages() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 8, 50));
    lock(&mut v, A, vm, 0, RW);
    assert_eq!(guest_pages(&v, vm), expect_pages(&v, GPA, 8, 50, Rights::READ_WRITE));
}

#[test]
fn pages_faulted_in_before_a_read_lock_are_mapped_read_only_and_pinned() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 6, 0));
    assert_eq!(fault(&mut v, vm, GPA + 2 * PG, true), FaultOutcome::Mapped);
    assert_eq!(fault(&mut v, vm, GPA + 5 * PG, false), FaultOutcome::Mapped);
    assert_eq!(guest_pages(&v, vm).get(&(GPA + 2 * PG)), Some(&(ram_obj(&v, 2), Rights::READ_WRITE)));
    lock(&mut v, A, vm, 0, LOCK_READ);
    // Rule 5.4: every page read-only, the pages written before included, so
    // the guest's next write to any of them faults.
    assert_eq!(guest_pages(&v, vm), expect_pages(&v, GPA, 6, 0, Rights::READ));
    // They stay mapped through their mapping capabilities.
    let maps = slot_of(&v, vm, 0).map_caps();
    for i in [2, 5] {
        assert!(v.kernel().caps_to(ram_obj(&v, i)).contains(&maps.get(i).unwrap()), "page {i} lost its mapping cap");
    }
    // That write is caught, and the writable slot lets it through (rule 5.5).
    assert_eq!(fault(&mut v, vm, GPA + 2 * PG, true), FaultOutcome::Mapped);
    assert_eq!(guest_pages(&v, vm).get(&(GPA + 2 * PG)), Some(&(ram_obj(&v, 2), Rights::READ_WRITE)));
    let pins = slot_of(&v, vm, 0).lock().unwrap().pins();
    for i in 0..6 {
        assert!(v.kernel().caps_to(ram_obj(&v, i)).contains(&pins.get(i).unwrap()), "page {i} not pinned");
    }
}

/// All or nothing: make each kernel invocation of a lock fail in turn; every
/// failing lock leaves the whole state as it was.
#[test]
fn lock_is_all_or_nothing_under_kernel_failures() {
    for flags in [LOCK_READ, RW] {
        let (mut base, vm) = world_with_vm(A);
        // 8 pages across a 1 GiB boundary, one already faulted in: the lock
        // creates tables, maps through pins and keeps an existing mapping.
        let gpa = 0x4000_0000 - 4 * PG;
        set(&mut base, A, vm, ram_region(0, gpa, 8, 0));
        assert_eq!(fault(&mut base, vm, gpa + PG, true), FaultOutcome::Mapped);
        let mut failures = 0;
        let mut locked = false;
        for n in 0..200 {
            let mut w = base.clone();
            w.kernel_mut().fail_nth(n, KernelError::NotEnoughMemory);
            match w.lock_memslot(A, vm, 0, flags) {
                Err(e) => {
                    assert!(!w.kernel().failure_pending(), "lock failed on its own at invocation {n}: {e}");
                    assert_eq!(e.errno(), Errno::ENOMEM, "invocation {n}: {e}");
                    assert!(*w == *base, "a lock failing at invocation {n} left state behind");
                    check_invariants(&w);
                    failures += 1;
                }
                Ok(()) => {
                    assert!(w.kernel().failure_pending(), "lock succeeded although invocation {n} failed");
                    check_invariants(&w);
                    assert!(slot_of(&w, vm, 0).lock().is_some());
                    assert_eq!(guest_pages(&w, vm).len(), 8);
                    locked = true;
                    break;
                }
            }
        }
        assert!(locked, "the lock never succeeded");
        assert!(failures >= 8, "at least one fallible invocation per page, got {failures}");
    }
}

// ---- Rule 5.5: lock flags set the initial rights, slot flags decide ----

/// The corrected answer of the KVM lock proposal's review: after a READ lock, a write fault relaxes the
/// permissions of a read-write slot.
#[test]
fn write_fault_after_a_read_lock_relaxes_the_mapping_to_read_write() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 4, 0));
    lock(&mut v, A, vm, 0, LOCK_READ);
    assert_eq!(fault(&mut v, vm, GPA + PG, true), FaultOutcome::Mapped);
    let mut want = expect_pages(&v, GPA, 4, 0, Rights::READ);
    want.insert(GPA + PG, (ram_obj(&v, 1), Rights::READ_WRITE));
    assert_eq!(guest_pages(&v, vm), want);
    assert!(slot_of(&v, vm, 0).lock().is_some());
}

/// The same after UNLOCK: the mappings stay (rule 5.7), and the slot's
/// flags, not the old lock's, still decide what the guest may do.
#[test]
fn write_fault_after_unlocking_a_read_lock_relaxes_the_mapping_to_read_write() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 4, 0));
    lock(&mut v, A, vm, 0, LOCK_READ);
    unlock(&mut v, A, vm, 0, 0);
    assert_eq!(fault(&mut v, vm, GPA + 2 * PG, true), FaultOutcome::Mapped);
    assert_eq!(guest_pages(&v, vm).get(&(GPA + 2 * PG)), Some(&(ram_obj(&v, 2), Rights::READ_WRITE)));
}

/// Outside a lock every page has the slot's rights: unlocking a READ lock of
/// a writable slot maps its pages read-write again, the pages faulted in
/// before the lock included, while a READONLY slot stays read-only.
#[test]
fn unlocking_a_read_lock_gives_every_page_the_slots_rights_back() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 4, 0));
    set(&mut v, A, vm, MemoryRegion { flags: READONLY, ..ram_region(1, GPA + 8 * PG, 2, 8) });
    assert_eq!(fault(&mut v, vm, GPA + PG, true), FaultOutcome::Mapped);
    lock(&mut v, A, vm, 0, LOCK_READ);
    lock(&mut v, A, vm, 1, LOCK_READ);
    unlock(&mut v, A, vm, 0, UNLOCK_ALL);
    let mut want = expect_pages(&v, GPA, 4, 0, Rights::READ_WRITE);
    want.extend(expect_pages(&v, GPA + 8 * PG, 2, 8, Rights::READ));
    assert_eq!(guest_pages(&v, vm), want);
    check_invariants(&v);
}

/// A lock that fails after mapping a page again with its own rights gives
/// that page its rights back: a READ lock failing at each invocation in
/// turn, over pages faulted in read-write, leaves them read-write.
#[test]
fn a_failed_read_lock_gives_pages_faulted_in_before_it_their_rights_back() {
    let (mut base, vm) = world_with_vm(A);
    set(&mut base, A, vm, ram_region(0, GPA, 4, 0));
    for i in 0..4 {
        assert_eq!(fault(&mut base, vm, GPA + i * PG, true), FaultOutcome::Mapped);
    }
    let mut failures = 0;
    for n in 0.. {
        let mut w = base.clone();
        w.kernel_mut().fail_nth(n, KernelError::NotEnoughMemory);
        if w.lock_memslot(A, vm, 0, LOCK_READ).is_ok() {
            assert!(w.kernel().failure_pending(), "lock succeeded although invocation {n} failed");
            assert_eq!(guest_pages(&w, vm), expect_pages(&w, GPA, 4, 0, Rights::READ));
            break;
        }
        assert_eq!(guest_pages(&w, vm), expect_pages(&w, GPA, 4, 0, Rights::READ_WRITE), "invocation {n}");
        assert!(*w == *base, "a lock failing at invocation {n} left state behind");
        failures += 1;
    }
    // Per page: the pin's copy, its map (refused: the page is mapped) and the
    // mapping capability's new rights; the second can fail too.
    assert!(failures >= 8, "at least two fallible invocations per page, got {failures}");
}

#[test]
fn write_fault_on_a_write_locked_page_keeps_it_read_write() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 4, 0));
    lock(&mut v, A, vm, 0, RW);
    assert_eq!(fault(&mut v, vm, GPA + 3 * PG, true), FaultOutcome::Mapped);
    assert_eq!(guest_pages(&v, vm), expect_pages(&v, GPA, 4, 0, Rights::READ_WRITE));
}

#[test]
fn a_locked_readonly_slot_still_refuses_guest_writes() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, MemoryRegion { flags: READONLY, ..ram_region(0, GPA, 4, 0) });
    lock(&mut v, A, vm, 0, LOCK_READ);
    let before = v.clone();
    assert_eq!(v.stage2_fault(vm, Gpa(GPA + PG), true).unwrap(), FaultOutcome::ReadOnlyWrite);
    assert!(v == before, "a refused write changed the state");
    assert_eq!(guest_pages(&v, vm), expect_pages(&v, GPA, 4, 0, Rights::READ));
}

// ---- Rule 5.6: the VM-wide capability ----

#[test]
fn mem_tagging_cannot_be_enabled_while_a_slot_is_locked() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    let other = v.create_vm(A).unwrap();
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    set(&mut v, A, vm, ram_region(1, GPA + 4 * PG, 2, 4));
    lock(&mut v, A, vm, 0, LOCK_READ);
    lock(&mut v, A, vm, 1, RW);
    refused(&mut v, Errno::EPERM, LockError::SlotsLocked.into(), |v| v.enable_cap(A, vm, CAP_MEM_TAGGING, 0));
    unlock(&mut v, A, vm, 0, 0);
    refused(&mut v, Errno::EPERM, LockError::SlotsLocked.into(), |v| v.enable_cap(A, vm, CAP_MEM_TAGGING, 0));
    // Locks are per VM: another VM of the same client is not affected.
    v.enable_cap(A, other, CAP_MEM_TAGGING, 0).unwrap();
    unlock(&mut v, A, vm, 1, 0);
    v.enable_cap(A, vm, CAP_MEM_TAGGING, 0).unwrap();
    check_invariants(&v);
    assert!(v.registry().entry(vm).unwrap().vm().mem_tagging());
    // An unknown capability is refused before the lock check.
    refused(&mut v, Errno::EINVAL, VmError::BadCapability.into(), |v| v.enable_cap(A, vm, CAP_MEM_TAGGING + 1, 0));
}

// ---- Rule 5.7: UNLOCK and UNLOCK_ALL ----

#[test]
fn unlock_unpins_and_uncharges_but_keeps_the_mappings() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 6, 0));
    assert_eq!(fault(&mut v, vm, GPA, true), FaultOutcome::Mapped);
    let cspace_before = v.cspace().clone();
    lock(&mut v, A, vm, 0, RW);
    let pins = slot_of(&v, vm, 0).lock().unwrap().pins();
    let mapped = guest_pages(&v, vm);
    assert_eq!(mapped.len(), 6);

    unlock(&mut v, A, vm, 0, 0);
    assert!(slot_of(&v, vm, 0).lock().is_none());
    assert_eq!(v.charges().charged(A), 0);
    for i in 0..pins.len {
        assert!(v.kernel().cap(pins.get(i).unwrap()).is_none(), "pin {i} is still held");
    }
    assert_eq!(*v.cspace(), cspace_before, "the pin slots were not freed");
    assert_eq!(guest_pages(&v, vm), mapped, "unlock changed the stage-2 mappings");
    // No longer locked: the slot can be deleted, which unmaps it.
    set(&mut v, A, vm, MemoryRegion { slot: 0, ..MemoryRegion::default() });
    assert!(guest_pages(&v, vm).is_empty());
    assert!(unpinned(&v, 0..6));
}

#[test]
fn a_slot_can_be_locked_again_after_unlock() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 4, 0));
    lock(&mut v, A, vm, 0, RW);
    unlock(&mut v, A, vm, 0, 0);
    lock(&mut v, A, vm, 0, LOCK_READ);
    assert_eq!(v.charges().charged(A), 4);
    let pins = slot_of(&v, vm, 0).lock().unwrap().pins();
    for i in 0..4 {
        assert!(v.kernel().caps_to(ram_obj(&v, i)).contains(&pins.get(i).unwrap()));
    }
}

#[test]
fn unlocking_a_slot_that_is_not_locked_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    refused(&mut v, Errno::EINVAL, LockError::NotLocked.into(), |v| v.unlock_memslot(A, vm, 0, 0));
    lock(&mut v, A, vm, 0, LOCK_READ);
    unlock(&mut v, A, vm, 0, 0);
    refused(&mut v, Errno::EINVAL, LockError::NotLocked.into(), |v| v.unlock_memslot(A, vm, 0, 0));
}

#[test]
fn unlocking_a_slot_that_does_not_exist_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    lock(&mut v, A, vm, 0, LOCK_READ);
    for slot in [1, 512, 1 << 16, u32::MAX] {
        refused(&mut v, Errno::EINVAL, LockError::NoSuchSlot.into(), |v| v.unlock_memslot(A, vm, slot, 0));
    }
}

#[test]
fn unlock_with_unknown_flag_bits_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    lock(&mut v, A, vm, 0, LOCK_READ);
    for flags in [2, 4, 1 << 63, UNLOCK_ALL | 2, u64::MAX] {
        refused(&mut v, Errno::EINVAL, LockError::BadFlags.into(), |v| v.unlock_memslot(A, vm, 0, flags));
    }
    unlock(&mut v, A, vm, 0, 0);
}

#[test]
fn unlock_all_unlocks_every_locked_slot_of_the_vm() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    let other = v.create_vm(A).unwrap();
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    set(&mut v, A, vm, ram_region(1, GPA + 4 * PG, 2, 4));
    set(&mut v, A, vm, ram_region(2, GPA + 8 * PG, 3, 8));
    set(&mut v, A, other, ram_region(0, GPA, 5, 16));
    lock(&mut v, A, vm, 0, LOCK_READ);
    lock(&mut v, A, vm, 2, RW);
    lock(&mut v, A, other, 0, RW);
    let mapped = guest_pages(&v, vm);
    let other_slot = slot_of(&v, other, 0);
    let pins = [slot_of(&v, vm, 0).lock().unwrap().pins(), slot_of(&v, vm, 2).lock().unwrap().pins()];
    // The slot argument is ignored with UNLOCK_ALL.
    unlock(&mut v, A, vm, 12345, UNLOCK_ALL);
    for id in 0..3 {
        assert!(slot_of(&v, vm, id).lock().is_none(), "slot {id} still locked");
    }
    for run in pins {
        for i in 0..run.len {
            assert!(v.kernel().cap(run.get(i).unwrap()).is_none(), "a pin is still held");
        }
    }
    // The mappings stay; slot 0's READ lock gives its pages the slot's
    // read-write rights back.
    let mut want = mapped;
    for i in 0..2 {
        want.insert(GPA + i * PG, (ram_obj(&v, i), Rights::READ_WRITE));
    }
    assert_eq!(guest_pages(&v, vm), want, "UNLOCK_ALL changed the stage-2 mappings");
    // The other VM keeps its lock and its charge.
    assert_eq!(slot_of(&v, other, 0), other_slot);
    assert_eq!(v.charges().charged(A), 5);
}

#[test]
fn unlock_all_with_nothing_locked_succeeds_and_changes_nothing() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, A, vm, ram_region(0, GPA, 2, 0));
    let before = v.clone();
    v.unlock_memslot(A, vm, 0, UNLOCK_ALL).unwrap();
    assert!(v == before);
}

// ---- Rule 5.8: destroying a VM unlocks everything ----

#[test]
fn destroying_a_vm_unlocks_everything() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    let other = v.create_vm(A).unwrap();
    set(&mut v, A, vm, ram_region(0, GPA, 4, 0));
    set(&mut v, A, vm, ram_region(1, GPA + 0x4000_0000, 6, 4));
    set(&mut v, A, other, ram_region(0, GPA, 3, 32));
    assert_eq!(fault(&mut v, vm, GPA + PG, true), FaultOutcome::Mapped);
    lock(&mut v, A, vm, 0, RW);
    lock(&mut v, A, vm, 1, LOCK_READ);
    lock(&mut v, A, other, 0, LOCK_READ);
    assert_eq!(v.charges().charged(A), 13);
    let other_pages = guest_pages(&v, other);

    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    assert!(v.registry().entry(vm).is_none());
    assert_eq!(v.charges().charged(A), 3, "the destroyed VM's locked pages are still charged");
    assert!(unpinned(&v, 0..10), "a pin outlived its VM");
    // Guest RAM itself is untouched, and so is the other VM.
    for p in 0..10 {
        assert_eq!(v.kernel().mappings_of(ram_obj(&v, p)).len(), 1, "RAM page {p} lost its VMM mapping");
    }
    assert_eq!(guest_pages(&v, other), other_pages);
    assert!(slot_of(&v, other, 0).lock().is_some());
    // Destroying the last VM brings every charge back to 0.
    v.destroy_vm(A, other).unwrap();
    check_invariants(&v);
    assert_eq!(v.charges().charged(A), 0);
    assert_eq!(*v.charges(), *world().charges());
    assert!(unpinned(&v, 0..RAM_PAGES));
}
