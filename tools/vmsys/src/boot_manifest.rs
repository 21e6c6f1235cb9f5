//! A VM's description as the core's boot manifest
//! ([`vmm_abi::manifest::Manifest`]): the static layout its VMM PD reads at
//! initialisation, encoded in the core's own format.

use vmm_abi::manifest::{
    Dev, File, Manifest, Ram, SlotEntry, CLIENT_PRIVILEGED, DEV_GICV2_DIST, DEV_GICV3_DIST, DEV_GICV3_REDIST,
    DEV_PL011, MAX_SLOTS, SLOT_GMEM, SLOT_LOCKABLE, SLOT_READONLY, VM_INTERNAL, VM_LINUX,
};
use zerocopy::little_endian::{U32, U64};

use vmm::arch::aarch64::vgic::GicVersion;

use crate::check::linux::{self, Window};
use crate::description::{Backing, Budget, Control, DeviceKind, Vm};

/// The largest manifest the capacities allow: a header and every record.
pub const MAX_MANIFEST_BYTES: usize = 4096;

/// The manifest `vm` describes, or why it has none (a record count over
/// the format's capacity, a memslot naming a region the VM lacks, an
/// address that wraps).
pub fn manifest(vm: &Vm) -> Result<Manifest, String> {
    let mut m = Manifest { vcpus: vm.vcpus, entry: vm.entry, ..Manifest::default() };
    match &vm.control {
        Control::Internal { .. } => m.vm_flags = VM_INTERNAL,
        Control::Client(c) => {
            m.client_channel = c.channel;
            match c.budget {
                Budget::Pages(p) => m.memlock_pages = p,
                Budget::Privileged => m.client_flags = CLIENT_PRIVILEGED,
                Budget::Unclear => return Err("its client has no clear memlock budget".into()),
            }
        }
        Control::Unclear => return Err("it is neither internal nor controlled by a client".into()),
    }
    if let Some(l) = &vm.linux {
        (m.vm_flags, m.dtb, m.initrd) = (m.vm_flags | VM_LINUX, l.dtb, l.initrd);
    }
    let too_many = |what: &str, n: usize, cap: usize| format!("{n} {what}; a boot manifest holds at most {cap}");
    for r in &vm.ram {
        let rec = Ram { vmm_vaddr: U64::new(r.vmm_vaddr), size: U64::new(r.size), gpa: U64::new(r.gpa) };
        m.ram.push(rec).map_err(|_| too_many("ram regions", vm.ram.len(), m.ram.capacity()))?;
    }
    for p in &vm.private {
        let rec = File { size: U64::new(p.size), gpa: U64::new(p.gpa) };
        m.files.push(rec).map_err(|_| too_many("private regions", vm.private.len(), m.files.capacity()))?;
    }
    for s in &vm.memslots {
        let mut flags = 0;
        if s.lockable {
            flags |= SLOT_LOCKABLE;
        }
        if s.readonly {
            flags |= SLOT_READONLY;
        }
        let (source, file) = match vm.backing(s) {
            Some(Backing::Ram(i)) => {
                let base = vm.ram.get(i).map_or(0, |r| r.vmm_vaddr);
                let source = base
                    .checked_add(s.offset)
                    .ok_or_else(|| format!("memslot {}: the VMM address of its backing wraps past 2^64", s.id))?;
                (source, 0)
            }
            Some(Backing::Private(i)) => {
                flags |= SLOT_GMEM;
                (s.offset, u32::try_from(i).unwrap_or(u32::MAX))
            }
            None => return Err(format!("memslot {} names `{}`, which is not a region of this VM", s.id, s.region)),
        };
        let rec = SlotEntry {
            id: U32::new(s.id),
            flags: U32::new(flags),
            gpa: U64::new(s.gpa),
            size: U64::new(s.size),
            source: U64::new(source),
            file: U32::new(file),
            pad: U32::new(0),
        };
        m.slots.push(rec).map_err(|_| too_many("memslots", vm.memslots.len(), MAX_SLOTS))?;
    }
    for d in &vm.devices {
        let kind = match d.kind {
            DeviceKind::Pl011 => DEV_PL011,
        };
        let irq = U32::new(d.irq.unwrap_or(0));
        let rec = Dev { kind: U32::new(kind), irq, base: U64::new(d.base), size: U64::new(d.size) };
        m.devices.push(rec).map_err(|_| too_many("devices", vm.devices.len(), m.devices.capacity()))?;
    }
    if let Some(gic) = &vm.gic {
        let frames = linux::windows(gic, vm.vcpus).ok_or("its [vm.gic] is not a GIC the VMM emulates")?;
        let v3 = linux::version(gic) == Some(GicVersion::V3);
        // The CPU interface is the hardware's, mapped by system.xml: no record.
        for (window, base, size) in frames.into_iter().filter(|f| f.0.emulated()) {
            let kind = match (v3, window) {
                (false, _) => DEV_GICV2_DIST,
                (true, Window::Distributor) => DEV_GICV3_DIST,
                (true, _) => DEV_GICV3_REDIST,
            };
            let rec = Dev { kind: U32::new(kind), irq: U32::new(0), base: U64::new(base), size: U64::new(size) };
            m.devices
                .push(rec)
                .map_err(|_| too_many("devices and GIC frames", vm.devices.len() + 2, m.devices.capacity()))?;
        }
    }
    Ok(m)
}

/// `m` in the core's wire format.
pub fn encode(m: &Manifest) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; MAX_MANIFEST_BYTES];
    let n = m.encode(&mut buf).map_err(|e| format!("cannot encode its boot manifest: {e}"))?;
    buf.truncate(n);
    Ok(buf)
}
