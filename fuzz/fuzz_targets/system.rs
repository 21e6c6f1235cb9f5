//! The system-description checker's parsers: the input is a VM description
//! (TOML) and a Microkit system.xml, separated by a NUL byte. Parsing and
//! checking must answer with diagnostics, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (desc, xml) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let (Ok(desc), Ok(xml)) = (std::str::from_utf8(desc), std::str::from_utf8(xml)) else { return };
    let d = vmsys::description::Description::parse("system.toml", desc);
    let s = vmsys::sdf::Sdf::parse("system.xml", xml);
    if let (Ok(d), Ok(s)) = (d, s) {
        let _ = vmsys::check::check(&d, &s);
    }
});
