//! Chooses the guest the VMM embeds: `VMM_LINUX_DIR` (a directory with a
//! Linux guest's `Image`, or `Image.zlib` compressed, `guest.dtb` and
//! `initramfs.cpio`) if set, else
//! `VMM_GUEST_ELF` (the test guest's ELF). Writes `payload.rs`, which
//! `guest_image.rs` includes.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=VMM_LINUX_DIR");
    println!("cargo:rerun-if-env-changed=VMM_GUEST_ELF");
    let bytes = |path: &Path| {
        assert!(path.is_file(), "{} is not a file", path.display());
        println!("cargo:rerun-if-changed={}", path.display());
        format!("include_bytes!({:?})", path.display().to_string())
    };
    let code = match (env::var_os("VMM_LINUX_DIR"), env::var_os("VMM_GUEST_ELF")) {
        (Some(dir), _) => {
            let dir = PathBuf::from(dir);
            let (raw, zlib) = (dir.join("Image"), dir.join("Image.zlib"));
            println!("cargo:rerun-if-changed={}", dir.display());
            let kernel = match (raw.is_file(), zlib.is_file()) {
                (true, false) => format!("Kernel::Raw({})", bytes(&raw)),
                (false, true) => format!("Kernel::Zlib({})", bytes(&zlib)),
                _ => panic!("{} holds no Image, or both Image and Image.zlib", dir.display()),
            };
            format!(
                "static PAYLOAD: Payload = Payload::Linux(LinuxImages {{ image: {kernel}, dtb: {}, initrd: {} }});\n",
                bytes(&dir.join("guest.dtb")),
                bytes(&dir.join("initramfs.cpio")),
            )
        }
        (None, Some(elf)) => format!("static PAYLOAD: Payload = Payload::Elf({});\n", bytes(Path::new(&elf))),
        (None, None) => panic!("set VMM_GUEST_ELF (the test guest's ELF) or VMM_LINUX_DIR (a Linux guest's images)"),
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("payload.rs");
    fs::write(out, code).expect("OUT_DIR is writable");
}
