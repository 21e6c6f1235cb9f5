//! Guest exits (section 6 of the rules): what the VMM does with each fault
//! its VM raises, and what the VMM PD should answer the kernel.
//!
//! - A stage-2 fault in a memslot is mapped and the vCPU resumes at the same
//!   instruction; a write to a READONLY slot stops the VM.
//! - Outside every memslot, an emulated device takes the access (the syndrome
//!   says size, register and direction) and the PC moves past it; an access
//!   that is neither stops the VM.
//! - `hvc` and `smc` are PSCI calls; anything unknown answers NOT_SUPPORTED.
//! - A message that does not decode, or a trap the VMM does not emulate,
//!   stops the VM.
//!
//! Stopping a VM suspends its vCPUs and nothing else: the VMM, and every
//! other VM, go on. The owner (not an internal VM's) is told why.

use crate::addr::Gpa;
use crate::arch::aarch64::esr::Esr;
use crate::arch::aarch64::fault::{self, Exit, ExitError, HvcCall};
use crate::arch::aarch64::mmio::{Access, MmioError};
use crate::arch::aarch64::psci::{Call, Psci};
use crate::arch::aarch64::regs::TcbReg;
use crate::arch::aarch64::vgic::VgicError;
use crate::caps::TcbCap;
use crate::devices::pl011::Console;
use crate::devices::{Device, DeviceError};
use crate::error::Error;
use crate::kernel::{During, Invocation, Kernel, Refused};
use crate::platform::Platform;
use crate::registry::{Caller, Owner, Presence};
use crate::vm::VcpuState;
use crate::{FaultOutcome, Vmm};
use vmm_abi::{ClientId, VcpuId, VmId};

/// A data abort outside every memslot, which a device may emulate: the VM
/// and vCPU, the vCPU's TCB, the instruction's address, the address it
/// reached and its syndrome.
#[derive(Clone, Copy, Debug)]
pub(super) struct Abort {
    pub(super) id: VmId,
    pub(super) vcpu: VcpuId,
    pub(super) tcb: TcbCap,
    pub(super) pc: u64,
    pub(super) gpa: Gpa,
    pub(super) esr: Esr,
}

/// What the VMM PD does after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitAction {
    /// Reply with an empty message: the vCPU resumes at its TCB's PC.
    Resume,
    /// Reply to an `hvc` (UnknownSyscall) with these registers: x0-x7 and
    /// the PC ([`fault::HVC_REPLY_REGS`]). The vCPU resumes with them.
    ResumeWith([u64; fault::HVC_REPLY_REGS]),
    /// Do not reply: this vCPU stays off (PSCI CPU_OFF) or waits for an
    /// interrupt (WFI, rule 6.11); the VM goes on.
    Park,
    /// The VM stopped. Do not reply; tell `notify` (the owner; none for an
    /// internal VM) why.
    Stop {
        /// Why.
        reason: StopReason,
        /// Whom to tell.
        notify: Option<ClientId>,
    },
}

/// Why a VM stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// PSCI SYSTEM_OFF.
    SystemOff,
    /// A write to a READONLY memslot.
    ReadOnlyWrite {
        /// Where.
        gpa: Gpa,
    },
    /// An access outside every memslot and device.
    Unmapped {
        /// Where.
        gpa: Gpa,
    },
    /// An access to a guest_memfd slot whose file is closed.
    NoBacking {
        /// Where.
        gpa: Gpa,
    },
    /// A device access that cannot be emulated.
    Mmio {
        /// Where.
        gpa: Gpa,
        /// Why.
        error: MmioError,
    },
    /// A guest access to its virtual GIC that the architecture leaves
    /// unpredictable (rule 6.10).
    Vgic {
        /// Where (0 for the SGI system register).
        gpa: Gpa,
        /// Why.
        error: VgicError,
    },
    /// A fault message that does not decode.
    BadMessage(ExitError),
    /// A trapped instruction the VMM does not emulate.
    UnhandledTrap {
        /// Its exception class.
        ec: u8,
    },
    /// An exception seL4 passed on from the guest.
    GuestException {
        /// Where.
        pc: u64,
    },
    /// The exit named a VM or vCPU the VMM does not run. Nothing was
    /// changed and nobody is told; the fault stays unanswered.
    NoSuchVcpu,
    /// The kernel refused what the exit needed: which invocation, and why.
    Kernel(Refused),
    /// Mapping the page failed.
    Map(Error),
}

impl core::fmt::Display for StopReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StopReason::SystemOff => write!(f, "PSCI SYSTEM_OFF"),
            StopReason::ReadOnlyWrite { gpa } => write!(f, "write to read-only memory at {gpa:#x}"),
            StopReason::Unmapped { gpa } => write!(f, "access outside every memslot at {gpa:#x}"),
            StopReason::NoBacking { gpa } => write!(f, "access to closed guest_memfd memory at {gpa:#x}"),
            StopReason::Mmio { gpa, error } => write!(f, "device access at {gpa:#x} cannot be emulated: {error}"),
            StopReason::Vgic { gpa, error } => write!(f, "virtual GIC access at {gpa:#x}: {error}"),
            StopReason::BadMessage(e) => write!(f, "fault message: {e}"),
            StopReason::UnhandledTrap { ec } => write!(f, "trapped instruction of class {ec:#x} not emulated"),
            StopReason::GuestException { pc } => write!(f, "guest exception at {pc:#x}"),
            StopReason::NoSuchVcpu => write!(f, "exit from a VM or vCPU that does not exist"),
            StopReason::Kernel(e) => write!(f, "kernel: {e}"),
            StopReason::Map(e) => write!(f, "mapping: {e}"),
        }
    }
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// Registers an emulated device for VM `id` (the VMM does this from the
    /// system description when it creates the VM).
    pub fn register_device(
        &mut self,
        caller: Caller,
        id: VmId,
        base: Gpa,
        size: u64,
        device: Device,
    ) -> Result<(), Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        Ok(vm.devices.register(base, size, device)?)
    }

    /// Console input for VM `id`: `byte` goes into the receive FIFO of its
    /// first PL011, whose interrupt line then rises (rule 6.9). False, and
    /// the byte dropped, if the FIFO is full; `ENOENT` if the VM has no
    /// PL011.
    pub fn console_input(&mut self, caller: Caller, id: VmId, byte: u8) -> Result<bool, Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        let uart = vm.devices.iter_mut().find_map(|r| match &mut r.device {
            Device::Pl011(u) => Some(u),
            _ => None,
        });
        let Some(uart) = uart else { return Err(DeviceError::NoUart.into()) };
        let watched = uart.watch();
        let taken = uart.receive(byte);
        if let Some((irq, level)) = uart.moved(watched) {
            // An interrupt that is not an SPI of the VM's GIC goes nowhere.
            let _ = self.spi_level(id, irq, level);
        }
        Ok(taken)
    }

    /// The listed VM and vCPU whose TCB is in `tcb` (a Microkit VMM learns
    /// of a fault by the faulting vCPU's id, which names its TCB slot).
    pub fn vcpu_by_tcb(&self, tcb: crate::caps::Slot) -> Option<(VmId, VcpuId)> {
        self.registry.entries().filter(|e| e.presence == Presence::Listed).find_map(|e| {
            e.vm.vcpus()
                .find(|(_, v)| v.state() != VcpuState::Absent && v.caps().0.slot() == tcb)
                .map(|(v, _)| (e.id, v))
        })
    }

    /// Handles one fault of vCPU `vcpu` of VM `id`: `label` and `mrs` are
    /// the fault message as the kernel delivered it. Never panics, whatever
    /// the message.
    pub fn handle_exit<C: Console + ?Sized>(
        &mut self,
        id: VmId,
        vcpu: VcpuId,
        label: u64,
        mrs: &[u64],
        console: &mut C,
    ) -> ExitAction {
        self.handle_decoded_exit(id, vcpu, fault::decode(label, mrs), console)
    }

    /// [`Vmm::handle_exit`] of a fault message already decoded
    /// ([`fault::decode`]): the VMM PD decodes it where the kernel left it,
    /// in its IPC buffer, so that nothing copies it.
    pub fn handle_decoded_exit<C: Console + ?Sized>(
        &mut self,
        id: VmId,
        vcpu: VcpuId,
        decoded: Result<Exit, ExitError>,
        console: &mut C,
    ) -> ExitAction {
        // The VM and the vCPU's TCB, found once for every path below.
        let found = self.registry.entry(id).filter(|e| e.presence == Presence::Listed).and_then(|e| {
            let v = e.vm.vcpu(vcpu).filter(|v| v.state() != VcpuState::Absent)?;
            Some((&e.vm, v.caps().0))
        });
        let Some((vm, tcb)) = found else {
            // Not a vCPU the VMM runs: leave it unanswered and touch nothing.
            return ExitAction::Stop { reason: StopReason::NoSuchVcpu, notify: None };
        };
        // By reference: an hvc's registers are copied once, into the reply.
        let exit = match &decoded {
            Ok(exit) => exit,
            Err(e) => return self.stop_vm(id, StopReason::BadMessage(*e)),
        };
        match *exit {
            // Outside every memslot there is nothing to map (stage2_fault
            // would say Unmapped): straight to the devices, the common
            // exit of a running guest.
            Exit::DataAbort { pc, gpa, esr } if vm.memslots.find_gpa(gpa).is_none() => {
                self.mmio(Abort { id, vcpu, tcb, pc, gpa, esr }, console)
            }
            Exit::DataAbort { pc, gpa, esr } => match self.stage2_fault(id, gpa, esr.wnr()) {
                Ok(FaultOutcome::Unmapped) => self.mmio(Abort { id, vcpu, tcb, pc, gpa, esr }, console),
                other => self.after_map(id, gpa, other),
            },
            Exit::InstructionAbort { gpa, .. } => {
                let r = self.stage2_fault(id, gpa, false);
                self.after_map(id, gpa, r)
            }
            Exit::Hvc(ref call) => self.hvc(id, vcpu, call),
            Exit::Smc { esr } => self.smc(id, vcpu, tcb, esr),
            Exit::Wfx { esr } => self.wfx(id, vcpu, tcb, esr),
            Exit::Trap { esr } => match self.gic_sysreg(id, vcpu, tcb, esr) {
                Some(action) => action,
                None => self.stop_vm(id, StopReason::UnhandledTrap { ec: esr.ec() }),
            },
            Exit::Vppi { irq } => self.vppi(id, vcpu, irq),
            Exit::VgicMaintenance { index } => self.maintenance(id, vcpu, index),
            Exit::UserException { pc, .. } => self.stop_vm(id, StopReason::GuestException { pc }),
        }
    }

    fn after_map(&mut self, id: VmId, gpa: Gpa, r: Result<FaultOutcome, Error>) -> ExitAction {
        match r {
            Ok(FaultOutcome::Mapped) => ExitAction::Resume,
            Ok(FaultOutcome::ReadOnlyWrite) => self.stop_vm(id, StopReason::ReadOnlyWrite { gpa }),
            Ok(FaultOutcome::Unmapped) => self.stop_vm(id, StopReason::Unmapped { gpa }),
            Ok(FaultOutcome::NoBacking) => self.stop_vm(id, StopReason::NoBacking { gpa }),
            Err(e) => self.stop_vm(id, StopReason::Map(e)),
        }
    }

    /// Emulates the device access `at` and moves the PC past it.
    fn mmio<C: Console + ?Sized>(&mut self, at: Abort, console: &mut C) -> ExitAction {
        let Abort { id, tcb, pc, gpa, esr, .. } = at;
        let Some(entry) = self.registry.entry_mut(id) else { return self.stop_vm(id, StopReason::NoSuchVcpu) };
        let (uart, offset) = match entry.vm.devices.find_mut(gpa) {
            Some((Device::Pl011(uart), offset)) => (uart, offset),
            Some((Device::Gic(frame), offset)) => {
                let frame = *frame;
                return self.gic_mmio(at, frame, offset);
            }
            None => return self.stop_vm(id, StopReason::Unmapped { gpa }),
        };
        let access = match Access::decode(gpa, esr) {
            Ok(a) => a,
            Err(error) => return self.stop_vm(id, StopReason::Mmio { gpa, error }),
        };
        // At most one register read and one write of the result: what an
        // exit costs on seL4 is mostly invocations.
        let k = &mut self.kernel;
        let watched = uart.watch();
        let result = if access.write {
            let value = match access.reg {
                Some(r) => match k.tcb_read_register(tcb, TcbReg::X(r)).during(Invocation::TcbReadRegisters) {
                    Ok(v) => v,
                    Err(e) => return self.stop_vm(id, StopReason::Kernel(e)),
                },
                None => 0,
            };
            uart.write(offset, access.store_value(value), console);
            None
        } else {
            // A load into xzr still reads the device (reads can have effects).
            let raw = uart.load(offset);
            access.reg.map(|r| (TcbReg::X(r), access.load_result(raw)))
        };
        let moved = uart.moved(watched);
        let r = k.tcb_write_result(tcb, result, pc.wrapping_add(esr.instruction_len()));
        if let Err(e) = r.during(Invocation::TcbWriteRegisters) {
            return self.stop_vm(id, StopReason::Kernel(e));
        }
        // The UART's interrupt line, if the access moved it; an interrupt
        // that is not an SPI of the VM's GIC goes nowhere.
        match moved.map(|(irq, level)| self.spi_level(id, irq, level)) {
            Some(Ok(Some(stopped))) => stopped,
            _ => ExitAction::Resume,
        }
    }

    /// An `hvc`: the registers come in the message and go back in the reply.
    fn hvc(&mut self, id: VmId, vcpu: VcpuId, call: &HvcCall) -> ExitAction {
        let [x0, x1, x2, x3, ..] = call.x;
        match self.psci(id, vcpu, Call::decode([x0, x1, x2, x3])) {
            Psci::Return(v) => ExitAction::ResumeWith(call.returning(v)),
            Psci::Off => ExitAction::Park,
            Psci::SystemOff => self.stop_vm(id, StopReason::SystemOff),
            Psci::Reset { vcpu: boot, entry, arg } if boot == vcpu => self.restart_self(id, vcpu, entry, arg),
            Psci::Reset { vcpu: boot, entry, arg } => self.restart_other(id, vcpu, boot, entry, arg),
        }
    }

    /// An `smc`: the registers are read from and written to the TCB.
    fn smc(&mut self, id: VmId, vcpu: VcpuId, tcb: TcbCap, esr: Esr) -> ExitAction {
        let k = &mut self.kernel;
        let mut x = [0u64; 4];
        for (i, r) in x.iter_mut().enumerate() {
            match k.tcb_read_register(tcb, TcbReg::X(i as u8)).during(Invocation::TcbReadRegisters) {
                Ok(v) => *r = v,
                Err(e) => return self.stop_vm(id, StopReason::Kernel(e)),
            }
        }
        match self.psci(id, vcpu, Call::decode(x)) {
            Psci::Return(v) => {
                let r = self
                    .kernel
                    .tcb_write_register(tcb, TcbReg::X(0), v)
                    .during(Invocation::TcbWriteRegisters)
                    .and_then(|()| self.advance(tcb, esr));
                match r {
                    Ok(()) => ExitAction::Resume,
                    Err(e) => self.stop_vm(id, StopReason::Kernel(e)),
                }
            }
            Psci::Off => ExitAction::Park,
            Psci::SystemOff => self.stop_vm(id, StopReason::SystemOff),
            Psci::Reset { vcpu: boot, entry, arg } if boot == vcpu => self.restart_self(id, vcpu, entry, arg),
            Psci::Reset { vcpu: boot, entry, arg } => self.restart_other(id, vcpu, boot, entry, arg),
        }
    }

    /// Moves the PC of the vCPU whose TCB is `tcb` past the trapped
    /// instruction.
    pub(super) fn advance(&mut self, tcb: TcbCap, esr: Esr) -> Result<(), Refused> {
        let pc = self.kernel.tcb_read_register(tcb, TcbReg::Pc).during(Invocation::TcbReadRegisters)?;
        self.kernel
            .tcb_write_register(tcb, TcbReg::Pc, pc.wrapping_add(esr.instruction_len()))
            .during(Invocation::TcbWriteRegisters)
    }

    /// Stops every vCPU of VM `id` (and only those) and says whom to tell.
    #[cold]
    pub(super) fn stop_vm(&mut self, id: VmId, reason: StopReason) -> ExitAction {
        let mut notify = None;
        if let Some(e) = self.registry.entry_mut(id) {
            notify = match e.owner {
                Owner::Client(c) => Some(c),
                Owner::Internal => None,
            };
            for v in e.vm.vcpus.iter_mut().filter(|v| v.state == VcpuState::Running) {
                let _ = self.kernel.tcb_suspend(v.caps().0);
                v.set_state(VcpuState::Stopped);
            }
        }
        ExitAction::Stop { reason, notify }
    }
}
