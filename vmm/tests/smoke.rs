mod common;
use common::*;

#[test]
fn create_set_fault_lock_destroy() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    v.create_vcpu(A, vm, VcpuId(0)).unwrap();
    v.set_memory_region(A, vm, &ram_region(0, 0x8000_0000, 4, 0)).unwrap();
    assert_eq!(v.stage2_fault(vm, Gpa(0x8000_1008), true).unwrap(), vmm::FaultOutcome::Mapped);
    check_invariants(&v);
    v.lock_memslot(A, vm, 0, 3).unwrap();
    check_invariants(&v);
    assert_eq!(guest_pages(&v, vm).len(), 4);
    v.unlock_memslot(A, vm, 0, 0).unwrap();
    assert_eq!(guest_pages(&v, vm).len(), 4);
    check_invariants(&v);
    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    assert_eq!(v.usage_count(), 0);
}
