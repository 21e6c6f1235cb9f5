//! A kernel that keeps only registers, in fixed arrays, and counts its
//! invocations: no allocation, so the allocation count around the core is
//! the core's own, and the count keeps the compiler from deleting loops
//! whose invocations would otherwise do nothing.

use vmm::arch::aarch64::regs::{TcbReg, VcpuReg};
use vmm::caps::{FrameCap, ObjectType, PageTableCap, Rights, Slot, TcbCap, VCpuCap, VSpaceCap};
use vmm::kernel::{Kernel, KernelError, Virq};

const TCBS: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NullKernel {
    base: u64,
    regs: [[u64; 34]; TCBS],
    /// Invocations so far.
    pub calls: u64,
}

impl NullKernel {
    /// TCBs are told apart by slot modulo 8, which is enough for a VM with
    /// a few vCPUs.
    pub fn new() -> NullKernel {
        NullKernel { base: 0, regs: [[0; 34]; TCBS], calls: 0 }
    }

    fn tcb(&mut self, tcb: TcbCap) -> &mut [u64; 34] {
        let i = (tcb.slot().0.wrapping_sub(self.base) % TCBS as u64) as usize;
        &mut self.regs[i]
    }
}

fn index(reg: TcbReg) -> usize {
    match reg {
        TcbReg::X(n) => usize::from(n.min(30)),
        TcbReg::Sp => 31,
        TcbReg::Pc => 32,
        TcbReg::Spsr => 33,
    }
}

impl Kernel for NullKernel {
    fn untyped_retype(&mut self, _: ObjectType, _: Slot) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn cnode_copy(&mut self, _: Slot, _: Slot, _: Rights) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn cnode_move(&mut self, _: Slot, _: Slot) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn cnode_delete(&mut self, _: Slot) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn cnode_revoke(&mut self, _: Slot) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn frame_map(&mut self, _: FrameCap, _: VSpaceCap, _: u64, _: Rights) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn frame_unmap(&mut self, _: FrameCap) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn page_table_map(&mut self, _: PageTableCap, _: VSpaceCap, _: u64) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn tcb_bind(&mut self, _: TcbCap, _: VCpuCap, _: VSpaceCap) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn tcb_read_register(&mut self, tcb: TcbCap, reg: TcbReg) -> Result<u64, KernelError> {
        self.calls += 1;
        Ok(self.tcb(tcb)[index(reg)])
    }
    fn tcb_write_register(&mut self, tcb: TcbCap, reg: TcbReg, value: u64) -> Result<(), KernelError> {
        self.calls += 1;
        self.tcb(tcb)[index(reg)] = value;
        Ok(())
    }
    fn tcb_write_result(&mut self, tcb: TcbCap, dest: Option<(TcbReg, u64)>, pc: u64) -> Result<(), KernelError> {
        self.calls += 1;
        let r = self.tcb(tcb);
        if let Some((reg, value)) = dest {
            r[index(reg)] = value;
        }
        r[index(TcbReg::Pc)] = pc;
        Ok(())
    }
    fn tcb_resume(&mut self, _: TcbCap) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn tcb_suspend(&mut self, _: TcbCap) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn vcpu_read_reg(&mut self, _: VCpuCap, _: VcpuReg) -> Result<u64, KernelError> {
        self.calls += 1;
        Ok(0)
    }
    fn vcpu_write_reg(&mut self, _: VCpuCap, _: VcpuReg, _: u64) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn vcpu_inject_irq(&mut self, _: VCpuCap, _: Virq, _: u8) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
    fn vcpu_ack_vppi(&mut self, _: VCpuCap, _: u16) -> Result<(), KernelError> {
        self.calls += 1;
        Ok(())
    }
}
