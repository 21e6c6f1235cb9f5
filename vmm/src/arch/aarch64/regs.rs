//! Guest register names: the general registers the kernel keeps in a TCB and
//! the EL1 system registers it keeps in a vCPU object.
//!
//! On the wire a register is a `u32`: 0-30 are x0-x30, 31 is SP, 32 the PC,
//! 33 SPSR; `0x100 + n` is the `n`th [`VcpuReg`]. Anything else is unknown
//! (EINVAL).

/// A register saved in the TCB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TcbReg {
    /// x0 to x30.
    X(u8),
    /// SP_EL0, the stack pointer seL4 keeps in the TCB. A guest kernel
    /// running at EL1h uses SP_EL1, a vCPU register ([`VcpuReg::SpEl1`]).
    Sp,
    /// The program counter.
    Pc,
    /// The saved program status (guest exception level and masks).
    Spsr,
}

impl TcbReg {
    /// How many words of seL4's AArch64 user context reach this register:
    /// the length of the shortest prefix that holds it (`None` for x31 and
    /// above). The context is seL4's `frameRegisters` then `gpRegisters`:
    /// PC, SP, SPSR, x0-x8, x16-x18, x29, x30, x9-x15, x19-x28 (then the
    /// thread-pointer registers). `seL4_TCB_ReadRegisters` and
    /// `WriteRegisters` copy every word of the prefix they are given, so a
    /// VMM that reads and writes no more than this does the least work.
    pub fn context_words(self) -> Option<u64> {
        let index = match self {
            TcbReg::Pc => 0,
            TcbReg::Sp => 1,
            TcbReg::Spsr => 2,
            TcbReg::X(n @ 0..=8) => 3 + n,
            TcbReg::X(n @ 16..=18) => 12 + (n - 16),
            TcbReg::X(29) => 15,
            TcbReg::X(30) => 16,
            TcbReg::X(n @ 9..=15) => 17 + (n - 9),
            TcbReg::X(n @ 19..=28) => 24 + (n - 19),
            TcbReg::X(_) => return None,
        };
        Some(u64::from(index) + 1)
    }
}

/// An EL1 system register saved in the vCPU object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum VcpuReg {
    /// System control.
    Sctlr = 0,
    /// Translation table base 0.
    Ttbr0 = 1,
    /// Translation table base 1.
    Ttbr1 = 2,
    /// Translation control.
    Tcr = 3,
    /// Memory attribute indirection.
    Mair = 4,
    /// Vector base.
    Vbar = 5,
    /// Exception link register.
    ElrEl1 = 6,
    /// Saved program status for EL1 exceptions.
    SpsrEl1 = 7,
    /// Virtual timer control.
    CntvCtl = 8,
    /// Virtual timer compare value.
    CntvCval = 9,
    /// Virtual multiprocessor affinity. seL4 keeps it only on multicore
    /// kernels; elsewhere the backend answers `Unsupported`.
    Vmpidr = 10,
    /// SP_EL1, the stack pointer of a guest kernel at EL1h.
    SpEl1 = 11,
}

impl VcpuReg {
    /// Every vCPU register, in wire order.
    pub const ALL: [VcpuReg; 12] = [
        VcpuReg::Sctlr,
        VcpuReg::Ttbr0,
        VcpuReg::Ttbr1,
        VcpuReg::Tcr,
        VcpuReg::Mair,
        VcpuReg::Vbar,
        VcpuReg::ElrEl1,
        VcpuReg::SpsrEl1,
        VcpuReg::CntvCtl,
        VcpuReg::CntvCval,
        VcpuReg::Vmpidr,
        VcpuReg::SpEl1,
    ];
}

/// Any guest register a client may read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reg {
    /// Held in the TCB.
    Tcb(TcbReg),
    /// Held in the vCPU object.
    Vcpu(VcpuReg),
}

/// Wire number of the first vCPU system register.
pub const VCPU_REG_BASE: u32 = 0x100;

/// SCTLR_EL1 with its reserved-one bits (ARMv8.0) and nothing else: MMU,
/// alignment checks and caches off, as a CPU leaves reset.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// SPSR for a guest entered at EL1h with DAIF masked. seL4's default for a
/// new TCB is EL0, which a guest kernel cannot boot in.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;

impl Reg {
    /// Decodes a wire register number.
    pub fn from_wire(n: u32) -> Option<Reg> {
        match n {
            0..=30 => u8::try_from(n).ok().map(|x| Reg::Tcb(TcbReg::X(x))),
            31 => Some(Reg::Tcb(TcbReg::Sp)),
            32 => Some(Reg::Tcb(TcbReg::Pc)),
            33 => Some(Reg::Tcb(TcbReg::Spsr)),
            _ => {
                let i = usize::try_from(n.checked_sub(VCPU_REG_BASE)?).ok()?;
                VcpuReg::ALL.get(i).copied().map(Reg::Vcpu)
            }
        }
    }

    /// The wire register number.
    #[cfg(test)]
    fn to_wire(self) -> u32 {
        match self {
            Reg::Tcb(TcbReg::X(x)) => u32::from(x),
            Reg::Tcb(TcbReg::Sp) => 31,
            Reg::Tcb(TcbReg::Pc) => 32,
            Reg::Tcb(TcbReg::Spsr) => 33,
            Reg::Vcpu(r) => VCPU_REG_BASE + r as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_unknowns() {
        let mut known = 0;
        for n in 0..0x200u32 {
            if let Some(r) = Reg::from_wire(n) {
                assert_eq!(r.to_wire(), n);
                known += 1;
            }
        }
        assert_eq!(known, 34 + VcpuReg::ALL.len());
        for bad in [34, 0xff, VCPU_REG_BASE + VcpuReg::ALL.len() as u32, u32::MAX] {
            assert_eq!(Reg::from_wire(bad), None, "{bad:#x}");
        }
    }

    #[test]
    fn context_words_follow_sel4s_register_order() {
        // seL4 16.0.0, src/arch/arm/64/machine/registerset.c: frameRegisters
        // then gpRegisters.
        let x = [
            0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 17, 18, 29, 30, 9, 10, 11, 12, 13, 14, 15, 19, 20, 21, 22, 23, 24, 25, 26,
            27, 28,
        ];
        let order = [TcbReg::Pc, TcbReg::Sp, TcbReg::Spsr].into_iter().chain(x.map(TcbReg::X));
        for (i, r) in order.enumerate() {
            assert_eq!(r.context_words(), Some(i as u64 + 1), "{r:?}");
        }
        // Every register the core names, once: x0-x30 are all in the list.
        let mut seen = [false; 31];
        for n in x {
            assert!(!core::mem::replace(&mut seen[usize::from(n)], true), "x{n} twice");
        }
        for n in 31..=u8::MAX {
            assert_eq!(TcbReg::X(n).context_words(), None, "x{n}");
        }
    }
}
