//! The floor of the exit round trip: a VMM protection
//! domain for the bench guest whose fault handler does the least a VMM can
//! do for each exit, so that the real VMM's cost per exit can be read
//! against it.
//!
//! - `init` starts vCPU 0 at the base of guest RAM (Microkit prefilled the
//!   RAM with the bench guest), at EL1h with interrupts masked and its MMU
//!   off.
//! - `fault` answers the two exits the benchmark times ([`exit`]): a load
//!   from the emulated UART's flag register (one read of the TCB's registers
//!   up to the destination, the destination and the PC written, one write
//!   of the same registers, an empty reply) and an `hvc` (the registers
//!   returned in the reply, no invocation), as the minimal C handler of
//!   the reference figures does. PSCI SYSTEM_OFF, and anything else,
//!   leaves the vCPU stopped; a debug build says why.
//!
//! It keeps no state but the vCPU's registers during an exit, and checks only what keeps a wrong exit from being
//! answered as a right one.

#![no_std]
#![no_main]

mod exit;

use sel4_microkit::{debug_println, protection_domain, Child, Handler, Infallible, MessageInfo};

use exit::Answer;

/// `BASE_VM_TCB_CAP` of Microkit 2.3's `microkit.h`: vCPU 0's TCB.
const VM_TCB_SLOT: u64 = 266;
/// `BASE_VCPU_CAP` of Microkit 2.3's `microkit.h`: vCPU 0's vCPU object.
const VM_VCPU_SLOT: u64 = 330;

/// The only vCPU of the bench VM (the `<vcpu id>` in the system file).
const VCPU: usize = 0;

/// vCPU 0's TCB.
fn vm_tcb() -> sel4::cap::Tcb {
    sel4::cap::Tcb::from_bits(VM_TCB_SLOT)
}

#[protection_domain]
fn init() -> Floor {
    match start() {
        Ok(()) => debug_println!("floor: started the bench guest at {:#x}", board::GUEST_RAM_BASE),
        Err(e) => debug_println!("floor: ERROR: cannot start the bench guest: {e:?}"),
    }
    Floor { ctx: Default::default() }
}

/// Starts vCPU 0 as the real VMM starts a vCPU: SCTLR_EL1 at its reset
/// value (MMU and caches off), then PC and SPSR (EL1h, DAIF masked) in one
/// register write that also resumes it. The guest sets its own stack.
fn start() -> Result<(), sel4::Error> {
    let vcpu = sel4::cap::VCpu::from_bits(VM_VCPU_SLOT);
    vcpu.vcpu_write_regs(sel4::VCpuReg::SCTLR, vmm::arch::aarch64::regs::SCTLR_EL1_RESET)?;
    let mut ctx = sel4::UserContext::default();
    // The bench guest's link script puts its entry at the base of RAM.
    *ctx.pc_mut() = board::GUEST_RAM_BASE;
    *ctx.spsr_mut() = vmm::arch::aarch64::regs::SPSR_EL1H_MASKED;
    // pc, sp, spsr: the first three words of seL4's context.
    vm_tcb().tcb_write_registers(true, 3, &mut ctx)
}

/// The floor PD: only the vCPU's context between a register read and write.
struct Floor {
    ctx: sel4::UserContext,
}

impl Handler for Floor {
    type Error = Infallible;

    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, Self::Error> {
        if child.index() != VCPU {
            debug_println!(
                "floor: ERROR: fault from vCPU {}, which the bench VM does not have: left stopped",
                child.index()
            );
            return Ok(None);
        }
        Ok(match exit::handle(msg_info.label(), vm_tcb(), &mut self.ctx) {
            Answer::Resume => Some(MessageInfo::new(0, 0)),
            Answer::ResumeWithRegisters => Some(MessageInfo::new(0, exit::SYSCALL_REPLY_REGS)),
            Answer::Done => {
                debug_println!("floor: the bench guest switched off (PSCI SYSTEM_OFF)");
                None
            }
            Answer::Stop(why) => {
                debug_println!("floor: ERROR: vCPU {VCPU} left stopped: {why}");
                None
            }
        })
    }
}
