//! Rule 8.2: the platform's work around a VM's creation, a RUN and a LOCK.
//! Each hook is called only once the core's own checks have passed, and a
//! platform's refusal leaves the whole state as it was. (The LOCK hook,
//! `can_pin`, is tested with the other lock rules in `locking.rs`.)

mod common;
use common::*;

use vmm::devices::DeviceError;
use vmm::registry::VmId;
use vmm::vm::VcpuId;
use vmm::vm::{VcpuState, VmError};
use vmm::{Errno, Error};

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
