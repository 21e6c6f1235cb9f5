//! The picture is well-formed SVG, shows every PD, VM and region, and
//! marks a private region mapped where it must not be.

mod common;

use common::{edit, parse, TOML, XML};
use vmsys::inputs::Inputs;

fn svg(toml: &str, xml: &str) -> String {
    let (desc, sdf) = parse(toml, xml);
    vmsys::graph::svg(&Inputs { desc, sdf })
}

#[test]
fn the_picture_is_svg_and_names_everything() {
    let s = svg(TOML, XML);
    let doc = roxmltree::Document::parse(&s).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let text: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for name in ["vmm0", "vmm1", "vm0", "vm1", "vmctl", "vm0_ram", "vm1_private", "PRIVATE: guest_memfd of vm1"] {
        assert!(text.contains(&name), "{name} missing");
    }
    assert!(!s.contains("VIOLATION:"), "the fixture breaks no rule");
}

#[test]
fn a_private_region_in_a_pd_is_marked_as_a_violation() {
    let vmm = "<map mr=\"vm1_ram\" vaddr=\"0x20000000\" perms=\"rw\" />";
    let s = svg(TOML, &edit(XML, vmm, &format!("{vmm}<map mr=\"vm1_private\" vaddr=\"0x30000000\" perms=\"r\" />")));
    assert!(roxmltree::Document::parse(&s).is_ok());
    assert!(s.contains("VIOLATION: vmm1 maps at 0x30000000 r"), "{s}");
    assert!(s.contains("stroke-dasharray"));
}
