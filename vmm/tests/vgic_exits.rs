//! A VM's virtual GIC wired into its exits (rule 6.10), on the seL4 model:
//! the VMM gives a VM its GIC once; the guest's loads and stores in its
//! frames reach the register model; a line, a virtual PPI or an SGI goes
//! into a list register, with its priority and group, only when the
//! guest's distributor lets it; a virtual PPI is acknowledged at its EOI;
//! an access the architecture leaves unpredictable stops only that VM.
//!
//! Expected values come from the architecture: register offsets and reset
//! values from the GICv2 specification (Arm IHI 0048B, 4.1.2 and 4.3), the
//! MSR syndrome from the Arm ARM (ISS of EC 0x18), fault labels and
//! message layouts from seL4 16.0.0's `libsel4`.

mod common;

use common::exit_guest::{
    self, reg, tcb, vcpu_obj, DR, FR, FR_RXFE, ICR, IL, IMSC, ISV, MIS, RXIM, TXIM, UART, VCPU_FAULT, VGIC_MAINTENANCE,
    VM_FAULT, VPPI_EVENT, WNR,
};
use common::*;
use vmm::addr::Gpa;
use vmm::arch::aarch64::regs::TcbReg;
use vmm::arch::aarch64::vgic::{GicVersion, VgicError};
use vmm::devices::pl011::{self, Console, Pl011};
use vmm::devices::Device;
use vmm::kernel::Virq;
use vmm::registry::Owner;
use vmm::{ExitAction, StopReason};
use vmm_abi::{ClientId, Errno, VcpuId, VmId};

const A: Owner = Owner::Client(ClientId(1));
const B: Owner = Owner::Client(ClientId(2));

// ESR_EL2: a data abort with a valid syndrome, and a trapped MSR.
fn dabt(size: u64, reg: u64, write: bool) -> u64 {
    let sas = size.trailing_zeros() as u64;
    0x24 << 26 | IL | ISV | sas << 22 | reg << 16 | if write { WNR } else { 0 }
}
/// MSR ICC_SGI1R_EL1, Xt (Op0 3, Op2 5, Op1 0, CRn 12, CRm 11; direction 0).
fn msr_sgi1r(rt: u64) -> u64 {
    0x18 << 26 | IL | 3 << 20 | 5 << 17 | 12 << 10 | rt << 5 | 11 << 1
}

// The GICv2 distributor (IHI 0048B, table 4-1).
const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080a_0000;
const CTLR: u64 = 0x000;
const TYPER: u64 = 0x004;
const IGROUPR: u64 = 0x080;
const ISENABLER: u64 = 0x100;
const IPRIORITYR: u64 = 0x400;
const ITARGETSR: u64 = 0x800;
const SGIR: u64 = 0xf00;
/// The world's vCPU limit (common::config): the model's CPU interfaces.
const VCPU_LIMIT: u64 = 4;
/// The SPI the tests raise, and the timer's PPI.
const SPI: u32 = 33;
const TIMER: u64 = 27;

#[derive(Default)]
struct Out;
impl Console for Out {
    fn put(&mut self, _: u8) {}
}

/// A running VM of `A` with two vCPUs and a GICv2 distributor at `GICD`.
fn gic_guest() -> (Box<TestVmm>, VmId) {
    let mut v = world();
    let vm = exit_guest::guest(&mut v, A, 0, 2, 0);
    v.register_gic(A, vm, GicVersion::V2, Gpa(GICD), None).unwrap();
    (v, vm)
}

fn exit(v: &mut TestVmm, vm: VmId, vcpu: u32, label: u64, mrs: &[u64]) -> ExitAction {
    v.handle_exit(vm, VcpuId(vcpu), label, mrs, &mut Out)
}

/// vCPU `vcpu` stores the 32-bit `value` at `offset` in the distributor
/// (from x2), and resumes past the store.
fn store(v: &mut TestVmm, vm: VmId, vcpu: u32, offset: u64, value: u64) {
    v.set_reg(A, vm, VcpuId(vcpu), 2, value).unwrap();
    let pc = reg(v, vm, vcpu, TcbReg::Pc);
    assert_eq!(exit(v, vm, vcpu, VM_FAULT, &[pc, GICD + offset, 0, dabt(4, 2, true)]), ExitAction::Resume);
    assert_eq!(reg(v, vm, vcpu, TcbReg::Pc), pc + 4, "the PC moves past the store");
}

/// vCPU `vcpu` loads 32 bits at `offset` of the distributor into x5.
fn load(v: &mut TestVmm, vm: VmId, vcpu: u32, offset: u64) -> u64 {
    let pc = reg(v, vm, vcpu, TcbReg::Pc);
    assert_eq!(exit(v, vm, vcpu, VM_FAULT, &[pc, GICD + offset, 0, dabt(4, 5, false)]), ExitAction::Resume);
    assert_eq!(reg(v, vm, vcpu, TcbReg::Pc), pc + 4, "the PC moves past the load");
    reg(v, vm, vcpu, TcbReg::X(5))
}

fn injected(v: &TestVmm, vm: VmId, vcpu: u32) -> Vec<(Virq, u8)> {
    v.kernel().injected_virqs(vcpu_obj(v, vm, vcpu))
}

/// The distributor forwards group 0, and `SPI` is enabled and aimed at
/// vCPU 0.
fn enable_spi(v: &mut TestVmm, vm: VmId) {
    store(v, vm, 0, CTLR, 1);
    store(v, vm, 0, ITARGETSR + u64::from(SPI) / 4 * 4, 1 << (8 * (SPI % 4)));
    store(v, vm, 0, ISENABLER + 4, 1 << (SPI - 32));
}

#[test]
fn the_vmm_gives_a_vm_one_gic_with_its_own_frames() {
    let (mut v, vm) = gic_guest();
    assert!(v.vgic(vm).is_some());
    let devices = v.registry().entry(vm).unwrap().vm().devices().clone();
    let again = v.register_gic(A, vm, GicVersion::V2, Gpa(0x0810_0000), None);
    assert_eq!(again.map_err(|e| e.errno()), Err(Errno::EEXIST));
    assert_eq!(v.registry().entry(vm).unwrap().vm().devices(), &devices);

    let mut v = world();
    let vm = exit_guest::guest(&mut v, A, 0, 1, 0);
    let before = view(&v, vm);
    for (version, redist, errno) in [
        (GicVersion::V2, Some(Gpa(GICR)), Errno::EINVAL),
        (GicVersion::V3, None, Errno::EINVAL),
        // Over the UART; and a GICv3's redistributors over it.
        (GicVersion::V2, None, Errno::EEXIST),
        (GicVersion::V3, Some(Gpa(UART - 0x1_0000)), Errno::EEXIST),
    ] {
        let dist = if errno == Errno::EEXIST && redist.is_none() { UART } else { GICD };
        let r = v.register_gic(A, vm, version, Gpa(dist), redist);
        assert_eq!(r.map_err(|e| e.errno()), Err(errno), "{version:?} {redist:?}");
        assert!(v.vgic(vm).is_none());
        assert_eq!(view(&v, vm), before, "a refused GIC changed the VM");
    }
    assert_eq!(v.register_gic(B, vm, GicVersion::V2, Gpa(GICD), None).map_err(|e| e.errno()), Err(Errno::EPERM));
    v.register_gic(A, vm, GicVersion::V3, Gpa(GICD), Some(Gpa(GICR))).unwrap();
    assert_eq!(v.vgic(vm).unwrap().version(), GicVersion::V3);
}

#[test]
fn the_guest_reads_its_distributor() {
    let (mut v, vm) = gic_guest();
    // GICD_TYPER: ITLinesNumber 2 (96 interrupt ids), CPUNumber one less
    // than the CPU interfaces.
    assert_eq!(load(&mut v, vm, 0, TYPER), 2 | (VCPU_LIMIT - 1) << 5);
    assert_eq!(load(&mut v, vm, 1, CTLR), 0, "the distributor resets disabled");
    store(&mut v, vm, 0, CTLR, 1);
    assert_eq!(load(&mut v, vm, 1, CTLR), 1);
}

#[test]
fn an_spi_reaches_the_guest_only_when_its_distributor_lets_it() {
    let (mut v, vm) = gic_guest();
    v.irq_line(A, vm, SPI, 1).unwrap();
    assert!(injected(&v, vm, 0).is_empty(), "injected while the distributor is off");
    enable_spi(&mut v, vm);
    // Enabling it is what delivers it: priority 0, group 0, list register 0.
    assert_eq!(injected(&v, vm, 0), [(Virq { irq: SPI as u16, priority: 0, group1: false }, 0)]);
    assert!(injected(&v, vm, 1).is_empty(), "aimed at vCPU 0 only");
    // A level that stays high is in its list register already.
    v.irq_line(A, vm, SPI, 1).unwrap();
    assert_eq!(injected(&v, vm, 0).len(), 1);
}

#[test]
fn priority_and_group_go_into_the_list_register() {
    let (mut v, vm) = gic_guest();
    enable_spi(&mut v, vm);
    store(&mut v, vm, 0, CTLR, 3);
    store(&mut v, vm, 0, IPRIORITYR + u64::from(SPI) / 4 * 4, 0xa0 << (8 * (SPI % 4)));
    store(&mut v, vm, 0, IGROUPR + 4, 1 << (SPI - 32));
    v.irq_line(A, vm, SPI, 1).unwrap();
    // The list register holds a priority's top five bits: 0xa0 >> 3.
    assert_eq!(injected(&v, vm, 0), [(Virq { irq: SPI as u16, priority: 0xa0 >> 3, group1: true }, 0)]);
}

#[test]
fn irq_line_of_a_vm_with_a_gic_takes_its_spis_only() {
    let (mut v, vm) = gic_guest();
    for (irq, level) in [(27, 1), (96, 1), (SPI, 2)] {
        let before = view(&v, vm);
        assert_eq!(v.irq_line(A, vm, irq, level).map_err(|e| e.errno()), Err(Errno::EINVAL), "{irq} {level}");
        assert_eq!(view(&v, vm), before);
    }
    assert_eq!(v.irq_line(B, vm, SPI, 1).map_err(|e| e.errno()), Err(Errno::EPERM));
}

#[test]
fn the_timer_ppi_waits_for_the_guest_and_is_acknowledged_at_its_eoi() {
    let (mut v, vm) = gic_guest();
    let v0 = vcpu_obj(&v, vm, 0);
    assert_eq!(exit(&mut v, vm, 0, VPPI_EVENT, &[TIMER]), ExitAction::Resume);
    assert!(injected(&v, vm, 0).is_empty(), "injected while the guest has it disabled");
    // The PPI is banked: vCPU 0 enables its own.
    store(&mut v, vm, 0, CTLR, 1);
    store(&mut v, vm, 0, ISENABLER, 1 << TIMER);
    assert_eq!(injected(&v, vm, 0), [(Virq::plain(TIMER as u16), 0)]);
    assert!(v.kernel().acked(v0).is_empty(), "acknowledged before the guest completed it");
    // Another list register's maintenance does not acknowledge it.
    assert_eq!(exit(&mut v, vm, 0, VGIC_MAINTENANCE, &[1]), ExitAction::Resume);
    assert!(v.kernel().acked(v0).is_empty());
    assert_eq!(exit(&mut v, vm, 0, VGIC_MAINTENANCE, &[0]), ExitAction::Resume);
    assert_eq!(v.kernel().acked(v0), [TIMER as u16]);
    // The next tick goes into the freed list register.
    assert_eq!(exit(&mut v, vm, 0, VPPI_EVENT, &[TIMER]), ExitAction::Resume);
    assert_eq!(injected(&v, vm, 0).last(), Some(&(Virq::plain(TIMER as u16), 0)));
    // vCPU 1 never enabled its timer.
    assert_eq!(exit(&mut v, vm, 1, VPPI_EVENT, &[TIMER]), ExitAction::Resume);
    assert!(injected(&v, vm, 1).is_empty());
}

#[test]
fn an_sgi_goes_from_one_vcpu_to_another() {
    let (mut v, vm) = gic_guest();
    store(&mut v, vm, 0, CTLR, 1);
    // GICD_SGIR: TargetListFilter 0, CPUTargetList vCPU 1, SGI 3.
    store(&mut v, vm, 0, SGIR, 1 << (16 + 1) | 3);
    assert_eq!(injected(&v, vm, 1), [(Virq::plain(3), 0)]);
    assert!(injected(&v, vm, 0).is_empty());
}

#[test]
fn an_access_the_architecture_leaves_unpredictable_stops_only_that_vm() {
    let (mut v, vm) = gic_guest();
    let other = exit_guest::guest(&mut v, B, 64, 1, 0);
    let other_before = view(&v, other);
    // A halfword store to GICD_CTLR, a word register.
    let pc = reg(&v, vm, 0, TcbReg::Pc);
    let want = StopReason::Vgic { gpa: Gpa(GICD + CTLR), error: VgicError::BadWidth };
    assert_eq!(
        exit(&mut v, vm, 0, VM_FAULT, &[pc, GICD + CTLR, 0, dabt(2, 2, true)]),
        ExitAction::Stop { reason: want, notify: Some(ClientId(1)) }
    );
    assert!(!v.kernel().tcb_running(tcb(&v, vm, 0)) && !v.kernel().tcb_running(tcb(&v, vm, 1)));
    assert_eq!(view(&v, other), other_before);
}

#[test]
fn a_gicv3_guest_sends_sgis_through_its_system_register() {
    let mut v = world();
    let vm = exit_guest::guest(&mut v, A, 0, 2, 0);
    v.register_gic(A, vm, GicVersion::V3, Gpa(GICD), Some(Gpa(GICR))).unwrap();
    // vCPU 1 wakes its redistributor (GICR_WAKER, RD_base + 0x14) and
    // puts SGI 5 in group 1 (GICR_IGROUPR0, SGI_base + 0x80); the
    // distributor forwards group 1 (GICD_CTLR.EnableGrp1, bit 1).
    let rd1 = GICR + 0x2_0000;
    for (at, value) in [(rd1 + 0x14, 0), (rd1 + 0x1_0080, 1 << 5), (GICD + CTLR, 2)] {
        v.set_reg(A, vm, VcpuId(1), 2, value).unwrap();
        let pc = reg(&v, vm, 1, TcbReg::Pc);
        assert_eq!(exit(&mut v, vm, 1, VM_FAULT, &[pc, at, 0, dabt(4, 2, true)]), ExitAction::Resume, "{at:#x}");
    }
    // ICC_SGI1R_EL1 from x7: INTID 5, target list vCPU 1 (Aff0 1).
    v.set_reg(A, vm, VcpuId(0), 7, 5 << 24 | 1 << 1).unwrap();
    let pc = reg(&v, vm, 0, TcbReg::Pc);
    assert_eq!(exit(&mut v, vm, 0, VCPU_FAULT, &[msr_sgi1r(7)]), ExitAction::Resume);
    assert_eq!(reg(&v, vm, 0, TcbReg::Pc), pc + 4, "the PC moves past the MSR");
    assert_eq!(injected(&v, vm, 1), [(Virq { irq: 5, priority: 0, group1: true }, 0)]);
    assert!(injected(&v, vm, 0).is_empty());
    // A read of it (MRS, direction 1) is not emulated: the VM stops.
    let stopped = exit(&mut v, vm, 0, VCPU_FAULT, &[msr_sgi1r(7) | 1]);
    assert_eq!(stopped, ExitAction::Stop { reason: StopReason::UnhandledTrap { ec: 0x18 }, notify: Some(ClientId(1)) });
    // Without a GICv3 the write is not emulated either.
    let (mut v, vm) = gic_guest();
    let stopped = exit(&mut v, vm, 0, VCPU_FAULT, &[msr_sgi1r(7)]);
    assert_eq!(stopped, ExitAction::Stop { reason: StopReason::UnhandledTrap { ec: 0x18 }, notify: Some(ClientId(1)) });
}

#[test]
fn a_vm_without_a_gic_keeps_its_direct_injection() {
    let mut v = world();
    let vm = exit_guest::guest(&mut v, A, 0, 1, 0);
    v.irq_line(A, vm, 40, 1).unwrap();
    assert_eq!(injected(&v, vm, 0), [(Virq::plain(40), 0)]);
}

// ---- The PL011's interrupts through the virtual GIC (rules 6.9, 6.10). ----

// The PL011's registers: `common::exit_guest`.

/// A running VM of `A` with one vCPU, a GICv2 whose distributor forwards
/// `SPI` to vCPU 0, and a PL011 at `UART` whose line drives `SPI`.
fn uart_guest() -> (Box<TestVmm>, VmId) {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    v.create_vcpu(A, vm, VcpuId(0)).unwrap();
    v.set_memory_region(A, vm, &ram_region(0, exit_guest::RAM_GPA, exit_guest::SLOT_PAGES, 0)).unwrap();
    v.register_device(A, vm, Gpa(UART), pl011::SIZE, Device::Pl011(Pl011::with_irq(SPI))).unwrap();
    v.register_gic(A, vm, GicVersion::V2, Gpa(GICD), None).unwrap();
    v.run_vcpu(A, vm, VcpuId(0), exit_guest::RAM_GPA, 0).unwrap();
    enable_spi(&mut v, vm);
    (v, vm)
}

/// vCPU 0's 32-bit access at `offset` of the UART: a store of `value`
/// from x2, or a load into x5 (returned).
fn uart_access(v: &mut TestVmm, vm: VmId, offset: u64, store: Option<u64>) -> u64 {
    if let Some(value) = store {
        v.set_reg(A, vm, VcpuId(0), 2, value).unwrap();
    }
    let pc = reg(v, vm, 0, TcbReg::Pc);
    let esr = match store {
        Some(_) => dabt(4, 2, true),
        None => dabt(4, 5, false),
    };
    assert_eq!(exit(v, vm, 0, VM_FAULT, &[pc, UART + offset, 0, esr]), ExitAction::Resume);
    reg(v, vm, 0, TcbReg::X(5))
}

#[test]
fn console_input_raises_the_uarts_receive_interrupt_until_the_guest_reads_it() {
    let (mut v, vm) = uart_guest();
    // Masked: the byte waits in the FIFO, the line stays low.
    assert_eq!(v.console_input(A, vm, b'a'), Ok(true));
    assert!(injected(&v, vm, 0).is_empty());
    assert_eq!(uart_access(&mut v, vm, FR, None) & FR_RXFE, 0, "the FIFO holds a byte");
    // Unmasking it raises the line: the SPI goes into a list register.
    uart_access(&mut v, vm, IMSC, Some(RXIM));
    assert_eq!(injected(&v, vm, 0), [(Virq::plain(SPI as u16), 0)]);
    assert_eq!(uart_access(&mut v, vm, MIS, None), RXIM);
    // The guest reads the byte: the FIFO is empty, the line low.
    assert_eq!(uart_access(&mut v, vm, DR, None), u64::from(b'a'));
    assert_eq!(uart_access(&mut v, vm, FR, None) & FR_RXFE, FR_RXFE);
    assert_eq!(uart_access(&mut v, vm, MIS, None), 0);
    // Its EOI frees the list register; the next byte comes in again.
    assert_eq!(exit(&mut v, vm, 0, VGIC_MAINTENANCE, &[0]), ExitAction::Resume);
    assert_eq!(v.console_input(A, vm, b'b'), Ok(true));
    assert_eq!(injected(&v, vm, 0).len(), 2);
    assert_eq!(uart_access(&mut v, vm, DR, None), u64::from(b'b'));
}

#[test]
fn a_sent_byte_raises_the_transmit_interrupt_until_cleared() {
    let (mut v, vm) = uart_guest();
    uart_access(&mut v, vm, IMSC, Some(TXIM));
    assert!(injected(&v, vm, 0).is_empty(), "nothing sent yet");
    uart_access(&mut v, vm, DR, Some(u64::from(b'x')));
    assert_eq!(injected(&v, vm, 0), [(Virq::plain(SPI as u16), 0)]);
    assert_eq!(uart_access(&mut v, vm, MIS, None), TXIM);
    uart_access(&mut v, vm, ICR, Some(TXIM));
    assert_eq!(uart_access(&mut v, vm, MIS, None), 0);
}

#[test]
fn the_receive_fifo_holds_sixteen_bytes_and_drops_the_rest() {
    let (mut v, vm) = uart_guest();
    for i in 0..16u8 {
        assert_eq!(v.console_input(A, vm, b'0' + i), Ok(true), "byte {i}");
    }
    assert_eq!(v.console_input(A, vm, b'!'), Ok(false), "an overrun drops the byte");
    for i in 0..16u8 {
        assert_eq!(uart_access(&mut v, vm, DR, None), u64::from(b'0' + i));
    }
    assert_eq!(uart_access(&mut v, vm, DR, None), 0, "an empty FIFO reads 0");
    // A VM without a UART, and another client's VM, take no input.
    let mut w = world();
    let bare = w.create_vm(A).unwrap();
    assert_eq!(w.console_input(A, bare, b'a').map_err(|e| e.errno()), Err(Errno::ENOENT));
    assert_eq!(v.console_input(B, vm, b'a').map_err(|e| e.errno()), Err(Errno::EPERM));
}

#[test]
fn an_irq_line_whose_delivery_the_kernel_refuses_stops_the_vm_and_its_owner_is_told_once() {
    let (mut v, vm) = gic_guest();
    enable_spi(&mut v, vm);
    assert_eq!(v.take_stopped(), None, "nothing stopped yet");
    // The injection is the first invocation the request makes.
    v.kernel_mut().fail_nth(0, vmm::kernel::KernelError::InvalidArgument);
    v.irq_line(A, vm, SPI, 1).unwrap();
    assert!(!v.kernel().tcb_running(tcb(&v, vm, 0)), "the VM stopped");
    assert_eq!(v.take_stopped(), Some((ClientId(1), vm)));
    assert_eq!(v.take_stopped(), None, "told once");
    // A delivery that succeeds tells nobody.
    let (mut v, vm) = gic_guest();
    enable_spi(&mut v, vm);
    v.irq_line(A, vm, SPI, 0).unwrap();
    v.irq_line(A, vm, SPI, 1).unwrap();
    assert_eq!(v.take_stopped(), None);
}
