//! The state of every interrupt a vGIC implements: a bit each for enable,
//! the software pending latch, the line level, active, group and edge
//! configuration, and a byte each for priority and (GICv2) target list,
//! with the SGIs and PPIs banked per vCPU and the SPIs shared.
//!
//! Bits are kept in 32-interrupt words, the shape of the GICD_ISENABLER,
//! GICD_ISPENDR, ... registers, so that a register access is a word
//! operation. Interrupt `i` is bit `i % 32` of word `i / 32`; word 0 is the
//! banked one.

use vmm_abi::limits::MAX_VCPUS;

use super::{IRQS, SGIS, SPIS, SPI_BASE};

/// SPI words: interrupts 32 and up.
const SPI_WORDS: usize = SPIS / 32;

/// A bit every interrupt has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bit {
    /// GICD_ISENABLER: the interrupt may be forwarded.
    Enabled,
    /// The pending state set by an edge, a write to GICD_ISPENDR or
    /// GICD_SGIR, cleared by GICD_ICPENDR or by the guest taking it.
    Latch,
    /// The level of the input line (what the VMM last set).
    Level,
    /// GICD_ISACTIVER, as set by the guest; an interrupt in a list register
    /// reads as active as well.
    Active,
    /// GICD_IGROUPR: Group 1 when set.
    Group,
    /// GICD_ICFGR's Int_config bit: edge-triggered when set.
    Edge,
}

/// One bitmap per [`Bit`], `N` words each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bitmaps<const N: usize> {
    enabled: [u32; N],
    latch: [u32; N],
    level: [u32; N],
    active: [u32; N],
    group: [u32; N],
    edge: [u32; N],
}

impl<const N: usize> Bitmaps<N> {
    const fn new() -> Self {
        Bitmaps { enabled: [0; N], latch: [0; N], level: [0; N], active: [0; N], group: [0; N], edge: [0; N] }
    }

    fn words(&self, b: Bit) -> &[u32; N] {
        match b {
            Bit::Enabled => &self.enabled,
            Bit::Latch => &self.latch,
            Bit::Level => &self.level,
            Bit::Active => &self.active,
            Bit::Group => &self.group,
            Bit::Edge => &self.edge,
        }
    }

    fn words_mut(&mut self, b: Bit) -> &mut [u32; N] {
        match b {
            Bit::Enabled => &mut self.enabled,
            Bit::Latch => &mut self.latch,
            Bit::Level => &mut self.level,
            Bit::Active => &mut self.active,
            Bit::Group => &mut self.group,
            Bit::Edge => &mut self.edge,
        }
    }
}

/// A vCPU's banked interrupts: SGIs 0-15 and PPIs 16-31.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Private {
    bits: Bitmaps<1>,
    priority: [u8; SPI_BASE as usize],
    /// GICv2 only: for each SGI, the vCPUs it is pending from (a bit each),
    /// as GICD_SPENDSGIR shows them. The SGI's latch bit is set exactly
    /// when this is not zero.
    sgi_sources: [u8; SGIS as usize],
}

impl Private {
    /// Reset: SGIs are edge-triggered (GICD_ICFGR0 is read-only
    /// 0xAAAAAAAA) and enabled, as on GICs whose SGI enables are fixed, so
    /// that a guest that never writes GICD_ISENABLER0 still gets its IPIs.
    /// Everything else is 0: disabled, Group 0, level, priority 0.
    const fn new() -> Self {
        let mut bits = Bitmaps::new();
        bits.enabled = [0xffff];
        bits.edge = [0xffff];
        Private { bits, priority: [0; SPI_BASE as usize], sgi_sources: [0; SGIS as usize] }
    }
}

/// The SPIs, shared by every vCPU.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Shared {
    bits: Bitmaps<SPI_WORDS>,
    priority: [u8; SPIS],
    /// GICD_ITARGETSR (GICv2): the vCPUs an SPI may go to, a bit each.
    targets: [u8; SPIS],
    /// GICD_IROUTER (GICv3): Aff3 in bits 39:32, Interrupt_Routing_Mode in
    /// bit 31, Aff2, Aff1, Aff0 in bits 23:0.
    route: [u64; SPIS],
}

/// Every interrupt's state, for `MAX_VCPUS` vCPUs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Irqs {
    private: [Private; MAX_VCPUS],
    shared: Shared,
}

impl Irqs {
    /// The reset state (every SPI disabled, level, Group 0, priority 0,
    /// targeting nothing on GICv2 and vCPU 0 on GICv3).
    pub(super) const fn new() -> Self {
        Irqs {
            private: [const { Private::new() }; MAX_VCPUS],
            shared: Shared { bits: Bitmaps::new(), priority: [0; SPIS], targets: [0; SPIS], route: [0; SPIS] },
        }
    }

    /// Word `n` of bitmap `b` as vCPU `vcpu` sees it (0 if not implemented).
    pub(super) fn word(&self, vcpu: usize, n: u32, b: Bit) -> u32 {
        match n.checked_sub(1) {
            None => self.private.get(vcpu).map_or(0, |p| p.bits.words(b)[0]),
            Some(s) => self.shared.bits.words(b).get(s as usize).copied().unwrap_or(0),
        }
    }

    /// Word `n` of bitmap `b` as vCPU `vcpu` sees it, to change.
    pub(super) fn word_mut(&mut self, vcpu: usize, n: u32, b: Bit) -> Option<&mut u32> {
        match n.checked_sub(1) {
            None => self.private.get_mut(vcpu).map(|p| &mut p.bits.words_mut(b)[0]),
            Some(s) => self.shared.bits.words_mut(b).get_mut(s as usize),
        }
    }

    /// Bit `b` of interrupt `intid` as vCPU `vcpu` sees it.
    pub(super) fn bit(&self, vcpu: usize, intid: u32, b: Bit) -> bool {
        self.word(vcpu, intid / 32, b) >> (intid % 32) & 1 == 1
    }

    /// Sets or clears bit `b` of interrupt `intid` as vCPU `vcpu` sees it.
    pub(super) fn set_bit(&mut self, vcpu: usize, intid: u32, b: Bit, on: bool) {
        if let Some(w) = self.word_mut(vcpu, intid / 32, b) {
            let bit = 1u32 << (intid % 32);
            if on {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }

    /// The pending bits of word `n`: the latch, or for a level-sensitive
    /// interrupt also the line (GIC spec: a level-sensitive interrupt is
    /// pending while its line is asserted, or while latched by a write to
    /// GICD_ISPENDR).
    pub(super) fn pending_word(&self, vcpu: usize, n: u32) -> u32 {
        let level = self.word(vcpu, n, Bit::Level) & !self.word(vcpu, n, Bit::Edge);
        self.word(vcpu, n, Bit::Latch) | level
    }

    /// The priority of `intid` as `vcpu` sees it (0 if not implemented).
    pub(super) fn priority(&self, vcpu: usize, intid: u32) -> u8 {
        self.priority_ref(vcpu, intid).copied().unwrap_or(0)
    }

    fn priority_ref(&self, vcpu: usize, intid: u32) -> Option<&u8> {
        match intid.checked_sub(SPI_BASE) {
            None => self.private.get(vcpu)?.priority.get(intid as usize),
            Some(s) => self.shared.priority.get(s as usize),
        }
    }

    /// The priority of `intid` as `vcpu` sees it, to change.
    pub(super) fn priority_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut u8> {
        match intid.checked_sub(SPI_BASE) {
            None => self.private.get_mut(vcpu)?.priority.get_mut(intid as usize),
            Some(s) => self.shared.priority.get_mut(s as usize),
        }
    }

    /// The GICv2 target list of SPI `intid` (0 for any other id).
    pub(super) fn targets(&self, intid: u32) -> u8 {
        self.spi_index(intid).and_then(|s| self.shared.targets.get(s)).copied().unwrap_or(0)
    }

    /// The GICv2 target list of SPI `intid`, to change.
    pub(super) fn targets_mut(&mut self, intid: u32) -> Option<&mut u8> {
        self.spi_index(intid).and_then(|s| self.shared.targets.get_mut(s))
    }

    /// The GICv3 GICD_IROUTER value of SPI `intid` (0 for any other id).
    pub(super) fn route(&self, intid: u32) -> u64 {
        self.spi_index(intid).and_then(|s| self.shared.route.get(s)).copied().unwrap_or(0)
    }

    /// The GICv3 GICD_IROUTER value of SPI `intid`, to change.
    pub(super) fn route_mut(&mut self, intid: u32) -> Option<&mut u64> {
        self.spi_index(intid).and_then(|s| self.shared.route.get_mut(s))
    }

    /// GICv2: the vCPUs SGI `sgi` is pending on `vcpu` from.
    pub(super) fn sgi_sources(&self, vcpu: usize, sgi: u32) -> u8 {
        self.private.get(vcpu).and_then(|p| p.sgi_sources.get(sgi as usize)).copied().unwrap_or(0)
    }

    /// GICv2: sets the vCPUs SGI `sgi` is pending on `vcpu` from, and the
    /// SGI's latch with them.
    pub(super) fn set_sgi_sources(&mut self, vcpu: usize, sgi: u32, sources: u8) {
        let Some(s) = self.private.get_mut(vcpu).and_then(|p| p.sgi_sources.get_mut(sgi as usize)) else {
            return;
        };
        *s = sources;
        self.set_bit(vcpu, sgi, Bit::Latch, sources != 0);
    }

    fn spi_index(&self, intid: u32) -> Option<usize> {
        intid.checked_sub(SPI_BASE).filter(|_| intid < IRQS).map(|s| s as usize)
    }
}
