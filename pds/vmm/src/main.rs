//! The VMM protection domain: one instance per VM (a Microkit PD manages at
//! most one virtual machine).
//!
//! - `init` loads the embedded guest image into the VM's shared RAM; an
//!   instance without a client channel (`client_channel` left unpatched)
//!   manages an *internal* VM and starts it at once.
//! - `protected` hands a client's request to the core's one entry point,
//!   `Vmm::handle`: label = the request label, payload = the message
//!   registers as little-endian bytes; the answer is a `ResponseWire` in MR0-1.
//! - `fault` hands the VM's exits to the core (`Vmm::handle_exit`) and
//!   answers the kernel as it says: resume, resume with registers, or leave
//!   the vCPU stopped (and tell the owner, if the VM has one, on its channel).
//!
//! The core's `Kernel` is [`backend::MicrokitKernel`]: TCB and vCPU calls are
//! real seL4 invocations on the capabilities Microkit gives this PD.

#![no_std]
#![no_main]

mod backend;
mod cache;
mod console;
mod loader;
mod vcpu_caps;

use core::fmt::Write;

use sel4_microkit::{
    debug_println, get_mr, pd_name, protection_domain, set_mr, var, with_msg_bytes, with_msg_bytes_mut, Channel,
    ChannelSet, Child, Handler, Infallible, MessageInfo,
};
use zerocopy::IntoBytes;

use vmm::caps::{Slot, SlotRange, PAGE_SIZE};
use vmm::config::{ClientConfig, ClientId, RamRegion, VmmConfig};
use vmm::devices::pl011::{self, Pl011};
use vmm::devices::Device;
use vmm::exits::MAX_FAULT_MRS;
use vmm::protocol::label;
use vmm::registry::{Caller, NoHooks, Owner, VmId};
use vmm::vmm::{ExitAction, StopReason};
use vmm::Vmm;

use backend::MicrokitKernel;
use vcpu_caps::VmVcpu;

/// The guest, built for aarch64-unknown-none and linked at guest RAM's base.
static GUEST_IMAGE: &[u8] = include_bytes!(env!("VMM_GUEST_ELF", "VMM_GUEST_ELF must name the guest ELF"));

/// Microkit vCPUs of the VM (`<vcpu id="0"/>` in system.xml).
const VM_VCPUS: u64 = 1;

/// `client_channel` when system.xml gives this instance no client.
const NO_CLIENT: usize = usize::MAX;

/// Pages a client may lock.
const CLIENT_MEMLOCK_PAGES: u64 = 256;

/// The core's slots are names the backend binds to Microkit's objects, so
/// any range that cannot clash with a real slot number will do.
const CORE_SLOTS: SlotRange = SlotRange { base: Slot(1 << 32), len: 1 << 20 };
/// Names for the frames of guest RAM (the backend holds none: memslot
/// mappings fail with Unsupported).
const RAM_FRAME_SLOTS: Slot = Slot(1 << 33);

type Core = Vmm<MicrokitKernel, NoHooks>;

struct VmmPd {
    pd: &'static str,
    vm: heapless::String<16>,
    vmm: Core,
    console: console::Console,
}

#[protection_domain(stack_size = 0x10_0000)]
fn init() -> VmmPd {
    let pd = pd_name().unwrap_or("vmm");
    let mut vm = heapless::String::new();
    let _ = write!(vm, "vm{}", pd.strip_prefix("vmm").unwrap_or(pd));
    let ram_vaddr = *var!(guest_ram_vaddr: usize = 0);
    let ram_size = *var!(guest_ram_size: usize = 0);
    let client = *var!(client_channel: usize = NO_CLIENT);

    let mut config = VmmConfig {
        cspace: CORE_SLOTS,
        ram: heapless::Vec::new(),
        clients: heapless::Vec::new(),
        vcpu_limit: VM_VCPUS as u32,
        dirty_log: false,
    };
    let _ = config.ram.push(RamRegion {
        vmm_vaddr: ram_vaddr as u64,
        pages: ram_size as u64 / PAGE_SIZE,
        frames: RAM_FRAME_SLOTS,
    });
    if client != NO_CLIENT {
        let _ = config.clients.push(ClientConfig {
            id: ClientId(client as u32),
            memlock_pages: CLIENT_MEMLOCK_PAGES,
            privileged: false,
        });
    }
    let vmm = match Vmm::new(MicrokitKernel::new(VM_VCPUS), NoHooks, config) {
        Ok(v) => v,
        Err(e) => panic!("{pd}: configuration refused: {e}"),
    };
    let mut this = VmmPd { pd, vm: vm.clone(), vmm, console: console::Console::new(vm) };
    match client {
        NO_CLIENT => debug_println!("{pd}: VMM of {}, an internal VM (no client)", this.vm),
        c => debug_println!("{pd}: VMM of {}, controlled by the client on channel {c}", this.vm),
    }
    match this.load_guest(ram_vaddr, ram_size) {
        Some(entry) if client == NO_CLIENT => this.start_internal(entry),
        _ => {}
    }
    this
}

impl VmmPd {
    /// Copies the guest image into the VM's shared RAM; returns its entry.
    fn load_guest(&mut self, ram_vaddr: usize, ram_size: usize) -> Option<u64> {
        if ram_vaddr == 0 || ram_size == 0 {
            debug_println!("{}: no guest RAM mapped (guest_ram_vaddr/guest_ram_size unset)", self.pd);
            return None;
        }
        // SAFETY: system.xml maps the VM's shared RAM here, read-write, for
        // this PD alone among PDs; the VM is not running yet.
        let ram = unsafe { core::slice::from_raw_parts_mut(ram_vaddr as *mut u8, ram_size) };
        let mut ram = loader::GuestRam { base: board::GUEST_RAM_BASE, ram };
        match loader::load(GUEST_IMAGE, &mut ram) {
            Ok(loaded) => {
                let entry = loaded.entry;
                // The guest starts with its MMU (so its caches) off and reads
                // memory, not the VMM's dirty cache lines.
                let written = ram_vaddr..ram_vaddr + loaded.written;
                if let Err(e) = cache::clean_data(written.start, written.end) {
                    debug_println!("{}: cannot clean the data cache over the guest image: {e}", self.pd);
                    return None;
                }
                debug_println!(
                    "{}: guest image loaded ({} bytes), entry {entry:#x}; data cache cleaned over {:#x}..{:#x}",
                    self.pd,
                    GUEST_IMAGE.len(),
                    written.start,
                    written.end
                );
                Some(entry)
            }
            Err(e) => {
                debug_println!("{}: guest image refused: {e}", self.pd);
                None
            }
        }
    }

    /// Gives VM `id` the devices of the static layout: a PL011 where the
    /// board table puts the guest's UART (system.xml leaves it unmapped, so
    /// every access traps).
    fn add_devices(&mut self, owner: Caller, id: VmId) -> Result<(), vmm::Error> {
        let uart = Device::Pl011(Pl011::new());
        self.vmm.register_device(owner, id, board::GUEST_UART_BASE, pl011::SIZE, uart)
    }

    /// Creates the internal VM, its vCPU 0 and devices, and runs it at
    /// `entry`.
    fn start_internal(&mut self, entry: u64) {
        let r = self.vmm.create_vm(Owner::Internal).and_then(|id| {
            self.vmm.create_vcpu(Owner::Internal, id, 0)?;
            self.add_devices(Owner::Internal, id)?;
            self.vmm.run_vcpu(Owner::Internal, id, 0, entry, board::guest_mode::NORMAL)?;
            Ok(id)
        });
        match r {
            Ok(id) => debug_println!("{}: started {} (VM id {}) at {entry:#x}", self.pd, self.vm, id.0),
            Err(e) => debug_println!("{}: cannot start {}: {e}", self.pd, self.vm),
        }
    }

    /// The core's VM and vCPU behind Microkit vCPU `v`.
    fn core_vcpu(&self, v: VmVcpu) -> Option<(VmId, u32)> {
        let slot = self.vmm.kernel().tcb_slot_of(v)?;
        self.vmm.registry().entries().find_map(|e| {
            (0..vmm::config::MAX_VCPUS as u32)
                .find(|i| e.vm.vcpu_caps(*i).is_some_and(|(tcb, _)| tcb.slot() == slot))
                .map(|i| (e.id, i))
        })
    }
}

/// seL4's largest message, in bytes (`seL4_MsgMaxLength` words).
const MSG_MAX_BYTES: usize = 120 * 8;

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
        let client = ClientId(channel.index() as u32);
        let response = self.vmm.handle(client, msg_info.label(), &payload[..n]);
        if let (label::CREATE_VM, Ok(id)) = (msg_info.label(), response.result) {
            let id = VmId(id as u32);
            if let Err(e) = self.add_devices(Owner::Client(client), id) {
                debug_println!("{}: VM {} has no UART: {e}", self.pd, id.0);
            }
        }
        let wire = response.to_wire();
        let bytes = wire.as_bytes();
        with_msg_bytes_mut(|b| b[..bytes.len()].copy_from_slice(bytes));
        Ok(MessageInfo::new(0, bytes.len() / 8))
    }

    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, Self::Error> {
        // The fault message first: the core's invocations reuse the IPC
        // buffer.
        let mut mrs = [0u64; MAX_FAULT_MRS];
        let n = msg_info.count().min(MAX_FAULT_MRS);
        for (i, mr) in mrs.iter_mut().take(n).enumerate() {
            *mr = get_mr(i);
        }
        let microkit_vcpu = VmVcpu::new(child.index() as u64);
        let Some((id, vcpu)) = microkit_vcpu.and_then(|v| self.core_vcpu(v)) else {
            debug_println!("{}: fault from vCPU {}, which no VM has: left stopped", self.pd, child.index());
            if let Some(v) = microkit_vcpu {
                let _ = v.tcb().tcb_suspend();
            }
            return Ok(None);
        };
        match self.vmm.handle_exit(id, vcpu, msg_info.label(), &mrs[..n], &mut self.console) {
            ExitAction::Resume => Ok(Some(MessageInfo::new(0, 0))),
            ExitAction::ResumeWith(regs) => {
                for (i, r) in regs.iter().enumerate() {
                    set_mr(i, *r);
                }
                Ok(Some(MessageInfo::new(0, regs.len())))
            }
            ExitAction::Park => Ok(None),
            ExitAction::Stop { reason, notify } => {
                self.console.flush();
                debug_println!("{}: stopped: {}", self.vm, Why(reason));
                if let Some(client) = notify {
                    Channel::new(client.0 as usize).notify();
                }
                Ok(None)
            }
        }
    }

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        debug_println!("{}: unexpected notification on {}", self.pd, channels.display());
        Ok(())
    }
}

/// A stop reason as the log says it.
struct Why(StopReason);

impl core::fmt::Display for Why {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            StopReason::SystemOff => write!(f, "PSCI SYSTEM_OFF"),
            StopReason::Unmapped { gpa } => write!(f, "access outside every memslot at {gpa:#x}"),
            StopReason::ReadOnlyWrite { gpa } => write!(f, "write to a read-only memslot at {gpa:#x}"),
            StopReason::NoBacking { gpa } => write!(f, "access to a closed guest_memfd at {gpa:#x}"),
            StopReason::Mmio { gpa, error } => write!(f, "device access at {gpa:#x} not emulated: {error}"),
            StopReason::BadMessage(e) => write!(f, "fault message not understood: {e}"),
            StopReason::UnhandledTrap { ec } => write!(f, "trapped instruction not emulated (EC {ec:#x})"),
            StopReason::GuestException { pc } => write!(f, "guest exception at {pc:#x}"),
            StopReason::NoSuchVcpu => write!(f, "fault from a vCPU the VM does not have"),
            StopReason::Kernel(e) => write!(f, "kernel refused: {e}"),
            StopReason::Map(e) => write!(f, "mapping failed: {e}"),
        }
    }
}
