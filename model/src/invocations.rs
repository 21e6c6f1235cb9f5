//! The model's implementation of the seL4 invocations.

use std::vec::Vec;

use crate::{Cap, Mapping, Model, ObjId, Object};
use vmm::arch::aarch64::regs::{TcbReg, VcpuReg};
use vmm::caps::{FrameCap, ObjectType, PageTableCap, Rights, Slot, TcbCap, VCpuCap, VSpaceCap};
use vmm::kernel::{Kernel, KernelError, Virq};
use vmm_abi::limits::{page_aligned, GUEST_PHYS_LIMIT};

/// Guest-physical bits translated by one level-2 entry (1 GiB).
const L2_SHIFT: u32 = 30;
/// Guest-physical bits translated by one level-3 entry (2 MiB).
const L3_SHIFT: u32 = 21;

impl Model {
    fn cap_of(&self, slot: Slot, ty: ObjectType) -> Result<&Cap, KernelError> {
        let c = self.state.caps.get(&slot.0).ok_or(KernelError::InvalidCapability)?;
        match self.state.objects.get(&c.obj) {
            Some(o) if o.ty() == ty => Ok(c),
            _ => Err(KernelError::InvalidCapability),
        }
    }

    fn obj_of(&self, slot: Slot, ty: ObjectType) -> Result<ObjId, KernelError> {
        self.cap_of(slot, ty).map(|c| c.obj)
    }

    fn empty(&self, slot: Slot) -> Result<(), KernelError> {
        if self.state.caps.contains_key(&slot.0) {
            Err(KernelError::DeleteFirst)
        } else {
            Ok(())
        }
    }

    /// Removes the mapping made through `slot`, if any.
    fn unmap_slot(&mut self, slot: u64) {
        let Some(m) = self.state.caps.get_mut(&slot).and_then(|c| c.mapping.take()) else {
            return;
        };
        if let Some(Object::VSpace { pages, .. }) = self.state.objects.get_mut(&m.vspace) {
            pages.remove(&m.vaddr);
        }
    }

    /// Unmaps every page of `vspace` in `[lo, hi)`.
    fn unmap_range(&mut self, vspace: ObjId, lo: u64, hi: u64) {
        let slots: Vec<u64> = match self.state.objects.get(&vspace) {
            Some(Object::VSpace { pages, .. }) => pages.range(lo..hi).map(|(_, s)| *s).collect(),
            _ => Vec::new(),
        };
        for s in slots {
            self.unmap_slot(s);
        }
    }

    /// Destroys `obj` once no capability names it.
    fn reap(&mut self, obj: ObjId) {
        if self.index.refs.get(&obj).is_some_and(|n| *n > 0) {
            return;
        }
        self.index.refs.remove(&obj);
        let Some(o) = self.state.objects.remove(&obj) else {
            return;
        };
        self.state.untyped_free += 1u64 << o.ty().size_bits();
        match o {
            Object::PageTable { installed: Some((vs, level, index)) } => {
                let shift = if level == 2 { L2_SHIFT } else { L3_SHIFT };
                self.unmap_range(vs, index << shift, (index + 1) << shift);
                // A level-2 table takes the level-3 tables below it along.
                let below = |l: u8, i: u64| {
                    (l == level && i == index) || (level == 2 && l == 3 && i >> (L2_SHIFT - L3_SHIFT) == index)
                };
                let mut orphans = Vec::new();
                if let Some(Object::VSpace { tables, .. }) = self.state.objects.get_mut(&vs) {
                    tables.retain(|(l, i), t| {
                        let gone = below(*l, *i);
                        if gone && *t != obj {
                            orphans.push(*t);
                        }
                        !gone
                    });
                }
                for t in orphans {
                    if let Some(Object::PageTable { installed }) = self.state.objects.get_mut(&t) {
                        *installed = None;
                    }
                }
            }
            Object::VSpace { pages, tables, .. } => {
                for s in pages.values() {
                    if let Some(c) = self.state.caps.get_mut(s) {
                        c.mapping = None;
                    }
                }
                for t in tables.values() {
                    if let Some(Object::PageTable { installed }) = self.state.objects.get_mut(t) {
                        *installed = None;
                    }
                }
            }
            _ => {}
        }
    }

    fn delete_slot(&mut self, slot: u64) {
        self.unmap_slot(slot);
        let Some(c) = self.state.caps.remove(&slot) else { return };
        if let Some(n) = self.index.refs.get_mut(&c.obj) {
            *n -= 1;
        }
        self.index.slot_of.remove(&c.id);
        if let Some(p) = c.parent {
            if let Some(k) = self.index.kids.get_mut(&p) {
                k.remove(&c.id);
                if k.is_empty() {
                    self.index.kids.remove(&p);
                }
            }
        }
        // Children of a deleted capability hang from its parent, as in seL4's
        // derivation tree.
        for kid in self.index.kids.remove(&c.id).unwrap_or_default() {
            let Some(s) = self.index.slot_of.get(&kid) else { continue };
            if let Some(k) = self.state.caps.get_mut(s) {
                k.parent = c.parent;
            }
            if let Some(p) = c.parent {
                self.index.kids.entry(p).or_default().insert(kid);
            }
        }
        self.reap(c.obj);
    }

    /// The slots of every capability derived, directly or not, from `id`.
    fn descendants(&self, id: u64) -> Vec<u64> {
        let mut found = Vec::new();
        let mut frontier = std::vec![id];
        while let Some(p) = frontier.pop() {
            for kid in self.index.kids.get(&p).into_iter().flatten() {
                if let Some(s) = self.index.slot_of.get(kid) {
                    found.push(*s);
                }
                frontier.push(*kid);
            }
        }
        found
    }

    fn tcb_mut(&mut self, tcb: TcbCap) -> Result<&mut Object, KernelError> {
        let o = self.obj_of(tcb.0, ObjectType::Tcb)?;
        self.state.objects.get_mut(&o).ok_or(KernelError::InvalidCapability)
    }

    fn vcpu_mut(&mut self, vcpu: VCpuCap) -> Result<&mut Object, KernelError> {
        let o = self.obj_of(vcpu.0, ObjectType::VCpu)?;
        self.state.objects.get_mut(&o).ok_or(KernelError::InvalidCapability)
    }
}

/// Registers read as 0 until written; a register written back to 0 is the
/// same state as one never written, so it is not kept.
fn set_reg<R: Ord>(regs: &mut std::collections::BTreeMap<R, u64>, reg: R, value: u64) {
    if value == 0 {
        regs.remove(&reg);
    } else {
        regs.insert(reg, value);
    }
}

impl Kernel for Model {
    fn untyped_retype(&mut self, ty: ObjectType, dest: Slot) -> Result<(), KernelError> {
        self.enter()?;
        self.empty(dest)?;
        let obj = self.new_object(ty)?;
        self.new_cap(dest.0, obj, None, Rights::READ_WRITE);
        Ok(())
    }

    fn cnode_copy(&mut self, dest: Slot, src: Slot, mask: Rights) -> Result<(), KernelError> {
        self.enter()?;
        let c = self.state.caps.get(&src.0).ok_or(KernelError::InvalidCapability)?;
        let (obj, parent, rights) = (c.obj, c.id, c.rights.derive(mask));
        self.empty(dest)?;
        self.new_cap(dest.0, obj, Some(parent), rights);
        Ok(())
    }

    fn cnode_move(&mut self, dest: Slot, src: Slot) -> Result<(), KernelError> {
        self.count();
        if !self.state.caps.contains_key(&src.0) {
            return Err(KernelError::InvalidCapability);
        }
        self.empty(dest)?;
        let Some(c) = self.state.caps.remove(&src.0) else {
            return Err(KernelError::InvalidCapability);
        };
        self.index.slot_of.insert(c.id, dest.0);
        if let Some(m) = c.mapping {
            if let Some(Object::VSpace { pages, .. }) = self.state.objects.get_mut(&m.vspace) {
                pages.insert(m.vaddr, dest.0);
            }
        }
        self.state.caps.insert(dest.0, c);
        Ok(())
    }

    fn cnode_delete(&mut self, slot: Slot) -> Result<(), KernelError> {
        self.count();
        self.delete_slot(slot.0);
        Ok(())
    }

    fn cnode_revoke(&mut self, slot: Slot) -> Result<(), KernelError> {
        self.count();
        let id = self.state.caps.get(&slot.0).ok_or(KernelError::InvalidCapability)?.id;
        for s in self.descendants(id) {
            self.delete_slot(s);
        }
        Ok(())
    }

    fn frame_map(&mut self, frame: FrameCap, vspace: VSpaceCap, vaddr: u64, rights: Rights) -> Result<(), KernelError> {
        self.enter()?;
        let vs = self.obj_of(vspace.0, ObjectType::VSpace)?;
        let cap = self.cap_of(frame.0, ObjectType::Frame)?;
        let (cap_rights, existing) = (cap.rights, cap.mapping);
        if !page_aligned(vaddr) {
            return Err(KernelError::AlignmentError);
        }
        let effective = cap_rights.derive(rights);
        if let Some(m) = existing {
            // Remapping at the same place changes the rights; anywhere else
            // needs another capability.
            if m.vspace != vs || m.vaddr != vaddr {
                return Err(KernelError::InvalidArgument);
            }
            self.install_page(frame.0 .0, vs, vaddr, effective);
            return Ok(());
        }
        let Some(Object::VSpace { pages, tables, needs_tables }) = self.state.objects.get(&vs) else {
            return Err(KernelError::InvalidCapability);
        };
        if *needs_tables {
            if vaddr >= GUEST_PHYS_LIMIT {
                return Err(KernelError::InvalidArgument);
            }
            if !tables.contains_key(&(2, vaddr >> L2_SHIFT)) {
                return Err(KernelError::MissingLevel2);
            }
            if !tables.contains_key(&(3, vaddr >> L3_SHIFT)) {
                return Err(KernelError::MissingLevel3);
            }
        }
        if pages.contains_key(&vaddr) {
            return Err(KernelError::DeleteFirst);
        }
        self.install_page(frame.0 .0, vs, vaddr, effective);
        Ok(())
    }

    fn frame_unmap(&mut self, frame: FrameCap) -> Result<(), KernelError> {
        self.count();
        self.cap_of(frame.0, ObjectType::Frame)?;
        self.unmap_slot(frame.0 .0);
        Ok(())
    }

    fn page_table_map(&mut self, pt: PageTableCap, vspace: VSpaceCap, vaddr: u64) -> Result<(), KernelError> {
        self.enter()?;
        let vs = self.obj_of(vspace.0, ObjectType::VSpace)?;
        let pto = self.obj_of(pt.0, ObjectType::PageTable)?;
        if !matches!(self.state.objects.get(&pto), Some(Object::PageTable { installed: None })) {
            return Err(KernelError::InvalidCapability);
        }
        let Some(Object::VSpace { tables, needs_tables, .. }) = self.state.objects.get_mut(&vs) else {
            return Err(KernelError::InvalidCapability);
        };
        if !*needs_tables || vaddr >= GUEST_PHYS_LIMIT {
            return Err(KernelError::InvalidArgument);
        }
        let key = if !tables.contains_key(&(2, vaddr >> L2_SHIFT)) {
            (2, vaddr >> L2_SHIFT)
        } else if !tables.contains_key(&(3, vaddr >> L3_SHIFT)) {
            (3, vaddr >> L3_SHIFT)
        } else {
            return Err(KernelError::DeleteFirst);
        };
        tables.insert(key, pto);
        if let Some(Object::PageTable { installed }) = self.state.objects.get_mut(&pto) {
            *installed = Some((vs, key.0, key.1));
        }
        Ok(())
    }

    fn tcb_bind(&mut self, tcb: TcbCap, vcpu: VCpuCap, vspace: VSpaceCap) -> Result<(), KernelError> {
        self.enter()?;
        let v = self.obj_of(vcpu.0, ObjectType::VCpu)?;
        let s = self.obj_of(vspace.0, ObjectType::VSpace)?;
        if let Object::Tcb { bound, .. } = self.tcb_mut(tcb)? {
            *bound = Some((v, s));
        }
        Ok(())
    }

    fn tcb_read_register(&mut self, tcb: TcbCap, reg: TcbReg) -> Result<u64, KernelError> {
        self.enter()?;
        if matches!(reg, TcbReg::X(n) if n > 30) {
            return Err(KernelError::InvalidArgument);
        }
        match self.tcb_mut(tcb)? {
            Object::Tcb { regs, .. } => Ok(regs.get(&reg).copied().unwrap_or(0)),
            _ => Err(KernelError::InvalidCapability),
        }
    }

    fn tcb_write_register(&mut self, tcb: TcbCap, reg: TcbReg, value: u64) -> Result<(), KernelError> {
        self.enter()?;
        if matches!(reg, TcbReg::X(n) if n > 30) {
            return Err(KernelError::InvalidArgument);
        }
        if let Object::Tcb { regs, .. } = self.tcb_mut(tcb)? {
            set_reg(regs, reg, value);
        }
        Ok(())
    }

    fn tcb_resume(&mut self, tcb: TcbCap) -> Result<(), KernelError> {
        self.enter()?;
        if let Object::Tcb { running, .. } = self.tcb_mut(tcb)? {
            *running = true;
        }
        Ok(())
    }

    fn tcb_suspend(&mut self, tcb: TcbCap) -> Result<(), KernelError> {
        self.count();
        if let Object::Tcb { running, .. } = self.tcb_mut(tcb)? {
            *running = false;
        }
        Ok(())
    }

    fn vcpu_read_reg(&mut self, vcpu: VCpuCap, reg: VcpuReg) -> Result<u64, KernelError> {
        self.enter()?;
        match self.vcpu_mut(vcpu)? {
            Object::VCpu { regs, .. } => Ok(regs.get(&reg).copied().unwrap_or(0)),
            _ => Err(KernelError::InvalidCapability),
        }
    }

    fn vcpu_write_reg(&mut self, vcpu: VCpuCap, reg: VcpuReg, value: u64) -> Result<(), KernelError> {
        self.enter()?;
        if let Object::VCpu { regs, .. } = self.vcpu_mut(vcpu)? {
            set_reg(regs, reg, value);
        }
        Ok(())
    }

    fn vcpu_inject_irq(&mut self, vcpu: VCpuCap, virq: Virq, index: u8) -> Result<(), KernelError> {
        self.enter()?;
        // seL4 refuses an id above 10 bits, a priority above 5 and a list
        // register the hardware lacks.
        if usize::from(index) >= vmm::arch::aarch64::vgic::LIST_REGISTERS || virq.irq > 0x3ff || virq.priority > 31 {
            return Err(KernelError::InvalidArgument);
        }
        if let Object::VCpu { injected, .. } = self.vcpu_mut(vcpu)? {
            injected.push((virq, index));
        }
        Ok(())
    }

    fn vcpu_ack_vppi(&mut self, vcpu: VCpuCap, irq: u16) -> Result<(), KernelError> {
        self.enter()?;
        if let Object::VCpu { acked, .. } = self.vcpu_mut(vcpu)? {
            acked.push(irq);
        }
        Ok(())
    }
}

/// Keeps `Mapping` in this module's vocabulary for readers.
#[allow(dead_code)]
type MappingOf = Mapping;
