//! Loads the embedded guest ELF image into the VM's shared RAM.
//!
//! The guest is linked at the guest-physical base of its RAM (the board
//! table's `GUEST_RAM_BASE`) and runs with its MMU off, so a segment's
//! virtual address is its guest-physical address. Each `PT_LOAD` segment is
//! copied through the VMM's own mapping of that RAM and the rest of its
//! memory size zeroed; a segment outside the RAM refuses the image.

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Not a 64-bit little-endian AArch64 executable.
    NotAarch64Elf,
    /// A header or segment lies outside the image file.
    Truncated,
    /// A segment, or the entry point, lies outside guest RAM.
    OutsideRam,
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LoadError::NotAarch64Elf => "not a 64-bit little-endian AArch64 ELF executable",
            LoadError::Truncated => "a header or segment lies outside the image",
            LoadError::OutsideRam => "a segment or the entry point lies outside guest RAM",
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

/// Loads `image` into `ram`. Checks every segment before it writes any.
pub fn load(image: &[u8], ram: &mut GuestRam<'_>) -> Result<Loaded, LoadError> {
    let ident = image.get(..16).ok_or(LoadError::Truncated)?;
    // Magic, 64-bit, little-endian, executable, AArch64.
    if ident[..4] != *b"\x7fELF" || ident[4] != 2 || ident[5] != 1 {
        return Err(LoadError::NotAarch64Elf);
    }
    if u16_at(image, 16)? != 2 || u16_at(image, 18)? != EM_AARCH64 {
        return Err(LoadError::NotAarch64Elf);
    }
    let entry = u64_at(image, 24)?;
    let phoff = u64_at(image, 32)? as usize;
    let phentsize = usize::from(u16_at(image, 54)?);
    let phnum = usize::from(u16_at(image, 56)?);
    ram.range(entry, 4)?;

    let mut written = 0;
    for pass in 0..2 {
        for i in 0..phnum {
            let ph = phoff.checked_add(i * phentsize).ok_or(LoadError::Truncated)?;
            if u32_at(image, ph)? != PT_LOAD {
                continue;
            }
            let offset = u64_at(image, ph + 8)? as usize;
            let vaddr = u64_at(image, ph + 16)?;
            let filesz = u64_at(image, ph + 32)?;
            let memsz = u64_at(image, ph + 40)?;
            if filesz > memsz {
                return Err(LoadError::Truncated);
            }
            let end = offset.checked_add(filesz as usize).ok_or(LoadError::Truncated)?;
            let src = image.get(offset..end).ok_or(LoadError::Truncated)?;
            let dst = ram.range(vaddr, memsz)?;
            if pass == 1 {
                written = written.max(dst.end);
                let (data, bss) = ram.ram[dst].split_at_mut(filesz as usize);
                data.copy_from_slice(src);
                bss.fill(0);
            }
        }
    }
    Ok(Loaded { entry, written })
}
