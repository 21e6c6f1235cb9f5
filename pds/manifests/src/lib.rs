//! The boot manifests of this build, embedded.
//!
//! The Makefile runs `vmsys manifest` on the board's system.xml and its VM
//! description (build/<board>-<config>/system.toml), which writes one
//! manifest per VMM protection domain, and then writes
//! build/<board>-<config>/manifests.rs: a table of `include_bytes!` of
//! those files by PD name, which `VMM_MANIFESTS_RS` names. The bytes are
//! not trusted here: whoever uses one checks it with
//! `vmm_abi::manifest::Manifest::parse`.

#![no_std]

include!(env!(
    "VMM_MANIFESTS_RS",
    "VMM_MANIFESTS_RS must name the generated manifest table (build/<board>-<config>/manifests.rs): build with the top-level Makefile"
));

/// The boot manifest of the VMM protection domain named `pd`, as built.
pub fn of(pd: &str) -> Option<&'static [u8]> {
    MANIFESTS.iter().find(|(name, _)| *name == pd).map(|(_, bytes)| *bytes)
}

/// Every embedded manifest with the name of its VMM protection domain.
pub fn all() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    MANIFESTS.iter().copied()
}
