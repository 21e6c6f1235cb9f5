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
