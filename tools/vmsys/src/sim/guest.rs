//! A guest's instructions on the model, and the exits they raise.
//!
//! The guest's registers live in its vCPU's TCB in the model, so what the
//! VMM reads and writes is what the next instruction sees. A memory access
//! goes straight to the page when the VM's stage 2 maps it with the right
//! it needs; otherwise it faults to the VMM with the syndrome the hardware
//! would give (a data abort with a valid instruction syndrome), and is
//! retried once if the VMM mapped the page and resumed. `hvc`, `smc`,
//! `wfi` and instruction fetches raise the fault messages seL4 delivers.
//!
//! The model keeps one word per page: a store sets the page's word, a load
//! reads it (masked to the access size). That is enough to see private
//! memory start zeroed, keep what the guest wrote, and stay in its VM.

use vmm::arch::aarch64::esr::ec;
use vmm::arch::aarch64::fault::label;
use vmm::arch::aarch64::regs::TcbReg;
use vmm::caps::{Rights, TcbCap};
use vmm::devices::pl011::{reg as pl011, Console};
use vmm::kernel::Kernel;
use vmm::registry::Presence;
use vmm::vm::VcpuState;
use vmm::ExitAction;
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::{VcpuId, VmId};

use super::script::GuestOp;
use super::system::Instance;
use crate::num::hex;
use crate::world::ModelVmm;

/// ESR_EL2.IL: a 32-bit instruction.
const IL: u64 = 1 << 25;
/// ESR_EL2.ISV: the data abort's syndrome is valid.
const ISV: u64 = 1 << 24;
/// PL011 FR: transmit FIFO full.
const FR_TXFF: u64 = 1 << 5;

/// The console a VMM's PL011 prints to: the instance's buffer.
struct Buffer<'a>(&'a mut Vec<u8>);

impl Console for Buffer<'_> {
    fn put(&mut self, byte: u8) {
        self.0.push(byte);
    }
}

/// The message seL4 delivers for a guest's `hvc` (an UnknownSyscall fault):
/// x0-x7, the PC, SP, the link register, SPSR, and x7 again as the
/// syscall number.
pub fn hvc_message(x: [u64; 8], pc: u64, sp: u64, lr: u64, spsr: u64) -> [u64; 13] {
    let [x0, x1, x2, x3, x4, x5, x6, x7] = x;
    [x0, x1, x2, x3, x4, x5, x6, x7, pc, sp, lr, spsr, x7]
}

/// The message seL4 delivers for an instruction fetch at `gpa` that its
/// VM's stage 2 does not map (a VMFault: IP, address, prefetch, syndrome).
pub fn fetch_fault_message(gpa: u64) -> [u64; 4] {
    [gpa, gpa, 1, (u64::from(ec::IABT_LOWER) << 26) | IL]
}

/// The core's VM running vCPU `vcpu` in this VMM: the one named, else the
/// only listed VM that has that vCPU.
pub fn resolve(v: &ModelVmm, vm: Option<VmId>, vcpu: u32) -> Option<(VmId, TcbCap)> {
    let has = |e: &&vmm::registry::Entry<vmm::vm::Vm>| {
        e.presence() == Presence::Listed && e.vm().vcpu_state(VcpuId(vcpu)) != VcpuState::Absent
    };
    let mut found = v.registry().entries().filter(has).filter(|e| vm.is_none_or(|id| e.id() == id));
    let e = found.next()?;
    if found.next().is_some() {
        return None;
    }
    e.vm().vcpu_caps(VcpuId(vcpu)).map(|(tcb, _)| (e.id(), tcb))
}

/// Runs `op` on vCPU `vcpu` of the VM; `None` if that vCPU is not running
/// (no instruction of it can execute), else the VMM's last answer.
pub fn run(inst: &mut Instance, vm: Option<VmId>, vcpu: u32, op: &GuestOp) -> Result<Option<ExitAction>, String> {
    let Some((id, tcb)) = resolve(&inst.vmm, vm, vcpu) else { return Ok(None) };
    if !inst.vmm.kernel().tcb_running(tcb.slot()) {
        return Ok(None);
    }
    let mut g = Guest { inst, id, vcpu, tcb };
    g.op(op).map(Some)
}

struct Guest<'a> {
    inst: &'a mut Instance,
    id: VmId,
    vcpu: u32,
    tcb: TcbCap,
}

impl Guest<'_> {
    fn get(&self, r: TcbReg) -> u64 {
        self.inst.vmm.kernel().tcb_reg(self.tcb.slot(), r).unwrap_or(0)
    }

    fn set(&mut self, r: TcbReg, v: u64) -> Result<(), String> {
        self.inst
            .vmm
            .kernel_mut()
            .tcb_write_register(self.tcb, r, v)
            .map_err(|e| format!("the model refused {r:?}: {e:?}"))
    }

    fn exit(&mut self, label: u64, mrs: &[u64]) -> ExitAction {
        let inst = &mut *self.inst;
        inst.vmm.handle_exit(self.id, VcpuId(self.vcpu), label, mrs, &mut Buffer(&mut inst.console))
    }

    fn op(&mut self, op: &GuestOp) -> Result<ExitAction, String> {
        match op {
            GuestOp::Hvc(regs) => {
                for (r, v) in regs {
                    self.set(TcbReg::X(*r), *v)?;
                }
                let x = [0, 1, 2, 3, 4, 5, 6, 7].map(|i| self.get(TcbReg::X(i)));
                let mrs = hvc_message(x, self.get(TcbReg::Pc), self.get(TcbReg::Sp), self.get(TcbReg::X(30)), {
                    self.get(TcbReg::Spsr)
                });
                let action = self.exit(label::UNKNOWN_SYSCALL, &mrs);
                if let ExitAction::ResumeWith(r) = action {
                    // seL4 writes the reply's registers, x0-x7 and the PC,
                    // back into the TCB.
                    let order = [0, 1, 2, 3, 4, 5, 6, 7].map(TcbReg::X).into_iter().chain([TcbReg::Pc]);
                    for (reg, v) in order.zip(r) {
                        self.set(reg, v)?;
                    }
                }
                Ok(action)
            }
            GuestOp::Smc(regs) => {
                for (r, v) in regs {
                    self.set(TcbReg::X(*r), *v)?;
                }
                Ok(self.exit(label::VCPU_FAULT, &[(u64::from(ec::SMC64) << 26) | IL]))
            }
            GuestOp::Wfi => Ok(self.exit(label::VCPU_FAULT, &[(u64::from(ec::WFX) << 26) | IL])),
            GuestOp::Fetch { gpa } => {
                if self.mapped(*gpa).is_some() {
                    return Ok(ExitAction::Resume);
                }
                Ok(self.exit(label::VM_FAULT, &fetch_fault_message(*gpa)))
            }
            GuestOp::Load { gpa, size, reg } => self.access(*gpa, *size, *reg, None),
            GuestOp::Store { gpa, size, reg, value } => self.access(*gpa, *size, *reg, Some(*value)),
            GuestOp::Print(bytes) => {
                let base = self.inst.uart.ok_or("the description gives this VM no pl011 to print on")?;
                let (fr, dr) = match (base.checked_add(pl011::FR), base.checked_add(pl011::DR)) {
                    (Some(fr), Some(dr)) => (fr, dr),
                    _ => return Err(format!("the pl011 at {} has registers past 2^64", hex(base))),
                };
                for b in bytes {
                    let a = self.access(fr, 4, 1, None)?;
                    if a != ExitAction::Resume {
                        return Ok(a);
                    }
                    if self.get(TcbReg::X(1)) & FR_TXFF != 0 {
                        return Err("the PL011 says its transmit FIFO is full: the guest would wait forever".into());
                    }
                    let a = self.access(dr, 4, 0, Some(u64::from(*b)))?;
                    if a != ExitAction::Resume {
                        return Ok(a);
                    }
                }
                Ok(ExitAction::Resume)
            }
        }
    }

    /// The frame and rights VM stage 2 maps at `gpa`'s page.
    fn mapped(&self, gpa: u64) -> Option<(u64, Rights)> {
        let e = self.inst.vmm.registry().entry(self.id)?;
        if e.vm().fixed().len == 0 {
            return None;
        }
        let k = self.inst.vmm.kernel();
        let vspace = k.object_at(e.vm().vspace().slot())?;
        k.pages_in(vspace).get(&(gpa & !(PAGE_SIZE - 1))).copied()
    }

    /// A load (`value` None) or store of `size` bytes at `gpa` through
    /// register `reg`: straight to the page if mapped with the right,
    /// else through the VMM.
    fn access(&mut self, gpa: u64, size: u8, reg: u8, value: Option<u64>) -> Result<ExitAction, String> {
        let mask = if size >= 8 { u64::MAX } else { (1u64 << (u32::from(size) * 8)) - 1 };
        for attempt in 0..2 {
            if let Some((frame, rights)) = self.mapped(gpa) {
                if value.is_none() || rights.write {
                    return self.direct(frame, reg, value.map(|v| v & mask), mask);
                }
            }
            if attempt == 1 {
                return Err(format!("the VMM resumed the guest, but {} is still not mapped for this access", hex(gpa)));
            }
            if let (Some(v), true) = (value, reg != 31) {
                self.set(TcbReg::X(reg), v)?;
            }
            let pc = self.get(TcbReg::Pc);
            let sas = u64::from(size.trailing_zeros());
            let sf = u64::from(size == 8);
            let wnr = u64::from(value.is_some());
            let esr =
                (u64::from(ec::DABT_LOWER) << 26) | IL | ISV | sas << 22 | u64::from(reg) << 16 | sf << 15 | wnr << 6;
            match self.exit(label::VM_FAULT, &[pc, gpa, 0, esr]) {
                // Emulated: the VMM moved the PC past the access.
                ExitAction::Resume if self.get(TcbReg::Pc) != pc => return Ok(ExitAction::Resume),
                // Mapped: the access runs again.
                ExitAction::Resume => {}
                other => return Ok(other),
            }
        }
        Ok(ExitAction::Resume)
    }

    /// The access on the page itself; the PC moves past it.
    fn direct(&mut self, frame: u64, reg: u8, store: Option<u64>, mask: u64) -> Result<ExitAction, String> {
        let slot = self.inst.vmm.kernel().caps_to(frame).first().copied().ok_or("a mapped page has no capability")?;
        match store {
            Some(v) => {
                self.inst.vmm.kernel_mut().write_frame(slot, v);
            }
            None => {
                let v = self.inst.vmm.kernel().read_frame(slot).unwrap_or(0) & mask;
                if reg != 31 {
                    self.set(TcbReg::X(reg), v)?;
                }
            }
        }
        let pc = self.get(TcbReg::Pc);
        self.set(TcbReg::Pc, pc.wrapping_add(4))?;
        Ok(ExitAction::Resume)
    }
}
