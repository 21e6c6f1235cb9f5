//! Emulated devices and the table that finds them by guest-physical
//! address.
//!
//! The table is sorted by base address and its regions never overlap, so a
//! lookup is a binary search (O(log n)). A stage-2 fault is looked up in the
//! VM's memslots first and here second: a device is only reached at an
//! address no memslot covers.

pub mod pl011;

use heapless::Vec;

use crate::addr::Gpa;

use pl011::Pl011;
use vmm_abi::limits::MAX_DEVICES;

/// A device model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// A PL011 UART.
    Pl011(Pl011),
    /// A frame of the VM's virtual GIC, whose state is the VM's (its
    /// register model, `arch::aarch64::vgic`): the window is here so that
    /// it is found, and kept apart from the other devices, like theirs.
    Gic(GicFrame),
}

/// Which frames of the virtual GIC a window holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GicFrame {
    /// The distributor (GICD).
    Distributor,
    /// GICv3: the redistributors (GICR), one after another.
    Redistributors,
}

/// A device at `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region {
    /// Guest-physical base.
    pub base: Gpa,
    /// Size in bytes.
    pub(crate) size: u64,
    /// The model.
    pub device: Device,
}

crate::errors! {
    /// Why a device could not be registered.
    pub enum DeviceError {
        /// Empty, or wrapping the address space.
        BadRange => EINVAL, "device range empty or wrapping",
        /// Overlapping a registered device.
        Overlap => EEXIST, "device range overlaps another device",
        /// The table is full.
        Full => ENOSPC, "too many devices",
        /// Console input for a VM with no PL011.
        NoUart => ENOENT, "the VM has no PL011 to take console input",
        /// A second virtual GIC for one VM.
        GicExists => EEXIST, "the VM already has a virtual GIC",
        /// Redistributors given to a GICv2 or missing from a GICv3, or a
        /// vCPU limit the virtual GIC cannot serve.
        GicFrames => EINVAL, "a GICv3 needs redistributors and a GICv2 has none",
    }
}

/// The devices of one VM, sorted by base.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceMap {
    regions: Vec<Region, MAX_DEVICES>,
}

impl DeviceMap {
    /// Registers `device` at `[base, base + size)`.
    pub fn register(&mut self, base: Gpa, size: u64, device: Device) -> Result<(), DeviceError> {
        let end = base.checked_add(size).filter(|_| size > 0).ok_or(DeviceError::BadRange)?;
        let i = self.regions.partition_point(|r| r.base < base);
        let prev_overlaps = i > 0 && self.regions.get(i - 1).is_some_and(|p| p.base + p.size > base);
        let next_overlaps = self.regions.get(i).is_some_and(|n| n.base < end);
        if prev_overlaps || next_overlaps {
            return Err(DeviceError::Overlap);
        }
        self.regions.insert(i, Region { base, size, device }).map_err(|_| DeviceError::Full)
    }

    /// The device covering `gpa` and the offset into it.
    pub fn find_mut(&mut self, gpa: Gpa) -> Option<(&mut Device, u64)> {
        let i = self.regions.partition_point(|r| r.base <= gpa).checked_sub(1)?;
        let r = self.regions.get_mut(i)?;
        let offset = gpa.offset_from(r.base)?;
        (offset < r.size).then_some((&mut r.device, offset))
    }

    /// Every region, by address.
    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter()
    }

    /// Every region, by address, mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Region> {
        self.regions.iter_mut()
    }
}
