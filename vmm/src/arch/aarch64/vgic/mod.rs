//! The virtual GIC: a register model of a GICv2 distributor, or of a GICv3
//! distributor and redistributors, and the choice of what goes into each
//! vCPU's list registers.
//!
//! A pure state machine: the VMM hands it the guest's MMIO accesses to the
//! distributor ([`Vgic::dist_read`], [`Vgic::dist_write`]) and, on GICv3,
//! to the redistributors ([`Vgic::redist_read`], [`Vgic::redist_write`])
//! and the trapped ICC_SGI1R_EL1 writes ([`Vgic::sgi_sysreg`]); it drives
//! the interrupt lines ([`Vgic::set_level`], [`Vgic::raise`]). Each change
//! returns [`Effects`]: the vCPUs with an interrupt ready for a free list
//! register. For each, the VMM asks [`Vgic::next_for`], writes the answer
//! into the list register it names (seL4_ARM_VCPU_InjectIRQ) and confirms
//! with [`Vgic::load`]; a maintenance exit (the guest's EOI of a list
//! register) goes to [`Vgic::on_maintenance`], which frees the register
//! and says what else is now ready. An interrupt that finds every list
//! register full stays pending in the model and is chosen again, by
//! priority, when one frees: the distributor state is the queue.
//!
//! The CPU interface is the hardware's virtual one (GICV / ICV): priority
//! masking, acknowledge and EOI happen there, not here.
//!
//! Wired into the exits, that is:
//!
//! ```text
//! load in the GICD frame       raw = dist_read(vcpu, gpa - gicd, access.size)?   then access.load_result(raw)
//! store in the GICD frame      fx = dist_write(vcpu, gpa - gicd, access.size, access.store_value(reg))?
//! GICv3: in the GICR region    redist_read / redist_write(gpa - gicr, ...)
//! GICv3: ICC_SGI1R_EL1 trap    fx = sgi_sysreg(vcpu, xt, true)?
//! IRQ_LINE                     fx = set_level(Line::Spi(irq), level)?
//! seL4's virtual PPI           fx = raise(Line::Ppi(vcpu, irq))?
//! each vCPU v in fx.kick       while let Some(p) = next_for(v) {
//!                                  inject(v, p.intid, p.priority >> 3, p.group1, p.lr)?; load(v, p)?
//!                              }
//! maintenance(vcpu, lr)        eoi = on_maintenance(vcpu, lr)?; ack eoi.intid if it was seL4's
//!                              virtual PPI; then eoi.effects as fx above
//! ```
//!
//! An error from an MMIO access or the SGI register is the guest's doing
//! (the VMM stops that VM); from the others, the VMM's.
//!
//! Register names and semantics are those of the GIC architecture
//! specifications: GICv2 (Arm IHI 0048B) and GICv3/v4 (Arm IHI 0069). The
//! GICv3 modelled has a single Security state (GICD_CTLR.DS is 1, as a
//! guest sees under KVM) and supports affinity routing only
//! (GICD_CTLR.ARE is RAO/WI), no LPIs and no ITS.
//!
//! Choices the architecture leaves to an implementation:
//! - [`SPIS`] SPIs (GICD_TYPER.ITLinesNumber 2): enough for the devices of
//!   a QEMU-virt-like layout (UART, RTC, PCIe INTx and 32 virtio-mmio
//!   transports sit below INTID 80), at about 11 bytes per SPI and VM
//!   (the whole model is about 1.5 KiB per VM).
//! - Five priority bits (IPRIORITYR's low three bits are RAZ/WI): a list
//!   register holds five (GICH_VTR.PRIbits), so more would be lost there.
//! - SGIs are enabled at reset, SPIs and PPIs disabled; every interrupt is
//!   Group 0, priority 0 and (but SGIs) level-sensitive; PPIs' and SPIs'
//!   GICD_ICFGR fields are writable.
//! - An interrupt in a list register reads as active (GICD_ISACTIVER):
//!   the model cannot see whether the guest has acknowledged it yet, and
//!   it will have before its EOI. Clearing its pending or active state
//!   does not take it back out of the list register.
//! - Accesses the architecture leaves UNPREDICTABLE (unaligned, halfword,
//!   byte accesses to word registers, doubleword accesses to 32-bit
//!   registers) are refused with a [`VgicError`] and change nothing: the
//!   VMM stops the VM. Reserved offsets inside a frame are RAZ/WI.

mod lr;
mod regs;
mod state;
mod v2;
mod v3;

use vmm_abi::limits::{MAX_VCPUS, MIN_IRQ};
use vmm_abi::VcpuId;

use state::{Bit, Irqs};

pub use lr::{Eoi, Pending};

/// SGIs are interrupt ids 0 to 15.
pub(crate) const SGIS: u32 = 16;
/// The first PPI; PPIs are 16 to 31.
pub(crate) const PPI_BASE: u32 = MIN_IRQ;
/// The first SPI.
pub const SPI_BASE: u32 = 32;
/// SPIs implemented: ids `SPI_BASE..IRQS`.
pub(crate) const SPIS: usize = 64;
/// One past the highest interrupt id implemented.
pub const IRQS: u32 = SPI_BASE + SPIS as u32;
/// List registers per vCPU (GICv2 and the GICv3 of the boards here have at
/// least four), the same number as the interrupt code before the vGIC uses.
pub const LIST_REGISTERS: usize = 4;

/// Size of the GICv2 distributor frame (GICD).
pub(crate) const DIST_SIZE_V2: u64 = 0x1000;
/// Size of the GICv3 distributor frame (GICD).
pub const DIST_SIZE_V3: u64 = 0x1_0000;
/// Size of one GICv3 redistributor: its RD_base frame, then its SGI_base
/// frame (no VLPI frames: this is not a GICv4).
pub const REDIST_STRIDE: u64 = 0x2_0000;

// A GICv2 has at most eight CPU interfaces, and a vCPU set is a byte.
const _: () = assert!(MAX_VCPUS <= 8 && SPIS.is_multiple_of(32) && SGIS == PPI_BASE);

/// The sizes of the distributor frame and of the redistributor region
/// (none on a GICv2) of a vGIC for `vcpus` vCPUs; `None` for a count the
/// vGIC cannot serve (0, or above MAX_VCPUS).
pub fn frame_sizes(version: GicVersion, vcpus: u32) -> Option<(u64, u64)> {
    if vcpus == 0 || vcpus as usize > MAX_VCPUS {
        return None;
    }
    Some(match version {
        GicVersion::V2 => (DIST_SIZE_V2, 0),
        GicVersion::V3 => (DIST_SIZE_V3, REDIST_STRIDE * u64::from(vcpus)),
    })
}

/// The architecture version the guest sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GicVersion {
    /// GICv2: a memory-mapped distributor; SGIs through GICD_SGIR.
    V2,
    /// GICv3: distributor, a redistributor per vCPU, SGIs through the
    /// ICC_SGI1R_EL1 system register.
    V3,
}

crate::errors! {
    /// Why a vGIC access or operation was refused (nothing changed).
    pub enum VgicError {
        /// An access not aligned to its size.
        Unaligned => EFAULT, "vGIC access not aligned to its size",
        /// An access size the register does not support.
        BadWidth => EFAULT, "vGIC access size not supported by the register",
        /// An offset beyond the frame, or a redistributor that does not exist.
        OutOfRange => EFAULT, "vGIC access beyond its frames",
        /// A redistributor access or SGI system register write on a GICv2.
        WrongVersion => EINVAL, "vGIC operation of the other GIC version",
        /// A vCPU id not below the vGIC's vCPU count, or a count of 0 or
        /// above MAX_VCPUS.
        NoSuchVcpu => EINVAL, "no such vCPU in the vGIC",
        /// An interrupt id that is not a line the vGIC implements.
        NoSuchIrq => EINVAL, "interrupt id not implemented by the vGIC",
        /// A list register index of 4 or more.
        NoSuchListRegister => EINVAL, "no such list register",
        /// `load` of something `next_for` does not offer now.
        Stale => EINVAL, "interrupt to load is not the one offered",
    }
}

/// A set of vCPUs, a bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VcpuMask(u8);

impl VcpuMask {
    /// The set of the vCPUs whose bits are set in `bits`.
    pub const fn from_bits(bits: u8) -> Self {
        VcpuMask(bits)
    }

    /// A bit per vCPU.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether it holds no vCPU.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether it holds `vcpu`.
    pub fn contains(self, vcpu: VcpuId) -> bool {
        vcpu.0 < 8 && self.0 >> vcpu.0 & 1 == 1
    }

    /// The vCPUs it holds, lowest first.
    pub fn iter(self) -> impl Iterator<Item = VcpuId> {
        (0..8u32).filter(move |i| self.0 >> i & 1 == 1).map(VcpuId)
    }
}

/// What a change asks of the VMM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Effects {
    /// vCPUs for which [`Vgic::next_for`] now has an interrupt and a free
    /// list register (whether or not this change is what made it so).
    pub kick: VcpuMask,
}

/// An interrupt line the VMM drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Line {
    /// SPI `SPI_BASE..IRQS`, shared by the vCPUs.
    Spi(u32),
    /// PPI `PPI_BASE..SPI_BASE` of one vCPU (its timer, for instance).
    Ppi(VcpuId, u32),
}

/// A VM's virtual GIC.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vgic {
    version: GicVersion,
    /// vCPUs `0..vcpus` exist, 1 to MAX_VCPUS.
    vcpus: u8,
    /// GICD_CTLR's EnableGrp0 (bit 0) and EnableGrp1 (bit 1).
    ctlr: u32,
    /// GICv3: redistributors whose GICR_WAKER.ProcessorSleep is set, a
    /// bit per vCPU; interrupts are not forwarded to them.
    asleep: u8,
    irqs: Irqs,
    lrs: [lr::ListRegs; MAX_VCPUS],
}

impl Vgic {
    /// A vGIC in its reset state for vCPUs `0..vcpus`.
    pub fn new(version: GicVersion, vcpus: u32) -> Result<Self, VgicError> {
        let n = u8::try_from(vcpus).ok().filter(|n| (1..=MAX_VCPUS).contains(&usize::from(*n)));
        let vcpus = n.ok_or(VgicError::NoSuchVcpu)?;
        // GICR_WAKER resets with ProcessorSleep set: the guest wakes each
        // redistributor before using it.
        let asleep = match version {
            GicVersion::V2 => 0,
            GicVersion::V3 => all(vcpus),
        };
        // GICD_IROUTER resets UNKNOWN; 0 routes every SPI to vCPU 0, which
        // exists.
        let mut irqs = Irqs::new();
        if version == GicVersion::V2 && vcpus == 1 {
            // A uniprocessor GICv2 has GICD_ITARGETSR RAZ/WI and forwards
            // every SPI to its one CPU interface.
            for intid in SPI_BASE..IRQS {
                if let Some(t) = irqs.targets_mut(intid) {
                    *t = 1;
                }
            }
        }
        Ok(Vgic { version, vcpus, ctlr: 0, asleep, irqs, lrs: [lr::ListRegs::default(); MAX_VCPUS] })
    }

    /// The architecture version.
    pub fn version(&self) -> GicVersion {
        self.version
    }

    /// The vCPU count.
    pub fn vcpus(&self) -> u32 {
        u32::from(self.vcpus)
    }

    /// Size of the distributor frame, where [`Vgic::dist_read`] answers.
    pub fn dist_size(&self) -> u64 {
        frame_sizes(self.version, self.vcpus()).map_or(0, |(dist, _)| dist)
    }

    /// Size of the redistributor region (GICv3: one per vCPU, contiguous;
    /// GICv2: none).
    pub fn redist_size(&self) -> u64 {
        frame_sizes(self.version, self.vcpus()).map_or(0, |(_, redist)| redist)
    }

    /// A load of `size` bytes (1, 2, 4 or 8, as [`Access`] has it) at
    /// `offset` in the distributor frame by `vcpu`; the raw value, which
    /// [`Access::load_result`] extends into the register.
    ///
    /// [`Access`]: super::mmio::Access
    /// [`Access::load_result`]: super::mmio::Access::load_result
    pub fn dist_read(&self, vcpu: VcpuId, offset: u64, size: u8) -> Result<u64, VgicError> {
        let v = self.index(vcpu)?;
        let d = match self.version {
            GicVersion::V2 => v2::decode(offset)?,
            GicVersion::V3 => v3::decode_dist(offset)?,
        };
        self.read_decoded(v, d, offset, size)
    }

    /// A store of the low `size` bytes of `value` at `offset` in the
    /// distributor frame by `vcpu`.
    pub fn dist_write(&mut self, vcpu: VcpuId, offset: u64, size: u8, value: u64) -> Result<Effects, VgicError> {
        let v = self.index(vcpu)?;
        let d = match self.version {
            GicVersion::V2 => v2::decode(offset)?,
            GicVersion::V3 => v3::decode_dist(offset)?,
        };
        self.write_decoded(v, d, offset, size, value)?;
        Ok(self.effects())
    }

    /// GICv3: a load at `offset` in the redistributor region (vCPU `n`'s
    /// RD_base frame at `n * REDIST_STRIDE`, its SGI_base frame 64 KiB
    /// after). Which vCPU makes the access does not matter.
    pub fn redist_read(&self, offset: u64, size: u8) -> Result<u64, VgicError> {
        let (v, d, off) = self.decode_redist(offset)?;
        self.read_decoded(v, d, off, size)
    }

    /// GICv3: a store at `offset` in the redistributor region.
    pub fn redist_write(&mut self, offset: u64, size: u8, value: u64) -> Result<Effects, VgicError> {
        let (v, d, off) = self.decode_redist(offset)?;
        self.write_decoded(v, d, off, size, value)?;
        Ok(self.effects())
    }

    /// GICv3: `vcpu` wrote `value` to ICC_SGI1R_EL1 (`group1`), or to
    /// ICC_SGI0R_EL1 or ICC_ASGI1R_EL1 (not `group1`: with a single
    /// Security state there is no other Group 1, and those generate Group 0
    /// SGIs only). SGIs aimed at vCPUs that do not exist are dropped.
    pub fn sgi_sysreg(&mut self, vcpu: VcpuId, value: u64, group1: bool) -> Result<Effects, VgicError> {
        let v = self.index(vcpu)?;
        if self.version != GicVersion::V3 {
            return Err(VgicError::WrongVersion);
        }
        self.sgi_v3(v, value, group1);
        Ok(self.effects())
    }

    /// Sets the level of `line`. On an edge-triggered interrupt a rising
    /// level makes it pending; on a level-sensitive one it is pending for
    /// as long as the level is high.
    pub fn set_level(&mut self, line: Line, level: bool) -> Result<Effects, VgicError> {
        let (v, intid) = self.line(line)?;
        let rising = level && !self.irqs.bit(v, intid, Bit::Level);
        if rising && self.irqs.bit(v, intid, Bit::Edge) {
            self.irqs.set_bit(v, intid, Bit::Latch, true);
        }
        self.irqs.set_bit(v, intid, Bit::Level, level);
        Ok(self.effects())
    }

    /// Makes `line` pending until the guest takes it, whatever its
    /// configuration (as a write to GICD_ISPENDR does): for interrupts
    /// that have no line to hold, such as the virtual PPIs seL4 delivers.
    pub fn raise(&mut self, line: Line) -> Result<Effects, VgicError> {
        let (v, intid) = self.line(line)?;
        self.irqs.set_bit(v, intid, Bit::Latch, true);
        Ok(self.effects())
    }

    /// The vCPU index of `vcpu`, if it exists.
    fn index(&self, vcpu: VcpuId) -> Result<usize, VgicError> {
        usize::try_from(vcpu.0).ok().filter(|v| *v < usize::from(self.vcpus)).ok_or(VgicError::NoSuchVcpu)
    }

    /// The vCPU whose bank holds `line` (0 for an SPI) and its id.
    fn line(&self, line: Line) -> Result<(usize, u32), VgicError> {
        match line {
            Line::Spi(intid) if (SPI_BASE..IRQS).contains(&intid) => Ok((0, intid)),
            Line::Ppi(vcpu, intid) if (PPI_BASE..SPI_BASE).contains(&intid) => Ok((self.index(vcpu)?, intid)),
            Line::Spi(_) | Line::Ppi(..) => Err(VgicError::NoSuchIrq),
        }
    }

    /// The effects of the state as it now is.
    fn effects(&self) -> Effects {
        Effects { kick: self.ready() }
    }
}

/// The set of vCPUs `0..n`.
fn all(n: u8) -> u8 {
    1u16.checked_shl(u32::from(n)).map_or(u8::MAX, |b| (b - 1) as u8)
}

/// Proofs over every input (`cargo kani -p vmm`).
#[cfg(kani)]
mod proofs {
    use super::*;

    /// Any distributor write, by any vCPU (one that does not exist
    /// included), at any offset and of any size, is answered without a
    /// panic, and the identification registers (GICD_TYPER, GICD_IIDR)
    /// read as before.
    #[kani::proof]
    #[kani::unwind(65)]
    fn any_distributor_write_is_answered_and_leaves_the_identity_alone() {
        let version = if kani::any() { GicVersion::V2 } else { GicVersion::V3 };
        let g = Vgic::new(version, 2);
        assert!(g.is_ok());
        let Ok(mut g) = g else { return };
        let typer = g.dist_read(VcpuId(0), 0x4, 4);
        let iidr = g.dist_read(VcpuId(0), 0x8, 4);
        let vcpu = VcpuId(kani::any::<u32>() % 3);
        let offset: u64 = kani::any();
        kani::assume(offset < DIST_SIZE_V3 + 8);
        let _ = g.dist_write(vcpu, offset, kani::any(), kani::any());
        assert!(g.dist_read(VcpuId(0), 0x4, 4) == typer);
        assert!(g.dist_read(VcpuId(0), 0x8, 4) == iidr);
    }
}
