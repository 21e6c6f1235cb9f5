//! The boot manifest: the static layout a VMM PD starts from, written on the
//! host from the system description and checked here before anything uses
//! it.
//!
//! On Microkit the memory of a VM is fixed when the system is built, so the
//! VMM learns it from this manifest: the guest RAM mapped into it, the VM's
//! memslots and private (guest_memfd) regions, its devices, and who
//! controls it with what memlock budget. The VMM's memory operations are
//! checked against it at run time.
//!
//! Layout (all little-endian, `zerocopy`): a [`Header`], then `ram` [`Ram`]
//! records, `slots` [`SlotEntry`] records, `files` [`File`] records and
//! `devices` [`Dev`] records, nothing after. The header's `checksum` is the
//! CRC-32 (IEEE) of everything after the header; `length` is the whole
//! manifest's length. A manifest whose magic, version, length, checksum,
//! counts or records are wrong is refused as a whole.

use heapless::Vec;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::limits::{page_aligned, MAX_DEVICES, MAX_GMEM_FILES, MAX_RAM_REGIONS, MAX_VCPUS};
use crate::memslot::{MemoryRegion, GUEST_MEMFD, READONLY};
use crate::Errno;

/// "VMMF".
pub const MAGIC: [u8; 4] = *b"VMMF";
/// The format this core reads.
pub const VERSION: u32 = 2;
/// VMs a VMM configured from a boot manifest keeps at once: the one the
/// manifest describes (a client may re-create it once the old one is gone,
/// its guest_memfd files closed).
pub const VMS: usize = 1;
/// Memslots a manifest may describe.
pub const MAX_SLOTS: usize = 32;

/// The VM is internal: the VMM creates and starts it at initialisation.
pub const VM_INTERNAL: u32 = 1 << 0;
/// The guest is Linux: its kernel Image is loaded at `entry`, its device
/// tree at `dtb` (the boot vCPU's x0, as arm64 Linux's boot protocol asks)
/// and its initramfs at `initrd`.
pub const VM_LINUX: u32 = 1 << 1;
/// The client has no memlock limit.
pub const CLIENT_PRIVILEGED: u32 = 1 << 0;
/// A slot's backing is a guest_memfd file (`file` names it), else RAM.
pub const SLOT_GMEM: u32 = 1 << 0;
/// A slot may be locked (its region uses 4 KiB pages).
pub const SLOT_LOCKABLE: u32 = 1 << 1;
/// A slot is read-only for the guest.
pub const SLOT_READONLY: u32 = 1 << 2;
/// Device kind: a PL011 UART.
pub const DEV_PL011: u32 = 1;
/// Device kind: a virtual GICv2's distributor (`base`; `size` is the
/// frame's, 4 KiB).
pub const DEV_GICV2_DIST: u32 = 2;
/// Device kind: a virtual GICv3's distributor (`base`; 64 KiB).
pub const DEV_GICV3_DIST: u32 = 3;
/// Device kind: a virtual GICv3's redistributors (`base`; 128 KiB a vCPU).
pub const DEV_GICV3_REDIST: u32 = 4;

/// The manifest header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub(crate) struct Header {
    /// [`MAGIC`].
    pub(crate) magic: [u8; 4],
    /// [`VERSION`].
    pub(crate) version: U32,
    /// Bytes in the whole manifest.
    pub(crate) length: U32,
    /// CRC-32 of the whole manifest, this field taken as zero.
    pub(crate) checksum: U32,
    /// [`VM_INTERNAL`].
    pub(crate) vm_flags: U32,
    /// vCPUs of the VM (ids `0..vcpus`).
    pub(crate) vcpus: U32,
    /// Where the guest enters (the boot vCPU's PC).
    pub(crate) entry: U64,
    /// The channel of the controlling client (ignored for internal VMs).
    pub(crate) client_channel: U32,
    /// [`CLIENT_PRIVILEGED`].
    pub(crate) client_flags: U32,
    /// The client's memlock budget in pages.
    pub(crate) memlock_pages: U64,
    /// With [`VM_LINUX`], where the device tree goes; else 0.
    pub(crate) dtb: U64,
    /// With [`VM_LINUX`], where the initramfs goes; else 0.
    pub(crate) initrd: U64,
    /// Count of [`Ram`] records.
    pub(crate) ram: U16,
    /// Count of [`SlotEntry`] records.
    pub(crate) slots: U16,
    /// Count of [`File`] records.
    pub(crate) files: U16,
    /// Count of [`Dev`] records.
    pub(crate) devices: U16,
}

/// Guest RAM mapped into the VMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Ram {
    /// Where it is mapped in the VMM.
    pub vmm_vaddr: U64,
    /// Its size in bytes.
    pub size: U64,
    /// Where the VM sees it.
    pub gpa: U64,
}

/// A memslot of the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SlotEntry {
    /// Slot id.
    pub id: U32,
    /// [`SLOT_GMEM`], [`SLOT_LOCKABLE`], [`SLOT_READONLY`].
    pub flags: U32,
    /// Guest-physical base.
    pub gpa: U64,
    /// Size in bytes.
    pub size: U64,
    /// RAM slots: the VMM address of the backing; guest_memfd slots: the
    /// offset in the file.
    pub source: U64,
    /// guest_memfd slots: the index of the file; else 0.
    pub file: U32,
    /// Zero.
    pub pad: U32,
}

impl SlotEntry {
    /// True for a slot backed by a guest_memfd file.
    pub fn is_gmem(&self) -> bool {
        self.flags.get() & SLOT_GMEM != 0
    }

    /// The SET_USER_MEMORY_REGION2 request that sets this slot, given the
    /// handle of its guest_memfd file (ignored for a RAM slot).
    pub fn region(&self, guest_memfd: u32) -> MemoryRegion {
        let mut region = MemoryRegion {
            slot: self.id.get(),
            guest_phys_addr: self.gpa.get(),
            memory_size: self.size.get(),
            ..MemoryRegion::default()
        };
        if self.is_gmem() {
            region.flags = GUEST_MEMFD;
            region.guest_memfd = guest_memfd;
            region.guest_memfd_offset = self.source.get();
        } else {
            region.userspace_addr = self.source.get();
            if self.flags.get() & SLOT_READONLY != 0 {
                region.flags = READONLY;
            }
        }
        region
    }
}

/// A guest_memfd file: a private region mapped into the VM only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct File {
    /// Size in bytes.
    pub size: U64,
    /// Where the region sits in the VM's guest-physical space.
    pub gpa: U64,
}

/// An emulated device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Dev {
    /// [`DEV_PL011`], [`DEV_GICV2_DIST`], [`DEV_GICV3_DIST`] or
    /// [`DEV_GICV3_REDIST`].
    pub kind: U32,
    /// A PL011's interrupt, an SPI of the VM's virtual GIC (32 and up), or 0
    /// for none; 0 for the GIC's frames.
    pub irq: U32,
    /// Guest-physical base.
    pub base: U64,
    /// Size in bytes.
    pub size: U64,
}

impl Dev {
    /// A PL011's interrupt, if the record gives one (0: none).
    pub fn interrupt(&self) -> Option<u32> {
        Some(self.irq.get()).filter(|&irq| irq != 0)
    }
}

/// Why a manifest was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestError {
    /// Shorter than its header or than its counts say, or longer.
    BadLength,
    /// Not a manifest.
    BadMagic,
    /// A version this core does not read.
    BadVersion,
    /// The checksum does not match.
    BadChecksum,
    /// More records than the VMM can hold.
    TooMany,
    /// A record breaks the format's rules (unknown flags, non-zero
    /// padding, unaligned sizes, a file index out of range).
    BadRecord,
    /// The output buffer is too small.
    NoRoom,
}

impl ManifestError {
    /// The errno a request refused for this reason gets.
    pub fn errno(self) -> Errno {
        match self {
            ManifestError::BadLength => Errno::EINVAL,
            ManifestError::BadMagic => Errno::EINVAL,
            ManifestError::BadVersion => Errno::EINVAL,
            ManifestError::BadChecksum => Errno::EINVAL,
            ManifestError::TooMany => Errno::ENOSPC,
            ManifestError::BadRecord => Errno::EINVAL,
            ManifestError::NoRoom => Errno::ENOSPC,
        }
    }
}

impl core::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ManifestError::BadLength => "manifest length does not match its header",
            ManifestError::BadMagic => "not a VMM manifest (bad magic)",
            ManifestError::BadVersion => "unsupported manifest version",
            ManifestError::BadChecksum => "manifest checksum mismatch",
            ManifestError::TooMany => "more records than the VMM can hold",
            ManifestError::BadRecord => "malformed manifest record",
            ManifestError::NoRoom => "output buffer too small for the manifest",
        })
    }
}

/// A checked manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// [`VM_INTERNAL`], [`VM_LINUX`].
    pub vm_flags: u32,
    /// vCPUs.
    pub vcpus: u32,
    /// Entry point.
    pub entry: u64,
    /// Controlling client's channel.
    pub client_channel: u32,
    /// [`CLIENT_PRIVILEGED`].
    pub client_flags: u32,
    /// Memlock budget in pages.
    pub memlock_pages: u64,
    /// With [`VM_LINUX`], the device tree's address; else 0.
    pub dtb: u64,
    /// With [`VM_LINUX`], the initramfs's address; else 0.
    pub initrd: u64,
    /// Guest RAM.
    pub ram: Vec<Ram, MAX_RAM_REGIONS>,
    /// Memslots.
    pub slots: Vec<SlotEntry, MAX_SLOTS>,
    /// guest_memfd files.
    pub files: Vec<File, MAX_GMEM_FILES>,
    /// Devices.
    pub devices: Vec<Dev, MAX_DEVICES>,
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
#[cfg(test)]
fn crc32(bytes: &[u8]) -> u32 {
    !crc32_update(!0, bytes)
}

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    crc
}

/// The checksum of a manifest: CRC-32 of the header with its checksum field
/// zero, then the records. Every byte is covered.
fn checksum(header: &Header, body: &[u8]) -> u32 {
    let mut h = *header;
    h.checksum = U32::new(0);
    !crc32_update(crc32_update(!0, h.as_bytes()), body)
}

/// Reads `n` records of `T` from the front of `bytes` into `out`.
fn records<'a, T: FromBytes + KnownLayout + Immutable + Copy, const N: usize>(
    mut bytes: &'a [u8],
    n: u16,
    out: &mut Vec<T, N>,
) -> Result<&'a [u8], ManifestError> {
    for _ in 0..n {
        let (r, rest) = T::read_from_prefix(bytes).map_err(|_| ManifestError::BadLength)?;
        out.push(r).map_err(|_| ManifestError::TooMany)?;
        bytes = rest;
    }
    Ok(bytes)
}

fn aligned(x: u64) -> bool {
    page_aligned(x)
}

impl Manifest {
    /// Checks and reads a manifest.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let (h, body) = Header::read_from_prefix(bytes).map_err(|_| ManifestError::BadLength)?;
        if h.magic != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        if h.version.get() != VERSION {
            return Err(ManifestError::BadVersion);
        }
        if usize::try_from(h.length.get()).ok() != Some(bytes.len()) {
            return Err(ManifestError::BadLength);
        }
        if checksum(&h, body) != h.checksum.get() {
            return Err(ManifestError::BadChecksum);
        }
        let mut m = Manifest {
            vm_flags: h.vm_flags.get(),
            vcpus: h.vcpus.get(),
            entry: h.entry.get(),
            client_channel: h.client_channel.get(),
            client_flags: h.client_flags.get(),
            memlock_pages: h.memlock_pages.get(),
            dtb: h.dtb.get(),
            initrd: h.initrd.get(),
            ..Manifest::default()
        };
        let rest = records(body, h.ram.get(), &mut m.ram)?;
        let rest = records(rest, h.slots.get(), &mut m.slots)?;
        let rest = records(rest, h.files.get(), &mut m.files)?;
        let rest = records(rest, h.devices.get(), &mut m.devices)?;
        if !rest.is_empty() {
            return Err(ManifestError::BadLength);
        }
        m.check()?;
        Ok(m)
    }

    /// The format's own rules (the memslot rules proper are the core's,
    /// applied when the slots are set).
    fn check(&self) -> Result<(), ManifestError> {
        // A Linux guest's images are page-aligned; no other guest has any.
        let linux_images = match self.linux() {
            true => self.dtb != 0 && self.initrd != 0 && aligned(self.dtb) && aligned(self.initrd),
            false => self.dtb == 0 && self.initrd == 0,
        };
        let bad = self.vm_flags & !(VM_INTERNAL | VM_LINUX) != 0
            || !linux_images
            || self.client_flags & !CLIENT_PRIVILEGED != 0
            || self.vcpus == 0
            || self.vcpus as usize > MAX_VCPUS
            || self.ram.iter().any(|r| !aligned(r.vmm_vaddr.get()) || !aligned(r.size.get()) || r.size.get() == 0)
            || self.files.iter().any(|f| !aligned(f.size.get()) || f.size.get() == 0 || !aligned(f.gpa.get()))
            || self.devices.iter().any(|d| {
                !(DEV_PL011..=DEV_GICV3_REDIST).contains(&d.kind.get())
                    || (d.irq.get() != 0 && (d.kind.get() != DEV_PL011 || d.irq.get() < 32))
                    || d.size.get() == 0
            })
            || self.slots.iter().any(|s| {
                let gmem = s.flags.get() & SLOT_GMEM != 0;
                s.flags.get() & !(SLOT_GMEM | SLOT_LOCKABLE | SLOT_READONLY) != 0
                    // guest_memfd slots are neither read-only (rule 3.1)
                    // nor lockable (their frames are never pinned).
                    || (gmem && s.flags.get() & (SLOT_LOCKABLE | SLOT_READONLY) != 0)
                    || s.pad.get() != 0
                    || (gmem && s.file.get() as usize >= self.files.len())
                    || (!gmem && s.file.get() != 0)
            });
        if bad {
            Err(ManifestError::BadRecord)
        } else {
            Ok(())
        }
    }

    /// Writes the manifest into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, ManifestError> {
        let header_len = core::mem::size_of::<Header>();
        let mut at = header_len;
        let mut put = |bytes: &[u8], at: &mut usize| -> Result<(), ManifestError> {
            let end = at.checked_add(bytes.len()).ok_or(ManifestError::NoRoom)?;
            out.get_mut(*at..end).ok_or(ManifestError::NoRoom)?.copy_from_slice(bytes);
            *at = end;
            Ok(())
        };
        for r in &self.ram {
            put(r.as_bytes(), &mut at)?;
        }
        for s in &self.slots {
            put(s.as_bytes(), &mut at)?;
        }
        for f in &self.files {
            put(f.as_bytes(), &mut at)?;
        }
        for d in &self.devices {
            put(d.as_bytes(), &mut at)?;
        }
        let body = out.get(header_len..at).ok_or(ManifestError::NoRoom)?;
        let count = |n: usize| U16::new(n as u16);
        let mut h = Header {
            magic: MAGIC,
            version: U32::new(VERSION),
            length: U32::new(u32::try_from(at).map_err(|_| ManifestError::NoRoom)?),
            checksum: U32::new(0),
            vm_flags: U32::new(self.vm_flags),
            vcpus: U32::new(self.vcpus),
            entry: U64::new(self.entry),
            client_channel: U32::new(self.client_channel),
            client_flags: U32::new(self.client_flags),
            memlock_pages: U64::new(self.memlock_pages),
            dtb: U64::new(self.dtb),
            initrd: U64::new(self.initrd),
            ram: count(self.ram.len()),
            slots: count(self.slots.len()),
            files: count(self.files.len()),
            devices: count(self.devices.len()),
        };
        h.checksum = U32::new(checksum(&h, body));
        out.get_mut(..header_len).ok_or(ManifestError::NoRoom)?.copy_from_slice(h.as_bytes());
        Ok(at)
    }

    /// True for an internal VM.
    pub fn internal(&self) -> bool {
        self.vm_flags & VM_INTERNAL != 0
    }

    /// True for a Linux guest.
    pub fn linux(&self) -> bool {
        self.vm_flags & VM_LINUX != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut m =
            Manifest { vcpus: 1, entry: 0x4000_0000, client_channel: 3, memlock_pages: 64, ..Manifest::default() };
        m.ram
            .push(Ram { vmm_vaddr: U64::new(0x2000_0000), size: U64::new(0x20_0000), gpa: U64::new(0x4000_0000) })
            .unwrap();
        m.files.push(File { size: U64::new(0x10_0000), gpa: U64::new(0x5000_0000) }).unwrap();
        let ram_slot = SlotEntry {
            id: U32::new(0),
            flags: U32::new(SLOT_LOCKABLE),
            gpa: U64::new(0x4000_0000),
            size: U64::new(0x20_0000),
            source: U64::new(0x2000_0000),
            file: U32::new(0),
            pad: U32::new(0),
        };
        m.slots.push(ram_slot).unwrap();
        m.slots
            .push(SlotEntry {
                id: U32::new(1),
                flags: U32::new(SLOT_GMEM),
                gpa: U64::new(0x5000_0000),
                size: U64::new(0x10_0000),
                source: U64::new(0),
                ..ram_slot
            })
            .unwrap();
        m.devices
            .push(Dev {
                kind: U32::new(DEV_PL011),
                irq: U32::new(0),
                base: U64::new(0x900_0000),
                size: U64::new(0x1000),
            })
            .unwrap();
        m
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let mut buf = [0u8; 1024];
        let n = m.encode(&mut buf).unwrap();
        assert_eq!(Manifest::parse(&buf[..n]).unwrap(), m);
        assert_eq!(m.encode(&mut buf[..n - 1]), Err(ManifestError::NoRoom));
    }

    #[test]
    fn a_linux_guest_round_trips_with_its_images() {
        let mut m = sample();
        (m.vm_flags, m.dtb, m.initrd) = (VM_INTERNAL | VM_LINUX, 0x4800_0000, 0x4820_0000);
        let mut buf = [0u8; 1024];
        let n = m.encode(&mut buf).unwrap();
        let back = Manifest::parse(&buf[..n]).unwrap();
        assert!(back.linux() && back.internal());
        assert_eq!((back.dtb, back.initrd), (0x4800_0000, 0x4820_0000));
        assert!(!sample().linux());
    }

    #[test]
    fn every_corruption_is_refused() {
        let mut buf = [0u8; 1024];
        let n = sample().encode(&mut buf).unwrap();
        let good = buf;
        // Any single flipped bit anywhere is caught (magic, version, length,
        // checksum or body).
        for i in 0..n {
            for bit in 0..8 {
                let mut b = good;
                b[i] ^= 1 << bit;
                assert!(Manifest::parse(&b[..n]).is_err(), "byte {i} bit {bit}");
            }
        }
        assert_eq!(Manifest::parse(&good[..n - 1]), Err(ManifestError::BadLength));
        assert_eq!(Manifest::parse(&good[..10]), Err(ManifestError::BadLength));
        let mut b = good;
        b[0] = b'X';
        assert_eq!(Manifest::parse(&b[..n]), Err(ManifestError::BadMagic));
    }

    #[test]
    fn records_that_break_the_format_are_refused_even_with_a_good_checksum() {
        let mut buf = [0u8; 1024];
        for broken in [
            |m: &mut Manifest| m.vcpus = 0,
            |m: &mut Manifest| m.vm_flags = 4,
            // A Linux guest without its images, or with one unaligned, and
            // images for a guest that is not Linux.
            |m: &mut Manifest| m.vm_flags = VM_LINUX,
            |m: &mut Manifest| (m.vm_flags, m.dtb, m.initrd) = (VM_LINUX, 0x4800_0000, 0),
            |m: &mut Manifest| (m.vm_flags, m.dtb, m.initrd) = (VM_LINUX, 0x4800_0008, 0x4820_0000),
            |m: &mut Manifest| m.dtb = 0x4800_0000,
            |m: &mut Manifest| m.initrd = 0x4820_0000,
            |m: &mut Manifest| m.slots[1].file = U32::new(5),
            |m: &mut Manifest| m.slots[0].pad = U32::new(1),
            |m: &mut Manifest| m.devices[0].kind = U32::new(9),
            |m: &mut Manifest| m.devices[0].irq = U32::new(31),
            |m: &mut Manifest| m.devices[0].kind = U32::new(0),
            |m: &mut Manifest| m.devices[0].kind = U32::new(DEV_GICV3_REDIST + 1),
            |m: &mut Manifest| m.files[0].size = U64::new(100),
            |m: &mut Manifest| m.slots[1].flags = U32::new(SLOT_GMEM | SLOT_READONLY),
            |m: &mut Manifest| m.slots[1].flags = U32::new(SLOT_GMEM | SLOT_LOCKABLE),
        ] {
            let mut m = sample();
            broken(&mut m);
            let n = m.encode(&mut buf).unwrap();
            assert_eq!(Manifest::parse(&buf[..n]), Err(ManifestError::BadRecord));
        }
    }
}
