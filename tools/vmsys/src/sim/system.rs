//! The simulated system: one VMM instance on the seL4 model per VM of the
//! description, each with its console, set up from its boot manifest as
//! its VMM PD is; internal VMs built and started as their VMM does at
//! initialisation.
//!
//! Requests reach a VMM the way Microkit delivers them: only on a
//! protected-call channel of system.xml, and the VMM sees the caller as
//! the channel's id at its end. Nothing else names the caller. A VM a
//! client creates gets the devices of the manifest, as its VMM PD gives
//! them (the core leaves that to the PD).

use vmm::addr::Gpa;
use vmm::devices::pl011::Pl011;
use vmm::devices::Device;
use vmm::registry::Owner;
use vmm_abi::protocol::{label, Request, MAX_PAYLOAD};
use vmm_abi::{ClientId, Errno, VmId};

use super::script::Sent;
use crate::boot_manifest;
use crate::description::{Control, DeviceKind};
use crate::inputs::Inputs;
use crate::num::hex;
use crate::world::{self, ModelVmm};

/// One VMM PD and what its guest printed.
pub struct Instance {
    /// The VMM PD's name.
    pub vmm_name: String,
    /// The Microkit VM's name.
    pub vm_name: String,
    /// The VMM.
    pub vmm: Box<ModelVmm>,
    /// Console bytes not compared yet.
    pub console: Vec<u8>,
    /// The PL011's base, if the VM has one.
    pub uart: Option<u64>,
    /// The devices of the manifest: (base, size) of each PL011.
    pub devices: Vec<(u64, u64)>,
}

/// Every VMM of the system.
pub struct System<'a> {
    /// The inputs it was built from.
    pub inputs: &'a Inputs,
    /// One instance per described VM.
    pub instances: Vec<Instance>,
}

/// Where a request went.
pub enum Delivery {
    /// The PD has no protected-call channel to that VMM.
    NoChannel,
    /// The VMM's answer.
    Answer(Result<u64, Errno>),
}

impl<'a> System<'a> {
    /// Sets up every VMM from its manifest and starts the internal VMs
    /// (x0 = 0, the guest's normal mode); returns what it did, a line each.
    pub fn boot(inputs: &'a Inputs) -> Result<(System<'a>, Vec<String>), String> {
        let mut instances = Vec::new();
        let mut log = Vec::new();
        for vm in &inputs.desc.vms {
            let m = boot_manifest::manifest(vm).map_err(|e| format!("{}: {e}", vm.name))?;
            let mut vmm = world::vmm_for(&m).map_err(|e| format!("{}: {e}", vm.name))?;
            if let Control::Internal { .. } = vm.control {
                let id = vmm
                    .build_from_manifest(&m, Owner::Internal, Some(0))
                    .map_err(|e| format!("{}: {} refuses to build it: {e}", vm.name, vm.vmm))?;
                log.push(format!(
                    "{}: built internal VM {} (core VM {}) from its manifest, vCPU 0 started at {}",
                    vm.vmm,
                    vm.name,
                    id.0,
                    hex(vm.entry)
                ));
            } else if let Some(c) = vm.client() {
                log.push(format!("{}: serves {} on channel {}, no VM yet", vm.vmm, c.pd, c.channel));
            }
            let uart = vm.devices.iter().find(|d| d.kind == DeviceKind::Pl011).map(|d| d.base);
            let devices = vm.devices.iter().map(|d| (d.base, d.size)).collect();
            let (vmm_name, vm_name) = (vm.vmm.clone(), vm.name.clone());
            instances.push(Instance { vmm_name, vm_name, vmm, console: Vec::new(), uart, devices });
        }
        Ok((System { inputs, instances }, log))
    }

    /// The channel id at `vmm`'s end of a channel on which `pd` may call it.
    pub fn channel(&self, pd: &str, vmm: &str) -> Option<u32> {
        self.inputs.sdf.channels.iter().find_map(|c| {
            let [a, b] = &c.ends;
            let id = if a.pd == pd && a.pp && b.pd == vmm {
                b.id
            } else if b.pd == pd && b.pp && a.pd == vmm {
                a.id
            } else {
                return None;
            };
            u32::try_from(id).ok()
        })
    }

    /// The PD that calls `vmm` on its channel `id`.
    pub fn caller_on(&self, vmm: &str, id: u32) -> String {
        let found = self.inputs.sdf.channels.iter().find_map(|c| {
            let [a, b] = &c.ends;
            if a.pd == vmm && a.id == u64::from(id) {
                Some(b.pd.clone())
            } else if b.pd == vmm && b.id == u64::from(id) {
                Some(a.pd.clone())
            } else {
                None
            }
        });
        found.unwrap_or_else(|| format!("channel-{id}"))
    }

    /// The instance of VMM PD `name`.
    pub fn by_vmm(&mut self, name: &str) -> Option<&mut Instance> {
        self.instances.iter_mut().find(|i| i.vmm_name == name)
    }

    /// The instance managing Microkit VM `name`.
    pub fn by_vm(&mut self, name: &str) -> Option<&mut Instance> {
        self.instances.iter_mut().find(|i| i.vm_name == name)
    }

    /// Sends `sent` from `pd` to `vmm` as a protected call would: encoded
    /// by the core's protocol, cut to `words` words if asked, and handed to
    /// `Vmm::handle` with the caller's channel.
    pub fn request(&mut self, pd: &str, vmm: &str, sent: &Sent, words: Option<usize>) -> Result<Delivery, String> {
        let Some(channel) = self.channel(pd, vmm) else { return Ok(Delivery::NoChannel) };
        let inst = self.by_vmm(vmm).ok_or(format!("the description has no VMM {vmm}"))?;
        let mut buf = [0u8; MAX_PAYLOAD];
        let (label, mut payload): (u64, Vec<u8>) = match sent {
            Sent::Known(req) => {
                let (label, len) = Request::encode(req, &mut buf);
                (label, buf.get(..len).unwrap_or_default().to_vec())
            }
            Sent::Raw { label, payload } => (*label, payload.clone()),
        };
        if let Some(w) = words {
            payload.truncate(w.saturating_mul(8));
        }
        let client = ClientId(channel);
        let response = inst.vmm.handle(client, label, &payload);
        if let (label::CREATE_VM, Ok(id)) = (label, response.result) {
            // The VMM gives each VM it creates the devices of its manifest
            // (the protocol has no request for it): the core leaves that to
            // the VMM PD, and so the simulator does it here.
            let id = VmId(u32::try_from(id).map_err(|_| format!("{vmm} answered VM id {id}"))?);
            for (base, size) in inst.devices.clone() {
                inst.vmm
                    .register_device(Owner::Client(client), id, Gpa(base), size, Device::Pl011(Pl011::new()))
                    .map_err(|e| format!("{vmm} cannot give VM {} its pl011 at {}: {e}", id.0, hex(base)))?;
            }
        }
        Ok(Delivery::Answer(response.result))
    }
}
