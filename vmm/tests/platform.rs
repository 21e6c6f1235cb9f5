//! Rules 8.2 and 8.6: the platform's work around a VM's creation, a RUN, a
//! LOCK, and memory given to or taken back from a guest. Each hook is
//! called only once the core's own checks have passed, and a platform's
//! refusal leaves the whole state as it was. (The LOCK hook, `can_pin`, is
//! tested with the other lock rules in `locking.rs`.)

mod common;
use common::*;

use vmm::devices::DeviceError;
use vmm::vm::guest_memfd::GmemError;
use vmm::vm::lock::LockError;
use vmm::vm::memslots::MemslotError;
use vmm::vm::{VcpuState, VmError};
use vmm::Error;
use vmm_abi::memslot::{MemoryRegion, LOCK_READ, LOCK_WRITE, LOG_DIRTY_PAGES};
use vmm_abi::{Errno, VcpuId, VmId};

const UART: u64 = 0x900_0000;

#[test]
fn a_vm_the_platform_refuses_is_never_listed_and_changes_nothing() {
    let mut v = world();
    v.hooks_mut().refuse_create = Some(Errno::ENOMEM);
    refused(&mut v, Errno::ENOMEM, Error::Platform(Errno::ENOMEM), |v| v.create_vm(A));
    assert_eq!(v.hooks().asked.len(), 1);
    assert!(v.hooks().log.is_empty(), "refused, yet added: {:?}", v.hooks().log);
    // The next creation, allowed, gets the id the refused one was offered:
    // none was used up.
    v.hooks_mut().refuse_create = None;
    let id = v.create_vm(A).unwrap();
    assert_eq!(v.hooks().asked, [format!("created {}", id.0), format!("created {}", id.0)]);
    check_invariants(&v);
}

#[test]
fn a_new_vm_has_the_devices_its_platform_registers() {
    let mut v = world();
    v.hooks_mut().uart = Some(UART);
    let vm = v.create_vm(A).unwrap();
    // The UART is there: a second device at its address overlaps it.
    refused(&mut v, Errno::EEXIST, DeviceError::Overlap.into(), |v| {
        v.register_device(A, vm, Gpa(UART), 0x1000, vmm::devices::Device::Pl011(vmm::devices::pl011::Pl011::new()))
    });
    check_invariants(&v);
}

#[test]
fn the_cores_checks_come_before_the_platforms_run_hook() {
    let (mut v, vm) = world_with_vm(A);
    v.create_vcpu(A, vm, VcpuId(0)).unwrap();
    v.hooks_mut().refuse_run = Some(Errno::EIO);
    v.hooks_mut().asked.clear();
    // The core refuses first: no such VM, not the owner, no such vCPU.
    refused(&mut v, Errno::ENOENT, vmm::registry::RegistryError::NoSuchVm.into(), |v| {
        v.run_vcpu(A, VmId(7), VcpuId(0), 0x8000, 0)
    });
    refused(&mut v, Errno::EPERM, vmm::registry::RegistryError::NotOwner.into(), |v| {
        v.run_vcpu(B, vm, VcpuId(0), 0x8000, 0)
    });
    refused(&mut v, Errno::ENOENT, VmError::NoSuchVcpu.into(), |v| v.run_vcpu(A, vm, VcpuId(1), 0x8000, 0));
    assert!(v.hooks().asked.is_empty(), "the platform was asked first: {:?}", v.hooks().asked);
    // Then the platform: its refusal leaves the vCPU stopped, registers and
    // all.
    refused(&mut v, Errno::EIO, Error::Platform(Errno::EIO), |v| v.run_vcpu(A, vm, VcpuId(0), 0x8000, 0));
    assert_eq!(v.hooks().asked, [format!("run {}", vm.0)]);
    v.hooks_mut().refuse_run = None;
    v.run_vcpu(A, vm, VcpuId(0), 0x8000, 0).unwrap();
    assert_eq!(v.registry().entry(vm).unwrap().vm().vcpu_state(VcpuId(0)), VcpuState::Running);
    // A running vCPU is the core's refusal again, not the platform's.
    v.hooks_mut().refuse_run = Some(Errno::EIO);
    refused(&mut v, Errno::EBUSY, VmError::VcpuRunning.into(), |v| v.run_vcpu(A, vm, VcpuId(0), 0x8000, 0));
    check_invariants(&v);
}

const GPA: u64 = 0x8000_0000;
const PG: u64 = 0x1000;

// Rule 8.6: a memslot the platform cannot back is refused after the core's
// own checks, and a refused guest_memfd slot leaves its file unbound.
#[test]
fn a_memslot_the_platform_cannot_back_is_refused_after_the_cores_checks() {
    let (mut v, vm) = world_with_vm(A);
    v.hooks_mut().backable = Some(GPA..GPA + 4 * PG);
    let file = v.create_guest_memfd(A, vm, 4 * PG, 0).unwrap();
    v.set_memory_region(A, vm, &ram_region(0, GPA, 2, 0)).unwrap();
    // The core's refusals first: an overlap, an unaligned address.
    refused(&mut v, Errno::EEXIST, MemslotError::Overlap.into(), |v| {
        v.set_memory_region(A, vm, &ram_region(1, GPA + PG, 2, 4))
    });
    refused(&mut v, Errno::EINVAL, MemslotError::Unaligned.into(), |v| {
        v.set_memory_region(A, vm, &ram_region(1, GPA + 4 * PG + 1, 1, 4))
    });
    // Then the platform's, for RAM and for guest_memfd.
    refused(&mut v, Errno::EOPNOTSUPP, MemslotError::NotBacked.into(), |v| {
        v.set_memory_region(A, vm, &ram_region(1, GPA + 4 * PG, 1, 4))
    });
    refused(&mut v, Errno::EOPNOTSUPP, MemslotError::NotBacked.into(), |v| {
        v.set_memory_region(A, vm, &gmem_region(1, GPA + 3 * PG, 2, file, 0))
    });
    assert!(v.gmem().get(file).unwrap().bindings().is_empty());
    v.set_memory_region(A, vm, &gmem_region(1, GPA + 2 * PG, 2, file, 0)).unwrap();
    check_invariants(&v);
}

// Rule 8.6: where the platform cannot take memory back from a guest, every
// request that would is refused while the VM exists; the core's own
// refusals come first, and destroying the VM stays possible.
#[test]
fn a_platform_that_cannot_revoke_refuses_what_would_take_memory_back() {
    let (mut v, vm) = world_with_vm(A);
    let bound = v.create_guest_memfd(A, vm, 2 * PG, 0).unwrap();
    let spare = v.create_guest_memfd(A, vm, PG, 0).unwrap();
    let ram = ram_region(0, GPA, 2, 0);
    v.set_memory_region(A, vm, &ram).unwrap();
    v.set_memory_region(A, vm, &ram_region(2, GPA + 8 * PG, 1, 2)).unwrap();
    v.set_memory_region(A, vm, &gmem_region(1, GPA + 4 * PG, 2, bound, 0)).unwrap();
    v.lock_memslot(A, vm, 2, LOCK_READ | LOCK_WRITE).unwrap();
    assert_eq!(v.stage2_fault(vm, Gpa(GPA), true).unwrap(), vmm::FaultOutcome::Mapped);
    v.hooks_mut().cannot_revoke = true;
    let moved = MemoryRegion { guest_phys_addr: GPA + 16 * PG, ..ram };
    let flagged = MemoryRegion { flags: LOG_DIRTY_PAGES, ..ram };
    let delete = |slot| MemoryRegion { slot, ..MemoryRegion::default() };
    let cannot = || Error::from(MemslotError::CannotRevoke);
    refused(&mut v, Errno::EOPNOTSUPP, cannot(), |v| v.set_memory_region(A, vm, &delete(0)));
    refused(&mut v, Errno::EOPNOTSUPP, cannot(), |v| v.set_memory_region(A, vm, &moved));
    refused(&mut v, Errno::EOPNOTSUPP, cannot(), |v| v.set_memory_region(A, vm, &flagged));
    refused(&mut v, Errno::EOPNOTSUPP, cannot(), |v| v.set_memory_region(A, vm, &delete(1)));
    refused(&mut v, Errno::EOPNOTSUPP, LockError::CannotRevoke.into(), |v| v.lock_memslot(A, vm, 0, LOCK_READ));
    refused(&mut v, Errno::EOPNOTSUPP, GmemError::CannotRevoke.into(), |v| v.close_guest_memfd(A, bound));
    // The core's refusals come first: a locked slot, another owner.
    refused(&mut v, Errno::EBUSY, MemslotError::Locked.into(), |v| v.set_memory_region(A, vm, &delete(2)));
    refused(&mut v, Errno::EPERM, vmm::registry::RegistryError::NotOwner.into(), |v| v.close_guest_memfd(B, bound));
    // What takes nothing back is still done: a READ|WRITE lock, an unbound
    // file's close, the VM's destruction, and then the bound file's close.
    v.lock_memslot(A, vm, 0, LOCK_READ | LOCK_WRITE).unwrap();
    v.close_guest_memfd(A, spare).unwrap();
    v.destroy_vm(A, vm).unwrap();
    v.close_guest_memfd(A, bound).unwrap();
    check_invariants(&v);
}
