//! Whole scenarios on the seL4 model, with every invariant (guest_memfd
//! isolation first) checked after every step.

mod common;

use common::*;
use vmm::registry::Presence;
use vmm::FaultOutcome;
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::memslot::{LOCK_READ, LOCK_WRITE, LOG_DIRTY_PAGES, READONLY};
use vmm_abi::protocol::CAP_MEM_TAGGING;
use vmm_abi::{Errno, VcpuId};

const RAM_GPA: u64 = 0x4000_0000;
const ROM_GPA: u64 = 0x5000_0000;
const PRIV0_GPA: u64 = 0x6000_0000;
const PRIV1_GPA: u64 = 0x7000_0000;

#[test]
fn client_vm_with_private_memory_from_create_to_last_close() {
    let fresh = world();
    let mut v = world();
    let step = check_invariants;

    // A client creates a VM and a vCPU.
    let vm = v.create_vm(A).unwrap();
    step(&v);
    v.create_vcpu(A, vm, VcpuId(0)).unwrap();
    step(&v);

    // Shared RAM, a read-only region, and a guest_memfd bound in two ranges.
    v.set_memory_region(A, vm, &ram_region(0, RAM_GPA, 16, 0)).unwrap();
    let mut rom = ram_region(1, ROM_GPA, 4, 16);
    rom.flags = READONLY;
    v.set_memory_region(A, vm, &rom).unwrap();
    let fd = v.create_guest_memfd(A, vm, 8 * PAGE_SIZE, 0).unwrap();
    step(&v);
    v.set_memory_region(A, vm, &gmem_region(2, PRIV0_GPA, 4, fd, 0)).unwrap();
    step(&v);
    v.set_memory_region(A, vm, &gmem_region(3, PRIV1_GPA, 4, fd, 4)).unwrap();
    step(&v);
    assert_eq!(v.gmem().get(fd).unwrap().bindings().len(), 2);

    // Lock the RAM slot read-write: every page pinned and mapped.
    v.lock_memslot(A, vm, 0, LOCK_READ | LOCK_WRITE).unwrap();
    step(&v);
    assert_eq!(v.charges().charged(A), 16);
    let pages = guest_pages(&v, vm);
    for i in 0..16 {
        assert!(pages[&(RAM_GPA + i * PAGE_SIZE)].1.write);
    }

    // Run the vCPU; the guest touches private and read-only memory.
    v.run_vcpu(A, vm, VcpuId(0), RAM_GPA, 0x4400_0000).unwrap();
    step(&v);
    for gpa in [PRIV0_GPA, PRIV0_GPA + 3 * PAGE_SIZE, PRIV1_GPA, PRIV1_GPA + 2 * PAGE_SIZE] {
        assert_eq!(v.stage2_fault(vm, Gpa(gpa), true).unwrap(), FaultOutcome::Mapped);
        step(&v);
    }
    assert_eq!(v.stage2_fault(vm, Gpa(ROM_GPA), false).unwrap(), FaultOutcome::Mapped);
    assert_eq!(v.stage2_fault(vm, Gpa(ROM_GPA + PAGE_SIZE), true).unwrap(), FaultOutcome::ReadOnlyWrite);
    assert_eq!(v.stage2_fault(vm, Gpa(0x9000_0000), false).unwrap(), FaultOutcome::Unmapped);
    step(&v);
    // The private pages are the file's frames, and only the guest has them.
    let file = v.gmem().get(fd).unwrap().clone();
    let pages = guest_pages(&v, vm);
    let frames: Vec<u64> = (0..8).map(|i| v.kernel().object_at(file.frames().get(i).unwrap()).unwrap()).collect();
    let frame = |i: u64| frames[i as usize];
    assert_eq!(pages[&PRIV0_GPA].0, frame(0));
    assert_eq!(pages[&PRIV1_GPA].0, frame(4));
    assert_eq!(pages[&(PRIV1_GPA + 2 * PAGE_SIZE)].0, frame(6));

    // Every forbidden change is refused and changes nothing.
    let delete = ram_region(0, 0, 0, 0);
    fails_unchanged(&mut v, Errno::EBUSY, |v| v.set_memory_region(A, vm, &delete));
    fails_unchanged(&mut v, Errno::EBUSY, |v| v.set_memory_region(A, vm, &ram_region(0, 0x2000_0000, 16, 0)));
    let mut dirty = ram_region(0, RAM_GPA, 16, 0);
    dirty.flags = LOG_DIRTY_PAGES;
    fails_unchanged(&mut v, Errno::EBUSY, |v| v.set_memory_region(A, vm, &dirty));
    fails_unchanged(&mut v, Errno::EINVAL, |v| v.set_memory_region(A, vm, &gmem_region(2, 0x2000_0000, 4, fd, 0)));
    fails_unchanged(&mut v, Errno::EINVAL, |v| v.set_memory_region(A, vm, &gmem_region(4, 0x2000_0000, 4, fd, 2)));
    fails_unchanged(&mut v, Errno::EEXIST, |v| v.set_memory_region(A, vm, &ram_region(5, RAM_GPA + PAGE_SIZE, 1, 40)));
    fails_unchanged(&mut v, Errno::EBUSY, |v| v.lock_memslot(A, vm, 0, LOCK_READ));
    fails_unchanged(&mut v, Errno::EPERM, |v| v.lock_memslot(A, vm, 1, LOCK_READ | LOCK_WRITE));
    fails_unchanged(&mut v, Errno::EINVAL, |v| v.lock_memslot(A, vm, 2, LOCK_READ));
    fails_unchanged(&mut v, Errno::EPERM, |v| v.enable_cap(A, vm, CAP_MEM_TAGGING, 0));
    fails_unchanged(&mut v, Errno::EBUSY, |v| v.run_vcpu(A, vm, VcpuId(0), RAM_GPA, 0));
    fails_unchanged(&mut v, Errno::EPERM, |v| v.destroy_vm(B, vm));
    fails_unchanged(&mut v, Errno::EPERM, |v| v.close_guest_memfd(B, fd));
    fails_unchanged(&mut v, Errno::EPERM, |v| v.set_memory_region(B, vm, &ram_region(6, 0x2000_0000, 1, 40)));

    // Destroy while the file is open: unreachable at once, not dropped.
    let log_before = v.hooks().log.len();
    v.destroy_vm(A, vm).unwrap();
    step(&v);
    assert_eq!(v.registry().entry(vm).unwrap().presence(), Presence::Removed);
    assert_eq!(v.usage_count(), 1);
    assert_eq!(&v.hooks().log[log_before..], [format!("remove {}", vm.0)]);
    fails_unchanged(&mut v, Errno::ENOENT, |v| v.create_vcpu(A, vm, VcpuId(1)));
    fails_unchanged(&mut v, Errno::ENOENT, |v| v.destroy_vm(A, vm));
    assert_eq!(v.charges().charged(A), 0, "destroy unlocked everything");
    for i in 0..file.frames().len {
        assert!(v.kernel().mappings_of(frame(i)).is_empty(), "private frame still mapped");
    }
    // A new VM cannot take the id while the file refers to it.
    let other = v.create_vm(A).unwrap();
    assert_ne!(other, vm);
    v.destroy_vm(A, other).unwrap();
    step(&v);

    // Closing the file drops the VM: count back to 0, every cap and mapping gone.
    v.close_guest_memfd(A, fd).unwrap();
    step(&v);
    assert!(v.registry().entry(vm).is_none());
    assert_eq!(v.usage_count(), 0);
    assert_eq!(v.hooks().log.last().unwrap(), "drop 0");
    assert!(!v.hooks().enabled);
    assert_eq!(v.kernel().state(), fresh.kernel().state(), "capabilities, objects or mappings left behind");
    assert_eq!(v.cspace(), fresh.cspace(), "capability slots left allocated");
    assert_eq!(v.charges(), fresh.charges());
}

#[test]
fn destroy_and_recreate_runs_again_from_a_clean_slate() {
    let fresh = world();
    let mut v = world();
    for round in 0..3 {
        let vm = v.create_vm(A).unwrap();
        v.create_vcpu(A, vm, VcpuId(0)).unwrap();
        v.set_memory_region(A, vm, &ram_region(0, RAM_GPA, 8, 0)).unwrap();
        v.lock_memslot(A, vm, 0, LOCK_READ).unwrap();
        v.run_vcpu(A, vm, VcpuId(0), RAM_GPA, round).unwrap();
        let (tcb, _) = v.registry().entry(vm).unwrap().vm().vcpu_caps(VcpuId(0)).unwrap();
        assert!(v.kernel().tcb_running(tcb.slot()));
        assert_eq!(v.kernel().tcb_reg(tcb.slot(), vmm::arch::aarch64::regs::TcbReg::X(0)), Some(round));
        check_invariants(&v);
        v.destroy_vm(A, vm).unwrap();
        check_invariants(&v);
        assert_eq!(v.kernel().state(), fresh.kernel().state(), "round {round} left something behind");
        assert_eq!(v.cspace(), fresh.cspace());
    }
    assert_eq!(v.hooks().log.iter().filter(|l| l.starts_with("drop")).count(), 3);
}

#[test]
fn two_clients_and_an_internal_vm_stay_apart() {
    let mut v = world();
    let internal = v.create_vm(vmm::registry::Owner::Internal).unwrap();
    let a = v.create_vm(A).unwrap();
    let b = v.create_vm(B).unwrap();
    let fa = v.create_guest_memfd(A, a, 2 * PAGE_SIZE, 0).unwrap();
    let fi = v.create_guest_memfd(vmm::registry::Owner::Internal, internal, 2 * PAGE_SIZE, 0).unwrap();
    v.set_memory_region(A, a, &gmem_region(0, RAM_GPA, 2, fa, 0)).unwrap();
    v.set_memory_region(vmm::registry::Owner::Internal, internal, &gmem_region(0, RAM_GPA, 2, fi, 0)).unwrap();
    v.stage2_fault(a, Gpa(RAM_GPA), true).unwrap();
    v.stage2_fault(internal, Gpa(RAM_GPA), true).unwrap();
    check_invariants(&v);
    // B cannot use A's file, nor the internal VM's, nor reach either VM.
    fails_unchanged(&mut v, Errno::EINVAL, |v| v.set_memory_region(B, b, &gmem_region(0, RAM_GPA, 1, fa, 0)));
    fails_unchanged(&mut v, Errno::EINVAL, |v| v.set_memory_region(B, b, &gmem_region(0, RAM_GPA, 1, fi, 0)));
    fails_unchanged(&mut v, Errno::EPERM, |v| v.close_guest_memfd(B, fi));
    fails_unchanged(&mut v, Errno::EPERM, |v| v.create_vcpu(B, internal, VcpuId(0)));
    fails_unchanged(&mut v, Errno::EPERM, |v| v.destroy_vm(A, internal));
    // The two private pages are different frames, each in its own VM only.
    let pa = guest_pages(&v, a)[&RAM_GPA].0;
    let pi = guest_pages(&v, internal)[&RAM_GPA].0;
    assert_ne!(pa, pi);
    assert_eq!(v.kernel().mappings_of(pa).len(), 1);
    assert_eq!(v.kernel().mappings_of(pi).len(), 1);
}
