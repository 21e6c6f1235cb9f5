//! Section 2 of the rules (vCPUs, registers, interrupt lines) and rule 5.6
//! (the VM-wide capability refused while a memslot is locked).
//!
//! Every refused request goes through `fails_unchanged` (errno and the whole
//! state, model included, unchanged); every successful step is followed by
//! `check_invariants`. The world's vCPU limit is 4 (below `MAX_VCPUS`).

mod common;
use common::*;

use vmm::arch::aarch64::regs::{Reg, TcbReg, VcpuReg, SPSR_EL1H_MASKED, VCPU_REG_BASE};
use vmm::caps::Slot;
use vmm::kernel::KernelError;
use vmm::vm::VcpuState;
use vmm::Error;
use vmm_abi::limits::{MAX_IRQ, MAX_VCPUS, MIN_IRQ};
use vmm_abi::memslot::{LOCK_READ, LOCK_WRITE, UNLOCK_ALL};
use vmm_abi::protocol::CAP_MEM_TAGGING;
use vmm_abi::{Errno, VcpuId, VmId};
use vmm_model::Object;

/// The world's vCPU limit.
const LIMIT: u32 = 4;
/// Guest-physical base of test memslots.
const GPA: u64 = 0x8000_0000;
/// Wire numbers of the registers kept in the TCB.
const SP: u32 = 31;
const PC: u32 = 32;
const SPSR: u32 = 33;

/// A VM of A with the vCPUs `ids` created.
fn vm_with(v: &mut TestVmm, ids: &[u32]) -> VmId {
    let vm = v.create_vm(A).unwrap();
    for &id in ids {
        v.create_vcpu(A, vm, VcpuId(id)).unwrap();
    }
    check_invariants(v);
    vm
}

fn tcb(v: &TestVmm, vm: VmId, vcpu: u32) -> Slot {
    v.registry().entry(vm).unwrap().vm().vcpu_caps(VcpuId(vcpu)).unwrap().0.slot()
}

fn vcpu_obj(v: &TestVmm, vm: VmId, vcpu: u32) -> Slot {
    v.registry().entry(vm).unwrap().vm().vcpu_caps(VcpuId(vcpu)).unwrap().1.slot()
}

fn state(v: &TestVmm, vm: VmId, vcpu: u32) -> VcpuState {
    v.registry().entry(vm).unwrap().vm().vcpu_state(VcpuId(vcpu))
}

/// The TCB register behind a wire number 0..=33.
fn tcb_reg(n: u32) -> TcbReg {
    match Reg::from_wire(n) {
        Some(Reg::Tcb(r)) => r,
        other => panic!("{n} is not a TCB register: {other:?}"),
    }
}

/// A system register as the model holds it in the vCPU object.
fn model_vcpu_reg(v: &TestVmm, vm: VmId, vcpu: u32, reg: VcpuReg) -> u64 {
    let m = v.kernel();
    match m.object(m.object_at(vcpu_obj(v, vm, vcpu)).unwrap()).unwrap() {
        Object::VCpu { regs, .. } => regs.get(&reg).copied().unwrap_or(0),
        o => panic!("not a vCPU: {o:?}"),
    }
}

/// Every wire register number a client may use.
fn all_wire_regs() -> Vec<u32> {
    (0..=SPSR).chain((0..VcpuReg::ALL.len() as u32).map(|i| VCPU_REG_BASE + i)).collect()
}

/// A distinct, non-zero value per register.
fn value_for(n: u32) -> u64 {
    0x0123_4567_0000_0000 | u64::from(n) << 8 | 0xa5
}

/// Makes each fallible kernel invocation of `op` fail in turn (with
/// NotEnoughMemory, ENOMEM) and checks that each such failure changes
/// nothing; returns the number of invocations made to fail.
fn each_kernel_failure_changes_nothing<T: std::fmt::Debug>(
    v: &TestVmm,
    op: impl Fn(&mut TestVmm) -> Result<T, Error>,
) -> u64 {
    for n in 0.. {
        let mut probe = Box::new(v.clone());
        probe.kernel_mut().fail_nth(n, KernelError::NotEnoughMemory);
        let r = op(&mut probe);
        if probe.kernel().failure_pending() {
            r.unwrap();
            check_invariants(&probe);
            return n;
        }
        let mut w = Box::new(v.clone());
        w.kernel_mut().fail_nth(n, KernelError::NotEnoughMemory);
        fails_unchanged(&mut w, Errno::ENOMEM, &op);
    }
    unreachable!()
}

// ---- Rule 2.1: CREATE_VCPU: id below the limit (EINVAL), once (EEXIST). ----

#[test]
fn every_vcpu_id_below_the_limit_can_be_created() {
    let mut v = world();
    let vm = vm_with(&mut v, &[]);
    for id in 0..LIMIT {
        v.create_vcpu(A, vm, VcpuId(id)).unwrap();
        check_invariants(&v);
        assert_eq!(state(&v, vm, id), VcpuState::Stopped);
        let t = tcb(&v, vm, id);
        assert!(v.kernel().object_at(t).is_some(), "no TCB for vCPU {id}");
        assert!(!v.kernel().tcb_running(t), "a new vCPU must not run");
        // Bound to this VM's VSpace and its own vCPU object.
        let m = v.kernel();
        let vspace = m.object_at(v.registry().entry(vm).unwrap().vm().vspace().slot()).unwrap();
        let vc = m.object_at(vcpu_obj(&v, vm, id)).unwrap();
        match m.object(m.object_at(t).unwrap()).unwrap() {
            Object::Tcb { bound, .. } => assert_eq!(*bound, Some((vc, vspace))),
            o => panic!("not a TCB: {o:?}"),
        }
    }
}

#[test]
fn create_vcpu_at_or_above_the_limit_is_einval() {
    let mut v = world();
    let vm = vm_with(&mut v, &[]);
    assert!((LIMIT as usize) < MAX_VCPUS, "the world must have a limit below the table size");
    for id in [LIMIT, LIMIT + 1, MAX_VCPUS as u32 - 1, MAX_VCPUS as u32, 1000, u32::MAX] {
        fails_unchanged(&mut v, Errno::EINVAL, |v| v.create_vcpu(A, vm, VcpuId(id)));
    }
}

#[test]
fn creating_a_vcpu_twice_is_eexist() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0, 3]);
    fails_unchanged(&mut v, Errno::EEXIST, |v| v.create_vcpu(A, vm, VcpuId(0)));
    fails_unchanged(&mut v, Errno::EEXIST, |v| v.create_vcpu(A, vm, VcpuId(3)));
    v.run_vcpu(A, vm, VcpuId(0), GPA, 0).unwrap();
    check_invariants(&v);
    fails_unchanged(&mut v, Errno::EEXIST, |v| v.create_vcpu(A, vm, VcpuId(0)));
}

#[test]
fn the_same_vcpu_id_can_be_created_in_two_vms() {
    let mut v = world();
    let a = vm_with(&mut v, &[0]);
    let b = vm_with(&mut v, &[0]);
    assert_ne!(tcb(&v, a, 0), tcb(&v, b, 0));
}

#[test]
fn a_new_vcpu_enters_at_el1h_with_interrupts_masked() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0, 2]);
    assert_eq!(SPSR_EL1H_MASKED, 0x3c5);
    for id in [0, 2] {
        assert_eq!(v.get_reg(A, vm, VcpuId(id), SPSR).unwrap(), 0x3c5);
        assert_eq!(v.kernel().tcb_reg(tcb(&v, vm, id), TcbReg::Spsr), Some(0x3c5));
    }
}

#[test]
fn a_vcpu_refused_by_the_kernel_changes_nothing() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    let points = each_kernel_failure_changes_nothing(&v, |v| v.create_vcpu(A, vm, VcpuId(1)));
    assert!(points >= 4, "retype TCB, retype vCPU, bind, write SPSR: {points}");
}

// ---- Rule 2.2: RUN(id, entry, arg): PC = entry, x0 = arg, resumed;      ----
// ---- ENOENT if not created, EBUSY if running.                           ----

#[test]
fn run_sets_pc_and_x0_and_resumes() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0, 1]);
    v.set_reg(A, vm, VcpuId(0), 1, 0x1111).unwrap();
    v.run_vcpu(A, vm, VcpuId(0), 0x8000_1000, 0xdead_beef_0000_0001).unwrap();
    check_invariants(&v);
    let t = tcb(&v, vm, 0);
    let m = v.kernel();
    assert!(m.tcb_running(t));
    assert_eq!(m.tcb_reg(t, TcbReg::Pc), Some(0x8000_1000));
    assert_eq!(m.tcb_reg(t, TcbReg::X(0)), Some(0xdead_beef_0000_0001));
    assert_eq!(m.tcb_reg(t, TcbReg::X(1)), Some(0x1111), "RUN touched another register");
    assert_eq!(m.tcb_reg(t, TcbReg::Spsr), Some(0x3c5), "RUN touched SPSR");
    assert_eq!(state(&v, vm, 0), VcpuState::Running);
    // The other vCPU is untouched.
    assert!(!m.tcb_running(tcb(&v, vm, 1)));
    assert_eq!(state(&v, vm, 1), VcpuState::Stopped);
}

#[test]
fn run_of_a_vcpu_not_created_is_enoent() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    for id in [1, LIMIT - 1, LIMIT, MAX_VCPUS as u32, u32::MAX] {
        fails_unchanged(&mut v, Errno::ENOENT, |v| v.run_vcpu(A, vm, VcpuId(id), GPA, 0));
    }
}

#[test]
fn run_of_a_running_vcpu_is_ebusy() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    v.run_vcpu(A, vm, VcpuId(0), GPA, 1).unwrap();
    check_invariants(&v);
    // A different entry and argument: nothing of them may land.
    fails_unchanged(&mut v, Errno::EBUSY, |v| v.run_vcpu(A, vm, VcpuId(0), GPA + 0x1000, 2));
    assert_eq!(v.kernel().tcb_reg(tcb(&v, vm, 0), TcbReg::Pc), Some(GPA));
}

#[test]
fn run_after_stop_restarts_at_the_new_entry() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    v.run_vcpu(A, vm, VcpuId(0), GPA, 1).unwrap();
    v.stop_vcpu(A, vm, VcpuId(0)).unwrap();
    v.run_vcpu(A, vm, VcpuId(0), GPA + 0x2000, 2).unwrap();
    check_invariants(&v);
    let t = tcb(&v, vm, 0);
    assert!(v.kernel().tcb_running(t));
    assert_eq!(v.kernel().tcb_reg(t, TcbReg::Pc), Some(GPA + 0x2000));
    assert_eq!(v.kernel().tcb_reg(t, TcbReg::X(0)), Some(2));
}

#[test]
fn run_refused_by_the_kernel_changes_nothing() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    // PC and x0 never written (they read as 0) ...
    let points = each_kernel_failure_changes_nothing(&v, |v| v.run_vcpu(A, vm, VcpuId(0), GPA, 9));
    assert!(points >= 5, "read PC, read x0, write PC, write x0, resume: {points}");
    // ... and holding values that must be put back.
    v.set_reg(A, vm, VcpuId(0), PC, 0x4000).unwrap();
    v.set_reg(A, vm, VcpuId(0), 0, 0x77).unwrap();
    check_invariants(&v);
    let points = each_kernel_failure_changes_nothing(&v, |v| v.run_vcpu(A, vm, VcpuId(0), GPA, 9));
    assert!(points >= 5, "read PC, read x0, write PC, write x0, resume: {points}");
}

// ---- Rule 2.3: STOP suspends; stopping a stopped vCPU succeeds and      ----
// ---- changes nothing; ENOENT if not created.                            ----

#[test]
fn stop_suspends_a_running_vcpu_and_keeps_its_registers() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0, 1]);
    v.run_vcpu(A, vm, VcpuId(0), GPA + 0x40, 3).unwrap();
    v.run_vcpu(A, vm, VcpuId(1), GPA + 0x80, 4).unwrap();
    v.stop_vcpu(A, vm, VcpuId(0)).unwrap();
    check_invariants(&v);
    let t = tcb(&v, vm, 0);
    assert!(!v.kernel().tcb_running(t));
    assert_eq!(state(&v, vm, 0), VcpuState::Stopped);
    assert_eq!(v.get_reg(A, vm, VcpuId(0), PC).unwrap(), GPA + 0x40);
    assert_eq!(v.get_reg(A, vm, VcpuId(0), 0).unwrap(), 3);
    // Only that vCPU.
    assert!(v.kernel().tcb_running(tcb(&v, vm, 1)));
    assert_eq!(state(&v, vm, 1), VcpuState::Running);
}

#[test]
fn stopping_a_stopped_vcpu_succeeds_and_changes_nothing() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0, 1]);
    // Never run.
    let before = v.clone();
    v.stop_vcpu(A, vm, VcpuId(0)).unwrap();
    assert!(v == before, "stopping a never-run vCPU changed the state");
    // Run, then stopped.
    v.run_vcpu(A, vm, VcpuId(1), GPA, 0).unwrap();
    v.stop_vcpu(A, vm, VcpuId(1)).unwrap();
    let before = v.clone();
    v.stop_vcpu(A, vm, VcpuId(1)).unwrap();
    assert!(v == before, "stopping a stopped vCPU changed the state");
    check_invariants(&v);
}

#[test]
fn stop_of_a_vcpu_not_created_is_enoent() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    for id in [1, LIMIT, u32::MAX] {
        fails_unchanged(&mut v, Errno::ENOENT, |v| v.stop_vcpu(A, vm, VcpuId(id)));
    }
}

// ---- Rule 2.4: GET_REG / SET_REG: unknown register EINVAL; ENOENT if    ----
// ---- the vCPU was not created.                                          ----

#[test]
fn every_tcb_register_reads_back_what_was_written() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    for n in 0..=SPSR {
        v.set_reg(A, vm, VcpuId(0), n, value_for(n)).unwrap();
        check_invariants(&v);
        assert_eq!(v.kernel().tcb_reg(tcb(&v, vm, 0), tcb_reg(n)), Some(value_for(n)), "register {n} in the TCB");
    }
    // No two registers share storage.
    for n in 0..=SPSR {
        assert_eq!(v.get_reg(A, vm, VcpuId(0), n).unwrap(), value_for(n), "register {n}");
    }
    assert_eq!(tcb_reg(SP), TcbReg::Sp);
    assert_eq!(tcb_reg(PC), TcbReg::Pc);
}

#[test]
fn every_vcpu_system_register_reads_back_what_was_written() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    for (i, r) in VcpuReg::ALL.iter().enumerate() {
        let n = VCPU_REG_BASE + i as u32;
        v.set_reg(A, vm, VcpuId(0), n, value_for(n)).unwrap();
        check_invariants(&v);
        assert_eq!(model_vcpu_reg(&v, vm, 0, *r), value_for(n), "{r:?} in the vCPU object");
    }
    for n in all_wire_regs() {
        let want = if n >= VCPU_REG_BASE {
            value_for(n)
        } else if n == SPSR {
            0x3c5
        } else {
            0
        };
        assert_eq!(v.get_reg(A, vm, VcpuId(0), n).unwrap(), want, "register {n:#x}");
    }
}

#[test]
fn registers_are_per_vcpu() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0, 1]);
    v.set_reg(A, vm, VcpuId(0), 5, 55).unwrap();
    v.set_reg(A, vm, VcpuId(0), VCPU_REG_BASE, 66).unwrap();
    check_invariants(&v);
    assert_eq!(v.get_reg(A, vm, VcpuId(1), 5).unwrap(), 0);
    assert_eq!(v.get_reg(A, vm, VcpuId(1), VCPU_REG_BASE).unwrap(), 0);
}

#[test]
fn unknown_register_numbers_are_einval() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    let end = VCPU_REG_BASE + VcpuReg::ALL.len() as u32;
    for n in [SPSR + 1, 64, VCPU_REG_BASE - 1, end, end + 1, 0x1ff, 0x8000_0000, u32::MAX] {
        fails_unchanged(&mut v, Errno::EINVAL, |v| v.get_reg(A, vm, VcpuId(0), n));
        fails_unchanged(&mut v, Errno::EINVAL, |v| v.set_reg(A, vm, VcpuId(0), n, 1));
    }
}

#[test]
fn registers_of_a_vcpu_not_created_are_enoent() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    for id in [1, LIMIT, u32::MAX] {
        for n in [0, PC, VCPU_REG_BASE] {
            fails_unchanged(&mut v, Errno::ENOENT, |v| v.get_reg(A, vm, VcpuId(id), n));
            fails_unchanged(&mut v, Errno::ENOENT, |v| v.set_reg(A, vm, VcpuId(id), n, 1));
        }
    }
}

#[test]
fn set_reg_refused_by_the_kernel_changes_nothing() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    for n in [0, PC, VCPU_REG_BASE] {
        let points = each_kernel_failure_changes_nothing(&v, |v| v.set_reg(A, vm, VcpuId(0), n, 42));
        assert!(points >= 1);
    }
}

// ---- Rule 2.5: IRQ_LINE(irq, level): lines 16..1020, level 0 or 1;      ----
// ---- a rising edge injects into vCPU 0 (the core's documented choice).  ----

#[test]
fn irq_lines_outside_16_to_1019_are_einval() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    assert_eq!((MIN_IRQ, MAX_IRQ), (16, 1020));
    for irq in [0, 1, 15, 1020, 1021, 0xffff, 0x1_0000, u32::MAX] {
        for level in [0, 1] {
            fails_unchanged(&mut v, Errno::EINVAL, |v| v.irq_line(A, vm, irq, level));
        }
    }
}

#[test]
fn irq_levels_other_than_0_and_1_are_einval() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    for level in [2, 3, 0x100, u32::MAX] {
        fails_unchanged(&mut v, Errno::EINVAL, |v| v.irq_line(A, vm, 32, level));
    }
}

#[test]
fn the_first_and_last_lines_are_accepted() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    v.irq_line(A, vm, 16, 1).unwrap();
    v.irq_line(A, vm, 1019, 1).unwrap();
    check_invariants(&v);
    assert_eq!(v.kernel().injected(vcpu_obj(&v, vm, 0)), [16, 1019]);
}

#[test]
fn a_rising_edge_injects_once_into_vcpu_0() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0, 1]);
    v.irq_line(A, vm, 40, 1).unwrap();
    check_invariants(&v);
    assert_eq!(v.kernel().injected(vcpu_obj(&v, vm, 0)), [40]);
    assert!(v.kernel().injected(vcpu_obj(&v, vm, 1)).is_empty(), "injected into another vCPU");
    assert!(v.registry().entry(vm).unwrap().vm().irq_level(40));
}

#[test]
fn a_level_that_stays_high_is_not_injected_again() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    v.irq_line(A, vm, 40, 1).unwrap();
    let before = v.clone();
    v.irq_line(A, vm, 40, 1).unwrap();
    assert!(v == before, "raising a high line changed the state");
    assert_eq!(v.kernel().injected(vcpu_obj(&v, vm, 0)), [40]);
}

#[test]
fn lowering_a_line_injects_nothing_and_raising_it_again_injects_again() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    v.irq_line(A, vm, 40, 1).unwrap();
    v.irq_line(A, vm, 40, 0).unwrap();
    check_invariants(&v);
    assert_eq!(v.kernel().injected(vcpu_obj(&v, vm, 0)), [40]);
    assert!(!v.registry().entry(vm).unwrap().vm().irq_level(40));
    v.irq_line(A, vm, 40, 1).unwrap();
    check_invariants(&v);
    assert_eq!(v.kernel().injected(vcpu_obj(&v, vm, 0)), [40, 40]);
}

#[test]
fn lines_have_independent_levels() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    v.irq_line(A, vm, 40, 1).unwrap();
    v.irq_line(A, vm, 41, 1).unwrap();
    v.irq_line(A, vm, 104, 1).unwrap(); // another word of the level bitmap
    v.irq_line(A, vm, 40, 0).unwrap();
    v.irq_line(A, vm, 41, 1).unwrap(); // still high: no injection
    v.irq_line(A, vm, 40, 1).unwrap();
    check_invariants(&v);
    assert_eq!(v.kernel().injected(vcpu_obj(&v, vm, 0)), [40, 41, 104, 40]);
}

#[test]
fn a_rising_edge_with_no_vcpu_0_is_enoent_and_leaves_the_line_low() {
    let mut v = world();
    let vm = vm_with(&mut v, &[1]);
    fails_unchanged(&mut v, Errno::ENOENT, |v| v.irq_line(A, vm, 40, 1));
    assert!(!v.registry().entry(vm).unwrap().vm().irq_level(40));
    // The line was not left high: once vCPU 0 exists, raising it injects.
    v.create_vcpu(A, vm, VcpuId(0)).unwrap();
    v.irq_line(A, vm, 40, 1).unwrap();
    check_invariants(&v);
    assert_eq!(v.kernel().injected(vcpu_obj(&v, vm, 0)), [40]);
    assert!(v.kernel().injected(vcpu_obj(&v, vm, 1)).is_empty());
}

#[test]
fn an_injection_refused_by_the_kernel_changes_nothing() {
    let mut v = world();
    let vm = vm_with(&mut v, &[0]);
    let points = each_kernel_failure_changes_nothing(&v, |v| v.irq_line(A, vm, 40, 1));
    assert!(points >= 1);
}

// ---- Rule 5.6: ENABLE_CAP (memory tagging): unknown capability or       ----
// ---- argument EINVAL; EPERM while any memslot is locked.                ----

#[test]
fn enable_cap_with_an_unknown_capability_is_einval() {
    let mut v = world();
    let vm = vm_with(&mut v, &[]);
    for cap in [0, CAP_MEM_TAGGING + 1, 0x100, u32::MAX] {
        fails_unchanged(&mut v, Errno::EINVAL, |v| v.enable_cap(A, vm, cap, 0));
    }
}

#[test]
fn enable_cap_with_a_non_zero_argument_is_einval() {
    let mut v = world();
    let vm = vm_with(&mut v, &[]);
    for arg in [1, 2, 1 << 63, u64::MAX] {
        fails_unchanged(&mut v, Errno::EINVAL, |v| v.enable_cap(A, vm, CAP_MEM_TAGGING, arg));
    }
}

#[test]
fn enable_cap_with_no_locked_slot_turns_memory_tagging_on() {
    let mut v = world();
    let vm = vm_with(&mut v, &[]);
    v.set_memory_region(A, vm, &ram_region(0, GPA, 2, 0)).unwrap();
    assert!(!v.registry().entry(vm).unwrap().vm().mem_tagging());
    v.enable_cap(A, vm, CAP_MEM_TAGGING, 0).unwrap();
    check_invariants(&v);
    assert!(v.registry().entry(vm).unwrap().vm().mem_tagging());
}

#[test]
fn enable_cap_while_a_slot_is_locked_is_eperm_and_succeeds_after_unlock() {
    let mut v = world();
    let vm = vm_with(&mut v, &[]);
    v.set_memory_region(A, vm, &ram_region(0, GPA, 2, 0)).unwrap();
    v.set_memory_region(A, vm, &ram_region(1, GPA + 0x10_0000, 2, 2)).unwrap();
    v.lock_memslot(A, vm, 1, LOCK_READ).unwrap();
    check_invariants(&v);
    fails_unchanged(&mut v, Errno::EPERM, |v| v.enable_cap(A, vm, CAP_MEM_TAGGING, 0));
    v.unlock_memslot(A, vm, 1, 0).unwrap();
    check_invariants(&v);
    v.enable_cap(A, vm, CAP_MEM_TAGGING, 0).unwrap();
    check_invariants(&v);
    assert!(v.registry().entry(vm).unwrap().vm().mem_tagging());
}

#[test]
fn enable_cap_is_eperm_while_any_of_several_slots_is_locked() {
    let mut v = world();
    let vm = vm_with(&mut v, &[]);
    v.set_memory_region(A, vm, &ram_region(0, GPA, 2, 0)).unwrap();
    v.set_memory_region(A, vm, &ram_region(1, GPA + 0x10_0000, 2, 2)).unwrap();
    v.lock_memslot(A, vm, 0, LOCK_READ | LOCK_WRITE).unwrap();
    v.lock_memslot(A, vm, 1, LOCK_READ).unwrap();
    check_invariants(&v);
    fails_unchanged(&mut v, Errno::EPERM, |v| v.enable_cap(A, vm, CAP_MEM_TAGGING, 0));
    v.unlock_memslot(A, vm, 0, 0).unwrap();
    check_invariants(&v);
    // One slot is still locked.
    fails_unchanged(&mut v, Errno::EPERM, |v| v.enable_cap(A, vm, CAP_MEM_TAGGING, 0));
    v.unlock_memslot(A, vm, 0, UNLOCK_ALL).unwrap();
    check_invariants(&v);
    v.enable_cap(A, vm, CAP_MEM_TAGGING, 0).unwrap();
    check_invariants(&v);
}
