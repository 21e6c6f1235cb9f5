//! The list registers of each vCPU's virtual CPU interface, as the VMM
//! filled them, and the choice of what goes in next.
//!
//! The model cannot read a list register back; it knows what it put in
//! (`load`) and what the guest has finished with (`on_maintenance`: seL4
//! reports the EOI of each list register as a maintenance exit). An
//! interrupt in a list register is not offered again, to that vCPU or
//! (an SPI) to any other, until then: the architecture forbids one INTID
//! in two list registers, and an active SPI is not forwarded anywhere.

use vmm_abi::VcpuId;

use super::state::Bit;
use super::{Effects, GicVersion, VcpuMask, Vgic, VgicError, IRQS, LIST_REGISTERS, SGIS, SPI_BASE};

/// An interrupt in a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Loaded {
    intid: u32,
}

/// One vCPU's list registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct ListRegs([Option<Loaded>; LIST_REGISTERS]);

impl ListRegs {
    fn free(&self) -> Option<usize> {
        self.0.iter().position(Option::is_none)
    }
}

/// What to write into a list register: the answer of [`Vgic::next_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pending {
    /// The interrupt id (the list register's vINTID).
    pub intid: u32,
    /// Its priority, in the top five bits (a list register's Priority
    /// field holds `priority >> 3`).
    pub priority: u8,
    /// Group 1, else Group 0.
    pub group1: bool,
    /// GICv2 SGIs: the vCPU that sent it, for the list register's CPUID
    /// field (which the guest reads in GICC_IAR); 0 otherwise.
    pub source: u8,
    /// The free list register to put it in, below [`LIST_REGISTERS`].
    pub lr: u8,
}

/// What a maintenance exit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Eoi {
    /// The interrupt the guest completed, if the list register held one
    /// (the VMM acknowledges a virtual PPI of seL4's when it sees it here).
    pub intid: Option<u32>,
    /// What is ready now.
    pub effects: Effects,
}

impl Vgic {
    /// What to put into a list register of `vcpu` next, and into which: the
    /// highest-priority (lowest value; the lowest id among equals)
    /// pending, enabled, inactive interrupt of an enabled group that is
    /// routed to `vcpu` and is in no list register; `None` if there is
    /// none, every list register is in use, or (GICv3) the vCPU's
    /// redistributor is asleep.
    pub fn next_for(&self, vcpu: VcpuId) -> Option<Pending> {
        let v = self.index(vcpu).ok()?;
        if self.asleep >> v & 1 == 1 {
            return None;
        }
        let lr = u8::try_from(self.lrs.get(v)?.free()?).ok()?;
        let mut best: Option<Pending> = None;
        for n in 0..IRQS / 32 {
            let mut candidates = self.candidates(v, n);
            while candidates != 0 {
                let intid = n * 32 + candidates.trailing_zeros();
                candidates &= candidates - 1;
                if intid >= SPI_BASE && !self.routes(intid, v) {
                    continue;
                }
                let priority = self.irqs.priority(v, intid);
                if best.is_some_and(|b| b.priority <= priority) {
                    continue;
                }
                let group1 = self.irqs.bit(v, intid, Bit::Group);
                best = Some(Pending { intid, priority, group1, source: self.source(v, intid), lr });
            }
        }
        best
    }

    /// The VMM wrote `pending`, the answer of [`Vgic::next_for`], into the
    /// list register it names: the interrupt is taken (its pending latch,
    /// or for a GICv2 SGI this source, cleared) and held until that list
    /// register's maintenance. Anything but the current answer is refused.
    pub fn load(&mut self, vcpu: VcpuId, pending: Pending) -> Result<(), VgicError> {
        let v = self.index(vcpu)?;
        if self.next_for(vcpu) != Some(pending) {
            return Err(VgicError::Stale);
        }
        let intid = pending.intid;
        if let Some(slot) = self.lrs.get_mut(v).and_then(|l| l.0.get_mut(usize::from(pending.lr))) {
            *slot = Some(Loaded { intid });
        }
        if self.version == GicVersion::V2 && intid < SGIS {
            let rest = self.irqs.sgi_sources(v, intid) & !(1u8 << (pending.source % 8));
            self.irqs.set_sgi_sources(v, intid, rest);
        } else {
            self.irqs.set_bit(v, intid, Bit::Latch, false);
        }
        Ok(())
    }

    /// A maintenance exit: the guest completed (EOI) the interrupt in list
    /// register `lr` of `vcpu`. The register is free again and the
    /// interrupt inactive; a level-sensitive one whose line is still high
    /// is pending again, and whatever is ready (for this vCPU or another)
    /// is in the effects. A free list register has nothing to complete.
    pub fn on_maintenance(&mut self, vcpu: VcpuId, lr: u8) -> Result<Eoi, VgicError> {
        let v = self.index(vcpu)?;
        let slot = self.lrs.get_mut(v).and_then(|l| l.0.get_mut(usize::from(lr)));
        let loaded = slot.ok_or(VgicError::NoSuchListRegister)?.take();
        if let Some(l) = loaded {
            self.irqs.set_bit(v, l.intid, Bit::Active, false);
        }
        Ok(Eoi { intid: loaded.map(|l| l.intid), effects: self.effects() })
    }

    /// True if `vcpu` has an interrupt in a list register, or one ready to
    /// go into one: a WFI of it would end at once.
    pub fn busy(&self, vcpu: VcpuId) -> bool {
        let loaded =
            self.index(vcpu).ok().and_then(|v| self.lrs.get(v)).is_some_and(|l| l.0.iter().any(Option::is_some));
        loaded || self.next_for(vcpu).is_some()
    }

    /// The interrupt in list register `lr` of `vcpu`, if any.
    pub fn loaded(&self, vcpu: VcpuId, lr: u8) -> Option<u32> {
        let v = self.index(vcpu).ok()?;
        self.lrs.get(v)?.0.get(usize::from(lr)).copied().flatten().map(|l| l.intid)
    }

    /// The vCPUs [`Vgic::next_for`] has something for.
    pub(super) fn ready(&self) -> VcpuMask {
        let bits = (0..self.vcpus).filter(|v| self.next_for(VcpuId(u32::from(*v))).is_some());
        VcpuMask::from_bits(bits.fold(0, |acc, v| acc | 1 << v))
    }

    /// Word `n` of the interrupts in list registers, as `vcpu` sees them:
    /// its own SGIs and PPIs, and SPIs in anyone's.
    pub(super) fn loaded_word(&self, vcpu: usize, n: u32) -> u32 {
        let lrs: &[ListRegs] = if n == 0 { self.lrs.get(vcpu..=vcpu).unwrap_or(&[]) } else { &self.lrs };
        let ids = lrs.iter().flat_map(|l| l.0.iter().flatten()).map(|l| l.intid);
        ids.filter(|i| i / 32 == n).fold(0, |acc, i| acc | 1 << (i % 32))
    }

    /// The interrupts of word `n` that may go into a list register of
    /// vCPU `v` now, routing aside: pending, enabled, inactive, of an
    /// enabled group, and in no list register (of `v`, or for an SPI of
    /// any vCPU).
    fn candidates(&self, v: usize, n: u32) -> u32 {
        let group = self.irqs.word(v, n, Bit::Group);
        let group0 = if self.ctlr & 1 != 0 { !group } else { 0 };
        let group1 = if self.ctlr & 2 != 0 { group } else { 0 };
        self.irqs.word(v, n, Bit::Enabled)
            & self.irqs.pending_word(v, n)
            & !self.irqs.word(v, n, Bit::Active)
            & (group0 | group1)
            & !self.loaded_word(v, n)
    }

    /// Whether SPI `intid` is routed to vCPU `v`.
    fn routes(&self, intid: u32, v: usize) -> bool {
        match self.version {
            GicVersion::V2 => self.irqs.targets(intid) >> (v % 8) & 1 == 1,
            GicVersion::V3 => self.routes_v3(intid, v),
        }
    }

    /// The source to deliver a pending interrupt from: the lowest vCPU a
    /// GICv2 SGI is pending from, else 0.
    fn source(&self, v: usize, intid: u32) -> u8 {
        if self.version == GicVersion::V2 && intid < SGIS {
            self.irqs.sgi_sources(v, intid).trailing_zeros() as u8 % 8
        } else {
            0
        }
    }
}
