//! The root task's boot image, on ELF files written here: the header and
//! the regions the loader reads, the boot tables it switches its MMU on
//! with, and each refusal.

use vmsys::boot_image::{image, Layout};

/// A segment: virtual and physical address, file bytes, memory size.
type Seg = (u64, u64, Vec<u8>, u64);

/// A 64-bit little-endian AArch64 ELF file with these segments and
/// symbols (name, value, size) in a symbol table.
fn elf(entry: u64, segments: &[Seg], symbols: &[(&str, u64, u64)]) -> Vec<u8> {
    let ph_off = 64u64;
    let data_off = ph_off + 56 * segments.len() as u64;
    let mut data = Vec::new();
    let mut phdrs = Vec::new();
    for (vaddr, paddr, bytes, memsz) in segments {
        let off = data_off + data.len() as u64;
        for w in [1u32, 7] {
            phdrs.extend(w.to_le_bytes()); // p_type PT_LOAD, p_flags RWX
        }
        for w in [off, *vaddr, *paddr, bytes.len() as u64, *memsz, 0x1000] {
            phdrs.extend(w.to_le_bytes());
        }
        data.extend_from_slice(bytes);
    }
    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 24];
    for (name, value, size) in symbols {
        symtab.extend((strtab.len() as u32).to_le_bytes());
        symtab.extend([0x11u8, 0]); // GLOBAL OBJECT, default visibility
        symtab.extend(1u16.to_le_bytes());
        symtab.extend(value.to_le_bytes());
        symtab.extend(size.to_le_bytes());
        strtab.extend(name.as_bytes());
        strtab.push(0);
    }
    let symtab_off = data_off + data.len() as u64;
    let strtab_off = symtab_off + symtab.len() as u64;
    let sh_off = (strtab_off + strtab.len() as u64).div_ceil(8) * 8;
    let mut shdrs = vec![0u8; 64];
    // .symtab (linked to .strtab, section 2), then .strtab.
    for (ty, off, size, link, entsize) in
        [(2u32, symtab_off, symtab.len() as u64, 2u32, 24u64), (3, strtab_off, strtab.len() as u64, 0, 0)]
    {
        shdrs.extend(0u32.to_le_bytes());
        shdrs.extend(ty.to_le_bytes());
        for w in [0u64, 0, off, size] {
            shdrs.extend(w.to_le_bytes());
        }
        shdrs.extend(link.to_le_bytes());
        shdrs.extend(1u32.to_le_bytes());
        shdrs.extend(8u64.to_le_bytes());
        shdrs.extend(entsize.to_le_bytes());
    }
    let mut out = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    out.extend(2u16.to_le_bytes()); // ET_EXEC
    out.extend(183u16.to_le_bytes()); // EM_AARCH64
    out.extend(1u32.to_le_bytes());
    for w in [entry, ph_off, sh_off] {
        out.extend(w.to_le_bytes());
    }
    out.extend(0u32.to_le_bytes());
    for h in [64u16, 56, segments.len() as u16, 64, 3, 2] {
        out.extend(h.to_le_bytes());
    }
    out.extend(phdrs);
    out.extend(data);
    out.extend(symtab);
    out.extend(strtab);
    out.resize(sh_off as usize, 0);
    out.extend(shdrs);
    out
}

const LOADER: u64 = 0x7000_0000;
const UART: u64 = 0x0900_0000;

/// A loader as the SDK's is laid out: code, the UART's address, six boot
/// tables, and its data after `_bss_end`.
fn loader_at(base: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; 0x7000];
    bytes[0x100..0x108].copy_from_slice(&UART.to_le_bytes());
    let tables = [
        ("boot_lvl2_lower", 0x1000),
        ("boot_lvl1_lower", 0x2000),
        ("boot_lvl0_lower", 0x3000),
        ("boot_lvl2_upper", 0x4000),
        ("boot_lvl1_upper", 0x5000),
        ("boot_lvl0_upper", 0x6000),
    ];
    let mut symbols: Vec<(&str, u64, u64)> = tables.iter().map(|&(n, o)| (n, base + o, 4096)).collect();
    symbols.extend([
        ("uart_addr", base + 0x100, 8),
        ("_loader_start", base, 0),
        ("_loader_end", base + 0x8010, 0),
        ("_bss_end", base + 0x8010, 0),
    ]);
    elf(base, &[(base, base, bytes, 0x8010)], &symbols)
}

const KVADDR: u64 = 0x80_6000_0000;
const KPADDR: u64 = 0x6000_0000;

fn kernel() -> Vec<u8> {
    elf(KVADDR + 0x40, &[(KVADDR, KPADDR, vec![0xaa; 0x3000], 0x25_c000)], &[])
}

fn root_task() -> Vec<u8> {
    elf(
        0x21_0040,
        &[(0x20_0000, 0x20_0000, vec![0x11; 0x800], 0x800), (0x21_0000, 0x21_0000, vec![0x22; 0x100], 0x2000)],
        &[],
    )
}

fn word(image: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
}

#[test]
fn the_header_names_the_kernel_and_the_root_tasks_region_after_the_kernel() {
    let (img, layout) = image(&loader_at(LOADER), &kernel(), &root_task()).unwrap();
    // The root task's region starts at the first 2 MiB boundary past the
    // kernel's 0x25c000 bytes, and holds its pages from 0x200000 to 0x212000.
    assert_eq!(
        layout,
        Layout { loader: LOADER, kernel: (KPADDR, KPADDR + 0x25_c000), root_task: (0x6040_0000, 0x6041_2000) }
    );
    let h = 0x8010;
    assert_eq!(word(&img, h), 0x5e14_dead_14de_5ead);
    assert_eq!(word(&img, h + 16), KVADDR + 0x40, "the kernel's entry");
    assert_eq!((word(&img, h + 24), word(&img, h + 32)), (0x6040_0000, 0x6041_2000));
    assert_eq!(word(&img, h + 40), 0x6040_0000u64.wrapping_sub(0x20_0000), "physical minus virtual");
    assert_eq!(word(&img, h + 48), 0x21_0040, "the root task's entry");
    assert_eq!(word(&img, h + 56), 3, "the kernel's segment and the root task's two");
    // The regions: each segment's whole memory size, zeros after its file bytes.
    let records = h + 64;
    let expect = [(KPADDR, 0x25_c000), (0x6040_0000, 0x800), (0x6041_0000, 0x2000)];
    let mut offset = 0;
    for (i, (addr, size)) in expect.into_iter().enumerate() {
        let r = records + 32 * i;
        assert_eq!([word(&img, r), word(&img, r + 8), word(&img, r + 16), word(&img, r + 24)], [addr, size, offset, 1]);
        offset += size;
    }
    let data = records + 32 * 3;
    assert_eq!(word(&img, h + 8), 64 + 32 * 3 + offset, "the size the header gives");
    assert_eq!(img.len(), data + offset as usize);
    assert_eq!(img[data], 0xaa);
    assert_eq!(img[data + 0x3000], 0, "the kernel's memory past its file bytes is zero");
    assert_eq!(img[data + 0x25_c000..data + 0x25_c800], [0x11; 0x800]);
    assert_eq!(img[data + 0x25_c800..data + 0x25_c900], [0x22; 0x100]);
    assert!(img[data + 0x25_c900..].iter().all(|&b| b == 0));
}

#[test]
fn the_boot_tables_map_the_loader_its_uart_and_the_kernel_window() {
    let (img, _) = image(&loader_at(LOADER), &kernel(), &root_task()).unwrap();
    let table = |off: usize, i: usize| word(&img, off + 8 * i);
    let (l2_lower, l1_lower, l0_lower, l2_upper, l1_upper, l0_upper) = (0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000);
    // Lower: level 0 entry 0 to level 1; the UART's GiB a device block; the
    // loader's GiB to level 2, whose entry for the loader's 2 MiB is a
    // device block at the loader itself.
    assert_eq!(table(l0_lower, 0), (LOADER + 0x2000) | 0b11);
    assert_eq!(table(l1_lower, 0), 0x401 | (0b10 << 8), "a device block at 0, the UART's GiB");
    assert_eq!(table(l1_lower, 1), (LOADER + 0x1000) | 0b11);
    assert_eq!(table(l2_lower, 0x180), LOADER | 0x401 | (0b10 << 8));
    assert_eq!(table(l2_lower, 0x181), 0);
    // Upper: the kernel's window, from its first virtual address, normal
    // memory (attribute 4), inner shareable, at its physical address; the
    // lower level 0 table holds the same entry, for EL2.
    assert_eq!(table(l0_lower, 1), (LOADER + 0x5000) | 0b11);
    assert_eq!(table(l0_upper, 1), (LOADER + 0x5000) | 0b11);
    assert_eq!(table(l1_upper, 1), (LOADER + 0x4000) | 0b11);
    assert_eq!(table(l2_upper, 0x100), KPADDR | 0x401 | (0b11 << 8) | (4 << 2));
    assert_eq!(table(l2_upper, 0x1ff), (KPADDR + 0xff * 0x20_0000) | 0x401 | (0b11 << 8) | (4 << 2));
    assert_eq!(table(l2_upper, 0xff), 0);
}

#[test]
fn each_bad_input_is_refused_with_its_reason() {
    let refused = |loader: &[u8], kernel: &[u8], root: &[u8]| image(loader, kernel, root).unwrap_err();
    assert!(refused(b"not an elf", &kernel(), &root_task()).starts_with("loader: not a 64-bit"));
    // A loader placed where the root task's region goes.
    assert!(refused(&loader_at(0x6040_0000), &kernel(), &root_task()).contains("overlaps the loader"));
    // A loader whose entry is not its first byte.
    let mut l = loader_at(LOADER);
    l[24..32].copy_from_slice(&(LOADER + 4).to_le_bytes());
    assert!(refused(&l, &kernel(), &root_task()).contains("not at its image's first byte"));
    // A loader without its boot tables.
    let bare = elf(LOADER, &[(LOADER, LOADER, vec![0; 0x100], 0x100)], &[("_bss_end", LOADER + 0x100, 0)]);
    assert_eq!(refused(&bare, &kernel(), &root_task()), "loader: no symbol boot_lvl0_lower");
    // A kernel whose segments disagree on the offset.
    let k = elf(KVADDR, &[(KVADDR, KPADDR, vec![1], 0x1000), (KVADDR + 0x1000, KPADDR + 0x2000, vec![1], 0x1000)], &[]);
    assert!(refused(&loader_at(LOADER), &k, &root_task()).contains("virtual-to-physical offset"));
    // A root task with nothing to load.
    assert_eq!(refused(&loader_at(LOADER), &kernel(), &elf(0, &[], &[])), "root task: no loadable segment");
}
