//! One VMM instance on the seL4 model, set up the way Microkit sets up a
//! VMM PD from system.xml: its own VSpace, the VM's shared RAM mapped into
//! it at the manifest's addresses, and the configuration the manifest gives.
//! `check` builds each VM in such a world to apply the core's rules; `sim`
//! runs scenarios in them.

use vmm::caps::{Slot, SlotRange};
use vmm::config::VmmConfig;
use vmm::platform::NoHooks;
use vmm::Vmm;
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::manifest::Manifest;
use vmm_model::Model;

/// The core on the model, with no platform hooks and room for the one VM a
/// Microkit VMM runs, as on seL4.
pub type ModelVmm = Vmm<Model, NoHooks, { vmm_abi::manifest::VMS }>;

/// The VMM's own VSpace.
pub const VMM_VSPACE: Slot = Slot(1);
/// The slots the core allocates from, clear of the RAM frames below.
pub const CSPACE: SlotRange = SlotRange { base: Slot(1 << 20), len: 1 << 22 };
/// The frame capability of the first page of guest RAM; later pages and
/// later RAM records follow (the order `VmmConfig::from_manifest` assumes).
pub const RAM_FRAMES: Slot = Slot(1 << 40);
/// Untyped memory for what the core creates besides RAM: TCBs, vCPUs, the
/// stage-2 tables, capability pins.
const UNTYPED_SPARE: u64 = 64 << 20;
/// The model keeps an object per 4 KiB page; past this many pages of RAM
/// and private memory a VM is refused as too large to model rather than
/// left to exhaust the host.
pub const MAX_MODEL_PAGES: u64 = 1 << 18;

/// A VMM instance set up from manifest `m`, or why the core (or the model)
/// refuses it.
pub fn vmm_for(m: &Manifest) -> Result<Box<ModelVmm>, String> {
    let config = VmmConfig::from_manifest(m, CSPACE, RAM_FRAMES)
        .map_err(|e| format!("the VMM would refuse its boot manifest: {e}"))?;
    // Before the model maps anything: overlapping RAM would alias pages.
    config.validate().map_err(|e| format!("the VMM would refuse its configuration: {e}"))?;
    let ram_bytes = m.ram.iter().fold(0u64, |a, r| a.saturating_add(r.size.get()));
    let file_bytes = m.files.iter().fold(0u64, |a, f| a.saturating_add(f.size.get()));
    let pages = ram_bytes.saturating_add(file_bytes) / PAGE_SIZE;
    if pages > MAX_MODEL_PAGES {
        return Err(format!(
            "{pages} pages of RAM and private memory are more than the model holds ({MAX_MODEL_PAGES}): \
             the core's rules were not applied"
        ));
    }
    let untyped = ram_bytes.saturating_add(file_bytes).saturating_mul(2).saturating_add(UNTYPED_SPARE);
    let mut model = Model::new(untyped);
    model.setup_vspace(VMM_VSPACE).map_err(|e| format!("the model refused the VMM's VSpace: {e:?}"))?;
    for r in &config.ram {
        model
            .setup_ram(r.frames, r.pages, VMM_VSPACE, r.vmm_vaddr)
            .map_err(|e| format!("the model refused guest RAM at {:#x}: {e:?}", r.vmm_vaddr))?;
    }
    let vmm = Vmm::new(model, NoHooks, config).map_err(|e| format!("the VMM would refuse its configuration: {e}"))?;
    Ok(Box::new(vmm))
}

/// Stack for work on VMM instances: one is about 280 KB of fixed-capacity
/// tables, and an unoptimised build copies it several times on its way to
/// the heap, more than a test thread's 2 MiB allows.
const STACK_BYTES: usize = 64 << 20;

/// Runs `f` on a thread with a stack of [`STACK_BYTES`]; a panic in it is
/// passed on as it was.
pub fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("vmsys-model".into())
            .stack_size(STACK_BYTES)
            .spawn_scoped(s, f)
            .map_err(|e| format!("cannot start a thread for the model: {e}"))?;
        match handle.join() {
            Ok(t) => Ok(t),
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}
