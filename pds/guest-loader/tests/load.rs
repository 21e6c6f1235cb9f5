//! The loader holds what it puts into guest RAM to the formats' rules, and
//! writes nothing unless all of it holds: the ELF header (the ELF-64
//! specification: magic, class 2, data 1, type 2 EXEC, machine 183
//! AArch64), and arm64 Linux's boot protocol
//! (`Documentation/arch/arm64/booting.rst`: the Image header's
//! `text_offset` at 8, `image_size` at 16, magic "ARM\x64" at 0x38; a flattened
//! device tree's magic 0xd00dfeed, 8-byte aligned, at most 2 MiB, within one
//! 2 MiB block).

use guest_loader::{extent, load, GuestRam, Inflater, Kernel, LinuxImages, LinuxPlaces, LoadError};
use miniz_oxide::deflate::compress_to_vec_zlib;

const BASE: u64 = 0x4000_0000;
const RAM: usize = 0x80_0000; // 8 MiB
const MIB2: u64 = 0x20_0000;

/// `guest_loader::load_linux` with an inflater of its own.
fn load_linux(
    images: &LinuxImages,
    at: &LinuxPlaces,
    ram: &mut GuestRam<'_>,
) -> Result<[std::ops::Range<usize>; 3], LoadError> {
    guest_loader::load_linux(images, at, ram, &mut Inflater::new())
}

fn ram() -> Vec<u8> {
    vec![0xaa; RAM]
}

/// An ELF of one PT_LOAD segment: `data` at `vaddr`, `memsz` bytes in
/// memory, entering at `entry`.
fn elf(entry: u64, vaddr: u64, data: &[u8], memsz: u64) -> Vec<u8> {
    let mut e = vec![0u8; 64 + 56];
    e[..4].copy_from_slice(b"\x7fELF");
    (e[4], e[5], e[6]) = (2, 1, 1);
    e[16..18].copy_from_slice(&2u16.to_le_bytes());
    e[18..20].copy_from_slice(&183u16.to_le_bytes());
    e[24..32].copy_from_slice(&entry.to_le_bytes());
    e[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
    e[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
    e[56..58].copy_from_slice(&1u16.to_le_bytes()); // phnum
    let ph = 64;
    e[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes()); // offset
    e[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
    e[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
    e[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
    e.extend_from_slice(data);
    e
}

#[test]
fn an_elf_segment_is_copied_and_the_rest_of_its_memory_zeroed() {
    let mut mem = ram();
    let image = elf(BASE + 0x1000, BASE + 0x1000, b"code", 16);
    let loaded = load(&image, &mut GuestRam { base: BASE, ram: &mut mem }).unwrap();
    assert_eq!(loaded.entry, BASE + 0x1000);
    assert_eq!(loaded.written, 0x1010);
    assert_eq!(&mem[0x1000..0x1004], b"code");
    assert_eq!(&mem[0x1004..0x1010], &[0; 12]);
    assert_eq!(mem[0x1010], 0xaa, "nothing past the segment");
}

#[test]
fn an_elf_s_extent_spans_its_segments_memory() {
    assert_eq!(extent(&elf(BASE, BASE + 0x1000, b"code", 0x2345)), Ok(BASE + 0x1000..BASE + 0x3345));
    let mut two = elf(BASE, BASE + 0x1000, b"code", 0x10);
    two[56..58].copy_from_slice(&2u16.to_le_bytes());
    // A second segment below the first, its header where the data was.
    let mut ph = vec![0u8; 56];
    ph[..4].copy_from_slice(&1u32.to_le_bytes());
    ph[16..24].copy_from_slice(&BASE.to_le_bytes());
    ph[40..48].copy_from_slice(&0x20u64.to_le_bytes());
    two.truncate(120);
    two.extend_from_slice(&ph);
    two[64 + 8..64 + 16].copy_from_slice(&176u64.to_le_bytes());
    two.extend_from_slice(b"code");
    assert_eq!(extent(&two), Ok(BASE..BASE + 0x1010));
    assert_eq!(extent(b"\x7fELF"), Err(LoadError::Truncated));
    let mut not_aarch64 = elf(BASE, BASE, b"code", 4);
    not_aarch64[18] = 62;
    assert_eq!(extent(&not_aarch64), Err(LoadError::NotAarch64Elf));
}

#[test]
fn an_elf_that_breaks_its_rules_is_refused_and_nothing_written() {
    let good = elf(BASE, BASE, b"code", 4);
    let mut not_aarch64 = good.clone();
    not_aarch64[18] = 62;
    let mut not_elf = good.clone();
    not_elf[1] = b'X';
    for (image, want) in [
        (not_aarch64, LoadError::NotAarch64Elf),
        (not_elf, LoadError::NotAarch64Elf),
        (good[..100].to_vec(), LoadError::Truncated),
        (elf(BASE, BASE + RAM as u64 - 2, b"code", 4), LoadError::OutsideRam),
        (elf(BASE - 4, BASE, b"code", 4), LoadError::OutsideRam),
        (elf(BASE, BASE, b"code", 2), LoadError::Truncated),
    ] {
        let mut mem = ram();
        assert_eq!(load(&image, &mut GuestRam { base: BASE, ram: &mut mem }).err(), Some(want));
        assert!(mem.iter().all(|b| *b == 0xaa), "{want:?}: written all the same");
    }
}

/// An arm64 Image of `len` bytes with this `text_offset` and `image_size`.
fn image(len: usize, text_offset: u64, image_size: u64) -> &'static [u8] {
    let mut i = vec![0x11u8; len];
    i[8..16].copy_from_slice(&text_offset.to_le_bytes());
    i[16..24].copy_from_slice(&image_size.to_le_bytes());
    i[0x38..0x3c].copy_from_slice(b"ARM\x64");
    i.leak()
}

fn dtb(len: usize) -> &'static [u8] {
    let mut d = vec![0x22u8; len];
    d[..4].copy_from_slice(&0xd00d_feedu32.to_be_bytes());
    d.leak()
}

fn images() -> LinuxImages {
    LinuxImages { image: Kernel::Raw(image(0x1000, 0, 0x3000)), dtb: dtb(0x100), initrd: vec![0x33u8; 0x800].leak() }
}

fn places() -> LinuxPlaces {
    LinuxPlaces { entry: BASE + MIB2, dtb: BASE + 3 * MIB2, initrd: BASE + 3 * MIB2 + 0x1000 }
}

#[test]
fn a_linux_guest_s_images_go_where_its_manifest_says() {
    let mut mem = ram();
    let i = images();
    let written = load_linux(&i, &places(), &mut GuestRam { base: BASE, ram: &mut mem }).unwrap();
    let at = |gpa: u64| (gpa - BASE) as usize;
    assert_eq!(
        written,
        [
            at(BASE + MIB2)..at(BASE + MIB2) + 0x1000,
            at(BASE + 3 * MIB2)..at(BASE + 3 * MIB2) + 0x100,
            at(BASE + 3 * MIB2 + 0x1000)..at(BASE + 3 * MIB2 + 0x1000) + 0x800
        ]
    );
    let Kernel::Raw(kernel) = i.image else { unreachable!() };
    for (range, bytes) in written.iter().zip([kernel, i.dtb, i.initrd]) {
        assert_eq!(&mem[range.clone()], bytes);
    }
    // Its BSS is the kernel's to clear: left as it was.
    assert_eq!(mem[at(BASE + MIB2) + 0x1000], 0xaa);
    // A text_offset moves the 2 MiB boundary the Image must follow.
    let mut mem = ram();
    let shifted = LinuxImages { image: Kernel::Raw(image(0x1000, 0x8_0000, 0x3000)), ..images() };
    let at_offset = LinuxPlaces { entry: BASE + MIB2 + 0x8_0000, ..places() };
    load_linux(&shifted, &at_offset, &mut GuestRam { base: BASE, ram: &mut mem }).unwrap();
}

#[test]
fn a_linux_guest_that_breaks_the_boot_protocol_is_refused_and_nothing_written() {
    let good = images();
    let p = places();
    refused_and_nothing_written(vec![
        (LinuxImages { image: Kernel::Raw(without_magic().leak()), ..good }, p, LoadError::NotLinuxImage),
        (LinuxImages { image: Kernel::Raw(&[0; 16]), ..good }, p, LoadError::Truncated),
        (good, LinuxPlaces { entry: BASE + MIB2 + 0x1000, ..p }, LoadError::MisplacedImage),
        (LinuxImages { image: Kernel::Raw(image(0x1000, 0x8_0000, 0x3000)), ..good }, p, LoadError::MisplacedImage),
        (LinuxImages { dtb: &[0x22; 0x100], ..good }, p, LoadError::NotDeviceTree),
        (good, LinuxPlaces { dtb: p.dtb + 4, ..p }, LoadError::NotDeviceTree),
        (good, LinuxPlaces { dtb: BASE + 3 * MIB2 - 0x80, ..p }, LoadError::NotDeviceTree),
        (LinuxImages { dtb: dtb(0x20_0008), ..good }, p, LoadError::NotDeviceTree),
        // The Image's BSS (image_size) reaches the device tree.
        (LinuxImages { image: Kernel::Raw(image(0x1000, 0, 2 * MIB2 + 8)), ..good }, p, LoadError::Overlap),
        (good, LinuxPlaces { initrd: p.dtb + 0x80, ..p }, LoadError::Overlap),
        (good, LinuxPlaces { initrd: BASE + RAM as u64 - 0x400, ..p }, LoadError::OutsideRam),
        (LinuxImages { image: Kernel::Raw(image(0x1000, 0, RAM as u64)), ..good }, p, LoadError::OutsideRam),
    ]);
}

/// The kernel Image of [`images`], as it is.
fn raw_kernel() -> &'static [u8] {
    let Kernel::Raw(kernel) = images().image else { unreachable!() };
    kernel
}

/// That Image without its magic.
fn without_magic() -> Vec<u8> {
    let mut kernel = raw_kernel().to_vec();
    kernel[0x38] = 0;
    kernel
}

/// Each case's load is refused with its error, and the RAM left as it was.
fn refused_and_nothing_written(cases: Vec<(LinuxImages, LinuxPlaces, LoadError)>) {
    for (n, (i, at, want)) in cases.into_iter().enumerate() {
        let mut mem = ram();
        assert_eq!(load_linux(&i, &at, &mut GuestRam { base: BASE, ram: &mut mem }).err(), Some(want), "case {n}");
        assert!(mem.iter().all(|b| *b == 0xaa), "case {n}: written all the same");
    }
}

fn zlib(bytes: &[u8]) -> Kernel {
    Kernel::Zlib(compress_to_vec_zlib(bytes, 6).leak())
}

#[test]
fn a_compressed_image_is_inflated_where_the_image_goes() {
    // Not a run of one byte: a kernel's worth of varied data, so the
    // stream has back-references across blocks.
    let mut kernel = image(0x6000, 0, 0x8000).to_vec();
    for (n, b) in kernel.iter_mut().enumerate().skip(0x40) {
        *b = (n as u32).wrapping_mul(2_654_435_761).to_le_bytes()[(n % 3) + 1] % 17;
    }
    let raw = LinuxImages { image: Kernel::Raw(kernel.clone().leak()), ..images() };
    let packed = LinuxImages { image: zlib(&kernel), ..images() };
    assert!(packed.image.embedded_len() < kernel.len());
    let mut want = ram();
    let expected = load_linux(&raw, &places(), &mut GuestRam { base: BASE, ram: &mut want }).unwrap();
    let mut mem = ram();
    let written = load_linux(&packed, &places(), &mut GuestRam { base: BASE, ram: &mut mem }).unwrap();
    assert_eq!(written, expected);
    assert!(mem == want, "the same RAM as from the Image as it is");
}

#[test]
fn a_compressed_image_is_checked_like_the_image_itself() {
    let good = images();
    let p = places();
    let kernel = raw_kernel();
    // Refused before anything is written: the header is inflated apart.
    refused_and_nothing_written(vec![
        (LinuxImages { image: zlib(&without_magic()), ..good }, p, LoadError::NotLinuxImage),
        (LinuxImages { image: zlib(&kernel[..16]), ..good }, p, LoadError::Truncated),
        // Its size is known only from the header's image_size.
        (LinuxImages { image: zlib(image(0x1000, 0, 0)), ..good }, p, LoadError::NotLinuxImage),
        (
            LinuxImages { image: zlib(kernel), ..good },
            LinuxPlaces { entry: BASE + MIB2 + 0x1000, ..p },
            LoadError::MisplacedImage,
        ),
        (LinuxImages { image: zlib(image(0x1000, 0, RAM as u64)), ..good }, p, LoadError::OutsideRam),
        (LinuxImages { image: zlib(image(0x1000, 0, 2 * MIB2 + 8)), ..good }, p, LoadError::Overlap),
        (LinuxImages { image: Kernel::Zlib(kernel), ..good }, p, LoadError::BadCompression),
    ]);
}

#[test]
fn a_damaged_or_overlong_stream_is_refused_as_it_inflates() {
    let p = places();
    let Kernel::Zlib(stream) = zlib(raw_kernel()) else { unreachable!() };
    // The last four bytes are the Adler-32 of what it inflates to.
    let mut damaged = stream.to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    // More than the header's image_size: 0x3000 bytes of kernel and BSS.
    let mut long = image(0x1000, 0, 0x3000).to_vec();
    long.resize(0x3001, 0x11);
    // One inflater for every load, as the VMM keeps one: each load starts
    // it afresh, so a good stream after the bad ones still loads.
    let mut inflater = Inflater::new();
    for (n, stream) in
        [damaged, compress_to_vec_zlib(&long, 6), stream[..stream.len() - 8].to_vec()].into_iter().enumerate()
    {
        let i = LinuxImages { image: Kernel::Zlib(stream.leak()), ..images() };
        let mut mem = ram();
        assert_eq!(
            guest_loader::load_linux(&i, &p, &mut GuestRam { base: BASE, ram: &mut mem }, &mut inflater).err(),
            Some(LoadError::BadCompression),
            "case {n}"
        );
    }
    let good = LinuxImages { image: Kernel::Zlib(stream), ..images() };
    let mut mem = ram();
    guest_loader::load_linux(&good, &p, &mut GuestRam { base: BASE, ram: &mut mem }, &mut inflater).unwrap();
}
