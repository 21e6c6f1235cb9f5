//! Section 4 of the rules: guest_memfd files: creation, where
//! their frames may be mapped, binding to memslots, unbinding and close,
//! and the reference a file holds on its VM (rule 1.6).
//!
//! Every refused request goes through `refused`, which checks the errno, the
//! error variant (which rule fired) and, through `fails_unchanged`, that
//! nothing observable changed.

mod common;
use common::*;

use vmm::caps::Rights;
use vmm::kernel::{Invocation, KernelError, Refused};
use vmm::registry::{Owner, Presence, RegistryError};
use vmm::vm::guest_memfd::{Binding, GmemError, GmemFile};
use vmm::vm::memslots::{Backing, Memslot, MemslotError};
use vmm::{Error, FaultOutcome};
use vmm_abi::limits::{MAX_BINDINGS, MAX_GMEM_FILES, PAGE_SIZE};
use vmm_abi::memslot::MemoryRegion;
use vmm_abi::{Errno, MemslotId, VcpuId, VmId};
use vmm_model::Mapping;

const PG: u64 = PAGE_SIZE;
const GPA: u64 = 0x8000_0000;

// ---- Helpers ----

fn create(v: &mut TestVmm, owner: Owner, vm: VmId, pages: u64) -> GmemHandle {
    let h = v.create_guest_memfd(owner, vm, pages * PG, 0).unwrap();
    check_invariants(v);
    h
}

fn set(v: &mut TestVmm, owner: Owner, vm: VmId, req: MemoryRegion) {
    v.set_memory_region(owner, vm, &req).unwrap_or_else(|e| panic!("{req:?} refused: {e}"));
    check_invariants(v);
}

fn close(v: &mut TestVmm, owner: Owner, h: GmemHandle) {
    v.close_guest_memfd(owner, h).unwrap();
    check_invariants(v);
}

fn fault(v: &mut TestVmm, vm: VmId, gpa: u64) -> FaultOutcome {
    let r = v.stage2_fault(vm, Gpa(gpa), true).unwrap();
    check_invariants(v);
    r
}

fn file(v: &TestVmm, h: GmemHandle) -> &GmemFile {
    v.gmem().get(h).unwrap_or_else(|| panic!("no open file {h}"))
}

fn bindings(v: &TestVmm, h: GmemHandle) -> Vec<Binding> {
    file(v, h).bindings().to_vec()
}

fn file_refs(v: &TestVmm, vm: VmId) -> u32 {
    v.registry().entry(vm).unwrap().file_refs()
}

/// The frame objects of file `h`, page by page.
fn frame_objs(v: &TestVmm, h: GmemHandle) -> Vec<u64> {
    let f = file(v, h);
    (0..f.frames().len).map(|i| v.kernel().object_at(f.frames().get(i).unwrap()).unwrap()).collect()
}

fn slot_of(v: &TestVmm, vm: VmId, id: u16) -> Memslot {
    let t = &v.registry().entry(vm).unwrap().vm().memslots();
    *t.get(t.index_of(MemslotId(id)).unwrap_or_else(|| panic!("no slot {id}"))).unwrap()
}

// ---- Rule 4.1: CREATE_GUEST_MEMFD ----

#[test]
fn create_with_nonzero_flags_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    for flags in [1, 2, 1 << 63, u64::MAX] {
        refused(&mut v, Errno::EINVAL, GmemError::BadFlags.into(), |v| v.create_guest_memfd(A, vm, PG, flags));
    }
    create(&mut v, A, vm, 1);
}

/// The reviewed version accepted size 0.
#[test]
fn create_with_size_zero_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    refused(&mut v, Errno::EINVAL, GmemError::BadSize.into(), |v| v.create_guest_memfd(A, vm, 0, 0));
}

#[test]
fn create_with_unaligned_size_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    for size in [1, PG - 1, PG + 1, 3 * PG + 8, u64::MAX] {
        refused(&mut v, Errno::EINVAL, GmemError::BadSize.into(), |v| v.create_guest_memfd(A, vm, size, 0));
    }
}

#[test]
fn create_without_enough_untyped_memory_is_enomem_and_leaves_nothing() {
    let mut v = world_with(config(), 0);
    let vm = v.create_vm(A).unwrap();
    let free_pages = v.kernel().state().untyped_free / PG;
    assert!(free_pages > 1);
    // Fails at the last frame, after every other one was created.
    let refusal = Refused { call: Invocation::UntypedRetype, error: KernelError::NotEnoughMemory };
    refused(&mut v, Errno::ENOMEM, refusal.into(), |v| v.create_guest_memfd(A, vm, (free_pages + 1) * PG, 0));
    assert_eq!(file_refs(&v, vm), 0);
    // Every frame the failed request created went back: all of them fit now.
    let h = create(&mut v, A, vm, free_pages);
    assert_eq!(v.kernel().state().untyped_free, 0);
    assert_eq!(file(&v, h).pages(), free_pages);
}

/// All or nothing: make each kernel invocation of a create fail in turn.
#[test]
fn create_failing_at_any_invocation_leaves_nothing() {
    let (base, vm) = world_with_vm(A);
    let mut failures = 0;
    for n in 0..100 {
        let mut w = base.clone();
        w.kernel_mut().fail_nth(n, KernelError::NotEnoughMemory);
        match w.create_guest_memfd(A, vm, 4 * PG, 0) {
            Err(e) => {
                assert_eq!(e.errno(), Errno::ENOMEM, "invocation {n}: {e}");
                assert!(!w.kernel().failure_pending());
                assert!(*w == *base, "failing invocation {n} left state behind");
                check_invariants(&w);
                failures += 1;
            }
            Ok(h) => {
                assert!(w.kernel().failure_pending(), "succeeded although invocation {n} failed");
                assert_eq!(file(&w, h).pages(), 4);
                check_invariants(&w);
                break;
            }
        }
    }
    assert!(failures >= 4, "one invocation per frame at least");
}

#[test]
fn too_many_files_is_enospc() {
    let mut v = world();
    let vm1 = v.create_vm(A).unwrap();
    let vm2 = v.create_vm(B).unwrap();
    let mut handles = Vec::new();
    for i in 0..MAX_GMEM_FILES {
        let (owner, vm) = if i % 2 == 0 { (A, vm1) } else { (B, vm2) };
        handles.push(create(&mut v, owner, vm, 1));
    }
    // The table is per VMM instance: full for every client and VM.
    refused(&mut v, Errno::ENOSPC, GmemError::TooManyFiles.into(), |v| v.create_guest_memfd(A, vm1, PG, 0));
    refused(&mut v, Errno::ENOSPC, GmemError::TooManyFiles.into(), |v| v.create_guest_memfd(B, vm2, PG, 0));
    close(&mut v, B, handles[1]);
    let h = create(&mut v, A, vm1, 1);
    assert!(!handles.contains(&h), "handle {h} reused");
}

#[test]
fn create_returns_a_new_handle_and_takes_a_reference_on_the_vm() {
    let (mut v, vm) = world_with_vm(A);
    let h1 = create(&mut v, A, vm, 3);
    let h2 = create(&mut v, A, vm, 5);
    assert!(h1.0 != 0 && h2.0 != 0 && h1 != h2);
    assert_eq!(file_refs(&v, vm), 2);
    for (h, pages) in [(h1, 3), (h2, 5)] {
        let f = file(&v, h);
        assert_eq!((f.vm(), f.size(), f.frames().len), (vm, pages * PG, pages));
        assert!(f.bindings().is_empty());
        assert_eq!(v.guest_memfd_vm(h), Some(vm));
    }
    // Distinct frames, not shared between files.
    let mut all = frame_objs(&v, h1);
    all.extend(frame_objs(&v, h2));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 8);
}

#[test]
fn frames_start_zeroed_even_after_another_file_used_the_memory() {
    let (mut v, vm) = world_with_vm(A);
    let h1 = create(&mut v, A, vm, 4);
    let f1 = file(&v, h1).frames();
    for i in 0..4 {
        assert_eq!(v.kernel().read_frame(f1.get(i).unwrap()), Some(0));
        assert!(v.kernel_mut().write_frame(f1.get(i).unwrap(), 0xdead_0000 + i));
        assert_eq!(v.kernel().read_frame(f1.get(i).unwrap()), Some(0xdead_0000 + i));
    }
    let old = frame_objs(&v, h1);
    close(&mut v, A, h1);
    for o in &old {
        assert!(v.kernel().object(*o).is_none(), "frame {o} outlived its file");
    }
    let h2 = create(&mut v, A, vm, 4);
    let f2 = file(&v, h2).frames();
    for i in 0..4 {
        assert_eq!(v.kernel().read_frame(f2.get(i).unwrap()), Some(0), "page {i} of a new file is not zero");
    }
}

// ---- Rule 4.2: frames only ever mapped into their own VM ----

#[test]
fn frames_are_mapped_only_into_their_vm_where_a_slot_binds_them() {
    let mut v = world();
    let vm1 = v.create_vm(A).unwrap();
    let vm2 = v.create_vm(B).unwrap();
    let h1 = create(&mut v, A, vm1, 6);
    let h2 = create(&mut v, B, vm2, 6);
    for h in [h1, h2] {
        for o in frame_objs(&v, h) {
            assert!(v.kernel().mappings_of(o).is_empty(), "a new file's frame is mapped");
        }
    }
    // Both VMs bind pages 1..5 of their file at the same guest address.
    set(&mut v, A, vm1, gmem_region(0, GPA, 4, h1, 1));
    set(&mut v, B, vm2, gmem_region(0, GPA, 4, h2, 1));
    for i in 0..4 {
        assert_eq!(fault(&mut v, vm1, GPA + i * PG), FaultOutcome::Mapped);
        assert_eq!(fault(&mut v, vm2, GPA + i * PG), FaultOutcome::Mapped);
    }
    let vmm_vspace = v.kernel().object_at(VMM_VSPACE).unwrap();
    let vmm_pages: Vec<u64> = v.kernel().pages_in(vmm_vspace).values().map(|(o, _)| *o).collect();
    for (h, vm) in [(h1, vm1), (h2, vm2)] {
        let own = vm_vspace(&v, vm).unwrap();
        for (page, o) in frame_objs(&v, h).into_iter().enumerate() {
            let page = page as u64;
            let want = if (1..5).contains(&page) {
                vec![Mapping { vspace: own, vaddr: GPA + (page - 1) * PG, rights: Rights::READ_WRITE }]
            } else {
                vec![]
            };
            assert_eq!(v.kernel().mappings_of(o), want, "page {page} of file {h}");
            assert!(!vmm_pages.contains(&o), "file frame mapped into the VMM");
        }
    }
}

// ---- Rule 4.3: bind ----

#[test]
fn bind_with_an_unknown_handle_is_ebadf() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 4);
    for bad in [0, h.0 + 1, 999, u32::MAX].map(GmemHandle) {
        refused(&mut v, Errno::EBADF, GmemError::BadHandle.into(), |v| {
            v.set_memory_region(A, vm, &gmem_region(0, GPA, 1, bad, 0))
        });
    }
    // A closed file's handle is unknown too.
    close(&mut v, A, h);
    refused(&mut v, Errno::EBADF, GmemError::BadHandle.into(), |v| {
        v.set_memory_region(A, vm, &gmem_region(0, GPA, 1, h, 0))
    });
}

#[test]
fn bind_to_another_vms_file_is_einval() {
    let mut v = world();
    let vm1 = v.create_vm(A).unwrap();
    let vm2 = v.create_vm(A).unwrap();
    let h2 = create(&mut v, A, vm2, 4);
    refused(&mut v, Errno::EINVAL, GmemError::OtherVm.into(), |v| {
        v.set_memory_region(A, vm1, &gmem_region(0, GPA, 1, h2, 0))
    });
    set(&mut v, A, vm2, gmem_region(0, GPA, 1, h2, 0));
}

#[test]
fn bind_to_another_clients_vms_file_is_einval() {
    let mut v = world();
    let mine = v.create_vm(A).unwrap();
    let theirs = v.create_vm(B).unwrap();
    let h = create(&mut v, B, theirs, 4);
    refused(&mut v, Errno::EINVAL, GmemError::OtherVm.into(), |v| {
        v.set_memory_region(A, mine, &gmem_region(0, GPA, 1, h, 0))
    });
}

/// An unaligned offset never reaches the bind: rule 3.3 refuses it first,
/// with the same errno.
#[test]
fn bind_with_an_unaligned_offset_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 4);
    for offset in [1, PG / 2, PG + 8] {
        let req = MemoryRegion { guest_memfd_offset: offset, ..gmem_region(0, GPA, 1, h, 0) };
        refused(&mut v, Errno::EINVAL, MemslotError::BadGmemOffset.into(), |v| v.set_memory_region(A, vm, &req));
    }
}

#[test]
fn bind_past_the_end_of_the_file_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 4);
    for (offset_pages, pages) in [(0, 5), (1, 4), (3, 2), (4, 1), (5, 1), (1 << 40, 1)] {
        refused(&mut v, Errno::EINVAL, GmemError::BadRange.into(), |v| {
            v.set_memory_region(A, vm, &gmem_region(0, GPA, pages, h, offset_pages))
        });
    }
    // The whole file, up to and excluding its end, is fine.
    set(&mut v, A, vm, gmem_region(0, GPA, 4, h, 0));
}

#[test]
fn bind_overlapping_an_existing_binding_is_einval() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 8);
    set(&mut v, A, vm, gmem_region(0, GPA, 2, h, 2)); // pages [2, 4)
    for (offset_pages, pages) in [(1, 2), (3, 2), (2, 2), (0, 8), (3, 1), (2, 1)] {
        refused(&mut v, Errno::EINVAL, GmemError::AlreadyBound.into(), |v| {
            v.set_memory_region(A, vm, &gmem_region(1, GPA + 16 * PG, pages, h, offset_pages))
        });
    }
    assert_eq!(bindings(&v, h), [Binding { first: 2, pages: 2, slot: MemslotId(0) }]);
}

#[test]
fn bind_ranges_are_half_open() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 6);
    set(&mut v, A, vm, gmem_region(0, GPA, 2, h, 2)); // pages [2, 4)
    set(&mut v, A, vm, gmem_region(1, GPA + 8 * PG, 2, h, 0)); // ends exactly at its start
    set(&mut v, A, vm, gmem_region(2, GPA + 16 * PG, 2, h, 4)); // starts exactly at its end
    let want = [
        Binding { first: 0, pages: 2, slot: MemslotId(1) },
        Binding { first: 2, pages: 2, slot: MemslotId(0) },
        Binding { first: 4, pages: 2, slot: MemslotId(2) },
    ];
    assert_eq!(bindings(&v, h), want);
}

#[test]
fn one_file_backs_two_slots_with_disjoint_ranges() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 8);
    set(&mut v, A, vm, gmem_region(0, GPA, 3, h, 5));
    set(&mut v, A, vm, gmem_region(1, GPA + 0x10_0000, 4, h, 0));
    let objs = frame_objs(&v, h);
    assert_eq!(fault(&mut v, vm, GPA + 2 * PG), FaultOutcome::Mapped);
    assert_eq!(fault(&mut v, vm, GPA + 0x10_0000 + PG), FaultOutcome::Mapped);
    let pages = guest_pages(&v, vm);
    assert_eq!(pages.get(&(GPA + 2 * PG)), Some(&(objs[7], Rights::READ_WRITE)));
    assert_eq!(pages.get(&(GPA + 0x10_0000 + PG)), Some(&(objs[1], Rights::READ_WRITE)));
    assert_eq!(pages.len(), 2);
}

/// Every error path releases what it took (the reviewed version leaked a
/// file reference): bindings and the VM's file references are as before.
#[test]
fn a_failed_bind_leaves_bindings_and_file_references_unchanged() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    let other = v.create_vm(A).unwrap();
    let h = create(&mut v, A, vm, 4);
    let h_other = create(&mut v, A, other, 4);
    set(&mut v, A, vm, gmem_region(0, GPA, 2, h, 0));
    let (b, b_other) = (bindings(&v, h), bindings(&v, h_other));
    let refs = (file_refs(&v, vm), file_refs(&v, other));
    let cases: [(MemoryRegion, Errno, Error); 4] = [
        (gmem_region(1, GPA + 8 * PG, 1, GmemHandle(77), 0), Errno::EBADF, GmemError::BadHandle.into()),
        (gmem_region(1, GPA + 8 * PG, 1, h_other, 0), Errno::EINVAL, GmemError::OtherVm.into()),
        (gmem_region(1, GPA + 8 * PG, 3, h, 2), Errno::EINVAL, GmemError::BadRange.into()),
        (gmem_region(1, GPA + 8 * PG, 2, h, 1), Errno::EINVAL, GmemError::AlreadyBound.into()),
    ];
    for (req, errno, want) in cases {
        refused(&mut v, errno, want, |v| v.set_memory_region(A, vm, &req));
        assert_eq!((bindings(&v, h), bindings(&v, h_other)), (b.clone(), b_other.clone()));
        assert_eq!((file_refs(&v, vm), file_refs(&v, other)), refs);
    }
    // A bind that succeeds takes no reference either: the file's one
    // reference on its VM was taken at creation.
    set(&mut v, A, vm, gmem_region(1, GPA + 8 * PG, 2, h, 2));
    assert_eq!(file_refs(&v, vm), 1);
}

/// Capacities: a file holds at most MAX_BINDINGS bindings.
#[test]
fn too_many_bindings_on_one_file_is_enospc() {
    let (mut v, vm) = world_with_vm(A);
    let n = MAX_BINDINGS as u64;
    let h = create(&mut v, A, vm, n + 1);
    for i in 0..n {
        set(&mut v, A, vm, gmem_region(i as u32, GPA + 2 * i * PG, 1, h, i));
    }
    refused(&mut v, Errno::ENOSPC, GmemError::TooManyBindings.into(), |v| {
        v.set_memory_region(A, vm, &gmem_region(n as u32, GPA + 2 * n * PG, 1, h, n))
    });
}

// ---- Rule 4.4: unbind when the slot is deleted ----

#[test]
fn deleting_a_slot_clears_its_range_so_it_can_be_bound_again() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 8);
    set(&mut v, A, vm, gmem_region(0, GPA, 4, h, 0));
    set(&mut v, A, vm, gmem_region(1, GPA + 8 * PG, 4, h, 4));
    set(&mut v, A, vm, MemoryRegion { slot: 0, ..MemoryRegion::default() });
    assert_eq!(bindings(&v, h), [Binding { first: 4, pages: 4, slot: MemslotId(1) }]);
    assert_eq!(file_refs(&v, vm), 1);
    // The freed range binds again, to a new slot at another address.
    set(&mut v, A, vm, gmem_region(7, GPA + 32 * PG, 2, h, 1));
    assert_eq!(
        bindings(&v, h),
        [Binding { first: 1, pages: 2, slot: MemslotId(7) }, Binding { first: 4, pages: 4, slot: MemslotId(1) }]
    );
}

#[test]
fn deleting_a_slot_whose_file_is_closed_has_nothing_to_unbind() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 4);
    let h2 = create(&mut v, A, vm, 4);
    set(&mut v, A, vm, gmem_region(0, GPA, 4, h, 0));
    set(&mut v, A, vm, gmem_region(1, GPA + 8 * PG, 4, h2, 0));
    close(&mut v, A, h);
    set(&mut v, A, vm, MemoryRegion { slot: 0, ..MemoryRegion::default() });
    assert_eq!(
        bindings(&v, h2),
        [Binding { first: 0, pages: 4, slot: MemslotId(1) }],
        "another file's binding was touched"
    );
}

// ---- Rule 4.5: CLOSE ----

#[test]
fn close_with_an_unknown_handle_is_ebadf() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 1);
    for bad in [0, h.0 + 1, u32::MAX].map(GmemHandle) {
        refused(&mut v, Errno::EBADF, GmemError::BadHandle.into(), |v| v.close_guest_memfd(A, bad));
    }
    close(&mut v, A, h);
    refused(&mut v, Errno::EBADF, GmemError::BadHandle.into(), |v| v.close_guest_memfd(A, h));
}

#[test]
fn close_of_another_clients_file_is_eperm() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 2);
    set(&mut v, A, vm, gmem_region(0, GPA, 2, h, 0));
    for caller in [B, P, STRANGER] {
        refused(&mut v, Errno::EPERM, RegistryError::NotOwner.into(), |v| v.close_guest_memfd(caller, h));
    }
    close(&mut v, A, h);
}

#[test]
fn close_takes_the_file_away_from_every_slot_bound_to_it() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 8);
    let other = create(&mut v, A, vm, 2);
    set(&mut v, A, vm, gmem_region(0, GPA, 2, h, 0));
    set(&mut v, A, vm, gmem_region(1, GPA + 8 * PG, 3, h, 5));
    set(&mut v, A, vm, gmem_region(2, GPA + 16 * PG, 2, other, 0));
    set(&mut v, A, vm, ram_region(3, GPA + 24 * PG, 2, 0));
    let before: Vec<Memslot> = (0..4).map(|i| slot_of(&v, vm, i)).collect();
    close(&mut v, A, h);
    assert!(v.gmem().get(h).is_none());
    assert_eq!(
        slot_view(&slot_of(&v, vm, 0)),
        SlotView { backing: Backing::Gmem { file: None, offset: 0 }, ..slot_view(&before[0]) }
    );
    assert_eq!(
        slot_view(&slot_of(&v, vm, 1)),
        SlotView { backing: Backing::Gmem { file: None, offset: 5 * PG }, ..slot_view(&before[1]) }
    );
    assert_eq!(slot_of(&v, vm, 2), before[2]);
    assert_eq!(slot_of(&v, vm, 3), before[3]);
    assert_eq!(bindings(&v, other), [Binding { first: 0, pages: 2, slot: MemslotId(2) }]);
}

#[test]
fn close_removes_every_guest_mapping_of_the_files_frames() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 8);
    let other = create(&mut v, A, vm, 2);
    set(&mut v, A, vm, gmem_region(0, GPA, 4, h, 0));
    set(&mut v, A, vm, gmem_region(1, GPA + 0x20_0000, 4, h, 4)); // another 2 MiB table
    set(&mut v, A, vm, gmem_region(2, GPA + 16 * PG, 2, other, 0));
    set(&mut v, A, vm, ram_region(3, GPA + 24 * PG, 2, 0));
    for gpa in [GPA, GPA + 0x20_0000] {
        for i in 0..4 {
            assert_eq!(fault(&mut v, vm, gpa + i * PG), FaultOutcome::Mapped);
        }
    }
    for gpa in [GPA + 16 * PG, GPA + 17 * PG, GPA + 24 * PG, GPA + 25 * PG] {
        assert_eq!(fault(&mut v, vm, gpa), FaultOutcome::Mapped);
    }
    let objs = frame_objs(&v, h);
    let before = guest_pages(&v, vm);
    assert_eq!(before.values().filter(|(o, _)| objs.contains(o)).count(), 8);
    close(&mut v, A, h);
    let after = guest_pages(&v, vm);
    assert!(after.values().all(|(o, _)| !objs.contains(o)), "a frame of the closed file is still mapped");
    for o in &objs {
        assert!(v.kernel().mappings_of(*o).is_empty());
    }
    // Every other mapping is as it was.
    let kept: std::collections::BTreeMap<_, _> = before.into_iter().filter(|(_, (o, _))| !objs.contains(o)).collect();
    assert_eq!(after, kept);
    assert_eq!(after.len(), 4);
}

#[test]
fn a_fault_in_a_slot_whose_file_is_closed_reports_no_backing() {
    let (mut v, vm) = world_with_vm(A);
    let h = create(&mut v, A, vm, 4);
    set(&mut v, A, vm, gmem_region(0, GPA, 4, h, 0));
    assert_eq!(fault(&mut v, vm, GPA), FaultOutcome::Mapped);
    close(&mut v, A, h);
    for gpa in [GPA, GPA + 3 * PG + 8] {
        let before = v.clone();
        assert_eq!(v.stage2_fault(vm, Gpa(gpa), false).unwrap(), FaultOutcome::NoBacking);
        assert!(v == before, "a fault with no backing changed the state");
    }
    assert!(guest_pages(&v, vm).is_empty());
}

#[test]
fn close_returns_the_files_frames_and_slots() {
    let (mut v, vm) = world_with_vm(A);
    let kernel_before = v.kernel().state().clone();
    let cspace_before = v.cspace().clone();
    let h = create(&mut v, A, vm, 16);
    assert!(v.kernel().state().untyped_free < kernel_before.untyped_free);
    close(&mut v, A, h);
    assert_eq!(*v.kernel().state(), kernel_before, "frames or capabilities outlived the file");
    assert_eq!(*v.cspace(), cspace_before);
}

#[test]
fn close_puts_the_files_reference_on_its_vm() {
    let (mut v, vm) = world_with_vm(A);
    let h1 = create(&mut v, A, vm, 1);
    let h2 = create(&mut v, A, vm, 1);
    assert_eq!(file_refs(&v, vm), 2);
    close(&mut v, A, h1);
    assert_eq!(file_refs(&v, vm), 1);
    close(&mut v, A, h2);
    assert_eq!(file_refs(&v, vm), 0);
    // Closing a listed VM's files does not destroy it.
    assert_eq!(v.registry().entry(vm).unwrap().presence(), Presence::Listed);
    set(&mut v, A, vm, ram_region(0, GPA, 1, 0));
}

/// Rule 1.6 through rule 4.5: destroying a VM with an open file removes it
/// at once; its drop waits for the last close.
#[test]
fn a_destroyed_vm_is_dropped_when_its_last_file_closes() {
    let fresh = world();
    let (mut v, vm) = world_with_vm(A);
    v.create_vcpu(A, vm, VcpuId(0)).unwrap();
    let h1 = create(&mut v, A, vm, 4);
    let h2 = create(&mut v, A, vm, 2);
    set(&mut v, A, vm, gmem_region(0, GPA, 4, h1, 0));
    set(&mut v, A, vm, ram_region(1, GPA + 0x4000_0000, 2, 0));
    assert_eq!(fault(&mut v, vm, GPA + PG), FaultOutcome::Mapped);
    assert_eq!(fault(&mut v, vm, GPA + 0x4000_0000), FaultOutcome::Mapped);

    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    let e = v.registry().entry(vm).unwrap();
    assert_eq!((e.presence(), e.file_refs()), (Presence::Removed, 2));
    assert_eq!(v.usage_count(), 1, "dropped while files are open");
    assert!(v.hooks().enabled);
    // Nothing reaches it any more.
    refused(&mut v, Errno::ENOENT, RegistryError::NoSuchVm.into(), |v| {
        v.set_memory_region(A, vm, &ram_region(2, GPA, 1, 0))
    });
    refused(&mut v, Errno::ENOENT, RegistryError::NoSuchVm.into(), |v| v.create_guest_memfd(A, vm, PG, 0));
    refused(&mut v, Errno::ENOENT, RegistryError::NoSuchVm.into(), |v| v.destroy_vm(A, vm));

    close(&mut v, A, h1);
    assert_eq!(v.registry().entry(vm).map(|e| (e.presence(), e.file_refs())), Some((Presence::Removed, 1)));
    assert_eq!(v.usage_count(), 1);

    close(&mut v, A, h2);
    assert!(v.registry().entry(vm).is_none(), "the VM outlived its last file");
    assert_eq!(v.usage_count(), 0);
    assert!(!v.hooks().enabled);
    // Every capability the VM and its files had is gone.
    assert_eq!(v.kernel().slots(), fresh.kernel().slots());
    assert_eq!(v.kernel().state(), fresh.kernel().state());
    assert_eq!(v.cspace(), fresh.cspace());
    assert_eq!(v.charges(), fresh.charges());
}
