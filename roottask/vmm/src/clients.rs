//! The clients: two threads, each in a protection domain of its own.
//!
//! Each client runs `vmm-roottask-client` (embedded at build time,
//! `VMM_CLIENT_ELF`) in its own VSpace, which maps its image, its stack and
//! its IPC buffer and nothing else, and its own CSpace, a CNode whose one
//! capability is the VMM's request endpoint badged with the client's
//! identity: [`CLIENT`] (a memlock budget) or [`PRIVILEGED`] (the trace's
//! world configures both). The root task serves that endpoint
//! (`trace`), and a request's badge is all it knows of who sent it.
//!
//! Every object is made from the untyped pool for good: the clients live
//! as long as the system.

use sel4::cap::{AsidPool, CNode, Endpoint, Granule, Reply, SchedContext, SchedControl, Tcb, VSpace};
use sel4::init_thread::slot;
use sel4::{CNodeCapData, CapRights, ObjectBlueprint, ObjectBlueprintAArch64, ObjectBlueprintArm, UserContext};
use vmm_abi::ClientId;
use vmm_trace::world::{CLIENT, PRIVILEGED};

use crate::slots::Private;
use crate::start::{make, map_page, StartError};
use crate::untyped::{Pool, SeL4};

/// The client's program.
static CLIENT_ELF: &[u8] = include_bytes!(env!("VMM_CLIENT_ELF"));

/// Where the root task maps a client's image while it writes it.
const SCRATCH: u64 = 0x10_0000_0000;

/// The most pages a client's image may span.
const MAX_PAGES: u64 = 64;

/// A client runs below the vCPUs (`kernel::GUEST_PRIORITY`), so it never
/// delays a guest, and below the root task, which serves it.
const CLIENT_PRIORITY: u64 = 50;

/// A client's budget and period, in microseconds: the whole period.
const PERIOD_US: u64 = 10_000;

/// log2 of a client's CNode's slots: slot 1 holds the endpoint.
const CNODE_BITS: usize = 1;

/// The slot of a client's CNode that holds the VMM's endpoint (the
/// client's `VMM`).
const ENDPOINT_SLOT: u64 = 1;

/// What the root task keeps to serve its clients.
pub struct Clients {
    /// The endpoint the clients' requests arrive on, unbadged.
    pub endpoint: Endpoint,
    /// Two reply objects: one for a request received, one for a request
    /// held until its client's turn.
    pub replies: [Reply; 2],
}

/// What spawning a client needs of the root task.
pub struct Spawner<'a> {
    pub pool: &'a mut Pool,
    pub sel4: &'a mut SeL4,
    pub private: &'a mut Private,
    pub asid_pool: AsidPool,
    pub sched_control: SchedControl,
}

impl Spawner<'_> {
    /// A new object of `blueprint` in a private slot, made for good.
    fn object(&mut self, blueprint: ObjectBlueprint) -> Result<u64, StartError> {
        let s = self.private.take().ok_or(StartError::Slots)?;
        make(self.pool, self.sel4, blueprint, s)?;
        Ok(s)
    }

    /// Maps `frame` at `vaddr` of `vspace`, with page tables made on the way.
    fn map(&mut self, vspace: VSpace, frame: u64, vaddr: u64) -> Result<(), StartError> {
        map_page(self.pool, self.sel4, self.private, vspace, frame, vaddr)
    }
}

fn kernel(what: &'static str) -> impl Fn(sel4::Error) -> StartError {
    move |e| StartError::Kernel(what, e)
}

/// `seL4_ARM_VSpace_Unify_Instruction` over one page of the root task's
/// own address space: the code written there through the data cache is
/// what the client will fetch.
fn unify_instruction(vaddr: u64) -> Result<(), StartError> {
    let vspace = slot::VSPACE.cap().bits();
    let err =
        sel4::with_ipc_buffer_mut(|b| b.inner_mut().seL4_ARM_VSpace_Unify_Instruction(vspace, vaddr, vaddr + 4096));
    sel4::Error::from_sys(err).map_or(Ok(()), |e| Err(StartError::Kernel("seL4_ARM_VSpace_Unify_Instruction", e)))
}

/// Fills a client's `vspace`: its image, loaded through the root task's
/// own mapping of its frames, then mapped there alone, and its IPC buffer.
/// The entry point, the IPC buffer's frame and address, and the image's
/// pages.
fn address_space(s: &mut Spawner<'_>, vspace: VSpace) -> Result<(u64, u64, u64, u64), StartError> {
    let extent = guest_loader::extent(CLIENT_ELF).map_err(StartError::Client)?;
    let base = extent.start & !0xfff;
    let pages = (extent.end - base).div_ceil(4096);
    if pages > MAX_PAGES {
        return Err(StartError::Client(guest_loader::LoadError::OutsideRam));
    }
    let mut frames: heapless::Vec<u64, { MAX_PAGES as usize }> = heapless::Vec::new();
    for i in 0..pages {
        let frame = s.object(ObjectBlueprint::Arch(ObjectBlueprintArm::SmallPage))?;
        s.map(slot::VSPACE.cap(), frame, SCRATCH + i * 4096)?;
        let _ = frames.push(frame);
    }
    // New frames are zero; the loader writes the segments and zeroes the
    // rest of their memory.
    let ram = unsafe { core::slice::from_raw_parts_mut(SCRATCH as *mut u8, (pages * 4096) as usize) };
    let loaded =
        guest_loader::load(CLIENT_ELF, &mut guest_loader::GuestRam { base, ram }).map_err(StartError::Client)?;
    for (i, &frame) in frames.iter().enumerate() {
        unify_instruction(SCRATCH + i as u64 * 4096)?;
        Granule::from_bits(frame).frame_unmap().map_err(kernel("seL4_ARM_Page_Unmap"))?;
        s.map(vspace, frame, base + i as u64 * 4096)?;
    }
    // The IPC buffer, past a page left unmapped after the image.
    let ipc_buffer = s.object(ObjectBlueprint::Arch(ObjectBlueprintArm::SmallPage))?;
    let ipc_vaddr = base + (pages + 1) * 4096;
    s.map(vspace, ipc_buffer, ipc_vaddr)?;
    Ok((loaded.entry, ipc_buffer, ipc_vaddr, pages))
}

/// Starts client `id`: its VSpace, its CSpace with `endpoint` badged with
/// `id`, its thread with a scheduling context, running.
fn spawn(s: &mut Spawner<'_>, endpoint: u64, id: ClientId) -> Result<(), StartError> {
    let vspace = s.object(ObjectBlueprintAArch64::VSpace.into())?;
    let vspace = VSpace::from_bits(vspace);
    s.asid_pool.asid_pool_assign(vspace).map_err(kernel("seL4_ARM_ASIDPool_Assign"))?;
    let (entry, ipc_buffer, ipc_vaddr, pages) = address_space(s, vspace)?;

    let cnode = CNode::from_bits(s.object(ObjectBlueprint::CNode { size_bits: CNODE_BITS })?);
    // Write to call, grant-reply so that a call waits for its answer.
    let rights = CapRights::new(true, false, false, true);
    cnode
        .absolute_cptr_from_bits_with_depth(ENDPOINT_SLOT, CNODE_BITS)
        .mint(&s.sel4.slot(endpoint), rights, u64::from(id.0))
        .map_err(kernel("seL4_CNode_Mint"))?;

    let tcb = Tcb::from_bits(s.object(ObjectBlueprint::Tcb)?);
    let guard = CNodeCapData::new(0, sel4::WORD_SIZE - CNODE_BITS);
    tcb.tcb_configure(cnode, guard, vspace, ipc_vaddr, Granule::from_bits(ipc_buffer))
        .map_err(kernel("seL4_TCB_Configure"))?;
    let sc = SchedContext::from_bits(
        s.object(ObjectBlueprint::SchedContext { size_bits: sel4::sys::seL4_MinSchedContextBits as usize })?,
    );
    s.sched_control
        .sched_control_configure_flags(sc, PERIOD_US, PERIOD_US, 0, 0, 0)
        .map_err(kernel("seL4_SchedControl_ConfigureFlags"))?;
    // No fault endpoint: a client that faults stops, and only its
    // requests stop coming.
    tcb.tcb_set_sched_params(slot::TCB.cap(), 0, CLIENT_PRIORITY, sc, Endpoint::from_bits(0))
        .map_err(kernel("seL4_TCB_SetSchedParams"))?;
    let mut regs = UserContext::default();
    *regs.pc_mut() = entry;
    *regs.gpr_mut(0) = u64::from(id.0);
    *regs.gpr_mut(1) = ipc_vaddr;
    tcb.tcb_write_all_registers(true, &mut regs).map_err(kernel("seL4_TCB_WriteRegisters"))?;
    sel4::debug_println!(
        "roottask: client {} started in its own VSpace ({pages} pages of image and an IPC buffer) and CSpace (one capability: the request endpoint, badged {})",
        id.0,
        id.0
    );
    Ok(())
}

/// Makes the request endpoint and the reply objects, and starts both
/// clients.
pub fn start(s: &mut Spawner<'_>) -> Result<Clients, StartError> {
    let endpoint = s.object(ObjectBlueprint::Endpoint)?;
    let replies =
        [Reply::from_bits(s.object(ObjectBlueprint::Reply)?), Reply::from_bits(s.object(ObjectBlueprint::Reply)?)];
    for id in [CLIENT, PRIVILEGED] {
        spawn(s, endpoint, id)?;
    }
    Ok(Clients { endpoint: Endpoint::from_bits(endpoint), replies })
}
