//! No input makes the tool panic: mangled descriptions, system.xml files
//! and scenarios give messages (or pass), nothing else.

mod common;

use common::{SETUP_FOR_FUZZ, TOML, XML};
use vmm_trace::Rng;
use vmsys::description::Description;
use vmsys::inputs::Inputs;
use vmsys::sdf::Sdf;

/// Values that sit on the edges the checks care about.
const NUMBERS: [&str; 12] = [
    "0",
    "1",
    "0x1000",
    "0xfff",
    "0x200000",
    "0x4000_0000",
    "0x5000_0000",
    "0xffff_ffff_ffff_f000",
    "9",
    "61",
    "255",
    "0x7fff_ffff_ffff_ffff",
];

/// One random change: a number replaced, a line dropped or repeated.
fn mangle(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let i = rng.below(lines.len());
    match rng.below(3) {
        0 => {
            let n = NUMBERS[rng.below(NUMBERS.len())];
            let line = &lines[i];
            let at = line.find("0x").or_else(|| line.find(|c: char| c.is_ascii_digit()));
            if let Some(at) = at {
                let end =
                    line[at..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(line.len(), |e| at + e);
                lines[i] = format!("{}{n}{}", &line[..at], &line[end..]);
            }
        }
        1 => {
            lines.remove(i);
        }
        _ => {
            let l = lines[i].clone();
            lines.insert(i, l);
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn mangled_inputs_give_messages_not_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..400 {
        let (mut toml, mut xml) = (TOML.to_string(), XML.to_string());
        for _ in 0..1 + rng.below(3) {
            if rng.below(2) == 0 {
                toml = mangle(&toml, &mut rng);
            } else {
                xml = mangle(&xml, &mut rng);
            }
        }
        let (Ok(desc), Ok(sdf)) = (Description::parse("system.toml", &toml), Sdf::parse("system.xml", &xml)) else {
            continue;
        };
        let diags = vmsys::check::check(&desc, &sdf);
        let _ = vmsys::graph::svg(&Inputs { desc: desc.clone(), sdf: sdf.clone() });
        if round % 8 == 0 && diags.is_empty() {
            let mut out = Vec::new();
            let files = [("t.sim".to_string(), mangle(SETUP_FOR_FUZZ, &mut rng))];
            let _ = vmsys::sim::run(&Inputs { desc, sdf }, &files, &mut out);
        }
    }
}
