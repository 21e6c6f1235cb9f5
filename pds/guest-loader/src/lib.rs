//! Loads the embedded guest into the VM's shared RAM: the test guest's ELF
//! image, or a Linux guest's kernel Image, device tree and initramfs.
//!
//! The test guest is linked at the guest-physical base of its RAM (the
//! board table's `GUEST_RAM_BASE`) and runs with its MMU off, so a
//! segment's virtual address is its guest-physical address. Each `PT_LOAD`
//! segment is copied through the VMM's own mapping of that RAM and the rest
//! of its memory size zeroed; a segment outside the RAM refuses the image.
//!
//! A Linux guest's three images go where its boot manifest says, each
//! checked first as arm64 Linux's boot protocol asks
//! (`Documentation/arch/arm64/booting.rst`): the Image by its header's
//! magic, `text_offset` bytes past a 2 MiB boundary, with its whole
//! `image_size` (its BSS included) in RAM; the device tree by its magic,
//! 8-byte aligned, at most 2 MiB and within one 2 MiB block; none of the
//! three overlapping another. Nothing is written unless all of it holds.
//!
//! The Image may be embedded zlib-compressed ([`Kernel::Zlib`]), where the
//! board's loader leaves the VMM too little room for it as it is (on the
//! i.MX 8M Plus, Microkit links its loader 16 MiB above the kernel, and the
//! VMM's image must fit between). Its header is inflated first and checked
//! with the rest; the Image itself is inflated straight into guest RAM,
//! last, and checked against its Adler-32 as it goes: a damaged stream is
//! found only then, so its refusal leaves the RAM written, and no guest
//! runs from it.
//!
//! A host crate (`no_std`, tested on the host, where `cargo test
//! --workspace` runs its tests); the VMM PD uses it for its embedded guest.

#![no_std]

use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Not a 64-bit little-endian AArch64 executable.
    NotAarch64Elf,
    /// A header or segment lies outside the image file.
    Truncated,
    /// A segment, or the entry point, lies outside guest RAM.
    OutsideRam,
    /// Not an arm64 Linux kernel Image (no "ARM\x64" magic).
    NotLinuxImage,
    /// The Image's address is not `text_offset` past a 2 MiB boundary.
    MisplacedImage,
    /// Not a flattened device tree, or one Linux cannot take where it goes.
    NotDeviceTree,
    /// Two of a Linux guest's images overlap.
    Overlap,
    /// A compressed Image is no zlib stream, is damaged (its Adler-32
    /// disagrees), or inflates to more than its header's `image_size`.
    BadCompression,
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LoadError::NotAarch64Elf => "not a 64-bit little-endian AArch64 ELF executable",
            LoadError::Truncated => "a header or segment lies outside the image",
            LoadError::OutsideRam => "a segment or the entry point lies outside guest RAM",
            LoadError::NotLinuxImage => "not an arm64 Linux kernel Image",
            LoadError::MisplacedImage => "the kernel Image is not text_offset bytes past a 2 MiB boundary",
            LoadError::NotDeviceTree => {
                "the device tree has no FDT magic, or is misaligned, over 2 MiB or across a 2 MiB boundary"
            }
            LoadError::Overlap => "the kernel Image, the device tree and the initramfs overlap",
            LoadError::BadCompression => {
                "the compressed kernel Image is no zlib stream, is damaged, or inflates past its image_size"
            }
        })
    }
}

const PT_LOAD: u32 = 1;
const EM_AARCH64: u16 = 183;

fn u16_at(b: &[u8], off: usize) -> Result<u16, LoadError> {
    let s = b.get(off..off + 2).ok_or(LoadError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, LoadError> {
    let s = b.get(off..off + 4).ok_or(LoadError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, LoadError> {
    let s = b.get(off..off + 8).ok_or(LoadError::Truncated)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(s);
    Ok(u64::from_le_bytes(w))
}

/// Guest RAM as the VMM sees it: `ram` is mapped at guest-physical `base`.
pub struct GuestRam<'a> {
    /// Guest-physical address of `ram[0]`.
    pub base: u64,
    /// The VMM's mapping of the RAM.
    pub ram: &'a mut [u8],
}

impl GuestRam<'_> {
    /// The VMM-side range for guest-physical `[gpa, gpa + len)`.
    fn range(&self, gpa: u64, len: u64) -> Result<core::ops::Range<usize>, LoadError> {
        let off = gpa.checked_sub(self.base).ok_or(LoadError::OutsideRam)?;
        let end = off.checked_add(len).ok_or(LoadError::OutsideRam)?;
        if end > self.ram.len() as u64 {
            return Err(LoadError::OutsideRam);
        }
        Ok(off as usize..end as usize)
    }
}

/// A loaded image.
pub struct Loaded {
    /// The entry point (guest-physical).
    pub entry: u64,
    /// One past the last byte written, as an offset into the RAM: the range
    /// whose data cache must be cleaned before the guest runs.
    pub written: usize,
}

/// An ELF executable's header, as loading needs it.
struct Header {
    entry: u64,
    phoff: usize,
    phentsize: usize,
    phnum: usize,
}

/// A `PT_LOAD` segment: its bytes in the file and where they go.
struct Segment<'a> {
    vaddr: u64,
    memsz: u64,
    data: &'a [u8],
}

fn header(image: &[u8]) -> Result<Header, LoadError> {
    let ident = image.get(..16).ok_or(LoadError::Truncated)?;
    // Magic, 64-bit, little-endian, executable, AArch64.
    if ident[..4] != *b"\x7fELF" || ident[4] != 2 || ident[5] != 1 {
        return Err(LoadError::NotAarch64Elf);
    }
    if u16_at(image, 16)? != 2 || u16_at(image, 18)? != EM_AARCH64 {
        return Err(LoadError::NotAarch64Elf);
    }
    Ok(Header {
        entry: u64_at(image, 24)?,
        phoff: u64_at(image, 32)? as usize,
        phentsize: usize::from(u16_at(image, 54)?),
        phnum: usize::from(u16_at(image, 56)?),
    })
}

/// Program header `i`, if it is a `PT_LOAD` segment.
fn segment<'a>(image: &'a [u8], h: &Header, i: usize) -> Result<Option<Segment<'a>>, LoadError> {
    let ph = h.phoff.checked_add(i * h.phentsize).ok_or(LoadError::Truncated)?;
    if u32_at(image, ph)? != PT_LOAD {
        return Ok(None);
    }
    let offset = u64_at(image, ph + 8)? as usize;
    let vaddr = u64_at(image, ph + 16)?;
    let filesz = u64_at(image, ph + 32)?;
    let memsz = u64_at(image, ph + 40)?;
    if filesz > memsz {
        return Err(LoadError::Truncated);
    }
    let end = offset.checked_add(filesz as usize).ok_or(LoadError::Truncated)?;
    let data = image.get(offset..end).ok_or(LoadError::Truncated)?;
    Ok(Some(Segment { vaddr, memsz, data }))
}

/// The addresses an ELF executable's `PT_LOAD` segments span: the lowest
/// and one past the highest. What must be mapped before [`load`] can
/// write it there (the root task maps a client's image so).
pub fn extent(image: &[u8]) -> Result<core::ops::Range<u64>, LoadError> {
    let h = header(image)?;
    let mut span: Option<core::ops::Range<u64>> = None;
    for i in 0..h.phnum {
        if let Some(seg) = segment(image, &h, i)? {
            let end = seg.vaddr.checked_add(seg.memsz).ok_or(LoadError::OutsideRam)?;
            span = Some(match span {
                Some(s) => s.start.min(seg.vaddr)..s.end.max(end),
                None => seg.vaddr..end,
            });
        }
    }
    span.ok_or(LoadError::Truncated)
}

/// Loads `image` into `ram`. Checks every segment before it writes any.
pub fn load(image: &[u8], ram: &mut GuestRam<'_>) -> Result<Loaded, LoadError> {
    let h = header(image)?;
    ram.range(h.entry, 4)?;
    let mut written = 0;
    for pass in 0..2 {
        for i in 0..h.phnum {
            let Some(seg) = segment(image, &h, i)? else { continue };
            let dst = ram.range(seg.vaddr, seg.memsz)?;
            if pass == 1 {
                written = written.max(dst.end);
                let (data, bss) = ram.ram[dst].split_at_mut(seg.data.len());
                data.copy_from_slice(seg.data);
                bss.fill(0);
            }
        }
    }
    Ok(Loaded { entry: h.entry, written })
}

/// A kernel Image, as embedded.
#[derive(Clone, Copy)]
pub enum Kernel {
    /// The Image as it is.
    Raw(&'static [u8]),
    /// The Image as a zlib stream (RFC 1950), inflated into guest RAM.
    Zlib(&'static [u8]),
}

impl Kernel {
    /// The bytes embedded.
    pub fn embedded_len(&self) -> usize {
        match self {
            Kernel::Raw(b) | Kernel::Zlib(b) => b.len(),
        }
    }
}

/// A Linux guest's images, as embedded.
#[derive(Clone, Copy)]
pub struct LinuxImages {
    /// The kernel Image.
    pub image: Kernel,
    /// The flattened device tree.
    pub dtb: &'static [u8],
    /// The initramfs.
    pub initrd: &'static [u8],
}

/// The inflater's state for a compressed Image (about 10 KiB): the
/// caller's to place, so that a VMM with a small stack keeps it in a
/// static rather than on that stack.
pub struct Inflater(DecompressorOxide);

impl Inflater {
    /// A fresh inflater.
    pub fn new() -> Inflater {
        Inflater(DecompressorOxide::new())
    }
}

impl Default for Inflater {
    fn default() -> Inflater {
        Inflater::new()
    }
}

/// Where a Linux guest's images go (guest-physical), from its boot manifest.
#[derive(Clone, Copy, Debug)]
pub struct LinuxPlaces {
    /// The Image, where vCPU 0 enters.
    pub entry: u64,
    /// The device tree.
    pub dtb: u64,
    /// The initramfs.
    pub initrd: u64,
}

/// arm64 Image header fields (booting.rst): `text_offset`, `image_size`
/// and the magic.
const IMAGE_TEXT_OFFSET: usize = 8;
const IMAGE_SIZE: usize = 16;
const IMAGE_MAGIC: usize = 0x38;
/// The header's length: the fields above, and the PE/COFF offset after.
const IMAGE_HEADER: usize = 64;
/// A whole zlib stream, inflated into a buffer that holds all it writes
/// (not a 32 KiB ring), its Adler-32 checked.
const ZLIB_INTO_RAM: u32 = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
    | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
    | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32;
const ARM64_MAGIC: u32 = 0x644d_5241;
/// A flattened device tree's magic, big-endian.
const FDT_MAGIC: u32 = 0xd00d_feed;
const BLOCK_2M: u64 = 0x20_0000;

/// Loads a Linux guest's `images` into `ram` at `at`, inflating a
/// compressed Image with `inflater`; the RAM offsets written (Image,
/// device tree, initramfs), each to be cleaned before the guest runs.
/// Checks everything before it writes anything (a compressed Image's
/// stream itself is checked as it inflates, last).
pub fn load_linux(
    images: &LinuxImages,
    at: &LinuxPlaces,
    ram: &mut GuestRam<'_>,
    inflater: &mut Inflater,
) -> Result<[core::ops::Range<usize>; 3], LoadError> {
    let inflater = &mut inflater.0;
    inflater.init();
    let mut buf = [0u8; IMAGE_HEADER];
    let head: &[u8] = match images.image {
        Kernel::Raw(bytes) => bytes,
        Kernel::Zlib(stream) => {
            let (status, _, n) = decompress(inflater, stream, &mut buf, 0, ZLIB_INTO_RAM);
            match status {
                TINFLStatus::HasMoreOutput | TINFLStatus::Done => buf.get(..n).unwrap_or(&[]),
                _ => return Err(LoadError::BadCompression),
            }
        }
    };
    if u32_at(head, IMAGE_MAGIC)? != ARM64_MAGIC {
        return Err(LoadError::NotLinuxImage);
    }
    let text_offset = u64_at(head, IMAGE_TEXT_OFFSET)?;
    // 0 in the oldest Images: then the kernel's own size is the file's,
    // which a compressed one does not tell before it is inflated.
    let image_size = match (u64_at(head, IMAGE_SIZE)?, images.image) {
        (0, Kernel::Raw(bytes)) => bytes.len() as u64,
        (0, Kernel::Zlib(_)) => return Err(LoadError::NotLinuxImage),
        (n, Kernel::Raw(bytes)) => n.max(bytes.len() as u64),
        (n, Kernel::Zlib(_)) => n,
    };
    if at.entry.checked_sub(text_offset).is_none_or(|base| !base.is_multiple_of(BLOCK_2M)) {
        return Err(LoadError::MisplacedImage);
    }
    let dtb_len = images.dtb.len() as u64;
    let dtb_magic = images.dtb.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let dtb_end = at.dtb.saturating_add(dtb_len);
    if dtb_magic != Some(FDT_MAGIC)
        || !at.dtb.is_multiple_of(8)
        || dtb_len > BLOCK_2M
        || at.dtb / BLOCK_2M != dtb_end.saturating_sub(1) / BLOCK_2M
    {
        return Err(LoadError::NotDeviceTree);
    }
    let kernel = ram.range(at.entry, image_size)?;
    let dtb = ram.range(at.dtb, dtb_len)?;
    let initrd = ram.range(at.initrd, images.initrd.len() as u64)?;
    let apart = |a: &core::ops::Range<usize>, b: &core::ops::Range<usize>| a.end <= b.start || b.end <= a.start;
    if !apart(&kernel, &dtb) || !apart(&kernel, &initrd) || !apart(&dtb, &initrd) {
        return Err(LoadError::Overlap);
    }
    for (range, bytes) in [(&dtb, images.dtb), (&initrd, images.initrd)] {
        ram.ram.get_mut(range.clone()).ok_or(LoadError::OutsideRam)?.copy_from_slice(bytes);
    }
    let into = ram.ram.get_mut(kernel.clone()).ok_or(LoadError::OutsideRam)?;
    let image_len = match images.image {
        Kernel::Raw(bytes) => {
            into.get_mut(..bytes.len()).ok_or(LoadError::OutsideRam)?.copy_from_slice(bytes);
            bytes.len()
        }
        Kernel::Zlib(stream) => {
            inflater.init();
            match decompress(inflater, stream, into, 0, ZLIB_INTO_RAM) {
                (TINFLStatus::Done, _, n) => n,
                _ => return Err(LoadError::BadCompression),
            }
        }
    };
    Ok([kernel.start..kernel.start + image_len, dtb, initrd])
}
