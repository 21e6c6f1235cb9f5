//! Section 3 of the rules: SET_USER_MEMORY_REGION2, the lookup of
//! the slot containing a guest-physical address, and the lazy stage-2
//! mapping of memslots (rule 6.1 as far as slot flags decide it).
//!
//! Every refused request goes through `refused`, which checks the errno the
//! client sees, the error variant (so that, where several rules give EINVAL,
//! the test knows which rule fired) and, through `fails_unchanged`, that the
//! whole state, model included, is as it was.

mod common;
use common::*;
use vmm::kernel::{Invocation, KernelError, Refused};

use vmm::caps::{Rights, Slot};
use vmm::config::RamRegion;
use vmm::cspace::CSpaceError;
use vmm::vm::guest_memfd::{Binding, GmemError};
use vmm::vm::memslots::{Backing, Memslot, MemslotError, MemslotTable};
use vmm::{FaultOutcome, Vmm};
use vmm_abi::limits::{GUEST_PHYS_LIMIT, MAX_MEMSLOTS, PAGE_SIZE};
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, LOCK_READ, LOG_DIRTY_PAGES, READONLY};
use vmm_abi::{Errno, MemslotId, VmId};
use vmm_model::Model;

const PG: u64 = PAGE_SIZE;
/// Where most test slots go in guest-physical space.
const GPA: u64 = 0x8000_0000;
/// One past the last VMM address of guest RAM.
const RAM_END: u64 = RAM_VADDR + RAM_PAGES * PG;

// ---- Helpers ----

/// `req` on `vm` (owned by A) must be refused with `errno` for `want`.
fn refused_region(v: &mut TestVmm, vm: VmId, req: MemoryRegion, errno: Errno, want: MemslotError) {
    refused(v, errno, want.into(), |v| v.set_memory_region(A, vm, &req));
}

/// Applies `req` and checks every invariant.
fn set(v: &mut TestVmm, vm: VmId, req: MemoryRegion) {
    v.set_memory_region(A, vm, &req).unwrap_or_else(|e| panic!("{req:?} refused: {e}"));
    check_invariants(v);
}

fn table(v: &TestVmm, vm: VmId) -> &MemslotTable {
    v.registry().entry(vm).unwrap().vm().memslots()
}

fn slot_of(v: &TestVmm, vm: VmId, id: u16) -> Memslot {
    let t = table(v, vm);
    *t.get(t.index_of(MemslotId(id)).unwrap_or_else(|| panic!("no slot {id}"))).unwrap()
}

/// The frame object of guest RAM page `page`.
fn ram_obj(v: &TestVmm, page: u64) -> u64 {
    v.kernel().object_at(Slot(RAM_FRAMES.0 + page)).unwrap()
}

fn fault(v: &mut TestVmm, vm: VmId, gpa: u64, write: bool) -> FaultOutcome {
    let r = v.stage2_fault(vm, Gpa(gpa), write).unwrap();
    check_invariants(v);
    r
}

fn with_flags(mut r: MemoryRegion, flags: u32) -> MemoryRegion {
    r.flags = flags;
    r
}

fn delete(id: u32) -> MemoryRegion {
    MemoryRegion { slot: id, ..MemoryRegion::default() }
}

// ---- Rule 3.1: flags ----

#[test]
fn unknown_flag_bits_are_einval() {
    let (mut v, vm) = world_with_vm(A);
    for bit in 3..32 {
        let req = with_flags(ram_region(0, GPA, 1, 0), 1 << bit);
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::BadFlags);
        let req = with_flags(ram_region(0, GPA, 1, 0), READONLY | 1 << bit);
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::BadFlags);
    }
    // The same request with known flags only is accepted.
    set(&mut v, vm, ram_region(0, GPA, 1, 0));
}

#[test]
fn guest_memfd_with_readonly_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    let req = gmem_region(0, GPA, 4, h, 0);
    refused_region(&mut v, vm, with_flags(req, GUEST_MEMFD | READONLY), Errno::EINVAL, MemslotError::BadFlags);
    set(&mut v, vm, req);
}

#[test]
fn guest_memfd_with_log_dirty_pages_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    let req = gmem_region(0, GPA, 4, h, 0);
    let bad = [GUEST_MEMFD | LOG_DIRTY_PAGES, GUEST_MEMFD | LOG_DIRTY_PAGES | READONLY];
    for flags in bad {
        refused_region(&mut v, vm, with_flags(req, flags), Errno::EINVAL, MemslotError::BadFlags);
    }
    set(&mut v, vm, req);
}

#[test]
fn log_dirty_pages_without_backend_support_is_einval() {
    let mut cfg = config();
    cfg.dirty_log = false;
    let mut v = world_with(cfg, UNTYPED);
    let vm = v.create_vm(A).unwrap();
    for flags in [LOG_DIRTY_PAGES, LOG_DIRTY_PAGES | READONLY] {
        let req = with_flags(ram_region(0, GPA, 1, 0), flags);
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::BadFlags);
    }
    // Also refused as a flags-only change of an existing slot.
    set(&mut v, vm, ram_region(0, GPA, 1, 0));
    let req = with_flags(ram_region(0, GPA, 1, 0), LOG_DIRTY_PAGES);
    refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::BadFlags);
    // READONLY does not depend on the backend.
    set(&mut v, vm, with_flags(ram_region(1, GPA + PG, 1, 1), READONLY));
}

#[test]
fn every_known_flag_combination_is_accepted_and_recorded() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, PG, 0).unwrap();
    let ram_flags = [0, READONLY, LOG_DIRTY_PAGES, READONLY | LOG_DIRTY_PAGES];
    for (i, flags) in ram_flags.into_iter().enumerate() {
        let i = i as u64;
        set(&mut v, vm, with_flags(ram_region(i as u32, GPA + i * PG, 1, i), flags));
        assert_eq!(slot_of(&v, vm, i as u16).flags(), flags);
    }
    set(&mut v, vm, gmem_region(9, GPA + 16 * PG, 1, h, 0));
    assert_eq!(slot_of(&v, vm, 9).flags(), GUEST_MEMFD);
    assert_eq!(table(&v, vm).len(), 5);
}

// ---- Rule 3.2: alignment and backing ----

#[test]
fn unaligned_size_gpa_or_userspace_addr_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let good = ram_region(0, GPA, 2, 0);
    for size in [1, PG - 1, PG + 1, 2 * PG - 8] {
        let req = MemoryRegion { memory_size: size, ..good };
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::Unaligned);
    }
    for gpa in [GPA + 1, GPA + 0x800, GPA + PG - 1] {
        let req = MemoryRegion { guest_phys_addr: gpa, ..good };
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::Unaligned);
    }
    for uaddr in [RAM_VADDR + 8, RAM_VADDR + PG + 0x800] {
        let req = MemoryRegion { userspace_addr: uaddr, ..good };
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::Unaligned);
    }
    // A delete is checked for alignment too.
    set(&mut v, vm, good);
    let req = MemoryRegion { userspace_addr: 8, ..delete(0) };
    refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::Unaligned);
    let req = MemoryRegion { guest_phys_addr: GPA + 8, ..delete(0) };
    refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::Unaligned);
}

#[test]
fn backing_outside_guest_ram_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let cases = [
        (0, 1),                             // a RAM slot must give an address
        (RAM_VADDR - PG, 1),                // just below
        (RAM_VADDR - PG, 2),                // straddles the start
        (RAM_END - PG, 2),                  // straddles the end
        (RAM_END, 1),                       // just above
        (RAM_VADDR, RAM_PAGES + 1),         // one page too many
        (u64::MAX - (PG - 1), 1),           // uaddr + size wraps
        (RAM_VADDR, (u64::MAX >> 12) - 16), // size so large it wraps
    ];
    for (uaddr, pages) in cases {
        let req = MemoryRegion { userspace_addr: uaddr, ..ram_region(0, 0, pages, 0) };
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::NotGuestRam);
    }
    // The very last page and the whole of guest RAM are inside.
    set(&mut v, vm, ram_region(0, GPA, 1, RAM_PAGES - 1));
    set(&mut v, vm, ram_region(1, 0, RAM_PAGES, 0));
}

#[test]
fn guest_memfd_slot_may_give_userspace_addr_zero() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    set(&mut v, vm, gmem_region(0, GPA, 4, h, 0));
    let s = slot_of(&v, vm, 0);
    assert_eq!(s.uaddr(), 0);
    assert_eq!(s.backing(), Backing::Gmem { file: Some(h), offset: 0 });
}

#[test]
fn guest_memfd_slot_with_a_userspace_addr_must_give_guest_ram() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    for uaddr in [RAM_END, RAM_END - PG, RAM_VADDR - 4 * PG] {
        let req = MemoryRegion { userspace_addr: uaddr, ..gmem_region(0, GPA, 4, h, 0) };
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::NotGuestRam);
    }
    let req = MemoryRegion { userspace_addr: RAM_VADDR, ..gmem_region(0, GPA, 4, h, 0) };
    set(&mut v, vm, req);
    assert_eq!(slot_of(&v, vm, 0).uaddr(), RAM_VADDR);
    assert_eq!(slot_of(&v, vm, 0).backing(), Backing::Gmem { file: Some(h), offset: 0 });
}

/// With several guest RAM regions, a slot inside the second is backed by
/// the second's frames (the backing is found from userspace_addr).
#[test]
fn slot_in_a_second_ram_region_is_backed_by_that_region() {
    const R2_FRAMES: Slot = Slot(0x10_000);
    const R2_VADDR: u64 = 0x9000_0000;
    const R2_PAGES: u64 = 16;
    let mut m = Model::new(UNTYPED + (RAM_PAGES + R2_PAGES + 2) * PG);
    m.setup_vspace(VMM_VSPACE).unwrap();
    m.setup_ram(RAM_FRAMES, RAM_PAGES, VMM_VSPACE, RAM_VADDR).unwrap();
    m.setup_ram(R2_FRAMES, R2_PAGES, VMM_VSPACE, R2_VADDR).unwrap();
    let mut cfg = config();
    cfg.ram.push(RamRegion { vmm_vaddr: R2_VADDR, pages: R2_PAGES, frames: R2_FRAMES }).unwrap();
    let mut v = Box::new(Vmm::new(m, Hooks::default(), cfg).unwrap());
    let vm = v.create_vm(A).unwrap();
    let req = MemoryRegion { userspace_addr: R2_VADDR + 3 * PG, ..ram_region(0, GPA, 4, 0) };
    set(&mut v, vm, req);
    assert_eq!(slot_of(&v, vm, 0).backing(), Backing::Ram { frames: Slot(R2_FRAMES.0 + 3) });
    assert_eq!(fault(&mut v, vm, GPA + PG, false), FaultOutcome::Mapped);
    let r2_page4 = v.kernel().object_at(Slot(R2_FRAMES.0 + 4)).unwrap();
    assert_eq!(guest_pages(&v, vm).get(&(GPA + PG)), Some(&(r2_page4, Rights::READ_WRITE)));
    // Past the end of the second region is outside guest RAM.
    let req = MemoryRegion { userspace_addr: R2_VADDR + (R2_PAGES - 1) * PG, ..ram_region(1, 0, 2, 0) };
    refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::NotGuestRam);
}

// ---- Rule 3.3: guest_memfd offset ----

#[test]
fn guest_memfd_offset_unaligned_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 8 * PG, 0).unwrap();
    for offset in [1, 8, PG - 1, PG + 0x800] {
        let req = MemoryRegion { guest_memfd_offset: offset, ..gmem_region(0, GPA, 4, h, 0) };
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::BadGmemOffset);
    }
    set(&mut v, vm, gmem_region(0, GPA, 4, h, 1));
}

#[test]
fn guest_memfd_offset_plus_size_wrapping_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 8 * PG, 0).unwrap();
    let top = u64::MAX - (PG - 1);
    for (offset, pages) in [(top, 1), (top - PG, 2), (top - 3 * PG, 8)] {
        let req = MemoryRegion { guest_memfd_offset: offset, ..gmem_region(0, GPA, pages, h, 0) };
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::BadGmemOffset);
    }
    // An offset that does not wrap but runs past the file is the bind's
    // refusal (rule 4.3), a different check.
    let req = MemoryRegion { guest_memfd_offset: top - PG, ..gmem_region(0, GPA, 1, h, 0) };
    refused(&mut v, Errno::EINVAL, GmemError::BadRange.into(), |v| v.set_memory_region(A, vm, &req));
}

#[test]
fn guest_memfd_offset_is_not_checked_without_guest_memfd() {
    let (mut v, vm) = world_with_vm(A);
    let req = MemoryRegion { guest_memfd_offset: u64::MAX, guest_memfd: 77, ..ram_region(0, GPA, 2, 0) };
    set(&mut v, vm, req);
    assert_eq!(slot_of(&v, vm, 0).backing(), Backing::Ram { frames: RAM_FRAMES });
}

// ---- Rule 3.4: address space, slot id, guest-physical range ----

#[test]
fn nonzero_address_space_id_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    for slot in [1 << 16, (1 << 16) | 3, 0xffff_0000, u32::MAX] {
        let req = MemoryRegion { slot, ..ram_region(0, GPA, 1, 0) };
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::BadAddressSpace);
    }
    // Address space 0, the same slot id: accepted; deleting it through
    // another address space is refused.
    set(&mut v, vm, ram_region(3, GPA, 1, 0));
    refused_region(&mut v, vm, delete((1 << 16) | 3), Errno::EINVAL, MemslotError::BadAddressSpace);
}

#[test]
fn slot_id_at_or_above_the_limit_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let limit = MAX_MEMSLOTS as u32;
    assert_eq!(limit, 64);
    for id in [limit, limit + 1, 0xffff] {
        refused_region(&mut v, vm, ram_region(id, GPA, 1, 0), Errno::EINVAL, MemslotError::BadSlotId);
        refused_region(&mut v, vm, delete(id), Errno::EINVAL, MemslotError::BadSlotId);
    }
    set(&mut v, vm, ram_region(limit - 1, GPA, 1, 0));
    assert_eq!(slot_of(&v, vm, (limit - 1) as u16).gpa(), Gpa(GPA));
}

#[test]
fn guest_physical_range_wrapping_or_beyond_40_bits_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    assert_eq!(GUEST_PHYS_LIMIT, 1 << 40);
    let cases = [
        (u64::MAX - (PG - 1), 1),   // gpa + size wraps
        (u64::MAX - 3 * PG + 1, 8), // wraps further
        (GUEST_PHYS_LIMIT, 1),      // starts at the limit
        (GUEST_PHYS_LIMIT - PG, 2), // crosses the limit
        (GUEST_PHYS_LIMIT * 2, 1),  // far beyond
        (0, (GUEST_PHYS_LIMIT / PG) + 1),
    ];
    for (gpa, pages) in cases {
        let req = MemoryRegion { memory_size: pages * PG, ..ram_region(0, gpa, 1, 0) };
        // Sizes beyond guest RAM would be refused earlier: keep the backing
        // check out of the way for this rule.
        let req = if pages > RAM_PAGES { MemoryRegion { flags: GUEST_MEMFD, userspace_addr: 0, ..req } } else { req };
        refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::OutOfGuestRange);
    }
    // A delete far beyond the range is refused by this rule too.
    let req = MemoryRegion { guest_phys_addr: GUEST_PHYS_LIMIT + PG, ..delete(0) };
    refused_region(&mut v, vm, req, Errno::EINVAL, MemslotError::OutOfGuestRange);
    // Ending exactly at the limit is inside (half-open).
    set(&mut v, vm, ram_region(0, GUEST_PHYS_LIMIT - PG, 1, 0));
    assert_eq!(fault(&mut v, vm, GUEST_PHYS_LIMIT - 1, true), FaultOutcome::Mapped);
}

// ---- Rule 3.5: delete ----

#[test]
fn deleting_a_slot_that_does_not_exist_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    refused_region(&mut v, vm, delete(0), Errno::EINVAL, MemslotError::NoSuchSlot);
    set(&mut v, vm, ram_region(1, GPA, 1, 0));
    refused_region(&mut v, vm, delete(0), Errno::EINVAL, MemslotError::NoSuchSlot);
    set(&mut v, vm, delete(1));
    refused_region(&mut v, vm, delete(1), Errno::EINVAL, MemslotError::NoSuchSlot);
}

#[test]
fn delete_removes_the_slot_and_its_mappings_and_frees_its_capability_slots() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, vm, ram_region(0, GPA - PG, 1, 10));
    let cspace_before = v.cspace().clone();
    set(&mut v, vm, ram_region(1, GPA, 4, 0));
    assert_eq!(fault(&mut v, vm, GPA, true), FaultOutcome::Mapped);
    assert_eq!(fault(&mut v, vm, GPA + 3 * PG, false), FaultOutcome::Mapped);
    assert_eq!(fault(&mut v, vm, GPA - PG, false), FaultOutcome::Mapped);
    assert_eq!(guest_pages(&v, vm).len(), 3);
    set(&mut v, vm, delete(1));
    assert!(table(&v, vm).index_of(MemslotId(1)).is_none());
    assert_eq!(table(&v, vm).len(), 1);
    // Only the other slot's page is still mapped.
    let pages = guest_pages(&v, vm);
    assert_eq!(pages.keys().copied().collect::<Vec<_>>(), [GPA - PG]);
    // No capability to the deleted slot's frames is left but guest RAM's own.
    for p in 0..4 {
        assert_eq!(v.kernel().caps_to(ram_obj(&v, p)), [Slot(RAM_FRAMES.0 + p)]);
    }
    assert_eq!(*v.cspace(), cspace_before, "the slot's mapping slots were not freed");
    assert!(table(&v, vm).find_gpa(Gpa(GPA)).is_none());
    assert_eq!(fault(&mut v, vm, GPA, false), FaultOutcome::Unmapped);
}

/// Documented choice (vmm/src/vm/memslots.rs): a delete does not check that
/// userspace_addr is guest RAM, as KVM's `access_ok(addr, 0)`.
#[test]
fn delete_ignores_the_userspace_addr() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, vm, ram_region(0, GPA, 1, 0));
    set(&mut v, vm, MemoryRegion { userspace_addr: RAM_END + 64 * PG, ..delete(0) });
    assert!(table(&v, vm).is_empty());
}

// ---- Rule 3.6: changing an existing slot ----

#[test]
fn guest_memfd_slot_can_only_be_deleted() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 8 * PG, 0).unwrap();
    let req = gmem_region(0, GPA, 4, h, 2);
    set(&mut v, vm, req);
    let changes = [
        MemoryRegion { guest_phys_addr: GPA + 16 * PG, ..req }, // move
        MemoryRegion { guest_memfd_offset: 0, ..req },          // other file range
        MemoryRegion { memory_size: 2 * PG, ..req },            // resize
        MemoryRegion { userspace_addr: RAM_VADDR, ..req },      // shared view
        MemoryRegion { flags: 0, userspace_addr: RAM_VADDR, ..req }, // to RAM
        // Even the identical request: a guest_memfd slot is immutable (KVM
        // checks this before "nothing to change").
        req,
    ];
    for c in changes {
        refused_region(&mut v, vm, c, Errno::EINVAL, MemslotError::GmemSlotChange);
    }
    set(&mut v, vm, delete(0));
    assert!(table(&v, vm).is_empty());
    assert!(v.gmem().get(h).unwrap().bindings().is_empty());
}

#[test]
fn changing_userspace_addr_size_readonly_or_guest_memfd_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 8 * PG, 0).unwrap();
    let rw = ram_region(0, GPA, 4, 0);
    let ro = with_flags(ram_region(1, GPA + 8 * PG, 4, 8), READONLY);
    set(&mut v, vm, rw);
    set(&mut v, vm, ro);
    let changes = [
        MemoryRegion { userspace_addr: rw.userspace_addr + PG, ..rw },
        MemoryRegion { memory_size: 5 * PG, ..rw },
        MemoryRegion { memory_size: 2 * PG, ..rw },
        with_flags(rw, READONLY),
        with_flags(rw, READONLY | LOG_DIRTY_PAGES),
        with_flags(ro, 0),
        with_flags(ro, LOG_DIRTY_PAGES),
        MemoryRegion { flags: GUEST_MEMFD, guest_memfd: h.0, ..rw },
        // The same changes combined with a move are refused as well.
        MemoryRegion { guest_phys_addr: GPA + 32 * PG, memory_size: 2 * PG, ..rw },
        MemoryRegion { guest_phys_addr: GPA + 32 * PG, flags: 0, ..ro },
    ];
    for c in changes {
        refused_region(&mut v, vm, c, Errno::EINVAL, MemslotError::IllegalChange);
    }
}

#[test]
fn new_guest_phys_addr_moves_the_slot_and_unmaps_its_old_mappings() {
    let (mut v, vm) = world_with_vm(A);
    let old = ram_region(0, GPA, 4, 20);
    set(&mut v, vm, old);
    let before = slot_of(&v, vm, 0);
    assert_eq!(fault(&mut v, vm, GPA, true), FaultOutcome::Mapped);
    assert_eq!(fault(&mut v, vm, GPA + 3 * PG, false), FaultOutcome::Mapped);
    assert_eq!(guest_pages(&v, vm).len(), 2);

    let new_gpa = GPA + 0x4000_0000;
    set(&mut v, vm, MemoryRegion { guest_phys_addr: new_gpa, ..old });
    let moved = slot_of(&v, vm, 0);
    assert_eq!(
        slot_view(&moved),
        SlotView { gpa: Gpa(new_gpa), ..slot_view(&before) },
        "a move changes only the address"
    );
    assert!(guest_pages(&v, vm).is_empty(), "mappings at the old address survived the move");
    assert!(table(&v, vm).find_gpa(Gpa(GPA)).is_none());
    assert_eq!(table(&v, vm).find_gpa(Gpa(new_gpa + PG)).map(|s| s.id().0), Some(0));
    assert_eq!(fault(&mut v, vm, GPA, false), FaultOutcome::Unmapped);
    // The same backing appears at the new address.
    assert_eq!(fault(&mut v, vm, new_gpa + 3 * PG, true), FaultOutcome::Mapped);
    let want = (ram_obj(&v, 23), Rights::READ_WRITE);
    assert_eq!(guest_pages(&v, vm).into_iter().collect::<Vec<_>>(), [(new_gpa + 3 * PG, want)]);
}

/// Documented choice (vmm/src/vm/memslots.rs): a move may change flags other
/// than READONLY at the same time, as KVM_MR_MOVE does.
#[test]
fn a_move_may_change_log_dirty_pages_at_the_same_time() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, vm, ram_region(0, GPA, 2, 0));
    set(&mut v, vm, with_flags(ram_region(0, GPA + 8 * PG, 2, 0), LOG_DIRTY_PAGES));
    let s = slot_of(&v, vm, 0);
    assert_eq!((s.gpa(), s.flags()), (Gpa(GPA + 8 * PG), LOG_DIRTY_PAGES));
}

#[test]
fn flags_only_change_toggles_log_dirty_pages() {
    let (mut v, vm) = world_with_vm(A);
    let req = ram_region(0, GPA, 4, 0);
    set(&mut v, vm, req);
    let before = slot_of(&v, vm, 0);
    assert_eq!(fault(&mut v, vm, GPA + PG, true), FaultOutcome::Mapped);

    set(&mut v, vm, with_flags(req, LOG_DIRTY_PAGES));
    assert_eq!(slot_view(&slot_of(&v, vm, 0)), SlotView { flags: LOG_DIRTY_PAGES, ..slot_view(&before) });
    // vmm/src/vm/memslots.rs: a flags change unmaps, so the next access maps
    // under the new rules.
    assert!(guest_pages(&v, vm).is_empty());
    assert_eq!(fault(&mut v, vm, GPA + PG, true), FaultOutcome::Mapped);

    set(&mut v, vm, req);
    assert_eq!(slot_of(&v, vm, 0), before);

    // On a READONLY slot as well.
    let ro = with_flags(ram_region(1, GPA + 8 * PG, 1, 8), READONLY);
    set(&mut v, vm, ro);
    set(&mut v, vm, with_flags(ro, READONLY | LOG_DIRTY_PAGES));
    assert_eq!(slot_of(&v, vm, 1).flags(), READONLY | LOG_DIRTY_PAGES);
}

#[test]
fn identical_request_succeeds_and_changes_nothing() {
    let (mut v, vm) = world_with_vm(A);
    let reqs = [
        ram_region(0, GPA, 4, 0),
        with_flags(ram_region(1, GPA + 8 * PG, 2, 8), READONLY | LOG_DIRTY_PAGES),
        with_flags(ram_region(2, GPA + 16 * PG, 1, 16), LOG_DIRTY_PAGES),
    ];
    for r in reqs {
        set(&mut v, vm, r);
    }
    assert_eq!(fault(&mut v, vm, GPA + PG, true), FaultOutcome::Mapped);
    assert_eq!(fault(&mut v, vm, GPA + 8 * PG, false), FaultOutcome::Mapped);
    for r in reqs {
        let before = v.clone();
        v.set_memory_region(A, vm, &r).unwrap();
        assert!(v == before, "an identical request changed the state: {r:?}");
    }
}

// ---- Rule 3.7: overlap (half-open ranges) ----

#[test]
fn creating_a_slot_overlapping_another_is_eexist() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, vm, ram_region(0, GPA, 4, 0));
    let overlapping = [
        (GPA - PG, 2),     // last page overlaps the first
        (GPA + 3 * PG, 2), // first page overlaps the last
        (GPA + PG, 1),     // inside
        (GPA, 4),          // the same range
        (GPA - PG, 6),     // around it
    ];
    for (gpa, pages) in overlapping {
        refused_region(&mut v, vm, ram_region(1, gpa, pages, 100), Errno::EEXIST, MemslotError::Overlap);
    }
    // Adjacent on both sides: the end is exclusive.
    set(&mut v, vm, ram_region(1, GPA - 4 * PG, 4, 100));
    set(&mut v, vm, ram_region(2, GPA + 4 * PG, 4, 200));
    assert_eq!(table(&v, vm).len(), 3);
}

#[test]
fn creating_a_guest_memfd_slot_overlapping_another_is_eexist() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    set(&mut v, vm, ram_region(0, GPA, 4, 0));
    let req = gmem_region(1, GPA + 3 * PG, 2, h, 0);
    refused_region(&mut v, vm, req, Errno::EEXIST, MemslotError::Overlap);
    assert!(v.gmem().get(h).unwrap().bindings().is_empty());
    set(&mut v, vm, gmem_region(1, GPA + 4 * PG, 2, h, 0));
}

#[test]
fn a_range_covering_several_slots_is_eexist() {
    let (mut v, vm) = world_with_vm(A);
    for i in 0..8u64 {
        set(&mut v, vm, ram_region(i as u32, GPA + 4 * i * PG, 2, 2 * i));
    }
    // From a gap before the first slot to a gap after the last.
    refused_region(&mut v, vm, ram_region(20, GPA - PG, 40, 100), Errno::EEXIST, MemslotError::Overlap);
    // Exactly one gap between two slots is free.
    set(&mut v, vm, ram_region(20, GPA + 2 * PG, 2, 100));
    // A range over the gap and one page more is not.
    refused_region(&mut v, vm, ram_region(21, GPA + 6 * PG, 3, 100), Errno::EEXIST, MemslotError::Overlap);
}

#[test]
fn moving_a_slot_onto_another_is_eexist() {
    let (mut v, vm) = world_with_vm(A);
    let x = ram_region(0, GPA, 4, 0);
    let s = ram_region(1, GPA + 16 * PG, 4, 16);
    set(&mut v, vm, x);
    set(&mut v, vm, s);
    for gpa in [GPA + 3 * PG, GPA - 3 * PG, GPA, GPA + PG] {
        let req = MemoryRegion { guest_phys_addr: gpa, ..s };
        refused_region(&mut v, vm, req, Errno::EEXIST, MemslotError::Overlap);
    }
    // Adjacent to X on either side is fine.
    set(&mut v, vm, MemoryRegion { guest_phys_addr: GPA + 4 * PG, ..s });
    set(&mut v, vm, MemoryRegion { guest_phys_addr: GPA - 4 * PG, ..s });
    assert_eq!(slot_of(&v, vm, 1).gpa(), Gpa(GPA - 4 * PG));
}

/// The moving slot is skipped when looking for overlaps, but a slot just
/// before it must still be seen: X [0, 4) S [4, 8) moving S to [3, 7).
#[test]
fn moving_a_slot_into_its_lower_neighbour_is_eexist() {
    let (mut v, vm) = world_with_vm(A);
    let x = ram_region(0, GPA, 4, 0);
    let s = ram_region(1, GPA + 4 * PG, 4, 4);
    let y = ram_region(2, GPA + 8 * PG, 4, 8);
    for r in [x, s, y] {
        set(&mut v, vm, r);
    }
    refused_region(
        &mut v,
        vm,
        MemoryRegion { guest_phys_addr: GPA + 3 * PG, ..s },
        Errno::EEXIST,
        MemslotError::Overlap,
    );
    refused_region(
        &mut v,
        vm,
        MemoryRegion { guest_phys_addr: GPA + 5 * PG, ..s },
        Errno::EEXIST,
        MemslotError::Overlap,
    );
    refused_region(&mut v, vm, MemoryRegion { guest_phys_addr: GPA + PG, ..y }, Errno::EEXIST, MemslotError::Overlap);
}

#[test]
fn moving_a_slot_onto_part_of_its_own_range_is_allowed() {
    let (mut v, vm) = world_with_vm(A);
    let s = ram_region(0, GPA, 4, 0);
    set(&mut v, vm, s);
    set(&mut v, vm, MemoryRegion { guest_phys_addr: GPA + PG, ..s });
    assert_eq!(slot_of(&v, vm, 0).gpa(), Gpa(GPA + PG));
    set(&mut v, vm, MemoryRegion { guest_phys_addr: GPA - 2 * PG, ..s });
    assert_eq!(slot_of(&v, vm, 0).gpa(), Gpa(GPA - 2 * PG));
    assert_eq!(table(&v, vm).len(), 1);
}

// ---- Rule 3.8: locked slots ----

#[test]
fn a_locked_slot_cannot_be_deleted_moved_or_have_its_flags_changed() {
    let (mut v, vm) = world_with_vm(A);
    let req = ram_region(0, GPA, 4, 0);
    set(&mut v, vm, req);
    v.lock_memslot(A, vm, 0, LOCK_READ).unwrap();
    check_invariants(&v);
    refused_region(&mut v, vm, delete(0), Errno::EBUSY, MemslotError::Locked);
    refused_region(
        &mut v,
        vm,
        MemoryRegion { guest_phys_addr: GPA + 16 * PG, ..req },
        Errno::EBUSY,
        MemslotError::Locked,
    );
    refused_region(&mut v, vm, with_flags(req, LOG_DIRTY_PAGES), Errno::EBUSY, MemslotError::Locked);
    // An identical request is not a change.
    let before = v.clone();
    v.set_memory_region(A, vm, &req).unwrap();
    assert!(v == before, "an identical request on a locked slot changed the state");
    // Unlocked, the same requests go through.
    v.unlock_memslot(A, vm, 0, 0).unwrap();
    set(&mut v, vm, with_flags(req, LOG_DIRTY_PAGES));
    set(&mut v, vm, MemoryRegion { guest_phys_addr: GPA + 16 * PG, ..req });
    set(&mut v, vm, delete(0));
}

/// Where several rules apply, the first in section 3's order decides.
#[test]
fn checks_run_in_the_documented_order() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    let locked = ram_region(0, GPA, 4, 0);
    let other = ram_region(1, GPA + 8 * PG, 4, 8);
    let gmem = gmem_region(2, GPA + 16 * PG, 1, h, 0);
    for r in [locked, other, gmem] {
        set(&mut v, vm, r);
    }
    v.lock_memslot(A, vm, 0, LOCK_READ).unwrap();
    check_invariants(&v);

    let everything_bad = MemoryRegion {
        slot: (1 << 16) | 600,
        flags: GUEST_MEMFD | READONLY | 1 << 9,
        guest_phys_addr: u64::MAX - 2,
        memory_size: PG + 1,
        userspace_addr: 3,
        guest_memfd_offset: 5,
        guest_memfd: 999,
    };
    let cases = [
        // 1 before 2, 3, 4 and the bind.
        (everything_bad, Errno::EINVAL, MemslotError::BadFlags),
        // 2 (alignment) before the backing check, 3 and 4.
        (MemoryRegion { flags: GUEST_MEMFD, ..everything_bad }, Errno::EINVAL, MemslotError::Unaligned),
        // 2 (backing) before 3 and 4.
        (
            MemoryRegion {
                flags: GUEST_MEMFD,
                memory_size: PG,
                guest_phys_addr: u64::MAX - (PG - 1),
                userspace_addr: RAM_END,
                ..everything_bad
            },
            Errno::EINVAL,
            MemslotError::NotGuestRam,
        ),
        // 3 before 4 and the bind.
        (
            MemoryRegion {
                flags: GUEST_MEMFD,
                memory_size: PG,
                guest_phys_addr: u64::MAX - (PG - 1),
                userspace_addr: 0,
                ..everything_bad
            },
            Errno::EINVAL,
            MemslotError::BadGmemOffset,
        ),
        // 4: address space before slot id before range, all before the bind.
        (
            MemoryRegion {
                flags: GUEST_MEMFD,
                memory_size: PG,
                guest_phys_addr: u64::MAX - (PG - 1),
                userspace_addr: 0,
                guest_memfd_offset: 0,
                ..everything_bad
            },
            Errno::EINVAL,
            MemslotError::BadAddressSpace,
        ),
        (
            MemoryRegion {
                slot: 600,
                flags: GUEST_MEMFD,
                memory_size: PG,
                guest_phys_addr: u64::MAX - (PG - 1),
                userspace_addr: 0,
                guest_memfd_offset: 0,
                ..everything_bad
            },
            Errno::EINVAL,
            MemslotError::BadSlotId,
        ),
        // 4 (range) before 6 and 8 on the locked slot.
        (
            MemoryRegion { guest_phys_addr: GUEST_PHYS_LIMIT, memory_size: 2 * PG, ..locked },
            Errno::EINVAL,
            MemslotError::OutOfGuestRange,
        ),
        // 4 (range) before 5 (no such slot) on a delete.
        (
            MemoryRegion { guest_phys_addr: GUEST_PHYS_LIMIT + PG, ..delete(7) },
            Errno::EINVAL,
            MemslotError::OutOfGuestRange,
        ),
        // 2 before 5/8 on a delete of the locked slot.
        (MemoryRegion { userspace_addr: 8, ..delete(0) }, Errno::EINVAL, MemslotError::Unaligned),
        // 6 (guest_memfd immutable) before 7 (moved onto another slot).
        (MemoryRegion { guest_phys_addr: GPA + 8 * PG, ..gmem }, Errno::EINVAL, MemslotError::GmemSlotChange),
        // 6 before 7 and 8: the locked slot resized onto another slot.
        (
            MemoryRegion { guest_phys_addr: GPA + 6 * PG, memory_size: 8 * PG, ..locked },
            Errno::EINVAL,
            MemslotError::IllegalChange,
        ),
        // 6 before 8: READONLY toggled on the locked slot.
        (with_flags(locked, READONLY), Errno::EINVAL, MemslotError::IllegalChange),
        // 7 before 8: the locked slot moved onto another slot.
        (MemoryRegion { guest_phys_addr: GPA + 6 * PG, ..locked }, Errno::EEXIST, MemslotError::Overlap),
        // 8 once everything else passes.
        (MemoryRegion { guest_phys_addr: GPA + 32 * PG, ..locked }, Errno::EBUSY, MemslotError::Locked),
    ];
    for (req, errno, want) in cases {
        refused_region(&mut v, vm, req, errno, want);
    }
    // 7 before the bind (rule 3.9): an overlapping guest_memfd create with an
    // unknown handle is EEXIST, not EBADF.
    let req = gmem_region(3, GPA + 9 * PG, 1, GmemHandle(999), 0);
    refused_region(&mut v, vm, req, Errno::EEXIST, MemslotError::Overlap);
    // Without the overlap, the bind is what refuses it.
    let req = gmem_region(3, GPA + 64 * PG, 1, GmemHandle(999), 0);
    refused(&mut v, Errno::EBADF, GmemError::BadHandle.into(), |v| v.set_memory_region(A, vm, &req));
}

// ---- Rule 3.9: bind before commit, undone if the commit fails ----

#[test]
fn guest_memfd_slot_binds_its_file_range() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 8 * PG, 0).unwrap();
    set(&mut v, vm, gmem_region(5, GPA, 3, h, 2));
    assert_eq!(v.gmem().get(h).unwrap().bindings(), [Binding { first: 2, pages: 3, slot: MemslotId(5) }]);
    assert_eq!(slot_of(&v, vm, 5).backing(), Backing::Gmem { file: Some(h), offset: 2 * PG });
}

#[test]
fn a_failed_bind_commits_no_slot() {
    let (mut v, vm) = world_with_vm(A);
    let h = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    set(&mut v, vm, gmem_region(0, GPA, 2, h, 0));
    let req = gmem_region(1, GPA + 8 * PG, 2, h, 1);
    refused(&mut v, Errno::EINVAL, GmemError::AlreadyBound.into(), |v| v.set_memory_region(A, vm, &req));
    assert!(table(&v, vm).index_of(MemslotId(1)).is_none());
}

#[test]
fn a_failed_commit_undoes_the_binding() {
    // Room for the VM's own run, a 4-page file and 4 more slots, one of
    // which a 1-page slot takes: a 4-page memslot binds, then cannot get
    // its mapping slots.
    let mut cfg = config();
    cfg.cspace.len = cfg.vm_slots() + 4 + 4;
    let mut v = world_with(cfg, UNTYPED);
    let vm = v.create_vm(A).unwrap();
    let h = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    set(&mut v, vm, ram_region(9, GPA + 64 * PG, 1, 0));
    let req = gmem_region(0, GPA, 4, h, 0);
    refused(&mut v, Errno::ENOMEM, CSpaceError::Exhausted.into(), |v| v.set_memory_region(A, vm, &req));
    assert!(v.gmem().get(h).unwrap().bindings().is_empty(), "the binding outlived the failed commit");
    assert!(table(&v, vm).index_of(MemslotId(0)).is_none());
    // A RAM slot whose commit fails leaves nothing either.
    refused(&mut v, Errno::ENOMEM, CSpaceError::Exhausted.into(), |v| {
        v.set_memory_region(A, vm, &ram_region(1, GPA, 4, 0))
    });
    // The same file range binds once the commit can succeed.
    set(&mut v, vm, delete(9));
    set(&mut v, vm, gmem_region(0, GPA, 4, h, 0));
    assert_eq!(v.gmem().get(h).unwrap().bindings(), [Binding { first: 0, pages: 4, slot: MemslotId(0) }]);
}

// ---- Lookup of the slot containing an address ----

#[test]
fn find_gpa_finds_the_slot_for_first_and_last_byte_and_misses_gaps() {
    let (mut v, vm) = world_with_vm(A);
    // As many as the ids from 7 up allow.
    const N: u64 = MAX_MEMSLOTS as u64 - 7;
    // Slots of 1 to 3 pages with a gap of 1 to 2 pages before each, created
    // in an order unrelated to their addresses.
    let mut layout = Vec::new();
    let mut gpa = PG;
    for i in 0..N {
        let pages = 1 + i % 3;
        layout.push((i, gpa, pages));
        gpa += (pages + 1 + i % 2) * PG;
    }
    for k in 0..N {
        let (i, gpa, pages) = layout[((k * 37) % N) as usize];
        set(&mut v, vm, ram_region(i as u32 + 7, gpa, pages, i));
    }
    let t = table(&v, vm);
    assert_eq!(t.len(), N as usize);
    assert!(t.iter().zip(t.iter().skip(1)).all(|(a, b)| a.end() <= b.gpa()), "table not sorted");
    for &(i, gpa, pages) in &layout {
        let id = Some(i as u16 + 7);
        let end = gpa + pages * PG;
        assert_eq!(t.find_gpa(Gpa(gpa)).map(|s| s.id().0), id, "first byte of slot {i}");
        assert_eq!(t.find_gpa(Gpa(gpa + PG / 2)).map(|s| s.id().0), id);
        assert_eq!(t.find_gpa(Gpa(end - 1)).map(|s| s.id().0), id, "last byte of slot {i}");
        assert!(t.find_gpa(Gpa(end)).is_none(), "the byte after slot {i} is in a gap");
        assert!(t.find_gpa(Gpa(gpa - 1)).is_none(), "the byte before slot {i} is in a gap");
    }
    assert!(t.find_gpa(Gpa(0)).is_none());
    assert!(t.find_gpa(Gpa(gpa)).is_none());
    assert!(t.find_gpa(Gpa(u64::MAX)).is_none());
}

// ---- Lazy stage-2 mapping of memslots (rule 6.1) ----

#[test]
fn a_new_slot_maps_nothing_until_the_guest_faults() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, vm, ram_region(0, GPA, 8, 0));
    assert!(guest_pages(&v, vm).is_empty());
}

#[test]
fn fault_in_a_normal_slot_maps_its_frame_read_write() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, vm, ram_region(0, GPA, 8, 40));
    assert_eq!(fault(&mut v, vm, GPA + 2 * PG + 0x10, false), FaultOutcome::Mapped);
    assert_eq!(fault(&mut v, vm, GPA + 5 * PG + 0xff8, true), FaultOutcome::Mapped);
    let want =
        [(GPA + 2 * PG, (ram_obj(&v, 42), Rights::READ_WRITE)), (GPA + 5 * PG, (ram_obj(&v, 45), Rights::READ_WRITE))];
    assert_eq!(guest_pages(&v, vm).into_iter().collect::<Vec<_>>(), want);
}

#[test]
fn fault_in_a_readonly_slot_maps_read_only() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, vm, with_flags(ram_region(0, GPA, 4, 0), READONLY));
    assert_eq!(fault(&mut v, vm, GPA + PG, false), FaultOutcome::Mapped);
    let want = [(GPA + PG, (ram_obj(&v, 1), Rights::READ))];
    assert_eq!(guest_pages(&v, vm).into_iter().collect::<Vec<_>>(), want);
}

#[test]
fn write_to_a_readonly_slot_is_reported_and_maps_nothing() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, vm, with_flags(ram_region(0, GPA, 4, 0), READONLY));
    let before = v.clone();
    assert_eq!(v.stage2_fault(vm, Gpa(GPA + 2 * PG), true).unwrap(), FaultOutcome::ReadOnlyWrite);
    assert!(v == before, "a refused write changed the state");
    // Nor does it upgrade a page the guest has read already.
    assert_eq!(fault(&mut v, vm, GPA, false), FaultOutcome::Mapped);
    let before = v.clone();
    assert_eq!(v.stage2_fault(vm, Gpa(GPA), true).unwrap(), FaultOutcome::ReadOnlyWrite);
    assert!(v == before);
    assert_eq!(guest_pages(&v, vm).get(&GPA).map(|m| m.1), Some(Rights::READ));
}

#[test]
fn fault_outside_every_slot_is_unmapped_and_maps_nothing() {
    let (mut v, vm) = world_with_vm(A);
    set(&mut v, vm, ram_region(0, GPA, 2, 0));
    set(&mut v, vm, ram_region(1, GPA + 4 * PG, 2, 2));
    for gpa in [0, GPA - 1, GPA + 2 * PG, GPA + 4 * PG - 1, GPA + 6 * PG, GUEST_PHYS_LIMIT, u64::MAX] {
        let before = v.clone();
        assert_eq!(v.stage2_fault(vm, Gpa(gpa), false).unwrap(), FaultOutcome::Unmapped, "at {gpa:#x}");
        assert_eq!(v.stage2_fault(vm, Gpa(gpa), true).unwrap(), FaultOutcome::Unmapped, "at {gpa:#x}");
        assert!(v == before, "a fault outside every slot changed the state");
    }
    assert!(guest_pages(&v, vm).is_empty());
}

/// A VM reserves the page tables its configuration gives it (rule 9.4):
/// with room for two, a level-2 and one level-3 table, a page in a second
/// 2 MiB region cannot be mapped (ENOMEM) and nothing changes.
#[test]
fn a_vm_maps_only_as_far_as_its_page_tables_reach() {
    let mut cfg = config();
    cfg.page_tables = 2;
    let mut v = world_with(cfg, UNTYPED);
    let vm = v.create_vm(A).unwrap();
    set(&mut v, vm, ram_region(0, 0x4000_0000, 1, 0));
    set(&mut v, vm, ram_region(1, 0x4020_0000, 1, 1));
    assert_eq!(fault(&mut v, vm, 0x4000_0000, true), FaultOutcome::Mapped);
    let refusal = Refused { call: Invocation::UntypedRetype, error: KernelError::NotEnoughMemory };
    refused(&mut v, Errno::ENOMEM, refusal.into(), |v| v.stage2_fault(vm, Gpa(0x4020_0000), true));
}
