//! The core's names for seL4's errors and registers, and back.

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
        // kernels; Microkit's are single-core.
        VcpuReg::Vmpidr => return Err(KernelError::Unsupported),
    })
}

/// The register `r` in seL4's saved user context.
pub fn context_reg(ctx: &mut sel4::UserContext, r: TcbReg) -> Result<&mut u64, KernelError> {
    Ok(match r {
        TcbReg::Pc => ctx.pc_mut(),
        TcbReg::Sp => ctx.sp_mut(),
        TcbReg::Spsr => ctx.spsr_mut(),
        // gpr_mut panics above 30 (x31 is not a register).
        TcbReg::X(n) if n <= 30 => ctx.gpr_mut(usize::from(n)),
        TcbReg::X(_) => return Err(KernelError::InvalidArgument),
    })
}
