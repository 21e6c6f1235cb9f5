//! What both seL4 backends of the core's `Kernel` share (the Microkit VMM
//! PD's and the root task's): seL4's errors and registers in the core's
//! names, and the TCB register invocations on one saved context.

#![no_std]

use vmm::arch::aarch64::regs::{TcbReg, VcpuReg};
use vmm::kernel::KernelError;

/// seL4's error as the core's.
pub fn kerr(e: sel4::Error) -> KernelError {
    match e {
        sel4::Error::InvalidArgument | sel4::Error::RangeError | sel4::Error::TruncatedMessage => {
            KernelError::InvalidArgument
        }
        sel4::Error::InvalidCapability | sel4::Error::FailedLookup => KernelError::InvalidCapability,
        sel4::Error::IllegalOperation => KernelError::IllegalOperation,
        sel4::Error::AlignmentError => KernelError::AlignmentError,
        sel4::Error::DeleteFirst => KernelError::DeleteFirst,
        sel4::Error::RevokeFirst => KernelError::RevokeFirst,
        sel4::Error::NotEnoughMemory => KernelError::NotEnoughMemory,
    }
}

/// The result of an invocation, from seL4's error code. The common case is
/// tested first, inline: rust-sel4's `Error::from_sys` is an out-of-line
/// call, a tenth of what an exit spends in the VMM.
#[inline(always)]
pub fn invoked(err: sel4::sys::seL4_Error::Type) -> Result<(), KernelError> {
    if err == sel4::sys::seL4_Error::seL4_NoError {
        return Ok(());
    }
    sel4::Error::from_sys(err).map_or(Ok(()), |e| Err(kerr(e)))
}

/// The core's vCPU register as seL4's.
pub fn vcpu_reg(r: VcpuReg) -> Result<sel4::VCpuReg, KernelError> {
    Ok(match r {
        VcpuReg::Sctlr => sel4::VCpuReg::SCTLR,
        VcpuReg::Ttbr0 => sel4::VCpuReg::TTBR0,
        VcpuReg::Ttbr1 => sel4::VCpuReg::TTBR1,
        VcpuReg::Tcr => sel4::VCpuReg::TCR,
        VcpuReg::Mair => sel4::VCpuReg::MAIR,
        VcpuReg::Vbar => sel4::VCpuReg::VBAR,
        VcpuReg::ElrEl1 => sel4::VCpuReg::ELR_EL1,
        VcpuReg::SpsrEl1 => sel4::VCpuReg::SPSR_EL1,
        VcpuReg::CntvCtl => sel4::VCpuReg::CNTV_CTL,
        VcpuReg::CntvCval => sel4::VCpuReg::CNTV_CVAL,
        VcpuReg::SpEl1 => sel4::VCpuReg::SP_EL1,
        // seL4 keeps VMPIDR_EL2 in the vCPU object only on multi-core
        // kernels; the kernels this VMM runs on are single-core.
        VcpuReg::Vmpidr => return Err(KernelError::Unsupported),
    })
}

/// The register `r` in seL4's saved user context.
fn context_reg(ctx: &mut sel4::UserContext, r: TcbReg) -> Result<&mut u64, KernelError> {
    Ok(match r {
        TcbReg::Pc => ctx.pc_mut(),
        TcbReg::Sp => ctx.sp_mut(),
        TcbReg::Spsr => ctx.spsr_mut(),
        // gpr_mut panics above 30 (x31 is not a register).
        TcbReg::X(n) if n <= 30 => ctx.gpr_mut(usize::from(n)),
        TcbReg::X(_) => return Err(KernelError::InvalidArgument),
    })
}

/// The words of the context a register invocation on `reg` covers.
fn context_words(reg: TcbReg) -> Result<u64, KernelError> {
    reg.context_words().ok_or(KernelError::InvalidArgument)
}

/// A TCB's saved context between a register read and the write after it.
/// Kept, rather than made per call, because rust-sel4's by-value register
/// API zeroes and copies the whole 288-byte context per call, more than an
/// MMIO exit's own work.
#[derive(Default)]
pub struct Registers {
    ctx: sel4::UserContext,
}

impl Registers {
    /// `seL4_TCB_ReadRegisters` of the first `words` words of the context
    /// of the TCB `cptr`.
    fn read_context(&mut self, cptr: u64, words: u64) -> Result<(), KernelError> {
        let ctx = self.ctx.inner_mut();
        let err = sel4::with_ipc_buffer_mut(|b| b.inner_mut().seL4_TCB_ReadRegisters(cptr, 0, 0, words, ctx));
        invoked(err)
    }

    /// One register of the TCB `cptr` (`seL4_TCB_ReadRegisters` of the
    /// shortest prefix of the context that holds it).
    pub fn read(&mut self, cptr: u64, reg: TcbReg) -> Result<u64, KernelError> {
        self.read_context(cptr, context_words(reg)?)?;
        context_reg(&mut self.ctx, reg).map(|r| *r)
    }

    /// One `seL4_TCB_WriteRegisters` (without resuming) of the TCB `cptr`,
    /// of the shortest prefix of the context that holds `dest` and the PC,
    /// with `dest` and `pc` (when given) written and every other word as the
    /// TCB has it: the prefix is read first unless the write is the PC
    /// alone.
    pub fn write(&mut self, cptr: u64, dest: Option<(TcbReg, u64)>, pc: Option<u64>) -> Result<(), KernelError> {
        let words = dest.map_or(Ok(1), |(reg, _)| context_words(reg))?;
        let pc_alone = words == 1 && (pc.is_some() || dest.is_some());
        if !pc_alone {
            self.read_context(cptr, words)?;
        }
        if let Some((reg, value)) = dest {
            *context_reg(&mut self.ctx, reg)? = value;
        }
        if let Some(pc) = pc {
            *self.ctx.pc_mut() = pc;
        }
        let ctx = self.ctx.inner();
        let err = sel4::with_ipc_buffer_mut(|b| b.inner_mut().seL4_TCB_WriteRegisters(cptr, 0, 0, words, ctx));
        invoked(err)
    }
}
