//! Start-up: the root CNode divided, the untyped pool filled, the root
//! task's own objects made, guest RAM mapped into the root task, the
//! clients started, and the core configured over the backend.

use core::fmt;

use sel4::cap::{AsidPool, CNode, Endpoint, Reply, Untyped};
use sel4::init_thread::slot;
use sel4::{ObjectBlueprint, ObjectBlueprintArm, VmAttributes};
use static_cell::{ConstStaticCell, StaticCell};
use vmm::caps::SlotRange;
use vmm::platform::NoHooks;
use vmm::Vmm;
use vmm_trace::world::{self, CORE_SLOTS, RAM_PAGES, RAM_VADDR, VMS};
use vmm_untyped::PoolError;

use crate::clients::{self, Clients, Spawner};
use crate::cspace::{self, ExtendError, Extended, EXTENSION_BASE, EXTENSION_END};
use crate::kernel::{Authority, Record, RootKernel, GUEST_CNODE_BITS};
use crate::slots::{Layout, Private};
use crate::untyped::{boot_untypeds, Pool, SeL4};

/// The core over the root task's backend, as the trace's world sizes it.
pub type Core = Vmm<RootKernel, NoHooks, VMS>;

/// A started VMM: the core, and where its vCPUs' faults arrive.
pub struct Started {
    /// The core over the root task's backend.
    pub core: &'static mut Core,
    /// The endpoint the vCPUs' faults arrive on.
    pub faults: Endpoint,
    /// The reply object faults are received with (MCS).
    pub reply: Reply,
    /// The clients' endpoint and reply objects.
    pub clients: Clients,
}

/// Why the root task does not start.
#[derive(Debug)]
pub enum StartError {
    /// The root CNode has too few empty slots for the layout.
    Slots,
    /// The untyped pool refused the boot untypeds or an object.
    Pool(PoolError<sel4::Error>),
    /// An invocation at start failed.
    Kernel(&'static str, sel4::Error),
    /// The core refused its configuration.
    Core(vmm::Error),
    /// Start ran twice.
    Again,
    /// The clients' program does not load.
    Client(guest_loader::LoadError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Slots => write!(f, "too few empty slots in the root CNode"),
            StartError::Pool(e) => write!(f, "untyped pool: {e:?}"),
            StartError::Kernel(what, e) => write!(f, "{what}: {e}"),
            StartError::Core(e) => write!(f, "the core refused its configuration: {e}"),
            StartError::Again => write!(f, "started twice"),
            StartError::Client(e) => write!(f, "the clients' program: {e}"),
        }
    }
}

static POOL: StaticCell<Pool> = StaticCell::new();
static RECORDS: ConstStaticCell<[Record; CORE_SLOTS as usize]> =
    ConstStaticCell::new([Record::EMPTY; CORE_SLOTS as usize]);
static CORE: StaticCell<Core> = StaticCell::new();

/// Makes one object of `blueprint` in `dest` from the pool, for the root
/// task's own use (never released).
pub fn make(pool: &mut Pool, sel4: &mut SeL4, blueprint: ObjectBlueprint, dest: u64) -> Result<(), StartError> {
    sel4.make(pool, blueprint, dest, true).map(|_| ()).map_err(StartError::Pool)
}

/// Maps `frame` read-write at `vaddr` of `vspace`, making the page tables
/// on the way from `private`.
pub fn map_page(
    pool: &mut Pool,
    sel4: &mut SeL4,
    private: &mut Private,
    vspace: sel4::cap::VSpace,
    frame: u64,
    vaddr: u64,
) -> Result<(), StartError> {
    let vaddr = vaddr as usize;
    // At most three tables on the way to a page.
    for _ in 0..4 {
        let r = sel4::cap::SmallPage::from_bits(frame).frame_map(
            vspace,
            vaddr,
            sel4::CapRights::read_write(),
            VmAttributes::default(),
        );
        match r {
            Ok(()) => return Ok(()),
            Err(sel4::Error::FailedLookup) => {
                let pt = private.take().ok_or(StartError::Slots)?;
                make(pool, sel4, ObjectBlueprint::Arch(ObjectBlueprintArm::PT), pt)?;
                sel4::cap::PT::from_bits(pt)
                    .pt_map(vspace, vaddr, VmAttributes::default())
                    .map_err(|e| StartError::Kernel("seL4_ARM_PageTable_Map", e))?;
            }
            Err(e) => return Err(StartError::Kernel("seL4_ARM_Page_Map", e)),
        }
    }
    Err(StartError::Kernel("seL4_ARM_Page_Map", sel4::Error::FailedLookup))
}

/// Maps guest RAM's frames into the root task's own VSpace at
/// [`RAM_VADDR`].
fn map_ram(pool: &mut Pool, sel4: &mut SeL4, private: &mut Private, ram: SlotRange) -> Result<(), StartError> {
    for i in 0..ram.len {
        let frame = ram.base.0 + i;
        make(pool, sel4, ObjectBlueprint::Arch(ObjectBlueprintArm::SmallPage), frame)?;
        map_page(pool, sel4, private, slot::VSPACE.cap(), frame, RAM_VADDR + i * 4096)?;
    }
    Ok(())
}

/// Starts the VMM: everything at start, then the core.
pub fn start(bootinfo: &sel4::BootInfoPtr) -> Result<Started, StartError> {
    let empty = bootinfo.empty().range();
    let extension = EXTENSION_BASE..EXTENSION_END;
    let layout =
        Layout::new(empty.start as u64..empty.end as u64, extension, RAM_PAGES, CORE_SLOTS).ok_or(StartError::Slots)?;
    let mut sel4 = SeL4 { cspace: Extended::initial() };
    let pool = POOL.try_init(Pool::new(boot_untypeds(bootinfo), layout.chunks.clone()).map_err(StartError::Pool)?);
    let pool = pool.ok_or(StartError::Again)?;
    let mut private = Private::new(layout.private.clone());
    let own = private.take().ok_or(StartError::Slots)?;
    sel4.cspace = cspace::extend(
        |blueprint| {
            let s = private.take().ok_or(ExtendError("no slot", sel4::Error::NotEnoughMemory))?;
            sel4.make(pool, blueprint, s, true)
                .map(|_| s)
                .map_err(|_| ExtendError("the untyped pool", sel4::Error::NotEnoughMemory))
        },
        own,
    )
    .map_err(|ExtendError(what, e)| StartError::Kernel(what, e))?;
    let u = pool.usage();
    sel4::debug_println!(
        "roottask: {} boot untypeds, {} KiB of untyped memory; {} empty slots",
        bootinfo.untyped_list().iter().filter(|d| !d.is_device()).count(),
        u.total / 1024,
        empty.len()
    );

    // The ASID pool: from an untyped of exactly its size.
    let asid_untyped = private.take().ok_or(StartError::Slots)?;
    make(pool, &mut sel4, ObjectBlueprint::Untyped { size_bits: sel4::sys::seL4_ASIDPoolBits as usize }, asid_untyped)?;
    let asid_pool_slot = private.take().ok_or(StartError::Slots)?;
    slot::ASID_CONTROL
        .cap()
        .asid_control_make_pool(Untyped::from_bits(asid_untyped), &sel4.slot(asid_pool_slot))
        .map_err(|e| StartError::Kernel("seL4_ARM_ASIDControl_MakePool", e))?;
    let fault_endpoint = private.take().ok_or(StartError::Slots)?;
    make(pool, &mut sel4, ObjectBlueprint::Endpoint, fault_endpoint)?;
    let reply = private.take().ok_or(StartError::Slots)?;
    make(pool, &mut sel4, ObjectBlueprint::Reply, reply)?;
    let guest_cnode = private.take().ok_or(StartError::Slots)?;
    make(pool, &mut sel4, ObjectBlueprint::CNode { size_bits: GUEST_CNODE_BITS }, guest_cnode)?;
    map_ram(pool, &mut sel4, &mut private, layout.ram)?;
    let sched_control = bootinfo.sched_control().index(0).cap();
    let asid_pool = AsidPool::from_bits(asid_pool_slot);
    let clients =
        clients::start(&mut Spawner { pool, sel4: &mut sel4, private: &mut private, asid_pool, sched_control })?;

    let auth = Authority {
        tcb: slot::TCB.cap(),
        sched_control,
        asid_pool,
        fault_endpoint: Endpoint::from_bits(fault_endpoint),
        guest_cnode: CNode::from_bits(guest_cnode),
    };
    let records = RECORDS.try_take().ok_or(StartError::Again)?;
    let kernel = RootKernel::new(pool, sel4, layout.core, records, private, auth);

    let config = world::config(layout.core, layout.ram.base);
    let core = Vmm::new(kernel, NoHooks, config).map_err(StartError::Core)?;
    let core = CORE.try_init(core).ok_or(StartError::Again)?;
    Ok(Started { core, faults: Endpoint::from_bits(fault_endpoint), reply: Reply::from_bits(reply), clients })
}
