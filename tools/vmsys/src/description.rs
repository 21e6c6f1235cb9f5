//! The VM description: for each VM, its VMM protection domain, vCPUs, entry
//! point, who controls it, the memory regions of system.xml that back it
//! (shared guest RAM and private guest_memfd regions), its memslots and its
//! emulated devices. It is read from TOML, and every item keeps the line it
//! was written on so that each message can point at it.
//!
//! This module only reads the file and resolves names within it; the
//! rules live in `check`.

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{line_of, Diag};

/// A VM's description, checked for nothing yet but its syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vm {
    /// The `<virtual_machine name>` in system.xml.
    pub name: String,
    /// The `<protection_domain name>` of its VMM.
    pub vmm: String,
    /// Line of its `[[vm]]` header.
    pub line: u32,
    /// vCPUs, ids `0..vcpus`.
    pub vcpus: u32,
    /// Line of `vcpus`.
    pub vcpus_line: u32,
    /// Guest-physical entry point of vCPU 0.
    pub entry: u64,
    /// Line of `entry`.
    pub entry_line: u32,
    /// Internal, or controlled by a client.
    pub control: Control,
    /// Shared guest RAM.
    pub ram: Vec<Ram>,
    /// Private (guest_memfd) regions, one guest_memfd file each.
    pub private: Vec<Private>,
    /// Memslots.
    pub memslots: Vec<Memslot>,
    /// Emulated devices.
    pub devices: Vec<Device>,
    /// Its virtual GIC, if it has one.
    pub gic: Option<Gic>,
    /// How it boots Linux, if it does: what its device tree holds.
    pub linux: Option<Linux>,
}

/// A VM's virtual interrupt controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gic {
    /// The GIC architecture version: 2 (QEMU `virt`) or 3 (i.MX 8M Plus);
    /// anything else is a problem `check` reports.
    pub version: u32,
    /// Guest-physical base of the distributor (emulated: left unmapped).
    pub dist: u64,
    /// GICv2: where the guest finds its CPU interface (the hardware's
    /// virtual CPU interface, GICV, appears there).
    pub cpu: Option<u64>,
    /// GICv3: base of the redistributors, one 128 KiB frame pair per vCPU.
    pub redist: Option<u64>,
    /// Line of `[vm.gic]`.
    pub line: u32,
}

/// What a Linux guest boots with, besides memory, vCPUs, the GIC and the
/// devices the rest of the description gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linux {
    /// The kernel command line.
    pub bootargs: String,
    /// Where the VMM puts the device tree.
    pub dtb: u64,
    /// Where the VMM puts the initramfs.
    pub initrd: u64,
    /// Line of `[vm.linux]`.
    pub line: u32,
}

/// Who controls a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// The VMM starts it at initialisation; nobody controls it.
    Internal {
        /// Line of `internal = true`.
        line: u32,
    },
    /// A client PD controls it over protected calls.
    Client(Client),
    /// The description says neither or both (a problem `check` reports).
    Unclear,
}

/// The client controlling a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Its protection domain.
    pub pd: String,
    /// The channel's id at the VMM's end: the `ClientId` the VMM sees.
    pub channel: u32,
    /// Its memlock allowance.
    pub budget: Budget,
    /// Line of the client table.
    pub line: u32,
}

/// A client's memlock allowance (RLIMIT_MEMLOCK, or CAP_IPC_LOCK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// At most this many pages locked at once.
    Pages(u64),
    /// No limit.
    Privileged,
    /// Neither or both given (a problem `check` reports).
    Unclear,
}

/// Shared guest RAM: a memory region mapped into the VM and into its VMM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ram {
    /// The `<memory_region name>`.
    pub region: String,
    /// Where the VM sees it.
    pub gpa: u64,
    /// Where the VMM sees it.
    pub vmm_vaddr: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Line of its `[[vm.ram]]` header.
    pub line: u32,
}

/// A private region: one guest_memfd file, mapped into the VM only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Private {
    /// The `<memory_region name>`.
    pub region: String,
    /// Where the VM sees it.
    pub gpa: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Line of its `[[vm.private]]` header.
    pub line: u32,
}

/// A memslot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memslot {
    /// Slot id.
    pub id: u32,
    /// The ram or private region backing it.
    pub region: String,
    /// Guest-physical base.
    pub gpa: u64,
    /// Size in bytes.
    pub size: u64,
    /// Where in the region the slot starts.
    pub offset: u64,
    /// The guest may not write.
    pub readonly: bool,
    /// A client may lock it (its region must use 4 KiB pages).
    pub lockable: bool,
    /// Line of its `[[vm.memslot]]` header.
    pub line: u32,
}

impl Memslot {
    /// One past the last guest-physical address, if it does not wrap.
    pub fn end(&self) -> Option<u64> {
        self.gpa.checked_add(self.size)
    }
}

/// Device kinds the VMM emulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// An ARM PL011 UART.
    Pl011,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceKind::Pl011 => "pl011",
        })
    }
}

/// An emulated device: a guest-physical window that must stay unmapped so
/// every access traps to the VMM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// What it is.
    pub kind: DeviceKind,
    /// Guest-physical base.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// Its interrupt, a GIC interrupt id (an SPI), if it has one.
    pub irq: Option<u32>,
    /// Line of its `[[vm.device]]` header.
    pub line: u32,
}

/// Which region backs a memslot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// `ram[i]`.
    Ram(usize),
    /// `private[i]`: guest_memfd file `i`.
    Private(usize),
}

impl Vm {
    /// The region a memslot names, if this VM describes it.
    pub fn backing(&self, slot: &Memslot) -> Option<Backing> {
        if let Some(i) = self.ram.iter().position(|r| r.region == slot.region) {
            return Some(Backing::Ram(i));
        }
        self.private.iter().position(|p| p.region == slot.region).map(Backing::Private)
    }

    /// The client PD, if a client controls this VM.
    pub fn client(&self) -> Option<&Client> {
        match &self.control {
            Control::Client(c) => Some(c),
            _ => None,
        }
    }
}

/// A whole description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// The file it was read from.
    pub file: String,
    /// The system.xml it describes, relative to the description's folder.
    pub system_xml: Option<String>,
    /// The VMs, in file order.
    pub vms: Vec<Vm>,
}

impl Description {
    /// The VM named `name`.
    pub fn vm(&self, name: &str) -> Option<&Vm> {
        self.vms.iter().find(|v| v.name == name)
    }

    /// The VM whose VMM is `pd`.
    pub fn vm_of_vmm(&self, pd: &str) -> Option<&Vm> {
        self.vms.iter().find(|v| v.vmm == pd)
    }

    /// Reads a description from `text` (named `file` in messages).
    pub fn parse(file: &str, text: &str) -> Result<Description, Vec<Diag>> {
        let raw: RawDescription = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim_end().to_string();
            vec![match e.span() {
                Some(span) => Diag::at(file, line_of(text, span.start), msg),
                None => Diag::file(file, msg),
            }]
        })?;
        let line = |start: usize| line_of(text, start);
        let vms = raw
            .vm
            .into_iter()
            .map(|v| {
                let vm_line = line(v.span().start);
                let v = v.into_inner();
                let control = match (v.internal.as_ref().map(|i| *i.get_ref()), v.client) {
                    (Some(true), None) => Control::Internal { line: line(v.internal.map_or(0, |i| i.span().start)) },
                    (None | Some(false), Some(c)) => {
                        let c_line = line(c.span().start);
                        let c = c.into_inner();
                        let budget = match (c.memlock_pages, c.privileged) {
                            (Some(p), None | Some(false)) => Budget::Pages(p),
                            (None, Some(true)) => Budget::Privileged,
                            _ => Budget::Unclear,
                        };
                        Control::Client(Client { pd: c.pd, channel: c.channel, budget, line: c_line })
                    }
                    _ => Control::Unclear,
                };
                Vm {
                    name: v.name,
                    vmm: v.vmm,
                    line: vm_line,
                    vcpus: *v.vcpus.get_ref(),
                    vcpus_line: line(v.vcpus.span().start),
                    entry: *v.entry.get_ref(),
                    entry_line: line(v.entry.span().start),
                    control,
                    ram: v
                        .ram
                        .into_iter()
                        .map(|r| {
                            let l = line(r.span().start);
                            let r = r.into_inner();
                            Ram { region: r.region, gpa: r.gpa, vmm_vaddr: r.vmm_vaddr, size: r.size, line: l }
                        })
                        .collect(),
                    private: v
                        .private
                        .into_iter()
                        .map(|p| {
                            let l = line(p.span().start);
                            let p = p.into_inner();
                            Private { region: p.region, gpa: p.gpa, size: p.size, line: l }
                        })
                        .collect(),
                    memslots: v
                        .memslot
                        .into_iter()
                        .map(|s| {
                            let l = line(s.span().start);
                            let s = s.into_inner();
                            Memslot {
                                id: s.id,
                                region: s.region,
                                gpa: s.gpa,
                                size: s.size,
                                offset: s.offset,
                                readonly: s.readonly,
                                lockable: s.lockable,
                                line: l,
                            }
                        })
                        .collect(),
                    devices: v
                        .device
                        .into_iter()
                        .map(|d| {
                            let l = line(d.span().start);
                            let d = d.into_inner();
                            Device { kind: d.kind, base: d.base, size: d.size, irq: d.irq, line: l }
                        })
                        .collect(),
                    gic: v.gic.map(|g| {
                        let l = line(g.span().start);
                        let g = g.into_inner();
                        Gic { version: g.version, dist: g.dist, cpu: g.cpu, redist: g.redist, line: l }
                    }),
                    linux: v.linux.map(|x| {
                        let l = line(x.span().start);
                        let x = x.into_inner();
                        Linux { bootargs: x.bootargs, dtb: x.dtb, initrd: x.initrd, line: l }
                    }),
                }
            })
            .collect();
        Ok(Description { file: file.to_string(), system_xml: raw.system_xml, vms })
    }
}

// The file's shape. Unknown keys are refused so that a misspelt field is an
// error, not a silently absent setting.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescription {
    system_xml: Option<String>,
    #[serde(default)]
    vm: Vec<Spanned<RawVm>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: String,
    vmm: String,
    vcpus: Spanned<u32>,
    entry: Spanned<u64>,
    internal: Option<Spanned<bool>>,
    client: Option<Spanned<RawClient>>,
    #[serde(default)]
    ram: Vec<Spanned<RawRam>>,
    #[serde(default)]
    private: Vec<Spanned<RawPrivate>>,
    #[serde(default)]
    memslot: Vec<Spanned<RawMemslot>>,
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
    gic: Option<Spanned<RawGic>>,
    linux: Option<Spanned<RawLinux>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGic {
    version: u32,
    dist: u64,
    cpu: Option<u64>,
    redist: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinux {
    bootargs: String,
    dtb: u64,
    initrd: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    pd: String,
    channel: u32,
    memlock_pages: Option<u64>,
    privileged: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRam {
    region: String,
    gpa: u64,
    vmm_vaddr: u64,
    size: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrivate {
    region: String,
    gpa: u64,
    size: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemslot {
    id: u32,
    region: String,
    gpa: u64,
    size: u64,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    readonly: bool,
    #[serde(default)]
    lockable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    kind: DeviceKind,
    base: u64,
    size: u64,
    irq: Option<u32>,
}
