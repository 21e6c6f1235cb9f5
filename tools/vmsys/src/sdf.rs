//! A Microkit system description (system.xml), read with a real XML parser
//! into the parts the checks need, each with its line.
//!
//! Only what this tool reasons about is kept: memory regions, protection
//! domains (nested ones too) with their maps and virtual machine, and
//! channels. Everything else Microkit accepts is left to the Microkit tool,
//! which validates it when it builds the image. A missing or unreadable
//! attribute that this tool needs is a message, never a guess.

use roxmltree::{Document, Node};

use crate::diag::Diag;
use crate::num;

/// AArch64's small page: the only size a lockable slot may use.
pub const SMALL_PAGE: u64 = 0x1000;
/// AArch64's large page, Microkit's other page size.
pub const LARGE_PAGE: u64 = 0x20_0000;

/// A `<memory_region>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// `name`.
    pub name: String,
    /// `size` in bytes.
    pub size: u64,
    /// `page_size`, if given.
    pub page_size: Option<u64>,
    /// `phys_addr`, if given.
    pub phys_addr: Option<u64>,
    /// Its line.
    pub line: u32,
}

/// Mapping rights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Perms {
    /// `r`.
    pub read: bool,
    /// `w`.
    pub write: bool,
    /// `x`.
    pub execute: bool,
}

impl std::fmt::Display for Perms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (on, c) in [(self.read, 'r'), (self.write, 'w'), (self.execute, 'x')] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// A `<map>` in a PD or a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    /// `mr`.
    pub mr: String,
    /// `vaddr` (guest-physical in a VM).
    pub vaddr: u64,
    /// `perms` (Microkit's default: rw).
    pub perms: Perms,
    /// Its line.
    pub line: u32,
}

/// A `<virtual_machine>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualMachine {
    /// `name`.
    pub name: String,
    /// `priority` (Microkit's default: 0).
    pub priority: u64,
    /// `<vcpu id>`s with their lines.
    pub vcpus: Vec<(u64, u32)>,
    /// Its maps.
    pub maps: Vec<Map>,
    /// Its line.
    pub line: u32,
}

/// A `<protection_domain>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pd {
    /// `name`.
    pub name: String,
    /// `priority` (Microkit's default: 0).
    pub priority: u64,
    /// Its maps.
    pub maps: Vec<Map>,
    /// Its virtual machine, if any.
    pub vm: Option<VirtualMachine>,
    /// Its line.
    pub line: u32,
}

/// One `<end>` of a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// `pd`.
    pub pd: String,
    /// `id`: the channel's number in that PD.
    pub id: u64,
    /// `pp`: this end may protected-call the other.
    pub pp: bool,
    /// Its line.
    pub line: u32,
}

/// A `<channel>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// Its two ends.
    pub ends: [End; 2],
    /// Its line.
    pub line: u32,
}

/// The parts of a system description the checks use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sdf {
    /// The file, as named in messages.
    pub file: String,
    /// Memory regions.
    pub regions: Vec<Region>,
    /// Protection domains, nested ones included, in document order.
    pub pds: Vec<Pd>,
    /// Channels.
    pub channels: Vec<Channel>,
}

impl Sdf {
    /// The region named `name`.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The PD named `name`.
    pub fn pd(&self, name: &str) -> Option<&Pd> {
        self.pds.iter().find(|p| p.name == name)
    }

    /// The PD holding the virtual machine named `name`, and that VM.
    pub fn vm(&self, name: &str) -> Option<(&Pd, &VirtualMachine)> {
        self.pds.iter().find_map(|p| p.vm.as_ref().filter(|v| v.name == name).map(|v| (p, v)))
    }

    /// The page size Microkit gives region `r`: its `page_size`, else the
    /// largest page that divides its size, its physical address and every
    /// address it is mapped at (the Microkit tool's rule).
    pub fn page_size(&self, r: &Region) -> u64 {
        if let Some(p) = r.page_size {
            return p;
        }
        let mut addrs = self
            .pds
            .iter()
            .flat_map(|p| p.maps.iter().chain(p.vm.iter().flat_map(|v| v.maps.iter())))
            .filter(|m| m.mr == r.name)
            .map(|m| m.vaddr)
            .chain(r.phys_addr);
        if r.size.is_multiple_of(LARGE_PAGE) && addrs.all(|a| a.is_multiple_of(LARGE_PAGE)) {
            LARGE_PAGE
        } else {
            SMALL_PAGE
        }
    }

    /// Reads a system description; any problem with its syntax or with an
    /// attribute this tool needs is a message.
    pub fn parse(file: &str, text: &str) -> Result<Sdf, Vec<Diag>> {
        let doc = Document::parse(text).map_err(|e| {
            let pos = e.pos();
            vec![Diag::at(file, pos.row, format!("not well-formed XML: {e}"))]
        })?;
        let mut r = Reader { file, doc: &doc, diags: Vec::new() };
        let mut sdf = Sdf { file: file.to_string(), ..Sdf::default() };
        let root = doc.root_element();
        if root.tag_name().name() != "system" {
            return Err(vec![Diag::at(file, r.line(root), "the root element must be <system>")]);
        }
        for node in root.children().filter(Node::is_element) {
            match node.tag_name().name() {
                "memory_region" => {
                    if let Some(region) = r.region(node) {
                        sdf.regions.push(region);
                    }
                }
                "protection_domain" => r.pd(node, &mut sdf.pds),
                "channel" => {
                    if let Some(c) = r.channel(node) {
                        sdf.channels.push(c);
                    }
                }
                _ => {}
            }
        }
        if r.diags.is_empty() {
            Ok(sdf)
        } else {
            Err(r.diags)
        }
    }
}

struct Reader<'a, 'input> {
    file: &'a str,
    doc: &'a Document<'input>,
    diags: Vec<Diag>,
}

impl Reader<'_, '_> {
    fn line(&self, node: Node) -> u32 {
        self.doc.text_pos_at(node.range().start).row
    }

    fn complain(&mut self, node: Node, message: String) {
        let line = self.line(node);
        self.diags.push(Diag::at(self.file, line, message));
    }

    /// A required attribute.
    fn attr(&mut self, node: Node, name: &str) -> Option<String> {
        let v = node.attribute(name).map(str::to_string);
        if v.is_none() {
            self.complain(node, format!("<{}> has no `{name}` attribute", node.tag_name().name()));
        }
        v
    }

    /// A numeric attribute: `Ok(None)` if absent.
    fn number(&mut self, node: Node, name: &str) -> Result<Option<u64>, ()> {
        let Some(s) = node.attribute(name) else { return Ok(None) };
        match num::parse(s) {
            Some(n) => Ok(Some(n)),
            None => {
                self.complain(node, format!("`{name}` of <{}> is not a number: {s:?}", node.tag_name().name()));
                Err(())
            }
        }
    }

    fn required_number(&mut self, node: Node, name: &str) -> Option<u64> {
        match self.number(node, name) {
            Ok(Some(n)) => Some(n),
            Ok(None) => {
                self.complain(node, format!("<{}> has no `{name}` attribute", node.tag_name().name()));
                None
            }
            Err(()) => None,
        }
    }

    fn region(&mut self, node: Node) -> Option<Region> {
        let name = self.attr(node, "name");
        // A prefilled region without `size` takes its file's size, which
        // this tool cannot know; such a region must state its size here.
        let size = self.required_number(node, "size");
        let page_size = self.number(node, "page_size").ok()?;
        let phys_addr = self.number(node, "phys_addr").ok()?;
        if let Some(p) = page_size {
            if p != SMALL_PAGE && p != LARGE_PAGE {
                self.complain(
                    node,
                    format!("page_size {} is not an AArch64 page size (0x1000 or 0x200000)", num::hex(p)),
                );
                return None;
            }
        }
        Some(Region { name: name?, size: size?, page_size, phys_addr, line: self.line(node) })
    }

    fn map(&mut self, node: Node) -> Option<Map> {
        let mr = self.attr(node, "mr");
        let vaddr = self.required_number(node, "vaddr");
        let perms = match node.attribute("perms") {
            None => Perms { read: true, write: true, execute: false },
            Some(s) => {
                let mut p = Perms::default();
                for c in s.chars() {
                    match c {
                        'r' => p.read = true,
                        'w' => p.write = true,
                        'x' => p.execute = true,
                        _ => {
                            self.complain(node, format!("perms {s:?} must be a combination of r, w and x"));
                            return None;
                        }
                    }
                }
                p
            }
        };
        Some(Map { mr: mr?, vaddr: vaddr?, perms, line: self.line(node) })
    }

    fn priority(&mut self, node: Node) -> Option<u64> {
        self.number(node, "priority").ok().map(|p| p.unwrap_or(0))
    }

    fn pd(&mut self, node: Node, out: &mut Vec<Pd>) {
        let name = self.attr(node, "name");
        let priority = self.priority(node);
        let mut maps = Vec::new();
        let mut vm = None;
        let mut children = Vec::new();
        for child in node.children().filter(Node::is_element) {
            match child.tag_name().name() {
                "map" => maps.extend(self.map(child)),
                "virtual_machine" => {
                    if vm.is_some() {
                        self.complain(child, "a protection domain has at most one <virtual_machine>".to_string());
                    } else {
                        vm = self.vm(child);
                    }
                }
                "protection_domain" => children.push(child),
                _ => {}
            }
        }
        if let (Some(name), Some(priority)) = (name, priority) {
            out.push(Pd { name, priority, maps, vm, line: self.line(node) });
        }
        for child in children {
            self.pd(child, out);
        }
    }

    fn vm(&mut self, node: Node) -> Option<VirtualMachine> {
        let name = self.attr(node, "name");
        let priority = self.priority(node);
        let mut vcpus = Vec::new();
        let mut maps = Vec::new();
        for child in node.children().filter(Node::is_element) {
            match child.tag_name().name() {
                "vcpu" => {
                    if let Some(id) = self.required_number(child, "id") {
                        vcpus.push((id, self.line(child)));
                    }
                }
                "map" => maps.extend(self.map(child)),
                _ => {}
            }
        }
        Some(VirtualMachine { name: name?, priority: priority?, vcpus, maps, line: self.line(node) })
    }

    fn channel(&mut self, node: Node) -> Option<Channel> {
        let ends: Vec<Node> = node.children().filter(|c| c.is_element() && c.tag_name().name() == "end").collect();
        let [a, b] = ends.as_slice() else {
            self.complain(node, format!("a <channel> has exactly two <end>s, this one has {}", ends.len()));
            return None;
        };
        let (a, b) = (self.end(*a), self.end(*b));
        Some(Channel { ends: [a?, b?], line: self.line(node) })
    }

    fn end(&mut self, node: Node) -> Option<End> {
        let pd = self.attr(node, "pd");
        let id = self.required_number(node, "id");
        let pp = match node.attribute("pp") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                self.complain(node, format!("pp must be \"true\" or \"false\", not {other:?}"));
                return None;
            }
        };
        Some(End { pd: pd?, id: id?, pp, line: self.line(node) })
    }
}
