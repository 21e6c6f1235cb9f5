//! Links the client's segments at 4 KiB alignment (the linker's default
//! for AArch64 is 64 KiB), so that its image spans a few pages and the
//! root task maps a frame for each.

fn main() {
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
}
