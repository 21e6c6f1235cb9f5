//! `graph`: the system as a standalone SVG: protection domains, their
//! virtual machines, memory regions, who maps what where, and channels.
//!
//! Three columns: other PDs and clients on the left, each VMM PD with its
//! VM in the middle, memory regions on the right beside the VM they back.
//! Private (guest_memfd) regions are red and labelled as such; every map
//! of one is red, and a map into anything but its own VM is drawn thick
//! and dashed with the word VIOLATION, so a mistake shows at a glance.
//! Shared RAM is blue; regions the description does not know are grey.

use std::fmt::Write;

use crate::description::{Backing, Control, Description, Vm};
use crate::inputs::Inputs;
use crate::num::hex;
use crate::sdf::{Map, Pd, Sdf, VirtualMachine};

const FONT: f64 = 13.0;
/// Width of one character of the monospace font, for sizing boxes.
const CHAR_W: f64 = 7.9;
const LINE_H: f64 = 18.0;
const LEFT_X: f64 = 30.0;
const LEFT_W: f64 = 240.0;
const MID_X: f64 = 580.0;
const REGION_X: f64 = 1380.0;
const GAP: f64 = 40.0;

const RED: &str = "#c62828";
const RED_FILL: &str = "#fdecea";
const BLUE: &str = "#1565c0";
const BLUE_FILL: &str = "#e3f0fc";
const GREY: &str = "#616161";
const GREY_FILL: &str = "#f2f2f2";
const PD_FILL: &str = "#fff8e1";
const VM_FILL: &str = "#e8f5e9";

/// A box placed on the page.
#[derive(Clone, Debug)]
struct Placed {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Placed {
    fn right(&self) -> f64 {
        self.x + self.w
    }
    fn mid_y(&self) -> f64 {
        self.y + self.h / 2.0
    }
}

/// What kind of region, for colour and label.
enum Kind<'a> {
    Ram(&'a Vm),
    Private(&'a Vm),
    Other,
}

fn kind<'a>(desc: &'a Description, mr: &str) -> Kind<'a> {
    for vm in &desc.vms {
        if vm.ram.iter().any(|r| r.region == mr) {
            return Kind::Ram(vm);
        }
        if vm.private.iter().any(|p| p.region == mr) {
            return Kind::Private(vm);
        }
    }
    Kind::Other
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn text_w(lines: &[String]) -> f64 {
    lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64 * CHAR_W + 24.0
}

/// An SVG drawing of `inputs`.
pub fn svg(inputs: &Inputs) -> String {
    let (desc, sdf) = (&inputs.desc, &inputs.sdf);
    let mut body = String::new();
    let mut edges = String::new();
    let mut boxes: Vec<(String, Placed)> = Vec::new(); // holder name -> box (PDs and VMs)
    let mut regions: Vec<(String, Placed)> = Vec::new();
    let mut y = 90.0;
    // The widest VMM box decides where the region column starts.
    let mut mid_right: f64 = MID_X + 300.0;
    for pd in &sdf.pds {
        if let Some(xvm) = &pd.vm {
            let (pd_lines, vm_lines) = vmm_lines(pd, xvm, desc.vm(&xvm.name));
            mid_right = mid_right.max(MID_X + text_w(&vm_lines).max(text_w(&pd_lines) - 40.0) + 40.0);
        }
    }
    let region_x = REGION_X.max(mid_right + 260.0);

    // Middle column: PDs with a VM, each a band with its regions.
    let vmm_pds: Vec<&Pd> = sdf.pds.iter().filter(|p| p.vm.is_some()).collect();
    for pd in &vmm_pds {
        let Some(xvm) = &pd.vm else { continue };
        let dvm = desc.vm(&xvm.name);
        let (pd_lines, vm_lines) = vmm_lines(pd, xvm, dvm);
        let vm_w = text_w(&vm_lines).max(text_w(&pd_lines) - 40.0);
        let vm_h = vm_lines.len() as f64 * LINE_H + 16.0;
        let pd_box = Placed { x: MID_X, y, w: vm_w + 40.0, h: 2.0 * LINE_H + 16.0 + vm_h + 20.0 };
        let vm_box = Placed { x: MID_X + 20.0, y: y + 2.0 * LINE_H + 16.0, w: vm_w, h: vm_h };
        draw_box(&mut body, &pd_box, PD_FILL, "#8d6e00", &pd_lines);
        draw_box(&mut body, &vm_box, VM_FILL, "#2e7d32", &vm_lines);
        boxes.push((pd.name.clone(), pd_box.clone()));
        boxes.push((xvm.name.clone(), vm_box));
        // Regions of this VM: the described ones, then any other it maps.
        let mut ry = y;
        let mut names: Vec<String> = Vec::new();
        if let Some(vm) = dvm {
            names.extend(vm.ram.iter().map(|r| r.region.clone()));
            names.extend(vm.private.iter().map(|p| p.region.clone()));
        }
        for m in pd.maps.iter().chain(xvm.maps.iter()) {
            if !names.contains(&m.mr) && matches!(kind(desc, &m.mr), Kind::Other) {
                names.push(m.mr.clone());
            }
        }
        for name in names {
            if regions.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let b = region_box(&mut body, desc, sdf, &name, region_x, ry);
            ry += b.h + 14.0;
            regions.push((name, b));
        }
        y = (pd_box.y + pd_box.h).max(ry) + GAP;
    }
    // Regions nothing above placed.
    for r in &sdf.regions {
        if !regions.iter().any(|(n, _)| *n == r.name) {
            let b = region_box(&mut body, desc, sdf, &r.name, region_x, y);
            y += b.h + 14.0;
            regions.push((r.name.clone(), b));
        }
    }

    // Left column: every other PD, near the VMMs it has channels with.
    let mut ly = 90.0;
    for pd in sdf.pds.iter().filter(|p| p.vm.is_none()) {
        let mut lines = vec![pd.name.clone(), format!("protection domain, priority {}", pd.priority)];
        if desc.vms.iter().any(|v| v.client().is_some_and(|c| c.pd == pd.name)) {
            lines.push("client".into());
        }
        let h = lines.len() as f64 * LINE_H + 16.0;
        let b = Placed { x: LEFT_X, y: ly, w: text_w(&lines).max(LEFT_W), h };
        draw_box(&mut body, &b, PD_FILL, "#8d6e00", &lines);
        ly += h + GAP;
        boxes.push((pd.name.clone(), b));
    }

    // Maps: holder to region, each ending at its own height on the
    // region's left side so that labels do not collide.
    let mut incoming: Vec<(String, usize)> = Vec::new();
    for pd in &sdf.pds {
        let vm = pd.vm.iter().flat_map(|v| v.maps.iter().map(move |m| (v.name.as_str(), true, m)));
        for (holder, is_vm, m) in pd.maps.iter().map(|m| (pd.name.as_str(), false, m)).chain(vm) {
            let k = match incoming.iter_mut().find(|(n, _)| *n == m.mr) {
                Some((_, k)) => {
                    *k += 1;
                    *k
                }
                None => {
                    incoming.push((m.mr.clone(), 0));
                    0
                }
            };
            map_edge(&mut edges, desc, &boxes, &regions, holder, is_vm, m, k);
        }
    }
    // Channels: left end to right end; an arrow where a side may call.
    for c in &sdf.channels {
        let [a, b] = &c.ends;
        let (Some(ab), Some(bb)) = (find(&boxes, &a.pd), find(&boxes, &b.pd)) else { continue };
        let (from, to, fe, te) = if ab.x <= bb.x { (ab, bb, a, b) } else { (bb, ab, b, a) };
        let (x1, y1, x2, y2) = (from.right(), from.mid_y(), to.x, to.y + 22.0);
        let marker_end = if fe.pp { " marker-end=\"url(#arrow)\"" } else { "" };
        let marker_start = if te.pp { " marker-start=\"url(#arrow-back)\"" } else { "" };
        let _ = writeln!(
            edges,
            "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#6a1b9a\" stroke-width=\"2\"{marker_end}{marker_start}/>"
        );
        let caller = if fe.pp { format!("{} calls (pp)", fe.pd) } else { "notifications".into() };
        let label = format!("channel: {} id {} / {} id {}", fe.pd, fe.id, te.pd, te.id);
        let (lx, ly) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
        let _ = writeln!(edges, "{}", label_at(lx, ly - 18.0, &label, "#6a1b9a"));
        let _ = writeln!(edges, "{}", label_at(lx, ly - 2.0, &caller, "#6a1b9a"));
    }

    let regions_bottom = regions.iter().map(|(_, b)| b.y + b.h).fold(0.0, f64::max);
    let height = y.max(ly).max(regions_bottom) + 150.0;
    let regions_right = regions.iter().map(|(_, b)| b.right()).fold(region_x, f64::max);
    let width = regions_right + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         font-family=\"DejaVu Sans Mono, monospace\" font-size=\"{FONT}\">"
    );
    out.push_str(
        "<defs>\
         <marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6a1b9a\"/></marker>\
         <marker id=\"arrow-back\" viewBox=\"0 0 10 10\" refX=\"0\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\">\
         <path d=\"M10,0 L0,5 L10,10 z\" fill=\"#6a1b9a\"/></marker>\
         </defs>\n",
    );
    let _ = writeln!(out, "<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
    let _ = writeln!(
        out,
        "<text x=\"{LEFT_X}\" y=\"40\" font-size=\"18\" font-weight=\"bold\">{} described by {}</text>",
        esc(&sdf.file),
        esc(&desc.file)
    );
    out.push_str(&body);
    out.push_str(&edges);
    legend(&mut out, LEFT_X, height - 110.0);
    out.push_str("</svg>\n");
    out
}

/// The text of a VMM PD's box and of its VM's box.
fn vmm_lines(pd: &Pd, xvm: &VirtualMachine, dvm: Option<&Vm>) -> (Vec<String>, Vec<String>) {
    let pd_lines = vec![pd.name.clone(), format!("protection domain, priority {}", pd.priority)];
    let mut vm_lines = vec![
        xvm.name.clone(),
        format!(
            "virtual machine, priority {}, vCPU ids {}",
            xvm.priority,
            xvm.vcpus.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>().join(" ")
        ),
    ];
    if let Some(vm) = dvm {
        vm_lines.push(control_line(vm));
        for s in &vm.memslots {
            let kind = match vm.backing(s) {
                Some(Backing::Private(_)) => "guest_memfd",
                Some(Backing::Ram(_)) if s.readonly => "ram, read-only",
                Some(Backing::Ram(_)) => "ram",
                None => "?",
            };
            let lock = if s.lockable { ", lockable" } else { "" };
            vm_lines.push(format!(
                "slot {}: {}+{} <- {}+{} ({kind}{lock})",
                s.id,
                hex(s.gpa),
                hex(s.size),
                s.region,
                hex(s.offset)
            ));
        }
        for d in &vm.devices {
            vm_lines.push(format!("{} at {}+{}: emulated, unmapped", d.kind, hex(d.base), hex(d.size)));
        }
    } else {
        vm_lines.push("(not in the VM description)".into());
    }
    (pd_lines, vm_lines)
}

fn control_line(vm: &Vm) -> String {
    match &vm.control {
        Control::Internal { .. } => format!("internal: {} starts it, no client", vm.vmm),
        Control::Client(c) => {
            let budget = match c.budget {
                crate::description::Budget::Pages(p) => format!("memlock {p} pages"),
                crate::description::Budget::Privileged => "privileged, no memlock limit".into(),
                crate::description::Budget::Unclear => "budget unclear".into(),
            };
            format!("client {} on channel {}, {budget}", c.pd, c.channel)
        }
        Control::Unclear => "control unclear".into(),
    }
}

fn find<'a>(boxes: &'a [(String, Placed)], name: &str) -> Option<&'a Placed> {
    boxes.iter().find(|(n, _)| n == name).map(|(_, b)| b)
}

fn draw_box(out: &mut String, b: &Placed, fill: &str, stroke: &str, lines: &[String]) {
    let _ = writeln!(out, "<g>");
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2\"/>",
        b.x, b.y, b.w, b.h
    );
    for (i, l) in lines.iter().enumerate() {
        let weight = if i == 0 { " font-weight=\"bold\"" } else { "" };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\"{weight}>{}</text>",
            b.x + 12.0,
            b.y + 22.0 + i as f64 * LINE_H,
            esc(l)
        );
    }
    let _ = writeln!(out, "</g>");
}

fn region_box(out: &mut String, desc: &Description, sdf: &Sdf, name: &str, x: f64, y: f64) -> Placed {
    let r = sdf.region(name);
    let size = r.map_or("not in system.xml".to_string(), |r| {
        format!("{} bytes, {}-byte pages", hex(r.size), hex(sdf.page_size(r)))
    });
    let (lines, fill, stroke) = match kind(desc, name) {
        Kind::Private(vm) => (
            vec![
                name.to_string(),
                format!("PRIVATE: guest_memfd of {}", vm.name),
                format!("for {} only", vm.name),
                size,
            ],
            RED_FILL,
            RED,
        ),
        Kind::Ram(vm) => {
            (vec![name.to_string(), format!("shared RAM of {} and {}", vm.name, vm.vmm), size], BLUE_FILL, BLUE)
        }
        Kind::Other => (vec![name.to_string(), "not in the VM description".into(), size], GREY_FILL, GREY),
    };
    let b = Placed { x, y, w: text_w(&lines).max(300.0), h: lines.len() as f64 * LINE_H + 16.0 };
    draw_box(out, &b, fill, stroke, &lines);
    b
}

#[allow(clippy::too_many_arguments)]
fn map_edge(
    out: &mut String,
    desc: &Description,
    boxes: &[(String, Placed)],
    regions: &[(String, Placed)],
    holder: &str,
    holder_is_vm: bool,
    m: &Map,
    k: usize,
) {
    let (Some(h), Some(r)) = (find(boxes, holder), regions.iter().find(|(n, _)| *n == m.mr).map(|(_, b)| b)) else {
        return;
    };
    let (x1, y1) = (h.right(), h.y + 26.0);
    let (x2, y2) = (r.x, r.y + 22.0 + k as f64 * 20.0);
    let (colour, violation) = match kind(desc, &m.mr) {
        Kind::Private(vm) => (RED, !(holder_is_vm && holder == vm.name)),
        Kind::Ram(vm) => (BLUE, !((holder_is_vm && holder == vm.name) || (!holder_is_vm && holder == vm.vmm))),
        Kind::Other => (GREY, false),
    };
    let style = if violation { "stroke-width=\"4\" stroke-dasharray=\"10 6\"" } else { "stroke-width=\"2\"" };
    let _ = writeln!(
        out,
        "<path d=\"M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}\" fill=\"none\" stroke=\"{colour}\" {style}/>",
        x1 + 120.0,
        x2 - 120.0
    );
    let mut label = format!("{holder} maps at {} {}", hex(m.vaddr), m.perms);
    if violation {
        label = format!("VIOLATION: {label}");
    }
    let w = label.chars().count() as f64 * CHAR_W;
    let _ = writeln!(out, "{}", label_at(x2 - 10.0 - w / 2.0, y2 - 4.0, &label, colour));
}

fn label_at(x: f64, y: f64, text: &str, colour: &str) -> String {
    let w = text.chars().count() as f64 * CHAR_W + 8.0;
    format!(
        "<rect x=\"{}\" y=\"{}\" width=\"{w}\" height=\"17\" fill=\"white\" fill-opacity=\"0.85\"/>\
         <text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" fill=\"{colour}\">{}</text>",
        x - w / 2.0,
        y - 13.0,
        esc(text)
    )
}

fn legend(out: &mut String, x: f64, y: f64) {
    let items = [
        (RED_FILL, RED, "private (guest_memfd) region: mapped into its own VM only"),
        (BLUE_FILL, BLUE, "shared guest RAM: mapped into its VM and its VMM only"),
        (GREY_FILL, GREY, "region the VM description does not know"),
    ];
    for (i, (fill, stroke, text)) in items.iter().enumerate() {
        let yy = y + i as f64 * 24.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"28\" height=\"16\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            yy - 12.0,
            x + 38.0,
            yy + 1.0,
            esc(text)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{x}\" y=\"{}\">thick dashed: a map that breaks the isolation rules (VIOLATION); purple: a channel, \
         the arrow points from a PD that may call (pp)</text>",
        y + 3.0 * 24.0
    );
}
