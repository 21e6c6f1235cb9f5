//! The fixture every test starts from, and helpers to break it.

#![allow(dead_code)]

use vmsys::description::Description;
use vmsys::sdf::Sdf;

/// A description that passes, read as `system.toml`.
pub const TOML: &str = include_str!("../data/system.toml");
/// Its system.xml, read as `system.xml`.
pub const XML: &str = include_str!("../data/system.xml");

/// `text` with its one occurrence of `from` replaced by `to`.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "the fixture must hold {from:?} exactly once");
    text.replacen(from, to, 1)
}

/// Both files, parsed, or the test fails with their messages.
pub fn parse(toml: &str, xml: &str) -> (Description, Sdf) {
    let desc = Description::parse("system.toml", toml).unwrap_or_else(|d| panic!("{d:?}"));
    let sdf = Sdf::parse("system.xml", xml).unwrap_or_else(|d| panic!("{d:?}"));
    (desc, sdf)
}

/// Every message `check` gives, as printed.
pub fn check(toml: &str, xml: &str) -> Vec<String> {
    let (desc, sdf) = parse(toml, xml);
    vmsys::check::check(&desc, &sdf).iter().map(ToString::to_string).collect()
}

/// The messages of reading files that do not parse.
pub fn parse_errors(toml: &str, xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(d) = Description::parse("system.toml", toml) {
        out.extend(d.iter().map(ToString::to_string));
    }
    if let Err(d) = Sdf::parse("system.xml", xml) {
        out.extend(d.iter().map(ToString::to_string));
    }
    out
}

/// A scenario touching every kind of step, for the robustness test to
/// mangle.
pub const SETUP_FOR_FUZZ: &str = "\
vmctl -> vmm1: create_vm => vm 1
vmctl -> vmm1: create_vcpu vm=1 vcpu=0 => ok
vmctl -> vmm1: set_region vm=1 slot=0 gpa=0x4000_0000 size=0x10_0000 uaddr=0x2000_0000 => ok
vmctl -> vmm1: create_guest_memfd vm=1 size=0x1_0000 => fd 1
vmctl -> vmm1: set_region vm=1 slot=1 flags=guest_memfd gpa=0x5000_0000 size=0x1_0000 fd=1 => ok
vmctl -> vmm1: lock vm=1 slot=0 flags=read|write => ok
vmctl -> vmm1: run_vcpu vm=1 vcpu=0 entry=0x4000_0000 => ok
vm1: print vcpu=0 \"hi\" => resume
vm1: console => \"hi\"
vm1: store vcpu=0 gpa=0x5000_0000 size=8 reg=x1 value=7 => resume
vm1: load vcpu=0 gpa=0xffff_ffff_ffff_fff8 size=8 reg=x1 => stop unmapped gpa=0xffff_ffff_ffff_fff8 notify=vmctl
vm0: smc vcpu=0 x0=0x8400_0000 => resume x0=0x10001
vm0: fetch vcpu=0 gpa=0x7000_0000 => stop unmapped gpa=0x7000_0000
vmctl -> vmm1: raw label=9 payload=00 => EINVAL
vmctl -> vmm1: destroy_vm vm=1 => ok
";
