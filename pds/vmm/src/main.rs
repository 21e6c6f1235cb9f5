//! The VMM protection domain: one instance per VM (a Microkit PD manages at
//! most one virtual machine).
//!
//! - `init` finds this PD's boot manifest among those the build embedded,
//!   verifies it (`Manifest::parse`) and checks it against what Microkit
//!   mapped, configures the core from it (`VmmConfig::from_manifest`), loads the
//!   guest image into the VM's shared RAM, and for an internal VM builds
//!   the VM from the manifest and starts it (`Vmm::build_from_manifest`).
//!   A VMM whose manifest or image is refused says why and starts nothing:
//!   it answers every request with EIO.
//! - `protected` hands a client's request to the core's one entry point,
//!   `Vmm::handle`: label = the request label, payload = the message
//!   registers as little-endian bytes; the answer is a `ResponseWire` in
//!   MR0-1. What this deployment adds around a request is its `platform`:
//!   a client's VM gets the manifest's devices when it is created and a
//!   freshly loaded guest image before its first run, and a lock of memory
//!   the manifest does not mark lockable is refused (EOPNOTSUPP).
//! - `fault` hands the VM's exits to the core (`Vmm::handle_exit`) and
//!   answers the kernel as it says: resume, resume with registers, or leave
//!   the vCPU stopped (and tell the owner, if the VM has one, on its channel).
//!
//! The core's `Kernel` is [`backend::MicrokitKernel`]: TCB and vCPU calls are
//! real seL4 invocations, memory operations are checked against the boot
//! manifest (its module documentation says exactly how).

#![no_std]
#![no_main]

mod backend;
mod boot_manifest;
mod cache;
mod console;
mod counter;
#[cfg(feature = "exit-counts")]
mod exit_counts;
mod guest_image;
mod instance;
mod platform;
mod refusal;
mod serial;
mod stack;
mod vcpu_caps;

use guest_loader::Inflater;
use sel4_microkit::{
    debug_println, pd_name, protection_domain, var, with_msg_bytes, with_msg_bytes_mut, Channel, ChannelSet, Child,
    Handler, Infallible, MessageInfo,
};
use static_cell::{ConstStaticCell, StaticCell};
use zerocopy::IntoBytes;

use vmm_abi::protocol::Response;
use vmm_abi::Errno;

use vmm_book::{CapTable, CORE_SLOTS};

use boot_manifest::Mapped;
use instance::{Instance, Reply};

/// `client_channel` when system.xml gives this instance no client.
const NO_CLIENT: usize = usize::MAX;

/// `serial_irq` when system.xml gives this instance no UART.
const NO_SERIAL: usize = usize::MAX;

/// seL4's largest message, in bytes (`seL4_MsgMaxLength` words).
const MSG_MAX_BYTES: usize = 120 * 8;

/// The VMM PD: started, or refusing to.
enum VmmPd {
    Running(&'static mut Instance),
    Refused { pd: &'static str },
}

/// Where the started VMM lives: a static, not the stack, which then only
/// holds what one request or exit needs.
static INSTANCE: StaticCell<Instance> = StaticCell::new();

/// The inflater of a compressed guest Image (10 KiB): a static, since the
/// load runs in `Instance::start`, whose frame already holds the core.
static INFLATER: StaticCell<Inflater> = StaticCell::new();

/// The book's table of the core's slots, empty at build time.
static CAPS: ConstStaticCell<CapTable> = ConstStaticCell::new(CapTable::new(CORE_SLOTS.base));

#[protection_domain(stack_size = stack::SIZE)]
fn init() -> VmmPd {
    stack::paint();
    let pd = pd_name().unwrap_or("vmm");
    let client = *var!(client_channel: usize = NO_CLIENT);
    let mapped = Mapped {
        ram_vaddr: *var!(guest_ram_vaddr: usize = 0) as u64,
        ram_size: *var!(guest_ram_size: usize = 0) as u64,
        client: (client != NO_CLIENT).then(|| u32::try_from(client).ok()).flatten(),
        uart_vaddr: *var!(uart_vaddr: usize = 0),
    };
    let (Some(place), Some(caps), Some(inflater)) =
        (INSTANCE.try_uninit(), CAPS.try_take(), INFLATER.try_init_with(Inflater::new))
    else {
        debug_println!("{pd}: refusing to start: started before");
        return VmmPd::Refused { pd };
    };
    match Instance::start(place, caps, inflater, pd, &mapped) {
        Ok(instance) => VmmPd::Running(instance),
        Err(why) => {
            debug_println!("{pd}: refusing to start: {why}");
            VmmPd::Refused { pd }
        }
    }
}

impl Handler for VmmPd {
    type Error = Infallible;

    fn protected(&mut self, channel: Channel, msg_info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        // Copy the payload out first: the core's invocations reuse the IPC
        // buffer.
        let mut payload = [0u8; MSG_MAX_BYTES];
        let n = (msg_info.count() * 8).min(MSG_MAX_BYTES);
        with_msg_bytes(|b| {
            if let (Some(dst), Some(src)) = (payload.get_mut(..n), b.get(..n)) {
                dst.copy_from_slice(src);
            }
        });
        let response = match self {
            VmmPd::Running(vmm) => vmm.request(channel, msg_info.label(), payload.get(..n).unwrap_or(&[])),
            VmmPd::Refused { .. } => Response { result: Err(Errno::EIO) },
        };
        let wire = response.to_wire();
        let bytes = wire.as_bytes();
        with_msg_bytes_mut(|b| {
            if let Some(dst) = b.get_mut(..bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        });
        Ok(MessageInfo::new(0, bytes.len() / 8))
    }

    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, Self::Error> {
        let reply = match self {
            VmmPd::Running(vmm) => vmm.fault(child.index(), msg_info.label(), msg_info.count()),
            VmmPd::Refused { pd } => {
                debug_println!("{pd}: fault from vCPU {} of a VMM that did not start: left stopped", child.index());
                Reply::Stopped
            }
        };
        Ok(match reply {
            Reply::Resume => Some(MessageInfo::new(0, 0)),
            Reply::Registers(n) => Some(MessageInfo::new(0, n)),
            Reply::Stopped => None,
        })
    }

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let serial = *var!(serial_irq: usize = NO_SERIAL);
        if serial != NO_SERIAL && channels.contains(Channel::new(serial)) {
            if let VmmPd::Running(vmm) = self {
                vmm.input();
            }
            Channel::new(serial).irq_ack().ok();
            if channels.iter().all(|c| c.index() == serial) {
                return Ok(());
            }
        }
        let pd = match self {
            VmmPd::Running(_) => pd_name().unwrap_or("vmm"),
            VmmPd::Refused { pd } => pd,
        };
        debug_println!("{pd}: unexpected notification on {}", channels.display());
        Ok(())
    }
}
