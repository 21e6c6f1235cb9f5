//! The root task's boot image: the Microkit SDK's kernel loader
//! (`board/<board>/<config>/elf/loader.elf`) with seL4's kernel and a root
//! task instead of Microkit's initialiser.
//!
//! The loader is seL4's own, built by the SDK for each board and
//! configuration, so one image format serves every board the SDK has. Its
//! format (Microkit 2.3.0's `loader/src/loader.h`): the loader's one
//! loadable segment, with the six boot page tables filled in, then a header
//! (magic, size, the kernel's entry, the root task's physical region, its
//! physical-to-virtual offset and entry, the number of regions), one
//! record per region (load address, size, offset in the data, type), and
//! the regions' bytes. The loader copies each region to its load address,
//! switches on its MMU with those tables and enters the kernel with the
//! root task's region, which the kernel makes the root task's address space.

use object::elf::{FileHeader64, PT_LOAD, SHT_SYMTAB};
use object::read::elf::{FileHeader, ProgramHeader, Sym};
use object::LittleEndian as LE;

/// The header's magic for a 64-bit loader.
const MAGIC: u64 = 0x5e14_dead_14de_5ead;
/// A region the loader copies (`REGION_TYPE_DATA`).
const REGION_DATA: u64 = 1;
/// One translation table: 512 descriptors of 8 bytes.
const TABLE: usize = 4096;
const PAGE: u64 = 4096;
const BLOCK_2M: u64 = 1 << 21;

/// One loadable segment, its bytes extended with zeros to its memory size.
struct Segment {
    vaddr: u64,
    paddr: u64,
    bytes: Vec<u8>,
}

/// What the image needs of an ELF file.
struct Elf {
    entry: u64,
    segments: Vec<Segment>,
    /// (name, value, size) of every symbol.
    symbols: Vec<(String, u64, u64)>,
}

impl Elf {
    fn parse(what: &str, data: &[u8]) -> Result<Elf, String> {
        let bad = |e: object::read::Error| format!("{what}: not a 64-bit little-endian ELF file: {e}");
        let header = FileHeader64::<LE>::parse(data).map_err(bad)?;
        let endian = header.endian().map_err(bad)?;
        let mut segments = Vec::new();
        for ph in header.program_headers(endian, data).map_err(bad)? {
            if ph.p_type(endian) != PT_LOAD || ph.p_memsz(endian) == 0 {
                continue;
            }
            let mut bytes =
                ph.data(endian, data).map_err(|()| format!("{what}: a segment past the end of the file"))?.to_vec();
            let memsz = usize::try_from(ph.p_memsz(endian)).map_err(|_| format!("{what}: a segment too large"))?;
            if memsz < bytes.len() {
                return Err(format!("{what}: a segment's memory size is less than its file size"));
            }
            bytes.resize(memsz, 0);
            segments.push(Segment { vaddr: ph.p_vaddr(endian), paddr: ph.p_paddr(endian), bytes });
        }
        let mut symbols = Vec::new();
        let sections = header.sections(endian, data).map_err(bad)?;
        if let Some(table) = sections.symbols(endian, data, SHT_SYMTAB).ok().filter(|t| !t.is_empty()) {
            for sym in table.iter() {
                if let Ok(name) = sym.name(endian, table.strings()) {
                    symbols.push((
                        String::from_utf8_lossy(name).into_owned(),
                        sym.st_value(endian),
                        sym.st_size(endian),
                    ));
                }
            }
        }
        if segments.is_empty() {
            return Err(format!("{what}: no loadable segment"));
        }
        Ok(Elf { entry: header.e_entry(endian), segments, symbols })
    }

    fn symbol(&self, what: &str, name: &str) -> Result<(u64, u64), String> {
        self.symbols
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|&(_, value, size)| (value, size))
            .ok_or_else(|| format!("{what}: no symbol {name}"))
    }

    /// The lowest and highest virtual address its segments cover.
    fn bounds(&self) -> (u64, u64) {
        let lo = self.segments.iter().map(|s| s.vaddr).min().unwrap_or(0);
        let hi = self.segments.iter().map(|s| s.vaddr + s.bytes.len() as u64).max().unwrap_or(0);
        (lo, hi)
    }
}

/// Translation table descriptors, as Microkit's loader expects them (its
/// `MAIR` indexes; AArch64 stage 1, 4 KiB granule, 48-bit addresses).
mod descriptor {
    /// `MAIR` attribute indexes the loader and seL4 configure.
    pub const DEVICE_NGNRNE: u64 = 0;
    pub const NORMAL: u64 = 4;

    pub fn index(addr: u64, level: u32) -> usize {
        ((addr >> (12 + 9 * (3 - level))) & 0x1ff) as usize
    }

    /// A level-1 (1 GiB) or level-2 (2 MiB) block: access flag set,
    /// read/write at the privileged level, normal memory inner shareable
    /// (as seL4's own tables) and device memory outer shareable.
    pub fn block(level: u32, addr: u64, attr: u64) -> u64 {
        let shareability = if attr == NORMAL { 0b11 } else { 0b10 };
        let bits = if level == 1 { 30 } else { 21 };
        (addr & !((1u64 << bits) - 1)) | (1 << 10) | (shareability << 8) | (attr << 2) | 0b01
    }

    pub fn table(addr: u64) -> u64 {
        addr | 0b11
    }
}

fn put(table: &mut [u8; TABLE], index: usize, descriptor: u64) {
    if let Some(slot) = table.get_mut(index * 8..index * 8 + 8) {
        slot.copy_from_slice(&descriptor.to_le_bytes());
    }
}

/// The loader's six boot tables: the loader itself mapped 1:1 in 2 MiB
/// blocks, its UART (when it has one) in a 1 GiB device block, and the
/// kernel's window from its first virtual address on, at its first
/// physical address, for EL2 (through the lower tables) and EL1.
fn boot_tables(loader: &Elf, kernel_vaddr: u64, kernel_paddr: u64) -> Result<Vec<(u64, [u8; TABLE])>, String> {
    let what = "loader";
    let sym = |name| loader.symbol(what, name);
    let (l0_lower, l1_lower, l2_lower) = (sym("boot_lvl0_lower")?, sym("boot_lvl1_lower")?, sym("boot_lvl2_lower")?);
    let (l0_upper, l1_upper, l2_upper) = (sym("boot_lvl0_upper")?, sym("boot_lvl1_upper")?, sym("boot_lvl2_upper")?);
    for (addr, size) in [l0_lower, l1_lower, l2_lower, l0_upper, l1_upper, l2_upper] {
        if size != TABLE as u64 || addr % PAGE != 0 {
            return Err(format!("{what}: a boot table at {addr:#x} of {size} bytes, not a 4 KiB page"));
        }
    }
    let (start, _) = sym("_loader_start")?;
    let (end, _) = sym("_loader_end")?;
    if start >> 30 != end >> 30 {
        return Err(format!("{what}: {start:#x}..{end:#x} crosses a 1 GiB boundary"));
    }

    let mut t0_lower = [0u8; TABLE];
    let mut t1_lower = [0u8; TABLE];
    let mut t2_lower = [0u8; TABLE];
    put(&mut t0_lower, 0, descriptor::table(l1_lower.0));
    if let Ok((uart, 8)) = sym("uart_addr") {
        let base = loader
            .segments
            .iter()
            .find_map(|s| {
                let off = usize::try_from(uart.checked_sub(s.vaddr)?).ok()?;
                Some(u64::from_le_bytes(s.bytes.get(off..off + 8)?.try_into().ok()?))
            })
            .ok_or_else(|| format!("{what}: uart_addr outside its segments"))?;
        put(&mut t1_lower, descriptor::index(base, 1), descriptor::block(1, base, descriptor::DEVICE_NGNRNE));
    }
    put(&mut t1_lower, descriptor::index(start, 1), descriptor::table(l2_lower.0));
    for i in descriptor::index(start, 2)..=descriptor::index(end, 2) {
        let offset = ((i - descriptor::index(start, 2)) as u64) * BLOCK_2M;
        put(&mut t2_lower, i, descriptor::block(2, start + offset, descriptor::DEVICE_NGNRNE));
    }

    let mut t0_upper = [0u8; TABLE];
    let mut t1_upper = [0u8; TABLE];
    let mut t2_upper = [0u8; TABLE];
    let l0 = descriptor::index(kernel_vaddr, 0);
    put(&mut t0_lower, l0, descriptor::table(l1_upper.0));
    put(&mut t0_upper, l0, descriptor::table(l1_upper.0));
    put(&mut t1_upper, descriptor::index(kernel_vaddr, 1), descriptor::table(l2_upper.0));
    for i in descriptor::index(kernel_vaddr, 2)..512 {
        let offset = ((i - descriptor::index(kernel_vaddr, 2)) as u64) * BLOCK_2M;
        put(&mut t2_upper, i, descriptor::block(2, kernel_paddr + offset, descriptor::NORMAL));
    }
    Ok(vec![
        (l0_lower.0, t0_lower),
        (l1_lower.0, t1_lower),
        (l2_lower.0, t2_lower),
        (l0_upper.0, t0_upper),
        (l1_upper.0, t1_upper),
        (l2_upper.0, t2_upper),
    ])
}

/// Where things went, for the build's log.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    /// The loader's load address (its entry).
    pub loader: u64,
    /// The kernel's physical extent.
    pub kernel: (u64, u64),
    /// The root task's physical region, as the kernel is told it.
    pub root_task: (u64, u64),
}

/// Writes the image: the loader, its tables filled, the header and the
/// kernel's and the root task's segments. The root task's region starts at
/// the first 2 MiB boundary past the kernel; nothing may overlap the loader.
pub fn image(loader: &[u8], kernel: &[u8], root_task: &[u8]) -> Result<(Vec<u8>, Layout), String> {
    let loader = Elf::parse("loader", loader)?;
    let kernel = Elf::parse("kernel", kernel)?;
    let root = Elf::parse("root task", root_task)?;
    if loader.segments.len() != 1 {
        return Err(format!("loader: {} loadable segments, where its image is one", loader.segments.len()));
    }
    let Some(image_segment) = loader.segments.first() else {
        return Err("loader: no loadable segment".into());
    };
    if image_segment.vaddr != loader.entry {
        return Err(format!(
            "loader: enters at {:#x}, not at its image's first byte {:#x}",
            loader.entry, image_segment.vaddr
        ));
    }
    let (bss_end, _) = loader.symbol("loader", "_bss_end")?;
    if bss_end != image_segment.vaddr + image_segment.bytes.len() as u64 {
        return Err("loader: its data does not start where its image ends (_bss_end)".into());
    }

    let mut regions: Vec<(u64, &[u8])> = Vec::new();
    let mut offset = None;
    for s in &kernel.segments {
        let o = s.vaddr.wrapping_sub(s.paddr);
        if offset.is_some_and(|x| x != o) {
            return Err("kernel: its segments differ in their virtual-to-physical offset".into());
        }
        offset = Some(o);
        regions.push((s.paddr, &s.bytes));
    }
    let kernel_vaddr = kernel.segments.iter().map(|s| s.vaddr).min().unwrap_or(0);
    let kernel_paddr = kernel.segments.iter().map(|s| s.paddr).min().unwrap_or(0);
    let kernel_end = kernel.segments.iter().map(|s| s.paddr + s.bytes.len() as u64).max().unwrap_or(0);

    let (lo, hi) = root.bounds();
    let (v_start, v_end) = (lo & !(PAGE - 1), hi.div_ceil(PAGE) * PAGE);
    let p_start = kernel_end.div_ceil(BLOCK_2M) * BLOCK_2M;
    let p_end = p_start + (v_end - v_start);
    for s in &root.segments {
        regions.push((p_start + (s.vaddr - v_start), &s.bytes));
    }

    let mut loader_image = image_segment.bytes.clone();
    for (addr, table) in boot_tables(&loader, kernel_vaddr, kernel_paddr)? {
        let at = usize::try_from(addr - image_segment.vaddr).map_err(|e| e.to_string())?;
        loader_image
            .get_mut(at..at + TABLE)
            .ok_or_else(|| format!("loader: boot table at {addr:#x} outside its image"))?
            .copy_from_slice(&table);
    }

    // The loader copies from its appended data, so no region may land on
    // the loader, its data included.
    let data_len: u64 = regions.iter().map(|(_, b)| b.len() as u64).sum();
    let records = 8 * 8 + regions.len() as u64 * 4 * 8;
    let loader_extent = (image_segment.vaddr, bss_end + records + data_len);
    let mut extents: Vec<(u64, u64)> = regions.iter().map(|(a, b)| (*a, a + b.len() as u64)).collect();
    extents.push((p_start, p_end));
    for (i, &(a0, a1)) in extents.iter().enumerate() {
        if a0 < loader_extent.1 && loader_extent.0 < a1 {
            return Err(format!(
                "{a0:#x}..{a1:#x} overlaps the loader and its data at {:#x}..{:#x}",
                loader_extent.0, loader_extent.1
            ));
        }
        // The root task's region holds its segments; the segments must not
        // overlap one another.
        for &(b0, b1) in extents.iter().take(regions.len()).skip(i + 1) {
            if a0 < b1 && b0 < a1 {
                return Err(format!("segments at {a0:#x}..{a1:#x} and {b0:#x}..{b1:#x} overlap"));
            }
        }
    }

    let header = [
        MAGIC,
        records + data_len,
        kernel.entry,
        p_start,
        p_end,
        p_start.wrapping_sub(v_start),
        root.entry,
        regions.len() as u64,
    ];
    let mut out = loader_image;
    out.extend(header.iter().flat_map(|w| w.to_le_bytes()));
    let mut data_offset = 0u64;
    for (addr, bytes) in &regions {
        for w in [*addr, bytes.len() as u64, data_offset, REGION_DATA] {
            out.extend(w.to_le_bytes());
        }
        data_offset += bytes.len() as u64;
    }
    for (_, bytes) in &regions {
        out.extend_from_slice(bytes);
    }
    Ok((out, Layout { loader: image_segment.vaddr, kernel: (kernel_paddr, kernel_end), root_task: (p_start, p_end) }))
}
