//! WFI (rule 6.11), on the seL4 model: a vCPU of a VM with a virtual GIC
//! that has nothing to do waits with its TCB suspended, and wakes when an
//! interrupt goes into its list registers or its virtual timer's deadline
//! has passed; the VM's last awake vCPU, WFE, a VM without a GIC and a
//! platform without a clock keep the plain answer (resume past the
//! instruction).
//!
//! The syndrome is the Arm ARM's (EC 0x01, ISS bit 0 = WFE); the timer bits
//! are CNTV_CTL_EL0's (ENABLE bit 0, IMASK bit 1).

mod common;

use common::exit_guest::{self, reg, tcb, vcpu_obj, IL, VCPU_FAULT};
use common::*;
use vmm::addr::Gpa;
use vmm::arch::aarch64::regs::{TcbReg, VcpuReg};
use vmm::arch::aarch64::vgic::GicVersion;
use vmm::caps::VCpuCap;
use vmm::devices::pl011::Console;
use vmm::kernel::Kernel;
use vmm::registry::Owner;
use vmm::ExitAction;
use vmm_abi::{ClientId, VcpuId, VmId};

const A: Owner = Owner::Client(ClientId(1));
const GICD: u64 = 0x0800_0000;
const CTLR: u64 = 0x000;
const SGIR: u64 = 0xf00;
const WFI: u64 = 0x01 << 26 | IL;
const WFE: u64 = WFI | 1;
const NOW: u64 = 1_000_000;

struct Out;
impl Console for Out {
    fn put(&mut self, _: u8) {}
}

/// A VM of `A` with two running vCPUs, a GICv2 and a platform clock.
fn guest(gic: bool, clock: bool) -> (Box<TestVmm>, VmId) {
    let mut v = world();
    v.hooks_mut().now = clock.then_some(NOW);
    let vm = exit_guest::guest(&mut v, A, 0, 2, 0);
    if gic {
        v.register_gic(A, vm, GicVersion::V2, Gpa(GICD), None).unwrap();
    }
    v.run_vcpu(A, vm, VcpuId(1), exit_guest::RAM_GPA, 0).unwrap();
    (v, vm)
}

fn exit(v: &mut TestVmm, vm: VmId, vcpu: u32, label: u64, mrs: &[u64]) -> ExitAction {
    v.handle_exit(vm, VcpuId(vcpu), label, mrs, &mut Out)
}

/// vCPU `vcpu` executes the trapped WFx with syndrome `esr`.
fn wfx(v: &mut TestVmm, vm: VmId, vcpu: u32, esr: u64) -> ExitAction {
    let pc = reg(v, vm, vcpu, TcbReg::Pc);
    let action = exit(v, vm, vcpu, VCPU_FAULT, &[esr]);
    assert_eq!(reg(v, vm, vcpu, TcbReg::Pc), pc + 4, "the PC moves past the WFx");
    action
}

fn running(v: &TestVmm, vm: VmId, vcpu: u32) -> bool {
    v.kernel().tcb_running(tcb(v, vm, vcpu))
}

/// vCPU `vcpu`'s virtual timer: CNTV_CTL_EL0 and CNTV_CVAL_EL0.
fn timer(v: &mut TestVmm, vm: VmId, vcpu: u32, ctl: u64, cval: u64) {
    let vc = VCpuCap(vcpu_obj(v, vm, vcpu));
    v.kernel_mut().vcpu_write_reg(vc, VcpuReg::CntvCtl, ctl).unwrap();
    v.kernel_mut().vcpu_write_reg(vc, VcpuReg::CntvCval, cval).unwrap();
}

#[test]
fn an_idle_vcpu_waits_suspended_while_another_runs() {
    let (mut v, vm) = guest(true, true);
    timer(&mut v, vm, 1, 1, NOW + 500);
    assert_eq!(wfx(&mut v, vm, 1, WFI), ExitAction::Park);
    assert!(!running(&v, vm, 1), "its TCB is suspended");
    assert!(running(&v, vm, 0));
    // It is still on: STOP and RUN see a running vCPU.
    assert_eq!(v.run_vcpu(A, vm, VcpuId(1), 0, 0).map_err(|e| e.errno()), Err(vmm_abi::Errno::EBUSY));
    check_invariants(&v);
}

#[test]
fn the_last_awake_vcpu_spins_and_wakes_the_others_at_their_deadline() {
    let (mut v, vm) = guest(true, true);
    timer(&mut v, vm, 1, 1, NOW + 500);
    assert_eq!(wfx(&mut v, vm, 1, WFI), ExitAction::Park);
    // vCPU 0 is the last awake: its WFI returns at once.
    assert_eq!(wfx(&mut v, vm, 0, WFI), ExitAction::Resume);
    assert!(running(&v, vm, 0) && !running(&v, vm, 1), "not yet vCPU 1's deadline");
    // At vCPU 1's deadline, vCPU 0's WFI wakes it, and then vCPU 0 is not
    // the last awake any more: it waits, and vCPU 1 is the one left.
    v.hooks_mut().now = Some(NOW + 500);
    assert_eq!(wfx(&mut v, vm, 0, WFI), ExitAction::Park);
    assert!(running(&v, vm, 1) && !running(&v, vm, 0));
    assert_eq!(wfx(&mut v, vm, 1, WFI), ExitAction::Resume);
    check_invariants(&v);
}

#[test]
fn a_timer_exit_of_a_running_vcpu_wakes_one_whose_deadline_passed() {
    let (mut v, vm) = guest(true, true);
    timer(&mut v, vm, 1, 1, NOW + 10);
    assert_eq!(wfx(&mut v, vm, 1, WFI), ExitAction::Park);
    v.hooks_mut().now = Some(NOW + 10);
    // seL4's virtual PPI event for vCPU 0's timer.
    assert_eq!(exit(&mut v, vm, 0, exit_guest::VPPI_EVENT, &[27]), ExitAction::Resume);
    assert!(running(&v, vm, 1));
}

#[test]
fn an_interrupt_for_a_waiting_vcpu_wakes_it() {
    let (mut v, vm) = guest(true, true);
    // No timer: it waits for an interrupt alone.
    assert_eq!(wfx(&mut v, vm, 1, WFI), ExitAction::Park);
    v.hooks_mut().now = Some(u64::MAX);
    assert_eq!(wfx(&mut v, vm, 0, WFI), ExitAction::Resume);
    assert!(!running(&v, vm, 1), "no deadline: time does not wake it");
    // vCPU 0 enables the distributor and sends SGI 3 to vCPU 1 (GICD_SGIR).
    for (offset, value) in [(CTLR, 1), (SGIR, 1 << (16 + 1) | 3)] {
        v.set_reg(A, vm, VcpuId(0), 2, value).unwrap();
        let pc = reg(&v, vm, 0, TcbReg::Pc);
        let store = 0x24 << 26 | IL | exit_guest::ISV | 2 << 22 | 2 << 16 | exit_guest::WNR;
        assert_eq!(exit(&mut v, vm, 0, exit_guest::VM_FAULT, &[pc, GICD + offset, 0, store]), ExitAction::Resume);
    }
    assert!(running(&v, vm, 1), "the SGI went into its list register and woke it");
    // With the SGI still in its list register, its next WFI returns at once.
    assert_eq!(wfx(&mut v, vm, 1, WFI), ExitAction::Resume);
    check_invariants(&v);
}

#[test]
fn a_due_or_masked_timer_and_wfe_do_not_wait() {
    let (mut v, vm) = guest(true, true);
    // Already due.
    timer(&mut v, vm, 1, 1, NOW);
    assert_eq!(wfx(&mut v, vm, 1, WFI), ExitAction::Resume);
    // WFE never waits.
    timer(&mut v, vm, 1, 1, NOW + 500);
    assert_eq!(wfx(&mut v, vm, 1, WFE), ExitAction::Resume);
    // A masked timer sets no deadline: the vCPU waits for an interrupt.
    timer(&mut v, vm, 1, 1 | 2, NOW);
    assert_eq!(wfx(&mut v, vm, 1, WFI), ExitAction::Park);
    v.hooks_mut().now = Some(NOW + 1_000_000);
    assert_eq!(wfx(&mut v, vm, 0, WFI), ExitAction::Resume);
    assert!(!running(&v, vm, 1));
}

#[test]
fn without_a_gic_or_a_clock_wfi_returns_at_once() {
    for (gic, clock) in [(false, true), (true, false)] {
        let (mut v, vm) = guest(gic, clock);
        timer(&mut v, vm, 1, 1, NOW + 500);
        assert_eq!(wfx(&mut v, vm, 1, WFI), ExitAction::Resume, "gic {gic}, clock {clock}");
        assert!(running(&v, vm, 1));
    }
}

#[test]
fn stopping_the_vm_leaves_no_vcpu_waiting() {
    let (mut v, vm) = guest(true, true);
    timer(&mut v, vm, 1, 1, NOW + 10);
    assert_eq!(wfx(&mut v, vm, 1, WFI), ExitAction::Park);
    v.stop_vcpu(A, vm, VcpuId(1)).unwrap();
    v.hooks_mut().now = Some(NOW + 10);
    // Its deadline passes while it is stopped: nothing resumes it.
    assert_eq!(wfx(&mut v, vm, 0, WFI), ExitAction::Resume);
    assert!(!running(&v, vm, 1));
    // RUN starts it as ever.
    v.run_vcpu(A, vm, VcpuId(1), exit_guest::RAM_GPA, 0).unwrap();
    assert!(running(&v, vm, 1));
    check_invariants(&v);
}
