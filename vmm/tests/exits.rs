//! Guest exits (section 6 of the rules) on the seL4 model, one
//! group per exit kind: decoding, MMIO on a PL011 and the device table,
//! PSCI over HVC and SMC, stage-2 faults, WFx and other traps, virtual PPIs,
//! exits naming nothing, and a fault storm on one VM that must leave another
//! untouched.
//!
//! Every expected value is computed here from the architecture, not by
//! calling the code under test: fault labels and message layouts from seL4
//! 16.0.0 with MCS (its `libsel4` headers: `sel4/arch/faults.h` and the fault
//! message registers of `VMFault`, `VCPUFault`, `VPPIEvent`), ESR_EL2 fields
//! from the Arm ARM (ISS of a data abort: ISV 24, SAS 23:22, SSE 21, SRT
//! 20:16, SF 15, WnR 6; EC 31:26; IL 25), PSCI function ids and return codes
//! from Arm DEN0022, PL011 registers from the PL011 TRM.

mod common;

use std::collections::BTreeMap;

use common::exit_guest::{
    self, reg, tcb, vcpu_obj, CR, DR, FBRD, FR, FR_RXFE, FR_TXFE, IBRD, IL, IMSC, ISV, LCR_H, PERIPH_ID0, RAM_GPA,
    ROM_GPA, ROM_PAGES, SF, SLOT_PAGES, SSE, UART, UNKNOWN_SYSCALL, USER_EXCEPTION, VCPU_FAULT, VGIC_MAINTENANCE,
    VM_FAULT, VPPI_EVENT, WNR,
};
use common::*;
use vmm::arch::aarch64::esr::Esr;
use vmm::arch::aarch64::fault::{decode, Exit, ExitError, HvcCall, HVC_REPLY_REGS};
use vmm::arch::aarch64::mmio::{Access, MmioError};
use vmm::arch::aarch64::regs::{Reg, TcbReg, VcpuReg};
use vmm::caps::{Rights, Slot};
use vmm::devices::pl011::{self, Console, Pl011};
use vmm::devices::{Device, DeviceMap};
use vmm::kernel::{Invocation, Kernel, KernelError, Refused};
use vmm::registry::Owner;
use vmm::vm::VcpuState;
use vmm::{ExitAction, StopReason};
use vmm_abi::limits::{MAX_DEVICES, MAX_VCPUS, PAGE_SIZE};
use vmm_abi::{ClientId, Errno, VcpuId, VmId};
use vmm_model::Object;

// ---- seL4 fault labels (MCS, AArch64) and message lengths. ----

// The labels: `common::exit_guest`.

// ---- ESR_EL2 (Arm ARM, ESR_EL2 and the data-abort ISS). ----

const EC_UNKNOWN: u64 = 0x00;
const EC_WFX: u64 = 0x01;
const EC_HVC64: u64 = 0x16;
const EC_SMC64: u64 = 0x17;
const EC_SYSREG: u64 = 0x18;
const EC_IABT_LOWER: u64 = 0x20;
const EC_DABT_LOWER: u64 = 0x24;
// IL, ISV, SSE, SF, WNR: `common::exit_guest`.

fn ec(class: u64) -> u64 {
    class << 26
}

/// SAS: log2 of the access size.
fn sas(size: u64) -> u64 {
    let log2 = match size {
        1 => 0,
        2 => 1,
        4 => 2,
        8 => 3,
        _ => panic!("no access of {size} bytes"),
    };
    log2 << 22
}

fn srt(reg: u64) -> u64 {
    reg << 16
}

/// A data abort from the guest with a valid syndrome (a 32-bit instruction).
fn dabt(size: u64, reg: u64, flags: u64) -> u64 {
    ec(EC_DABT_LOWER) | IL | ISV | sas(size) | srt(reg) | flags
}

/// The bytes an access of `size` covers.
fn size_mask(size: u64) -> u64 {
    if size == 8 {
        u64::MAX
    } else {
        (1 << (8 * size)) - 1
    }
}

// ---- PSCI (Arm DEN0022): SMC32 ids 0x84.., SMC64 ids 0xc4... ----

const PSCI_VERSION: u64 = 0x8400_0000;
const CPU_SUSPEND_32: u64 = 0x8400_0001;
const CPU_SUSPEND_64: u64 = 0xc400_0001;
const CPU_OFF: u64 = 0x8400_0002;
const CPU_ON_32: u64 = 0x8400_0003;
const CPU_ON_64: u64 = 0xc400_0003;
const AFFINITY_INFO_32: u64 = 0x8400_0004;
const AFFINITY_INFO_64: u64 = 0xc400_0004;
const MIGRATE_INFO_TYPE: u64 = 0x8400_0006;
const SYSTEM_OFF: u64 = 0x8400_0008;
const SYSTEM_RESET: u64 = 0x8400_0009;
const PSCI_FEATURES: u64 = 0x8400_000a;
const SYSTEM_SUSPEND_64: u64 = 0xc400_000e;
const SYSTEM_RESET2_32: u64 = 0x8400_0012;
/// SMCCC_VERSION (Arm DEN0028), not a PSCI function.
const SMCCC_VERSION: u64 = 0x8000_0000;

const SUCCESS: u64 = 0;
const NOT_SUPPORTED: u64 = -1i64 as u64;
const INVALID_PARAMETERS: u64 = -2i64 as u64;
const ALREADY_ON: u64 = -4i64 as u64;
const INVALID_ADDRESS: u64 = -9i64 as u64;
/// PSCI 1.1: major 1 in bits 31:16, minor 1 in bits 15:0.
const PSCI_1_1: u64 = (1 << 16) | 1;
/// PSTATE on entry: EL1h (M[3:0] = 0b0101) with D, A, I and F masked.
const SPSR_EL1H_DAIF: u64 = (0b1111 << 6) | 0b0101;

// ---- PL011 (PL011 TRM, register summary). ----

// The registers: `common::exit_guest`.

// ---- The guests. ----

/// vCPU 0's x0 at its first RUN (a device tree's address, say).
const BOOT_ARG: u64 = 0x4400_0000;
/// RAM pages behind VM A's and VM B's slots (disjoint).
const A_RAM: u64 = 0;
const B_RAM: u64 = 64;
/// The world's vCPU limit (common::config).
const VCPU_LIMIT: u64 = 4;
/// Wire register numbers (SET_REG): x0-x30, then SP, PC, SPSR.
const WIRE_PC: u32 = 32;
const WIRE_SPSR: u32 = 33;
const WIRE_SCTLR: u32 = 0x100;
/// SCTLR_EL1.M (stage 1 MMU) and SCTLR_EL1.C (data cache).
const SCTLR_M: u64 = 1 << 0;
const SCTLR_C: u64 = 1 << 2;

/// A console that keeps what the guest printed.
#[derive(Debug, Default)]
struct Out(Vec<u8>);

impl Console for Out {
    fn put(&mut self, byte: u8) {
        self.0.push(byte);
    }
}

/// The exit tests' guest (`common::exit_guest`), started with `BOOT_ARG`.
fn guest(v: &mut TestVmm, owner: Owner, ram: u64, vcpus: u32) -> VmId {
    exit_guest::guest(v, owner, ram, vcpus, BOOT_ARG)
}

/// A world with VM A (client A, two vCPUs) and VM B (client B, one vCPU),
/// both running.
fn two_guests() -> (Box<TestVmm>, VmId, VmId) {
    let mut v = world();
    let a = guest(&mut v, A, A_RAM, 2);
    let b = guest(&mut v, B, B_RAM, 1);
    (v, a, b)
}

fn x(v: &TestVmm, vm: VmId, vcpu: u32, n: u8) -> u64 {
    reg(v, vm, vcpu, TcbReg::X(n))
}

fn running(v: &TestVmm, vm: VmId, vcpu: u32) -> bool {
    v.kernel().tcb_running(tcb(v, vm, vcpu))
}

fn state(v: &TestVmm, vm: VmId, vcpu: u32) -> VcpuState {
    v.registry().entry(vm).unwrap().vm().vcpu_state(VcpuId(vcpu))
}

/// The owner of `vm`, to set registers as the client would.
fn owner_of(v: &TestVmm, vm: VmId) -> Owner {
    v.registry().entry(vm).unwrap().owner()
}

/// SET_REG by the VM's owner (wire numbers: 0-30 x, 32 PC).
fn set(v: &mut TestVmm, vm: VmId, vcpu: u32, wire: u32, value: u64) {
    let owner = owner_of(v, vm);
    v.set_reg(owner, vm, VcpuId(vcpu), wire, value).unwrap();
}

/// A value for x`n` whose upper half is non-zero, distinct per register.
fn fill(n: u64) -> u64 {
    0xa5a5_a5a5_0000_0000 | ((n + 1) * 0x0101_0101)
}

/// Sets x0-x30 of vCPU 0 to `fill(n)`.
fn fill_regs(v: &mut TestVmm, vm: VmId) {
    for n in 0..31 {
        set(v, vm, 0, n, fill(u64::from(n)));
    }
}

/// The registers x0-x30 of a vCPU.
fn xregs(v: &TestVmm, vm: VmId, vcpu: u32) -> Vec<u64> {
    (0..31).map(|n| x(v, vm, vcpu, n)).collect()
}

fn exit(v: &mut TestVmm, vm: VmId, vcpu: u32, label: u64, mrs: &[u64]) -> ExitAction {
    v.handle_exit(vm, VcpuId(vcpu), label, mrs, &mut Out::default())
}

fn stop(reason: StopReason, client: u32) -> ExitAction {
    ExitAction::Stop { reason, notify: Some(ClientId(client)) }
}

/// Every vCPU of `vm` is suspended in the kernel and stopped in the registry.
fn assert_all_stopped(v: &TestVmm, vm: VmId) {
    for i in 0..MAX_VCPUS as u32 {
        if state(v, vm, i) != VcpuState::Absent {
            assert_eq!(state(v, vm, i), VcpuState::Stopped, "vCPU {i} not stopped");
            assert!(!running(v, vm, i), "vCPU {i} still running in the kernel");
        }
    }
}

/// Puts VM `vm`'s vCPU 0 back to running after a test stopped it.
fn rerun(v: &mut TestVmm, vm: VmId) {
    let owner = owner_of(v, vm);
    v.run_vcpu(owner, vm, VcpuId(0), RAM_GPA, BOOT_ARG).unwrap();
}

// =====================================================================
// Decoding (rule 6.4: every field validated, never a panic).
// =====================================================================

/// One well-formed message per label, of exactly the length seL4 sends.
fn valid_messages() -> Vec<(u64, Vec<u64>)> {
    vec![
        (VM_FAULT, vec![RAM_GPA + 0x40, UART + FR, 0, dabt(4, 3, 0)]),
        (UNKNOWN_SYSCALL, (0..13).map(|i| 0x100 + i).collect()),
        (USER_EXCEPTION, vec![RAM_GPA, 0x4000_f000, 0x3c5, 7, 9]),
        (VGIC_MAINTENANCE, vec![0]),
        (VCPU_FAULT, vec![ec(EC_WFX) | IL]),
        (VPPI_EVENT, vec![27]),
    ]
}

#[test]
fn decode_vm_fault_data_and_instruction_aborts() {
    let esr = dabt(4, 3, WNR);
    assert_eq!(
        decode(VM_FAULT, &[0x4000_1000, UART + DR, 0, esr]),
        Ok(Exit::DataAbort { pc: 0x4000_1000, gpa: Gpa(UART + DR), esr: Esr(esr) })
    );
    let esr = ec(EC_IABT_LOWER) | IL | 0x07;
    assert_eq!(
        decode(VM_FAULT, &[0x4000_2000, 0x4000_2000, 1, esr]),
        Ok(Exit::InstructionAbort { pc: 0x4000_2000, gpa: Gpa(0x4000_2000), esr: Esr(esr) })
    );
}

#[test]
fn decode_unknown_syscall_is_an_hvc_with_the_registers_its_reply_gives_back() {
    // MRs: x0-x7, FaultIP, SP, LR (ELR_EL1), SPSR, syscall number.
    let mrs = [10, 11, 12, 13, 14, 15, 16, 17, 0x4000_0800, 0x4000_f000, 0xffff_0000_0000_0010, 0x3c5, 17];
    let call = HvcCall { x: [10, 11, 12, 13, 14, 15, 16, 17], pc: 0x4000_0800 };
    assert_eq!(decode(UNKNOWN_SYSCALL, &mrs), Ok(Exit::Hvc(call)));
    // The reply carries x0-x7 and the PC in seL4's order; only x0 and the
    // PC (past the hvc) change.
    assert_eq!(call.returning(99), [99, 11, 12, 13, 14, 15, 16, 17, 0x4000_0804]);
    assert_eq!(HVC_REPLY_REGS, 9);
}

#[test]
fn decode_vcpu_faults_by_exception_class() {
    let smc = ec(EC_SMC64) | IL;
    assert_eq!(decode(VCPU_FAULT, &[smc]), Ok(Exit::Smc { esr: Esr(smc) }));
    let wfi = ec(EC_WFX) | IL;
    assert_eq!(decode(VCPU_FAULT, &[wfi]), Ok(Exit::Wfx { esr: Esr(wfi) }));
    let wfe = ec(EC_WFX) | IL | 1;
    assert_eq!(decode(VCPU_FAULT, &[wfe]), Ok(Exit::Wfx { esr: Esr(wfe) }));
    for class in [EC_UNKNOWN, EC_HVC64, EC_SYSREG, 0x3f] {
        let esr = ec(class) | IL;
        assert_eq!(decode(VCPU_FAULT, &[esr]), Ok(Exit::Trap { esr: Esr(esr) }), "EC {class:#x}");
    }
}

#[test]
fn decode_user_exception_ppi_and_maintenance() {
    // UserException MRs: FaultIP, SP, SPSR, number, code.
    assert_eq!(
        decode(USER_EXCEPTION, &[0x4000_0100, 0x4000_f000, 0x3c5, 7, 9]),
        Ok(Exit::UserException { pc: 0x4000_0100, number: 7, code: 9 })
    );
    for ppi in [16u16, 27, 31] {
        assert_eq!(decode(VPPI_EVENT, &[u64::from(ppi)]), Ok(Exit::Vppi { irq: ppi }));
    }
    for i in [0u8, 5, 63] {
        assert_eq!(decode(VGIC_MAINTENANCE, &[u64::from(i)]), Ok(Exit::VgicMaintenance { index: Some(i) }));
    }
    // seL4 sends -1 when the maintenance interrupt names no list register.
    assert_eq!(decode(VGIC_MAINTENANCE, &[u64::MAX]), Ok(Exit::VgicMaintenance { index: None }));
}

#[test]
fn decode_every_truncation_of_every_label_is_truncated() {
    for (label, full) in valid_messages() {
        assert!(decode(label, &full).is_ok(), "label {label}: the full message must decode");
        for len in 0..full.len() {
            assert_eq!(decode(label, &full[..len]), Err(ExitError::Truncated), "label {label}, {len} MRs");
        }
    }
}

#[test]
fn decode_unknown_labels() {
    // NullFault 0, CapFault 1, DebugException 4, Timeout 5 (no VM raises
    // them to its VMM), and labels seL4 does not have.
    let mrs = [0u64; 13];
    for label in [0, 1, 4, 5, 10, 11, 12, 13, 0x100, u64::MAX] {
        assert_eq!(decode(label, &mrs), Err(ExitError::UnknownLabel), "label {label}");
    }
}

#[test]
fn decode_vm_fault_prefetch_flag_other_than_0_or_1_is_bad_prefetch() {
    for prefetch in [2, 3, 0x100, u64::MAX] {
        for esr in [dabt(4, 0, 0), ec(EC_IABT_LOWER) | IL] {
            assert_eq!(decode(VM_FAULT, &[0, 0, prefetch, esr]), Err(ExitError::BadPrefetch), "{prefetch}");
        }
    }
}

#[test]
fn decode_vm_fault_class_disagreeing_with_prefetch_is_bad_class() {
    let cases = [
        (0, ec(EC_IABT_LOWER) | IL),
        (1, dabt(4, 0, 0)),
        (0, ec(EC_SMC64) | IL),
        (1, ec(EC_WFX) | IL),
        (0, 0),
        (1, u64::MAX),
    ];
    for (prefetch, esr) in cases {
        assert_eq!(decode(VM_FAULT, &[0, 0, prefetch, esr]), Err(ExitError::BadClass), "{prefetch} {esr:#x}");
    }
    // A vCPU fault never carries a stage-2 abort.
    for class in [EC_IABT_LOWER, EC_DABT_LOWER] {
        assert_eq!(decode(VCPU_FAULT, &[ec(class) | IL]), Err(ExitError::BadClass));
    }
}

#[test]
fn decode_ppi_outside_16_to_31_is_bad_ppi() {
    for irq in [0, 15, 32, 1019, 0x1_0000 + 27, u64::MAX] {
        assert_eq!(decode(VPPI_EVENT, &[irq]), Err(ExitError::BadPpi), "{irq}");
    }
}

#[test]
fn decode_list_register_index_64_and_above_is_bad_list_register() {
    for i in [64, 255, 256, u64::MAX - 1] {
        assert_eq!(decode(VGIC_MAINTENANCE, &[i]), Err(ExitError::BadListRegister), "{i}");
    }
}

/// Every undecodable message, with the error it must produce.
fn undecodable_messages() -> Vec<(u64, Vec<u64>, ExitError)> {
    let mut all = Vec::new();
    for (label, full) in valid_messages() {
        for len in 0..full.len() {
            all.push((label, full[..len].to_vec(), ExitError::Truncated));
        }
    }
    all.push((0, vec![0; 13], ExitError::UnknownLabel));
    all.push((5, vec![0; 13], ExitError::UnknownLabel));
    all.push((u64::MAX, vec![], ExitError::UnknownLabel));
    all.push((VM_FAULT, vec![RAM_GPA, RAM_GPA, 2, dabt(4, 0, 0)], ExitError::BadPrefetch));
    all.push((VM_FAULT, vec![RAM_GPA, RAM_GPA, 0, ec(EC_IABT_LOWER) | IL], ExitError::BadClass));
    all.push((VCPU_FAULT, vec![dabt(4, 0, 0)], ExitError::BadClass));
    all.push((VPPI_EVENT, vec![15], ExitError::BadPpi));
    all.push((VPPI_EVENT, vec![32], ExitError::BadPpi));
    all.push((VGIC_MAINTENANCE, vec![64], ExitError::BadListRegister));
    all
}

#[test]
fn undecodable_message_stops_only_that_vm_with_bad_message() {
    let (mut v, a, b) = two_guests();
    let b_before = view(&v, b);
    for (label, mrs, error) in undecodable_messages() {
        assert_eq!(exit(&mut v, a, 0, label, &mrs), stop(StopReason::BadMessage(error), 1), "{label} {mrs:x?}");
        assert_all_stopped(&v, a);
        assert!(running(&v, b, 0), "VM B's vCPU was stopped");
        assert_eq!(view(&v, b), b_before, "VM B changed");
        check_invariants(&v);
        rerun(&mut v, a);
    }
}

// =====================================================================
// MMIO on a PL011 (rules 6.2 and 6.9).
// =====================================================================

const MMIO_PC: u64 = RAM_GPA + 0x1230;

/// A data abort of vCPU 0 at `UART + offset` with syndrome `esr`, the TCB's
/// PC at the faulting instruction as seL4 leaves it.
fn mmio(v: &mut TestVmm, vm: VmId, offset: u64, esr: u64, out: &mut Out) -> ExitAction {
    set(v, vm, 0, WIRE_PC, MMIO_PC);
    v.handle_exit(vm, VcpuId(0), VM_FAULT, &[MMIO_PC, UART + offset, 0, esr], out)
}

/// A store of `value` from x1 (or w1) to the UART register at `offset`.
fn store(v: &mut TestVmm, vm: VmId, offset: u64, size: u64, value: u64) {
    set(v, vm, 0, 1, value);
    let wide = if size == 8 { SF } else { 0 };
    assert_eq!(mmio(v, vm, offset, dabt(size, 1, WNR | wide), &mut Out::default()), ExitAction::Resume);
}

/// A 32-bit load (LDR w2) of the UART register at `offset`.
fn load(v: &mut TestVmm, vm: VmId, offset: u64) -> u64 {
    assert_eq!(mmio(v, vm, offset, dabt(4, 2, 0), &mut Out::default()), ExitAction::Resume);
    x(v, vm, 0, 2)
}

/// The UART's register at `offset`, read from its state in the registry.
fn uart_reg(v: &TestVmm, vm: VmId, offset: u64) -> u64 {
    let e = v.registry().entry(vm).unwrap();
    let region = e.vm().devices().iter().find(|r| r.base == Gpa(UART)).unwrap();
    match region.device {
        Device::Pl011(u) => u.read(offset),
        other => panic!("not the UART: {other:?}"),
    }
}

#[test]
fn mmio_load_of_each_size_into_each_register_zero_extends_and_advances_the_pc() {
    // LDRB/LDRH/LDR Wt (SF=0) and LDR Xt (SF=1): the register is written
    // with the accessed bytes zero-extended; writing a W register clears
    // bits 63:32. Nothing else changes; the PC moves past the 4-byte
    // instruction (IL=1).
    let (mut v, a, _) = two_guests();
    store(&mut v, a, IBRD, 2, 0xa55a);
    for size in [1, 2, 4, 8] {
        for wide in [false, true] {
            if size == 8 && !wide {
                continue;
            }
            for rt in 0..31u64 {
                fill_regs(&mut v, a);
                let esr = dabt(size, rt, if wide { SF } else { 0 });
                let mut out = Out::default();
                assert_eq!(mmio(&mut v, a, IBRD, esr, &mut out), ExitAction::Resume);
                let mut want: Vec<u64> = (0..31).map(fill).collect();
                want[rt as usize] = 0xa55a & size_mask(size);
                assert_eq!(xregs(&v, a, 0), want, "size {size} wide {wide} x{rt}");
                assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC + 4);
                assert!(out.0.is_empty());
            }
        }
    }
    check_invariants(&v);
}

#[test]
fn mmio_store_of_each_size_from_each_register_writes_the_low_bytes() {
    // STRB/STRH/STR Wt and STR Xt store the low `size` bytes of the
    // register; IBRD keeps 16 bits. Registers do not change.
    let (mut v, a, _) = two_guests();
    let mut i = 0u64;
    for size in [1, 2, 4, 8] {
        for wide in [false, true] {
            if size == 8 && !wide {
                continue;
            }
            for rt in 0..31u64 {
                i += 1;
                fill_regs(&mut v, a);
                // Distinct low 16 bits each time, so a store that did not
                // happen shows.
                let value = 0x8877_6655_4433_0000 | (i << 8) | (i ^ 0xa5);
                set(&mut v, a, 0, rt as u32, value);
                let esr = dabt(size, rt, WNR | if wide { SF } else { 0 });
                assert_eq!(mmio(&mut v, a, IBRD, esr, &mut Out::default()), ExitAction::Resume);
                assert_eq!(uart_reg(&v, a, IBRD), value & size_mask(size) & 0xffff, "size {size} x{rt}");
                let mut want: Vec<u64> = (0..31).map(fill).collect();
                want[rt as usize] = value;
                assert_eq!(xregs(&v, a, 0), want, "a store changed a register");
                assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC + 4);
            }
        }
    }
    check_invariants(&v);
}

#[test]
fn mmio_load_into_xzr_is_discarded_for_every_size() {
    // SRT 31 of a load is the zero register: the value is discarded.
    let (mut v, a, _) = two_guests();
    store(&mut v, a, IBRD, 2, 0xa55a);
    for size in [1, 2, 4, 8] {
        fill_regs(&mut v, a);
        let wide = if size == 8 { SF } else { 0 };
        assert_eq!(mmio(&mut v, a, IBRD, dabt(size, 31, wide), &mut Out::default()), ExitAction::Resume);
        assert_eq!(xregs(&v, a, 0), (0..31).map(fill).collect::<Vec<_>>(), "size {size}");
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC + 4);
    }
}

#[test]
fn mmio_store_from_xzr_stores_zero() {
    // SRT 31 of a store is the zero register: 0 is stored, whatever the
    // registers hold.
    let (mut v, a, _) = two_guests();
    fill_regs(&mut v, a);
    for size in [1, 2, 4, 8] {
        store(&mut v, a, IBRD, 2, 0x1234);
        fill_regs(&mut v, a);
        let wide = if size == 8 { SF } else { 0 };
        assert_eq!(mmio(&mut v, a, IBRD, dabt(size, 31, WNR | wide), &mut Out::default()), ExitAction::Resume);
        assert_eq!(uart_reg(&v, a, IBRD), 0, "size {size}");
    }
    let mut out = Out::default();
    assert_eq!(mmio(&mut v, a, DR, dabt(1, 31, WNR), &mut out), ExitAction::Resume);
    assert_eq!(out.0, [0u8]);
}

#[test]
fn mmio_load_into_a_w_register_clears_its_upper_half() {
    let (mut v, a, _) = two_guests();
    for (size, offset, device) in [(1, FR, 0x90), (2, CR, 0x0301), (4, PERIPH_ID0, 0x11)] {
        set(&mut v, a, 0, 7, u64::MAX);
        assert_eq!(mmio(&mut v, a, offset, dabt(size, 7, 0), &mut Out::default()), ExitAction::Resume);
        assert_eq!(x(&v, a, 0, 7), device, "LDR{size} w7");
    }
}

/// The register after a sign-extending load of `size` bytes holding `raw`,
/// by the Arm rules: sign-extend to the register's width; a W register's
/// bits 63:32 are zero.
fn sign_extended(size: u64, wide: bool, raw: u64) -> u64 {
    match (size, wide) {
        (1, false) => (raw as u8 as i8) as i32 as u32 as u64,
        (1, true) => (raw as u8 as i8) as i64 as u64,
        (2, false) => (raw as u16 as i16) as i32 as u32 as u64,
        (2, true) => (raw as u16 as i16) as i64 as u64,
        (4, true) => (raw as u32 as i32) as i64 as u64,
        _ => panic!("no sign-extending load of {size} bytes into {}", if wide { "X" } else { "W" }),
    }
}

#[test]
fn mmio_sign_extending_loads_ldrsb_ldrsh_ldrsw_into_w_and_x() {
    let (mut v, a, _) = two_guests();
    // FR reads 0x90 (negative as a byte); IBRD holds what was stored.
    let cases: Vec<(u64, u64, u64)> = vec![
        // (offset, size, device value)
        (FR, 1, 0x90),
        (PERIPH_ID0, 1, 0x11),
        (PERIPH_ID0 + 0x1c, 1, 0xb1),
        (IBRD, 1, 0x8001),
        (IBRD, 1, 0x0080),
        (IBRD, 2, 0x8001),
        (IBRD, 2, 0x7fff),
        (IBRD, 2, 0xffff),
        (IBRD, 4, 0x8001),
    ];
    for (offset, size, device) in cases {
        if offset == IBRD {
            store(&mut v, a, IBRD, 2, device);
        }
        for wide in [false, true] {
            if size == 4 && !wide {
                continue; // LDRSW has no W form
            }
            set(&mut v, a, 0, 5, 0x5555_5555_5555_5555);
            let esr = dabt(size, 5, SSE | if wide { SF } else { 0 });
            assert_eq!(mmio(&mut v, a, offset, esr, &mut Out::default()), ExitAction::Resume);
            let want = sign_extended(size, wide, device & size_mask(size));
            assert_eq!(x(&v, a, 0, 5), want, "LDRS{size} {} from {offset:#x} holding {device:#x}", wide);
            assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC + 4);
        }
    }
    // Spot values, worked by hand.
    assert_eq!(sign_extended(1, false, 0x90), 0xffff_ff90);
    assert_eq!(sign_extended(1, true, 0x90), 0xffff_ffff_ffff_ff90);
    assert_eq!(sign_extended(2, false, 0x8001), 0xffff_8001);
    assert_eq!(sign_extended(4, true, 0x8000_0000), 0xffff_ffff_8000_0000);
}

#[test]
fn mmio_pc_advances_by_2_for_a_16_bit_instruction() {
    // IL=0: a 16-bit instruction; the PC moves by 2.
    let (mut v, a, _) = two_guests();
    let load16 = ec(EC_DABT_LOWER) | ISV | sas(4) | srt(3);
    assert_eq!(mmio(&mut v, a, FR, load16, &mut Out::default()), ExitAction::Resume);
    assert_eq!(x(&v, a, 0, 3), FR_TXFE | FR_RXFE);
    assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC + 2);
    let store16 = ec(EC_DABT_LOWER) | ISV | sas(1) | srt(3) | WNR;
    set(&mut v, a, 0, 3, u64::from(b'k'));
    let mut out = Out::default();
    assert_eq!(mmio(&mut v, a, DR, store16, &mut out), ExitAction::Resume);
    assert_eq!(out.0, b"k");
    assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC + 2);
}

#[test]
fn pl011_data_register_writes_reach_the_console_byte_by_byte() {
    let (mut v, a, b) = two_guests();
    let mut out = Out::default();
    let text = b"Hello from the guest\n";
    for (i, byte) in text.iter().enumerate() {
        let rt = (i % 31) as u64;
        set(&mut v, a, 0, rt as u32, 0xffff_ff00 | u64::from(*byte));
        assert_eq!(mmio(&mut v, a, DR, dabt(1, rt, WNR), &mut out), ExitAction::Resume);
    }
    assert_eq!(out.0, text);
    // A wider store transmits its low byte, once (DR holds 8 data bits).
    set(&mut v, a, 0, 4, 0x4242_4242_4242_4241);
    assert_eq!(mmio(&mut v, a, DR, dabt(8, 4, WNR | SF), &mut out), ExitAction::Resume);
    assert_eq!(out.0.len(), text.len() + 1);
    assert_eq!(out.0.last(), Some(&b'A'));
    // B's UART, a separate device, printed nothing and kept its state.
    assert_eq!(uart_reg(&v, b, IBRD), 0);
}

#[test]
fn pl011_flag_register_reads_tx_fifo_empty_and_rx_fifo_empty() {
    // FR: TXFE (bit 7) and RXFE (bit 4) set; BUSY (3), RXFF (6), TXFF (5)
    // clear: the guest may always transmit and never has input.
    let (mut v, a, _) = two_guests();
    assert_eq!(load(&mut v, a, FR), 0x90);
    assert_eq!(FR_TXFE | FR_RXFE, 0x90);
    // And the data register reads 0 (no input).
    assert_eq!(load(&mut v, a, DR), 0);
}

#[test]
fn pl011_id_registers_identify_an_arm_pl011_primecell() {
    // PeriphID0-3 at 0xfe0-0xfec, PCellID0-3 at 0xff0-0xffc, 8 bits each.
    let (mut v, a, _) = two_guests();
    let id: Vec<u64> = (0..8).map(|i| load(&mut v, a, PERIPH_ID0 + 4 * i)).collect();
    for (i, b) in id.iter().enumerate() {
        assert!(*b <= 0xff, "ID register {i} has bits above 7: {b:#x}");
    }
    // Part number 0x011 (PeriphID0, PeriphID1[3:0]).
    assert_eq!(((id[1] & 0xf) << 8) | id[0], 0x011);
    // Designer 0x41, ARM (PeriphID1[7:4], PeriphID2[3:0]).
    assert_eq!(((id[2] & 0xf) << 4) | (id[1] >> 4), 0x41);
    // Configuration 0 (PeriphID3).
    assert_eq!(id[3], 0x00);
    // PrimeCell identification 0xB105F00D (PCellID3..0).
    assert_eq!((id[7] << 24) | (id[6] << 16) | (id[5] << 8) | id[4], 0xb105_f00d);
}

#[test]
fn pl011_control_registers_read_back_within_their_field_widths() {
    // IBRD 16 bits, FBRD 6 bits, LCR_H 8 bits, CR 16 bits, IMSC 11 bits.
    let (mut v, a, b) = two_guests();
    let cases = [
        (IBRD, 0xdead_1234, 0x1234),
        (FBRD, 0xff, 0x3f),
        (LCR_H, 0x1_70, 0x70),
        (CR, 0xffff_0301, 0x0301),
        (IMSC, 0xffff, 0x7ff),
    ];
    for (offset, written, read) in cases {
        store(&mut v, a, offset, 4, written);
        assert_eq!(load(&mut v, a, offset), read, "register {offset:#x}");
    }
    // Writing one register left the others alone.
    for (offset, _, read) in cases {
        assert_eq!(load(&mut v, a, offset), read, "register {offset:#x} after the others");
    }
    // VM B's UART is another device.
    assert_eq!(uart_reg(&v, b, FBRD), 0);
    assert_eq!(uart_reg(&v, b, IMSC), 0);
}

#[test]
fn mmio_without_a_valid_syndrome_stops_the_vm_with_no_syndrome() {
    // ISV=0: size, register and direction are unknown; the VMM cannot
    // emulate the access without decoding the instruction.
    let (mut v, a, b) = two_guests();
    let b_before = view(&v, b);
    for esr in [ec(EC_DABT_LOWER) | IL | WNR, ec(EC_DABT_LOWER) | IL, ec(EC_DABT_LOWER) | IL | sas(4) | srt(2) | WNR] {
        let mut out = Out::default();
        let want = stop(StopReason::Mmio { gpa: Gpa(UART + DR), error: MmioError::NoSyndrome }, 1);
        assert_eq!(mmio(&mut v, a, DR, esr, &mut out), want, "{esr:#x}");
        assert!(out.0.is_empty());
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC, "the PC moved past an access that was not emulated");
        assert_all_stopped(&v, a);
        assert_eq!(view(&v, b), b_before);
        rerun(&mut v, a);
    }
}

#[test]
fn mmio_with_an_inconsistent_syndrome_stops_the_vm_with_bad_syndrome() {
    // Combinations no load or store produces: a sign-extending store, an
    // 8-byte access with a W register, sign extension of 8 bytes, LDRSW into
    // a W register.
    let (mut v, a, b) = two_guests();
    let b_before = view(&v, b);
    let cases = [
        dabt(1, 1, WNR | SSE),
        dabt(2, 1, WNR | SSE | SF),
        dabt(8, 1, 0),
        dabt(8, 1, WNR),
        dabt(8, 1, SSE | SF),
        dabt(4, 1, SSE),
    ];
    for esr in cases {
        set(&mut v, a, 0, 1, 0x41);
        let mut out = Out::default();
        let want = stop(StopReason::Mmio { gpa: Gpa(UART + DR), error: MmioError::BadSyndrome }, 1);
        assert_eq!(mmio(&mut v, a, DR, esr, &mut out), want, "{esr:#x}");
        assert!(out.0.is_empty(), "an access that was refused reached the device");
        assert_eq!(x(&v, a, 0, 1), 0x41);
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC);
        assert_all_stopped(&v, a);
        assert_eq!(view(&v, b), b_before);
        rerun(&mut v, a);
    }
}

#[test]
fn access_decode_and_load_result_for_narrow_and_wide_values() {
    // Access is the unit the exit uses; the PL011 holds at most 16 bits, so
    // 32- and 64-bit values are checked here.
    let gpa = 0x1234;
    let ldr_x = Access::decode(Gpa(gpa), Esr(dabt(8, 4, SF))).unwrap();
    assert_eq!(
        ldr_x,
        Access { gpa: Gpa(gpa), size: 8, write: false, reg: Some(4), sign_extend: false, wide: true },
        "LDR x4"
    );
    assert_eq!(ldr_x.load_result(0xfedc_ba98_7654_3210), 0xfedc_ba98_7654_3210);
    let ldr_w = Access::decode(Gpa(gpa), Esr(dabt(4, 0, 0))).unwrap();
    assert_eq!(ldr_w.load_result(0xfedc_ba98_7654_3210), 0x7654_3210);
    let ldrsw = Access::decode(Gpa(gpa), Esr(dabt(4, 9, SSE | SF))).unwrap();
    assert_eq!(ldrsw.load_result(0x0000_0001_8000_0000), 0xffff_ffff_8000_0000);
    assert_eq!(ldrsw.load_result(0x7fff_ffff), 0x7fff_ffff);
    let ldrsh_w = Access::decode(Gpa(gpa), Esr(dabt(2, 9, SSE))).unwrap();
    assert_eq!(ldrsh_w.load_result(0xffff_ffff_ffff_8000), 0xffff_8000);
    let str_xzr = Access::decode(Gpa(gpa), Esr(dabt(8, 31, WNR | SF))).unwrap();
    assert_eq!((str_xzr.reg, str_xzr.write), (None, true));
    let strh = Access::decode(Gpa(gpa), Esr(dabt(2, 30, WNR))).unwrap();
    assert_eq!(strh.store_value(0xffff_ffff_1234_5678), 0x5678);
    assert_eq!(Access::decode(Gpa(gpa), Esr(ec(EC_DABT_LOWER) | IL | sas(4))), Err(MmioError::NoSyndrome));
}

// ---- The device table (rule 6.9). ----

#[test]
fn device_overlapping_another_is_refused_with_eexist_and_changes_nothing() {
    let (mut v, a, _) = two_guests();
    let pl = || Device::Pl011(Pl011::new());
    for (base, size) in [
        (UART, pl011::SIZE),
        (UART, 1),
        (UART + pl011::SIZE - 1, 1),
        (UART - 1, 2),
        (UART - pl011::SIZE, 3 * pl011::SIZE),
        (UART + 0x800, 0x100),
        (0, u64::MAX),
    ] {
        fails_unchanged(&mut v, Errno::EEXIST, |v| v.register_device(A, a, Gpa(base), size, pl()));
    }
    // Adjacent on either side is fine.
    v.register_device(A, a, Gpa(UART - pl011::SIZE), pl011::SIZE, pl()).unwrap();
    v.register_device(A, a, Gpa(UART + pl011::SIZE), pl011::SIZE, pl()).unwrap();
    // Now overlapping the neighbours is refused too.
    fails_unchanged(&mut v, Errno::EEXIST, |v| v.register_device(A, a, Gpa(UART + 2 * pl011::SIZE - 1), 1, pl()));
    fails_unchanged(&mut v, Errno::EEXIST, |v| v.register_device(A, a, Gpa(UART - pl011::SIZE - 1), 2, pl()));
    check_invariants(&v);
}

#[test]
fn device_with_an_empty_or_wrapping_range_is_refused_with_einval() {
    let (mut v, a, _) = two_guests();
    let pl = || Device::Pl011(Pl011::new());
    for (base, size) in [(0x1000_0000, 0), (0, 0), (u64::MAX, 2), (u64::MAX - 0xfff, 0x2000), (1, u64::MAX)] {
        fails_unchanged(&mut v, Errno::EINVAL, |v| v.register_device(A, a, Gpa(base), size, pl()));
    }
}

#[test]
fn device_table_full_is_refused_with_enospc() {
    let (mut v, a, _) = two_guests();
    let pl = || Device::Pl011(Pl011::new());
    // The UART is already there; fill the rest.
    for i in 1..MAX_DEVICES as u64 {
        v.register_device(A, a, Gpa(0x2000_0000 + i * 0x10_0000), pl011::SIZE, pl()).unwrap();
    }
    fails_unchanged(&mut v, Errno::ENOSPC, |v| v.register_device(A, a, Gpa(0x3000_0000), pl011::SIZE, pl()));
    assert_eq!(v.registry().entry(a).unwrap().vm().devices().iter().count(), MAX_DEVICES);
}

#[test]
fn device_registration_needs_the_owner() {
    let (mut v, a, _) = two_guests();
    let pl = || Device::Pl011(Pl011::new());
    fails_unchanged(&mut v, Errno::EPERM, |v| v.register_device(B, a, Gpa(0x3000_0000), pl011::SIZE, pl()));
    fails_unchanged(&mut v, Errno::EPERM, |v| {
        v.register_device(Owner::Internal, a, Gpa(0x3000_0000), pl011::SIZE, pl())
    });
    fails_unchanged(&mut v, Errno::ENOENT, |v| v.register_device(A, VmId(999), Gpa(0x3000_0000), pl011::SIZE, pl()));
}

#[test]
fn device_lookup_at_first_and_last_byte_and_just_outside() {
    // Through exits: a byte load at the first and last byte of the window is
    // emulated; one byte either side is outside every slot and device.
    let (mut v, a, _) = two_guests();
    for offset in [0, pl011::SIZE - 1] {
        assert_eq!(mmio(&mut v, a, offset, dabt(1, 0, 0), &mut Out::default()), ExitAction::Resume, "{offset:#x}");
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC + 4);
    }
    for gpa in [UART - 1, UART + pl011::SIZE] {
        set(&mut v, a, 0, WIRE_PC, MMIO_PC);
        let action = exit(&mut v, a, 0, VM_FAULT, &[MMIO_PC, gpa, 0, dabt(1, 0, 0)]);
        assert_eq!(action, stop(StopReason::Unmapped { gpa: Gpa(gpa) }, 1), "{gpa:#x}");
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC);
        rerun(&mut v, a);
    }

    // The table itself, with several regions, two of them adjacent: every
    // probe finds the region a linear scan of the list finds, at the same
    // offset (devices told apart by their IBRD).
    let mut map = DeviceMap::default();
    let regions: [(u64, u64); 4] = [(0x3000, 0x10), (0x1000, 0x100), (0x2000, 0x1000), (0x2000_0000, 1)];
    for (k, (base, size)) in regions.iter().enumerate() {
        let mut u = Pl011::new();
        u.write(IBRD, k as u64 + 1, &mut Out::default());
        map.register(Gpa(*base), *size, Device::Pl011(u)).unwrap();
    }
    let reference = |gpa: u64| {
        regions
            .iter()
            .enumerate()
            .find(|(_, (b, s))| gpa >= *b && gpa - b < *s)
            .map(|(k, (b, _))| (k as u64 + 1, gpa - b))
    };
    let mut probes = vec![0, u64::MAX];
    for (base, size) in regions {
        probes.extend([base - 1, base, base + 1, base + size - 1, base + size]);
    }
    for gpa in probes {
        let found = map.find_mut(Gpa(gpa)).map(|(dev, off)| match dev {
            Device::Pl011(u) => (u.read(IBRD), off),
            other => panic!("not a UART: {other:?}"),
        });
        assert_eq!(found, reference(gpa), "{gpa:#x}");
    }
    // The probes include both kinds of miss and the shared edge.
    assert_eq!(reference(0x0fff), None);
    assert_eq!(reference(0x3010), None);
    assert_eq!(reference(0x2fff), Some((3, 0xfff)));
    assert_eq!(reference(0x3000), Some((1, 0)));
    let bases: Vec<u64> = map.iter().map(|r| r.base.0).collect();
    assert_eq!(bases, [0x1000, 0x2000, 0x3000, 0x2000_0000], "regions are kept sorted");
}

// =====================================================================
// PSCI over HVC and SMC (rules 6.3, 6.5 and 6.6).
// =====================================================================

const HVC_PC: u64 = RAM_GPA + 0x800;
const HVC_SP: u64 = RAM_GPA + 0xf000;
const HVC_LR: u64 = 0xffff_8000_1234_5678;
const HVC_SPSR: u64 = 0x3c5;
const SMC_PC: u64 = RAM_GPA + 0x900;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Conduit {
    Hvc,
    Smc,
}

/// What a PSCI call came to.
#[derive(Debug, PartialEq)]
enum Psci {
    /// It returned this in x0 with the PC past the call and the other
    /// registers as they were.
    Returned(u64),
    /// Anything else: this action.
    Other(ExitAction),
}

/// A PSCI call with x0-x3 = `args` from vCPU `vcpu` of `vm`.
///
/// HVC arrives as UnknownSyscall with x0-x7, PC, SP, LR, SPSR and the
/// syscall number (x7) in 13 MRs, and the reply carries the registers back.
/// SMC arrives as a VCPUFault with EC 0x17; the arguments are in the TCB and
/// the result goes there, with the PC moved past the `smc`.
fn psci(v: &mut TestVmm, vm: VmId, vcpu: u32, conduit: Conduit, args: [u64; 4]) -> Psci {
    let upper = [0x44, 0x55, 0x66, 0x77];
    match conduit {
        Conduit::Hvc => {
            let mut mrs = [0u64; 13];
            mrs[..4].copy_from_slice(&args);
            mrs[4..8].copy_from_slice(&upper);
            mrs[8..12].copy_from_slice(&[HVC_PC, HVC_SP, HVC_LR, HVC_SPSR]);
            mrs[12] = upper[3]; // seL4 takes the guest's x7 as the syscall number
            match exit(v, vm, vcpu, UNKNOWN_SYSCALL, &mrs) {
                ExitAction::ResumeWith(regs) => {
                    // Whatever x0 is, x1-x7 come back as they went, with the
                    // PC past the `hvc`; SP, ELR and SPSR are not in the
                    // reply, so seL4 leaves them alone.
                    let [_, x1, x2, x3] = args;
                    let [x4, x5, x6, x7] = upper;
                    let want = [regs[0], x1, x2, x3, x4, x5, x6, x7, HVC_PC + 4];
                    if regs == want {
                        Psci::Returned(regs[0])
                    } else {
                        Psci::Other(ExitAction::ResumeWith(regs))
                    }
                }
                other => Psci::Other(other),
            }
        }
        Conduit::Smc => {
            for (i, a) in args.iter().enumerate() {
                set(v, vm, vcpu, i as u32, *a);
            }
            set(v, vm, vcpu, WIRE_PC, SMC_PC);
            match exit(v, vm, vcpu, VCPU_FAULT, &[ec(EC_SMC64) | IL]) {
                ExitAction::Resume
                    if reg(v, vm, vcpu, TcbReg::Pc) == SMC_PC + 4
                        && (1..4).all(|i| x(v, vm, vcpu, i) == args[usize::from(i)]) =>
                {
                    Psci::Returned(x(v, vm, vcpu, 0))
                }
                other => Psci::Other(other),
            }
        }
    }
}

/// Makes a call that must return `want` and change nothing else: the
/// whole VMM, model included, is as before but for the SMC's x0 and PC.
fn returns_unchanged(v: &mut TestVmm, vm: VmId, vcpu: u32, conduit: Conduit, args: [u64; 4], want: u64) {
    if conduit == Conduit::Smc {
        // Set the arguments first, so that they are part of "before".
        for (i, a) in args.iter().enumerate() {
            set(v, vm, vcpu, i as u32, *a);
        }
        set(v, vm, vcpu, WIRE_PC, SMC_PC);
    }
    let mut expected = v.clone();
    if conduit == Conduit::Smc {
        let t = expected.registry().entry(vm).unwrap().vm().vcpu_caps(VcpuId(vcpu)).unwrap().0;
        expected.kernel_mut().tcb_write_register(t, TcbReg::X(0), want).unwrap();
        expected.kernel_mut().tcb_write_register(t, TcbReg::Pc, SMC_PC + 4).unwrap();
    }
    assert_eq!(psci(v, vm, vcpu, conduit, args), Psci::Returned(want), "{conduit:?} {args:x?}");
    assert!(*v == expected, "{conduit:?} {args:x?} changed more than x0 and the PC");
    check_invariants(v);
}

#[test]
fn psci_version_is_1_1_over_hvc_and_smc() {
    let (mut v, a, _) = two_guests();
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        returns_unchanged(&mut v, a, 0, conduit, [PSCI_VERSION, 0, 0, 0], PSCI_1_1);
    }
}

#[test]
fn psci_features_is_0_for_each_implemented_function_and_not_supported_otherwise() {
    let (mut v, a, _) = two_guests();
    let implemented = [
        PSCI_VERSION,
        CPU_SUSPEND_32,
        CPU_SUSPEND_64,
        CPU_OFF,
        CPU_ON_32,
        CPU_ON_64,
        AFFINITY_INFO_32,
        AFFINITY_INFO_64,
        SYSTEM_OFF,
        SYSTEM_RESET,
        PSCI_FEATURES,
    ];
    let not = [
        MIGRATE_INFO_TYPE,
        SYSTEM_SUSPEND_64,
        SYSTEM_RESET2_32,
        SMCCC_VERSION,
        0xc400_0008, // SYSTEM_OFF has no SMC64 id
        0xc400_0002, // nor has CPU_OFF
        0,
        0xffff_ffff,
    ];
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        for f in implemented {
            returns_unchanged(&mut v, a, 0, conduit, [PSCI_FEATURES, f, 0, 0], SUCCESS);
            // PSCI_FEATURES is an SMC32 call: only w1 is its argument.
            returns_unchanged(&mut v, a, 0, conduit, [PSCI_FEATURES, f | 0xdead_0000_0000_0000, 0, 0], SUCCESS);
        }
        for f in not {
            returns_unchanged(&mut v, a, 0, conduit, [PSCI_FEATURES, f, 0, 0], NOT_SUPPORTED);
        }
    }
}

#[test]
fn psci_cpu_on_starts_the_target_at_entry_with_the_context_id_at_el1h() {
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        for fid in [CPU_ON_64, CPU_ON_32] {
            let mut v = world();
            let a = guest(&mut v, A, A_RAM, 3);
            let b = guest(&mut v, B, B_RAM, 1);
            let b_before = view(&v, b);
            let entry = RAM_GPA + 0x2000;
            // A 64-bit context id for the SMC64 call; the SMC32 call takes w3.
            let ctx = 0xffff_8000_c0ff_ee00;
            let want_ctx = if fid == CPU_ON_64 { ctx } else { ctx & 0xffff_ffff };
            // Whatever PSTATE the target last had (here EL1h with interrupts
            // unmasked), it enters at EL1h with DAIF masked.
            set(&mut v, a, 2, WIRE_SPSR, 0x5);
            set(&mut v, a, 2, 0, 0x1111);
            assert!(!running(&v, a, 2));
            assert_eq!(psci(&mut v, a, 0, conduit, [fid, 2, entry, ctx]), Psci::Returned(SUCCESS), "{conduit:?}");
            assert_eq!(state(&v, a, 2), VcpuState::Running);
            assert!(running(&v, a, 2), "the target was not resumed");
            assert_eq!(reg(&v, a, 2, TcbReg::Pc), entry);
            assert_eq!(x(&v, a, 2, 0), want_ctx);
            assert_eq!(reg(&v, a, 2, TcbReg::Spsr), SPSR_EL1H_DAIF);
            // The caller goes on; vCPU 1 and VM B are untouched.
            assert!(running(&v, a, 0));
            assert_eq!(state(&v, a, 1), VcpuState::Stopped);
            assert!(!running(&v, a, 1));
            assert_eq!(view(&v, b), b_before);
            check_invariants(&v);
        }
    }
}

#[test]
fn psci_cpu_on_32_ignores_the_upper_halves_of_its_arguments() {
    // An SMC32 call takes w1-w3: bits 63:32 of x1-x3 are not part of it.
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let mut v = world();
        let a = guest(&mut v, A, A_RAM, 2);
        let entry = RAM_GPA + 0x3000;
        let args = [CPU_ON_32, (0xffff_0000 << 32) | 1, (0x7 << 32) | entry, (0x1 << 32) | 0x1234_5678];
        assert_eq!(psci(&mut v, a, 0, conduit, args), Psci::Returned(SUCCESS), "{conduit:?}");
        assert_eq!(reg(&v, a, 1, TcbReg::Pc), entry);
        assert_eq!(x(&v, a, 1, 0), 0x1234_5678);
        assert!(running(&v, a, 1));
    }
}

#[test]
fn psci_cpu_on_a_running_target_is_already_on() {
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let (mut v, a, _) = two_guests();
        // Itself.
        returns_unchanged(&mut v, a, 0, conduit, [CPU_ON_64, 0, RAM_GPA, 0], ALREADY_ON);
        // Another vCPU already started.
        assert_eq!(psci(&mut v, a, 0, conduit, [CPU_ON_64, 1, RAM_GPA, 7]), Psci::Returned(SUCCESS));
        returns_unchanged(&mut v, a, 0, conduit, [CPU_ON_64, 1, RAM_GPA + 0x100, 8], ALREADY_ON);
        returns_unchanged(&mut v, a, 1, conduit, [CPU_ON_32, 0, RAM_GPA, 0], ALREADY_ON);
        assert_eq!(x(&v, a, 1, 0), if conduit == Conduit::Hvc { 7 } else { ALREADY_ON });
    }
}

#[test]
fn psci_cpu_on_bad_targets_are_invalid_parameters_and_change_nothing() {
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let (mut v, a, _) = two_guests();
        let targets = [
            2,                // not created
            3,                // not created, below the limit
            VCPU_LIMIT,       // the limit
            MAX_VCPUS as u64, // past the table
            0xff,             // the largest Aff0
            0x100,            // Aff1 = 1, Aff0 = 0
            0x101,            // Aff1 = 1, Aff0 = 1 (vCPU 1 exists)
            0x1_0001,         // Aff2
            (1 << 32) | 1,    // Aff3
            1 << 24,          // bit 24 (MT, not an affinity field)
            u64::MAX,
        ];
        for target in targets {
            returns_unchanged(&mut v, a, 0, conduit, [CPU_ON_64, target, RAM_GPA, 0], INVALID_PARAMETERS);
        }
        // The 32-bit call too (its target is w1).
        returns_unchanged(&mut v, a, 0, conduit, [CPU_ON_32, 0x101, RAM_GPA, 0], INVALID_PARAMETERS);
        returns_unchanged(&mut v, a, 0, conduit, [CPU_ON_32, 2, RAM_GPA, 0], INVALID_PARAMETERS);
    }
}

#[test]
fn psci_cpu_on_entry_outside_every_memslot_is_invalid_address() {
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let (mut v, a, _) = two_guests();
        for entry in [0, RAM_GPA - 4, RAM_GPA + SLOT_PAGES * PAGE_SIZE, UART, u64::MAX - 3] {
            returns_unchanged(&mut v, a, 0, conduit, [CPU_ON_64, 1, entry, 0], INVALID_ADDRESS);
        }
        // The last instruction of the slot and the READONLY slot are memory.
        assert_eq!(
            psci(&mut v, a, 0, conduit, [CPU_ON_64, 1, ROM_GPA + ROM_PAGES * PAGE_SIZE - 4, 0]),
            Psci::Returned(SUCCESS)
        );
    }
}

#[test]
fn psci_cpu_off_parks_the_caller_and_nothing_else() {
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let (mut v, a, b) = two_guests();
        assert_eq!(psci(&mut v, a, 0, conduit, [CPU_ON_64, 1, RAM_GPA, 0]), Psci::Returned(SUCCESS));
        let b_before = view(&v, b);
        assert_eq!(psci(&mut v, a, 1, conduit, [CPU_OFF, 0, 0, 0]), Psci::Other(ExitAction::Park));
        assert_eq!(state(&v, a, 1), VcpuState::Stopped);
        assert!(!running(&v, a, 1), "the vCPU that called CPU_OFF was not suspended");
        assert_eq!(state(&v, a, 0), VcpuState::Running);
        assert!(running(&v, a, 0));
        assert_eq!(view(&v, b), b_before);
        check_invariants(&v);
        // It can be turned on again.
        assert_eq!(psci(&mut v, a, 0, conduit, [CPU_ON_64, 1, RAM_GPA + 0x40, 3]), Psci::Returned(SUCCESS));
        assert!(running(&v, a, 1));
        assert_eq!(reg(&v, a, 1, TcbReg::Pc), RAM_GPA + 0x40);
    }
}

#[test]
fn psci_system_off_stops_every_vcpu_of_the_vm_and_tells_its_owner() {
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let (mut v, a, b) = two_guests();
        assert_eq!(psci(&mut v, a, 0, conduit, [CPU_ON_64, 1, RAM_GPA, 0]), Psci::Returned(SUCCESS));
        let b_before = view(&v, b);
        assert_eq!(psci(&mut v, a, 1, conduit, [SYSTEM_OFF, 0, 0, 0]), Psci::Other(stop(StopReason::SystemOff, 1)));
        assert_all_stopped(&v, a);
        assert!(running(&v, b, 0));
        assert_eq!(view(&v, b), b_before);
        check_invariants(&v);
    }
}

#[test]
fn psci_system_off_of_an_internal_vm_tells_nobody() {
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let mut v = world();
        let b = guest(&mut v, B, B_RAM, 1);
        let i = guest(&mut v, Owner::Internal, A_RAM, 1);
        let b_before = view(&v, b);
        let want = ExitAction::Stop { reason: StopReason::SystemOff, notify: None };
        assert_eq!(psci(&mut v, i, 0, conduit, [SYSTEM_OFF, 0, 0, 0]), Psci::Other(want));
        assert_all_stopped(&v, i);
        assert_eq!(view(&v, b), b_before);
    }
}

/// VM A with vCPUs 0-2 all running (0 is the boot vCPU), vCPU 0 moved on
/// from its entry.
fn three_running() -> (Box<TestVmm>, VmId, VmId) {
    let mut v = world();
    let a = guest(&mut v, A, A_RAM, 3);
    let b = guest(&mut v, B, B_RAM, 1);
    v.run_vcpu(A, a, VcpuId(1), RAM_GPA + 0x100, 1).unwrap();
    v.run_vcpu(A, a, VcpuId(2), RAM_GPA + 0x200, 2).unwrap();
    set(&mut v, a, 0, WIRE_PC, RAM_GPA + 0x5000);
    set(&mut v, a, 0, 0, 0x99);
    (v, a, b)
}

#[test]
fn psci_system_reset_from_the_boot_vcpu_restarts_it_at_its_entry() {
    // The boot vCPU starts again at its first RUN's entry with its x0, at
    // EL1h with DAIF masked; every other vCPU stops.
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let (mut v, a, b) = three_running();
        let b_before = view(&v, b);
        let r = psci(&mut v, a, 0, conduit, [SYSTEM_RESET, 0, 0, 0]);
        // Both conduits: the entry state is in the TCB, and an empty reply
        // (no registers for seL4 to copy over it) resumes the vCPU there.
        assert_eq!(r, Psci::Other(ExitAction::Resume), "{conduit:?}");
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), RAM_GPA, "{conduit:?}");
        assert_eq!(x(&v, a, 0, 0), BOOT_ARG, "{conduit:?}");
        assert_eq!(reg(&v, a, 0, TcbReg::Spsr), SPSR_EL1H_DAIF, "{conduit:?}");
        assert_eq!(state(&v, a, 0), VcpuState::Running);
        assert!(running(&v, a, 0));
        for i in [1, 2] {
            assert_eq!(state(&v, a, i), VcpuState::Stopped, "vCPU {i}");
            assert!(!running(&v, a, i), "vCPU {i} still running after SYSTEM_RESET");
        }
        assert_eq!(view(&v, b), b_before);
        check_invariants(&v);
    }
}

#[test]
fn psci_system_reset_from_another_vcpu_parks_it_and_restarts_the_boot_vcpu() {
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let (mut v, a, b) = three_running();
        let b_before = view(&v, b);
        assert_eq!(psci(&mut v, a, 1, conduit, [SYSTEM_RESET, 0, 0, 0]), Psci::Other(ExitAction::Park));
        assert_eq!(state(&v, a, 1), VcpuState::Stopped);
        assert_eq!(state(&v, a, 2), VcpuState::Stopped);
        assert!(!running(&v, a, 2), "vCPU 2 still running after SYSTEM_RESET");
        assert_eq!(state(&v, a, 0), VcpuState::Running);
        assert!(running(&v, a, 0));
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), RAM_GPA);
        assert_eq!(x(&v, a, 0, 0), BOOT_ARG);
        assert_eq!(reg(&v, a, 0, TcbReg::Spsr), SPSR_EL1H_DAIF);
        assert_eq!(view(&v, b), b_before);
        check_invariants(&v);
    }
}

#[test]
fn psci_system_reset_restarts_a_boot_vcpu_that_had_turned_itself_off() {
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let (mut v, a, _) = three_running();
        assert_eq!(psci(&mut v, a, 0, conduit, [CPU_OFF, 0, 0, 0]), Psci::Other(ExitAction::Park));
        assert!(!running(&v, a, 0));
        assert_eq!(psci(&mut v, a, 2, conduit, [SYSTEM_RESET, 0, 0, 0]), Psci::Other(ExitAction::Park));
        assert!(running(&v, a, 0), "the boot vCPU was not resumed");
        assert_eq!(state(&v, a, 0), VcpuState::Running);
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), RAM_GPA);
        assert_eq!(x(&v, a, 0, 0), BOOT_ARG);
        assert!(!running(&v, a, 1));
        check_invariants(&v);
    }
}

#[test]
fn psci_unknown_functions_return_not_supported_and_change_nothing() {
    let (mut v, a, _) = two_guests();
    let ids = [
        MIGRATE_INFO_TYPE,
        SYSTEM_SUSPEND_64,
        SYSTEM_RESET2_32,
        SMCCC_VERSION,
        0xc400_0008, // SYSTEM_OFF has no SMC64 id
        0xc600_0000, // another service's range
        0,
        0xffff_ffff,
        // Function ids are 32 bits: anything above makes the call unknown.
        (1 << 32) | PSCI_VERSION,
        (1 << 32) | SYSTEM_OFF,
        0xffff_ffff_0000_0000 | SYSTEM_RESET,
        u64::MAX,
    ];
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        for id in ids {
            returns_unchanged(&mut v, a, 0, conduit, [id, 1, RAM_GPA, 0], NOT_SUPPORTED);
        }
    }
    assert!(running(&v, a, 0));
}

#[test]
fn psci_cpu_on_starts_the_target_with_the_mmu_and_data_cache_off() {
    // PSCI (DEN0022, CPU_ON entry state) and Linux's arm64 boot protocol:
    // a core turned on enters at the entry point with the MMU and data
    // cache off. A vCPU that ran with them on, then called CPU_OFF, must not
    // keep SCTLR_EL1.M and .C when it is turned on again.
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let (mut v, a, _) = two_guests();
        assert_eq!(psci(&mut v, a, 0, conduit, [CPU_ON_64, 1, RAM_GPA, 0]), Psci::Returned(SUCCESS));
        set(&mut v, a, 1, WIRE_SCTLR, 0x30d0_199d); // Linux's SCTLR_EL1 with M, C, I set
        assert_eq!(psci(&mut v, a, 1, conduit, [CPU_OFF, 0, 0, 0]), Psci::Other(ExitAction::Park));
        assert_eq!(psci(&mut v, a, 0, conduit, [CPU_ON_64, 1, RAM_GPA + 0x100, 0]), Psci::Returned(SUCCESS));
        assert_eq!(Reg::from_wire(WIRE_SCTLR), Some(Reg::Vcpu(VcpuReg::Sctlr)));
        let sctlr = v.get_reg(A, a, VcpuId(1), WIRE_SCTLR).unwrap();
        assert_eq!(sctlr & (SCTLR_M | SCTLR_C), 0, "{conduit:?}: SCTLR_EL1 {sctlr:#x} on entry");
    }
}

#[test]
fn psci_system_reset_restarts_the_boot_vcpu_with_the_mmu_and_data_cache_off() {
    // A reset puts the core in its reset state: SCTLR_EL1.M and .C reset to
    // 0 (Arm ARM), as the entry point of a kernel requires.
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let (mut v, a, _) = two_guests();
        set(&mut v, a, 0, WIRE_SCTLR, 0x30d0_199d);
        let r = psci(&mut v, a, 0, conduit, [SYSTEM_RESET, 0, 0, 0]);
        assert_eq!(r, Psci::Other(ExitAction::Resume), "{conduit:?}");
        let sctlr = v.get_reg(A, a, VcpuId(0), WIRE_SCTLR).unwrap();
        assert_eq!(sctlr & (SCTLR_M | SCTLR_C), 0, "{conduit:?}: SCTLR_EL1 {sctlr:#x} after reset");
    }
}

// =====================================================================
// Stage-2 faults (rule 6.1).
// =====================================================================

/// The frame object behind RAM page `page`.
fn ram_frame(v: &TestVmm, page: u64) -> u64 {
    v.kernel().object_at(Slot(RAM_FRAMES.0 + page)).unwrap()
}

#[test]
fn stage2_data_abort_inside_a_ram_slot_maps_the_page_and_resumes_at_the_same_pc() {
    let (mut v, a, b) = two_guests();
    let b_before = view(&v, b);
    for (page, write) in [(0, false), (5, true), (SLOT_PAGES - 1, true)] {
        let gpa = RAM_GPA + page * PAGE_SIZE + 0x18;
        set(&mut v, a, 0, WIRE_PC, MMIO_PC);
        let esr = dabt(8, 3, SF | if write { WNR } else { 0 });
        assert_eq!(exit(&mut v, a, 0, VM_FAULT, &[MMIO_PC, gpa, 0, esr]), ExitAction::Resume);
        // The instruction is retried: the PC does not move, no register does.
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), MMIO_PC);
        let pages = guest_pages(&v, a);
        let page_gpa = RAM_GPA + page * PAGE_SIZE;
        assert_eq!(pages.get(&page_gpa), Some(&(ram_frame(&v, A_RAM + page), Rights::READ_WRITE)), "page {page}");
        check_invariants(&v);
    }
    assert_eq!(guest_pages(&v, a).len(), 3);
    assert_eq!(view(&v, b), b_before);
}

#[test]
fn stage2_instruction_abort_inside_a_slot_maps_the_page() {
    let (mut v, a, _) = two_guests();
    let iabt = ec(EC_IABT_LOWER) | IL | 0x07;
    let gpa = RAM_GPA + 2 * PAGE_SIZE + 0x40;
    assert_eq!(exit(&mut v, a, 0, VM_FAULT, &[gpa, gpa, 1, iabt]), ExitAction::Resume);
    assert_eq!(guest_pages(&v, a).get(&(RAM_GPA + 2 * PAGE_SIZE)).map(|p| p.0), Some(ram_frame(&v, A_RAM + 2)));
    // In the READONLY slot: mapped read-only.
    assert_eq!(exit(&mut v, a, 0, VM_FAULT, &[ROM_GPA, ROM_GPA, 1, iabt]), ExitAction::Resume);
    assert_eq!(guest_pages(&v, a).get(&ROM_GPA), Some(&(ram_frame(&v, A_RAM + SLOT_PAGES), Rights::READ)));
    // From the device: nothing to execute there.
    let action = exit(&mut v, a, 0, VM_FAULT, &[UART, UART, 1, iabt]);
    assert_eq!(action, stop(StopReason::Unmapped { gpa: Gpa(UART) }, 1));
    check_invariants(&v);
}

#[test]
fn stage2_read_of_a_readonly_slot_maps_it_read_only() {
    let (mut v, a, _) = two_guests();
    let gpa = ROM_GPA + PAGE_SIZE + 8;
    assert_eq!(exit(&mut v, a, 0, VM_FAULT, &[MMIO_PC, gpa, 0, dabt(4, 0, 0)]), ExitAction::Resume);
    let got = guest_pages(&v, a).get(&(ROM_GPA + PAGE_SIZE)).copied();
    assert_eq!(got, Some((ram_frame(&v, A_RAM + SLOT_PAGES + 1), Rights::READ)));
}

#[test]
fn stage2_write_to_a_readonly_slot_stops_only_that_vm() {
    let (mut v, a, b) = two_guests();
    let b_before = view(&v, b);
    let gpa = ROM_GPA + 8;
    let action = exit(&mut v, a, 0, VM_FAULT, &[MMIO_PC, gpa, 0, dabt(4, 0, WNR)]);
    assert_eq!(action, stop(StopReason::ReadOnlyWrite { gpa: Gpa(gpa) }, 1));
    assert!(guest_pages(&v, a).is_empty(), "a page was mapped for a refused write");
    assert_all_stopped(&v, a);
    assert!(running(&v, b, 0));
    assert_eq!(view(&v, b), b_before);
    check_invariants(&v);
    // A write without a valid syndrome is still a write (WnR is valid).
    rerun(&mut v, a);
    let action = exit(&mut v, a, 0, VM_FAULT, &[MMIO_PC, gpa, 0, ec(EC_DABT_LOWER) | IL | WNR]);
    assert_eq!(action, stop(StopReason::ReadOnlyWrite { gpa: Gpa(gpa) }, 1));
}

#[test]
fn stage2_fault_outside_every_slot_and_device_stops_only_that_vm() {
    let (mut v, a, b) = two_guests();
    let b_before = view(&v, b);
    for gpa in [0, RAM_GPA - 1, RAM_GPA + SLOT_PAGES * PAGE_SIZE, ROM_GPA + ROM_PAGES * PAGE_SIZE, 1 << 40, u64::MAX] {
        for esr in [dabt(4, 0, 0), dabt(4, 0, WNR), ec(EC_DABT_LOWER) | IL] {
            let action = exit(&mut v, a, 0, VM_FAULT, &[MMIO_PC, gpa, 0, esr]);
            assert_eq!(action, stop(StopReason::Unmapped { gpa: Gpa(gpa) }, 1), "{gpa:#x}");
            assert_all_stopped(&v, a);
            assert_eq!(view(&v, b), b_before);
            rerun(&mut v, a);
        }
    }
    assert!(guest_pages(&v, a).is_empty());
    check_invariants(&v);
}

#[test]
fn stage2_fault_in_a_guest_memfd_slot_whose_file_is_closed_is_no_backing() {
    let (mut v, a, b) = two_guests();
    let gmem_gpa = 0x6000_0000;
    let fd = v.create_guest_memfd(A, a, 2 * PAGE_SIZE, 0).unwrap();
    v.set_memory_region(A, a, &gmem_region(2, gmem_gpa, 2, fd, 0)).unwrap();
    // While the file is open the page maps.
    assert_eq!(exit(&mut v, a, 0, VM_FAULT, &[MMIO_PC, gmem_gpa, 0, dabt(4, 0, WNR)]), ExitAction::Resume);
    assert!(guest_pages(&v, a).contains_key(&gmem_gpa));
    v.close_guest_memfd(A, fd).unwrap();
    assert!(!guest_pages(&v, a).contains_key(&gmem_gpa), "closing the file unmaps its pages");
    let b_before = view(&v, b);
    for gpa in [gmem_gpa, gmem_gpa + PAGE_SIZE + 4] {
        let action = exit(&mut v, a, 0, VM_FAULT, &[MMIO_PC, gpa, 0, dabt(4, 0, 0)]);
        assert_eq!(action, stop(StopReason::NoBacking { gpa: Gpa(gpa) }, 1));
        assert_all_stopped(&v, a);
        rerun(&mut v, a);
    }
    assert!(guest_pages(&v, a).is_empty());
    assert_eq!(view(&v, b), b_before);
    check_invariants(&v);
}

// =====================================================================
// WFx, other traps, guest exceptions (rule 6.4).
// =====================================================================

#[test]
fn wfi_and_wfe_resume_past_the_instruction() {
    let (mut v, a, _) = two_guests();
    // ISS bit 0 (TI): 0 WFI, 1 WFE. IL gives the instruction's length.
    for (esr, len) in [(ec(EC_WFX) | IL, 4), (ec(EC_WFX) | IL | 1, 4), (ec(EC_WFX), 2)] {
        set(&mut v, a, 0, WIRE_PC, RAM_GPA + 0x300);
        let before = xregs(&v, a, 0);
        assert_eq!(exit(&mut v, a, 0, VCPU_FAULT, &[esr]), ExitAction::Resume);
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), RAM_GPA + 0x300 + len, "{esr:#x}");
        assert_eq!(xregs(&v, a, 0), before);
        assert!(running(&v, a, 0));
    }
}

#[test]
fn other_trapped_instructions_stop_the_vm_with_unhandled_trap() {
    let (mut v, a, b) = two_guests();
    let b_before = view(&v, b);
    for class in [EC_SYSREG, EC_UNKNOWN, EC_HVC64, 0x07, 0x3f] {
        set(&mut v, a, 0, WIRE_PC, RAM_GPA + 0x300);
        let action = exit(&mut v, a, 0, VCPU_FAULT, &[ec(class) | IL | 0x1234]);
        assert_eq!(action, stop(StopReason::UnhandledTrap { ec: class as u8 }, 1), "EC {class:#x}");
        assert_eq!(reg(&v, a, 0, TcbReg::Pc), RAM_GPA + 0x300);
        assert_all_stopped(&v, a);
        assert_eq!(view(&v, b), b_before);
        rerun(&mut v, a);
    }
}

#[test]
fn user_exception_stops_the_vm_with_guest_exception() {
    let (mut v, a, b) = two_guests();
    let b_before = view(&v, b);
    let pc = RAM_GPA + 0x444;
    let action = exit(&mut v, a, 0, USER_EXCEPTION, &[pc, 0x4000_f000, 0x3c5, 1, 2]);
    assert_eq!(action, stop(StopReason::GuestException { pc }, 1));
    assert_all_stopped(&v, a);
    assert_eq!(view(&v, b), b_before);
}

#[test]
fn an_exit_decoded_where_it_arrived_is_handled_as_its_raw_message_is() {
    // The VMM PD decodes a fault in its IPC buffer and hands the core the
    // result (handle_decoded_exit); the raw message goes through
    // handle_exit. Same action, same VM state and registers, same console
    // output, for every kind of exit, good or bad.
    let pc = RAM_GPA + 0x100;
    let hvc = |x0| vec![x0, 1, 2, 3, 4, 5, 6, 7, pc, 0x4000_f000, 0, SPSR_EL1H_DAIF, 7];
    let cases: Vec<(u64, Vec<u64>)> = vec![
        (VM_FAULT, vec![pc, UART + FR, 0, dabt(4, 3, 0)]),
        (VM_FAULT, vec![pc, UART + DR, 0, dabt(1, 5, WNR)]),
        (VM_FAULT, vec![pc, RAM_GPA + 0x2000, 0, dabt(8, 1, SF)]),
        (VM_FAULT, vec![pc, ROM_GPA, 0, dabt(4, 1, WNR)]),
        (VM_FAULT, vec![pc, 0x7000_0000, 0, dabt(4, 1, 0)]),
        (UNKNOWN_SYSCALL, hvc(PSCI_VERSION)),
        (UNKNOWN_SYSCALL, hvc(CPU_ON_64)),
        (UNKNOWN_SYSCALL, hvc(SYSTEM_RESET)),
        (UNKNOWN_SYSCALL, hvc(SYSTEM_OFF)),
        (UNKNOWN_SYSCALL, hvc(PSCI_VERSION)[..12].to_vec()),
        (VCPU_FAULT, vec![ec(EC_WFX) | IL]),
        (VPPI_EVENT, vec![27]),
        (99, vec![0; 4]),
    ];
    for (label, mrs) in cases {
        let (mut raw, a, b) = two_guests();
        let (mut decoded, _, _) = two_guests();
        let (mut raw_out, mut decoded_out) = (Out::default(), Out::default());
        let want = raw.handle_exit(a, VcpuId(0), label, &mrs, &mut raw_out);
        let got = decoded.handle_decoded_exit(a, VcpuId(0), decode(label, &mrs), &mut decoded_out);
        assert_eq!(got, want, "label {label}, {mrs:x?}");
        for vm in [a, b] {
            assert_eq!(view(&decoded, vm), view(&raw, vm), "label {label}, {mrs:x?}");
        }
        assert_eq!(decoded_out.0, raw_out.0, "label {label}, {mrs:x?}");
    }
}

#[test]
fn exit_for_a_vm_that_does_not_exist_is_no_such_vcpu_and_changes_nothing() {
    let (mut v, a, _) = two_guests();
    let before = v.clone();
    let wfi = [ec(EC_WFX) | IL];
    for vm in [VmId(0), VmId(999), VmId(u32::MAX)] {
        let action = exit(&mut v, vm, 0, VCPU_FAULT, &wfi);
        assert_eq!(action, ExitAction::Stop { reason: StopReason::NoSuchVcpu, notify: None });
        assert!(v == before, "an exit for no VM changed the state");
    }
    // A destroyed VM is no VM.
    v.destroy_vm(A, a).unwrap();
    let before = v.clone();
    assert_eq!(exit(&mut v, a, 0, VCPU_FAULT, &wfi), ExitAction::Stop { reason: StopReason::NoSuchVcpu, notify: None });
    assert!(v == before);
}

/// vCPU ids VM A of `two_guests` does not have: 2 and 3 are below the
/// limit but not created, the others at or past it.
const ABSENT_VCPUS: [u32; 5] = [2, 3, VCPU_LIMIT as u32, MAX_VCPUS as u32, u32::MAX];

#[test]
fn exit_for_a_vcpu_that_does_not_exist_is_no_such_vcpu_and_touches_no_guest_state() {
    // Whatever happens to the VM's run state, such an exit emulates nothing:
    // no register, mapping, device or interrupt of the VM changes, and no
    // other VM is touched.
    let (mut v, a, b) = two_guests();
    let b_before = view(&v, b);
    let a_regs = xregs(&v, a, 0);
    let a_pc = reg(&v, a, 0, TcbReg::Pc);
    let a_devices = v.registry().entry(a).unwrap().vm().devices().clone();
    for vcpu in ABSENT_VCPUS {
        for (label, mrs) in valid_messages() {
            let action = exit(&mut v, a, vcpu, label, &mrs);
            assert!(
                matches!(action, ExitAction::Stop { reason: StopReason::NoSuchVcpu, .. }),
                "vCPU {vcpu}, label {label}: {action:?}"
            );
            assert_eq!(xregs(&v, a, 0), a_regs);
            assert_eq!(reg(&v, a, 0, TcbReg::Pc), a_pc);
            assert!(guest_pages(&v, a).is_empty());
            assert_eq!(*v.registry().entry(a).unwrap().vm().devices(), a_devices);
            assert!(v.kernel().injected(vcpu_obj(&v, a, 0)).is_empty());
            assert_eq!(view(&v, b), b_before);
        }
    }
    check_invariants(&v);
}

#[test]
fn exit_for_a_vcpu_that_does_not_exist_changes_nothing() {
    // The brief: an exit for a vCPU that does not exist is NoSuchVcpu "with
    // no state change". No guest can raise it (only a vCPU that exists
    // faults), so it says nothing about the VM that it names.
    let (mut v, a, _) = two_guests();
    let before = v.clone();
    for vcpu in ABSENT_VCPUS {
        let action = exit(&mut v, a, vcpu, VCPU_FAULT, &[ec(EC_WFX) | IL]);
        assert!(matches!(action, ExitAction::Stop { reason: StopReason::NoSuchVcpu, .. }), "vCPU {vcpu}: {action:?}");
        assert!(v == before, "an exit for vCPU {vcpu}, which does not exist, changed the state");
    }
}

// =====================================================================
// Virtual PPIs and vGIC maintenance (rule 6.7).
// =====================================================================

#[test]
fn vppi_is_injected_and_acknowledged_at_the_next_maintenance_not_before() {
    let (mut v, a, b) = two_guests();
    let b_before = view(&v, b);
    let (v0, v1) = (vcpu_obj(&v, a, 0), vcpu_obj(&v, a, 1));
    assert_eq!(exit(&mut v, a, 0, VPPI_EVENT, &[27]), ExitAction::Resume);
    assert_eq!(v.kernel().injected(v0), [27]);
    assert!(v.kernel().acked(v0).is_empty(), "acknowledged before the guest took it");
    // Maintenance on another vCPU does not acknowledge vCPU 0's PPI.
    assert_eq!(exit(&mut v, a, 1, VGIC_MAINTENANCE, &[0]), ExitAction::Resume);
    assert!(v.kernel().acked(v0).is_empty());
    assert!(v.kernel().acked(v1).is_empty());
    // vCPU 0's maintenance does, once.
    assert_eq!(exit(&mut v, a, 0, VGIC_MAINTENANCE, &[0]), ExitAction::Resume);
    assert_eq!(v.kernel().acked(v0), [27]);
    assert_eq!(exit(&mut v, a, 0, VGIC_MAINTENANCE, &[u64::MAX]), ExitAction::Resume);
    assert_eq!(v.kernel().acked(v0), [27], "acknowledged twice");
    // A PPI on vCPU 1 is vCPU 1's.
    assert_eq!(exit(&mut v, a, 1, VPPI_EVENT, &[30]), ExitAction::Resume);
    assert_eq!(v.kernel().injected(v1), [30]);
    assert_eq!(exit(&mut v, a, 1, VGIC_MAINTENANCE, &[1]), ExitAction::Resume);
    assert_eq!(v.kernel().acked(v1), [30]);
    assert_eq!(v.kernel().injected(v0), [27]);
    assert!(running(&v, a, 0) && running(&v, b, 0));
    assert_eq!(view(&v, b), b_before);
}

/// A VM stopped by a failed kernel call says which invocation failed and
/// why: here the injection of a virtual PPI, then the write of a WFI's PC.
#[test]
fn a_vm_stopped_by_a_failed_kernel_call_names_the_invocation() {
    for (label, mrs, call) in [
        (VPPI_EVENT, vec![27], Invocation::VcpuInjectIrq),
        (VCPU_FAULT, vec![(EC_WFX << 26) | IL], Invocation::TcbReadRegisters),
    ] {
        let (mut v, a, b) = two_guests();
        let b_before = view(&v, b);
        v.kernel_mut().fail_nth(0, KernelError::InvalidCapability);
        let want = StopReason::Kernel(Refused { call, error: KernelError::InvalidCapability });
        assert_eq!(exit(&mut v, a, 0, label, &mrs), stop(want, 1), "{call:?}");
        assert_eq!(want.to_string(), format!("kernel: {} failed: {}", call.name(), KernelError::InvalidCapability));
        assert_all_stopped(&v, a);
        assert_eq!(view(&v, b), b_before);
    }
}

#[test]
fn vppi_out_of_range_stops_the_vm_without_injecting() {
    let (mut v, a, _) = two_guests();
    let v0 = vcpu_obj(&v, a, 0);
    assert_eq!(exit(&mut v, a, 0, VPPI_EVENT, &[32]), stop(StopReason::BadMessage(ExitError::BadPpi), 1));
    assert!(v.kernel().injected(v0).is_empty());
}

// =====================================================================
// Fault storm (rule 6.4: a guest never touches
// another VM, never makes the VMM panic).
// =====================================================================

/// splitmix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A guest-physical address: inside a slot, the device, near their edges,
/// or anywhere.
fn storm_gpa(r: &mut Rng) -> u64 {
    match r.below(8) {
        0 | 1 => RAM_GPA + r.below(SLOT_PAGES * PAGE_SIZE),
        2 => ROM_GPA + r.below(ROM_PAGES * PAGE_SIZE),
        3 | 4 => {
            let anywhere = r.below(pl011::SIZE);
            UART + r.pick(&[DR, FR, IBRD, FBRD, LCR_H, CR, IMSC, PERIPH_ID0, 0xffc, anywhere])
        }
        5 => r.pick(&[UART - 1, UART + pl011::SIZE, RAM_GPA - 1, RAM_GPA + SLOT_PAGES * PAGE_SIZE, 0]),
        6 => 0x6000_0000 + r.below(1 << 20),
        _ => r.next(),
    }
}

/// A syndrome: a consistent data-abort syndrome, a random one, or anything.
fn storm_dabt(r: &mut Rng) -> u64 {
    match r.below(4) {
        0 | 1 => {
            let size = r.pick(&[1, 2, 4, 8]);
            let write = r.chance(50);
            let wide = size == 8 || r.chance(50);
            let sse = !write && size < 8 && r.chance(30) && (wide || size < 4);
            let il = if r.chance(90) { IL } else { 0 };
            let flags = if write { WNR } else { 0 } | if wide { SF } else { 0 } | if sse { SSE } else { 0 };
            (dabt(size, r.below(32), flags) & !IL) | il
        }
        2 => ec(EC_DABT_LOWER) | (r.next() & ((1 << 26) - 1)),
        _ => r.next(),
    }
}

/// One random exit for VM A: (vCPU, label, MRs, SMC arguments to put in
/// the TCB first).
fn storm_exit(r: &mut Rng) -> (u32, u64, Vec<u64>, Option<[u64; 4]>) {
    let psci_ids = [
        PSCI_VERSION,
        PSCI_FEATURES,
        CPU_ON_32,
        CPU_ON_64,
        CPU_OFF,
        SYSTEM_OFF,
        SYSTEM_RESET,
        CPU_SUSPEND_64,
        AFFINITY_INFO_64,
        (1 << 32) | PSCI_VERSION,
    ];
    let psci_args = |r: &mut Rng| -> [u64; 4] {
        let id = if r.chance(85) { r.pick(&psci_ids) } else { r.next() };
        let target = if r.chance(80) { r.below(MAX_VCPUS as u64 + 1) } else { r.next() };
        let entry = if r.chance(70) { storm_gpa(r) } else { r.next() };
        [id, target, entry, r.next()]
    };
    let vcpu = match r.below(10) {
        0..=6 => 0,
        7 | 8 => r.below(4) as u32,
        _ => r.next() as u32,
    };
    let label = if r.chance(8) {
        let any = r.next();
        r.pick(&[0, 1, 4, 5, 10, any])
    } else {
        r.pick(&[
            UNKNOWN_SYSCALL,
            USER_EXCEPTION,
            VM_FAULT,
            VM_FAULT,
            VM_FAULT,
            VGIC_MAINTENANCE,
            VCPU_FAULT,
            VCPU_FAULT,
            VPPI_EVENT,
        ])
    };
    let mut smc = None;
    let mut mrs: Vec<u64> = match label {
        VM_FAULT => {
            let gpa = storm_gpa(r);
            let pc = RAM_GPA + 4 * r.below(0x400);
            match r.below(10) {
                0..=6 => vec![pc, gpa, 0, storm_dabt(r)],
                7 | 8 => vec![pc, gpa, 1, ec(EC_IABT_LOWER) | IL | r.below(64)],
                _ => {
                    let any = r.next();
                    vec![r.next(), gpa, r.pick(&[0, 1, 2, any]), r.next()]
                }
            }
        }
        UNKNOWN_SYSCALL => {
            let mut m: Vec<u64> = (0..13).map(|_| r.next()).collect();
            m[..4].copy_from_slice(&psci_args(r));
            m
        }
        VCPU_FAULT => {
            let any = r.below(64);
            let class = r.pick(&[EC_WFX, EC_SMC64, EC_SMC64, EC_SYSREG, EC_HVC64, EC_UNKNOWN, EC_DABT_LOWER, any]);
            if class == EC_SMC64 {
                smc = Some(psci_args(r));
            }
            vec![ec(class) | if r.chance(90) { IL } else { 0 } | r.below(1 << 25)]
        }
        VPPI_EVENT => vec![if r.chance(85) { 16 + r.below(16) } else { r.next() }],
        VGIC_MAINTENANCE => {
            let any = r.next();
            vec![r.pick(&[0, 1, 63, 64, u64::MAX, any])]
        }
        _ => (0..5).map(|_| r.next()).collect(),
    };
    if r.chance(10) {
        mrs.truncate(r.below(mrs.len() as u64 + 1) as usize);
    } else if r.chance(3) {
        mrs.extend((0..r.below(4)).map(|_| r.next()));
    }
    (vcpu, label, mrs, smc)
}

/// A short name for what an exit came to, to check that the storm reached
/// every kind of outcome.
fn outcome(action: &ExitAction) -> String {
    match action {
        ExitAction::Resume => "resume".into(),
        ExitAction::ResumeWith(_) => "resume-with".into(),
        ExitAction::Park => "park".into(),
        ExitAction::Stop { reason, .. } => {
            let s = format!("{reason:?}");
            s.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default().to_string()
        }
    }
}

#[test]
fn fault_storm_on_one_vm_leaves_the_other_vm_untouched() {
    const EXITS: u64 = 5000;
    let mut v = world();
    let a = guest(&mut v, A, A_RAM, 4);
    let b = guest(&mut v, B, B_RAM, 2);
    // B has pages mapped, a PPI pending, a UART with state and a second vCPU
    // running: there is something to disturb.
    for page in [0, 3, SLOT_PAGES - 1] {
        let gpa = RAM_GPA + page * PAGE_SIZE;
        assert_eq!(exit(&mut v, b, 0, VM_FAULT, &[RAM_GPA, gpa, 0, dabt(8, 1, SF | WNR)]), ExitAction::Resume);
    }
    assert_eq!(exit(&mut v, b, 0, VM_FAULT, &[RAM_GPA, ROM_GPA, 0, dabt(8, 1, SF)]), ExitAction::Resume);
    assert_eq!(exit(&mut v, b, 0, VPPI_EVENT, &[27]), ExitAction::Resume);
    set(&mut v, b, 0, 1, 0x1c);
    assert_eq!(mmio(&mut v, b, IBRD, dabt(2, 1, WNR), &mut Out::default()), ExitAction::Resume);
    v.run_vcpu(B, b, VcpuId(1), RAM_GPA + 0x100, 5).unwrap();
    for n in 0..31 {
        set(&mut v, b, 1, n, 0xb0b0_0000 + u64::from(n));
    }
    check_invariants(&v);
    let b_before = view(&v, b);
    assert_eq!(b_before.pages.len(), 4);
    // The frames B's pages map (guest RAM, held by the VMM) keep their
    // contents.
    let frames_of_b = |v: &TestVmm| -> Vec<(u64, Object)> {
        b_before.pages.values().map(|(obj, _)| (*obj, v.kernel().object(*obj).unwrap().clone())).collect()
    };
    let b_frames = frames_of_b(&v);

    let mut r = Rng(0x5e14_2024_0004);
    let mut seen = BTreeMap::new();
    let mut out = Out::default();
    for i in 0..EXITS {
        let (vcpu, label, mrs, smc) = storm_exit(&mut r);
        let vm = if r.chance(2) { VmId(0x7777) } else { a };
        if let (Some(args), true) = (smc, vm == a && state(&v, a, vcpu) != VcpuState::Absent) {
            for (n, x) in args.iter().enumerate() {
                set(&mut v, a, vcpu, n as u32, *x);
            }
        }
        let action = v.handle_exit(vm, VcpuId(vcpu), label, &mrs, &mut out);
        if let ExitAction::Stop { notify, reason } = action {
            // An exit from a vCPU the VMM does not run changes nothing and
            // tells nobody; every other stop tells A's owner.
            let want = if vm == a && reason != StopReason::NoSuchVcpu { Some(ClientId(1)) } else { None };
            assert_eq!(notify, want, "exit {i}: the wrong owner was told");
        }
        *seen.entry(outcome(&action)).or_insert(0u64) += 1;
        if state(&v, a, 0) == VcpuState::Stopped && r.chance(90) {
            rerun(&mut v, a);
        }
        if i % 250 == 0 {
            assert_eq!(view(&v, b), b_before, "exit {i} ({label}, {mrs:x?}) changed VM B");
            check_invariants(&v);
        }
    }
    assert_eq!(view(&v, b), b_before, "the storm changed VM B");
    assert_eq!(frames_of_b(&v), b_frames, "the storm changed the contents of B's frames");
    assert!(running(&v, b, 0) && running(&v, b, 1));
    check_invariants(&v);
    // The storm was not vacuous: it reached every kind of outcome.
    for kind in [
        "resume",
        "resume-with",
        "park",
        "BadMessage",
        "Unmapped",
        "ReadOnlyWrite",
        "Mmio",
        "UnhandledTrap",
        "SystemOff",
        "GuestException",
        "NoSuchVcpu",
    ] {
        assert!(seen.contains_key(kind), "the storm never produced {kind}: {seen:?}");
    }
    assert!(!guest_pages(&v, a).is_empty(), "the storm never mapped a page of A");
    assert!(!out.0.is_empty(), "the storm never printed");
}

// ---- PSCI 1.1's other mandatory calls ----

// AFFINITY_INFO at level 0: ON (0) for a running vCPU, OFF (1) for a created
// stopped one; INVALID_PARAMETERS for one not created, beyond the limit,
// with affinity above Aff0, or at a level other than 0.
#[test]
fn psci_affinity_info_reports_each_vcpu_on_or_off() {
    let (mut v, a, _) = two_guests();
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let vcpu1 = if state(&v, a, 1) == VcpuState::Running { 0 } else { 1 };
        returns_unchanged(&mut v, a, 0, conduit, [AFFINITY_INFO_64, 0, 0, 0], 0);
        returns_unchanged(&mut v, a, 0, conduit, [AFFINITY_INFO_32, 1, 0, 0], vcpu1);
        for bad in [
            [AFFINITY_INFO_64, 3, 0, 0],
            [AFFINITY_INFO_64, 99, 0, 0],
            [AFFINITY_INFO_64, 0x100, 0, 0],
            [AFFINITY_INFO_64, 0, 1, 0],
        ] {
            returns_unchanged(&mut v, a, 0, conduit, bad, INVALID_PARAMETERS);
        }
    }
    // vCPU 0 off: reported off.
    assert_eq!(psci(&mut v, a, 0, Conduit::Hvc, [CPU_OFF, 0, 0, 0]), Psci::Other(ExitAction::Park));
    assert_eq!(state(&v, a, 0), VcpuState::Stopped);
    v.run_vcpu(A, a, VcpuId(1), RAM_GPA, 0).ok();
    returns_unchanged(&mut v, a, 1, Conduit::Hvc, [AFFINITY_INFO_64, 0, 0, 0], 1);
}

// CPU_SUSPEND returns SUCCESS at once (a wake-up before the state is
// entered), for standby and power-down states alike, and changes nothing
// else.
#[test]
fn psci_cpu_suspend_returns_success_at_once() {
    let (mut v, a, _) = two_guests();
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        for id in [CPU_SUSPEND_32, CPU_SUSPEND_64] {
            for power_state in [0, 1 << 16] {
                returns_unchanged(&mut v, a, 0, conduit, [id, power_state, RAM_GPA, 5], SUCCESS);
            }
        }
    }
}

// ---- List registers ----

// IRQ_LINE fills vCPU 0's four list registers; a fifth rising edge is EAGAIN
// and changes nothing; a maintenance exit naming a list register frees it.
#[test]
fn irq_line_with_every_list_register_in_use_is_eagain_until_one_frees() {
    let (mut v, a, _) = two_guests();
    for line in 40..44 {
        v.irq_line(A, a, line, 1).unwrap();
    }
    fails_unchanged(&mut v, Errno::EAGAIN, |v| v.irq_line(A, a, 44, 1));
    assert_eq!(exit(&mut v, a, 0, VGIC_MAINTENANCE, &[2]), ExitAction::Resume);
    v.irq_line(A, a, 44, 1).unwrap();
    assert_eq!(v.kernel().injected(vcpu_obj(&v, a, 0)), vec![40, 41, 42, 43, 44]);
    check_invariants(&v);
}

// A virtual PPI that arrives with every list register in use waits, and is
// injected when a maintenance exit frees one.
#[test]
fn a_ppi_waits_for_a_free_list_register() {
    let (mut v, a, _) = two_guests();
    for line in 40..44 {
        v.irq_line(A, a, line, 1).unwrap();
    }
    assert_eq!(exit(&mut v, a, 0, VPPI_EVENT, &[27]), ExitAction::Resume);
    assert!(!v.kernel().injected(vcpu_obj(&v, a, 0)).contains(&27));
    assert_eq!(exit(&mut v, a, 0, VGIC_MAINTENANCE, &[1]), ExitAction::Resume);
    assert_eq!(v.kernel().injected(vcpu_obj(&v, a, 0)).last(), Some(&27));
    assert!(v.kernel().acked(vcpu_obj(&v, a, 0)).is_empty(), "acknowledged before the guest took it");
    assert_eq!(exit(&mut v, a, 0, VGIC_MAINTENANCE, &[1]), ExitAction::Resume);
    assert_eq!(v.kernel().acked(vcpu_obj(&v, a, 0)), vec![27]);
}
