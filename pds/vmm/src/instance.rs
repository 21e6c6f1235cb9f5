//! A started VMM: the core over the Microkit backend and platform, its boot
//! manifest and the VM's console.

use core::fmt::Write;

use sel4_microkit::{debug_println, with_msg_regs, with_msg_regs_mut, Channel};

use vmm::arch::aarch64::fault;
use vmm::config::VmmConfig;
use vmm::registry::Owner;
use vmm::{ExitAction, Vmm};
use vmm_abi::manifest::{self, Manifest};
use vmm_abi::protocol::Response;
use vmm_abi::{ClientId, VcpuId, VmId};

use core::mem::MaybeUninit;

use guest_loader::{Inflater, LinuxPlaces};
use vmm_book::{CapTable, StaticMap, CORE_SLOTS, RAM_FRAME_SLOTS};

use crate::backend::MicrokitKernel;
use crate::boot_manifest::{self, Mapped};
use crate::console::Console;
use crate::guest_image::GuestImage;
use crate::platform::MicrokitPlatform;
use crate::refusal::Refusal;
use crate::serial::Serial;
use crate::stack;
use crate::vcpu_caps::{VmVcpu, MAX_VCPU_ID};

/// The core with room for the one VM a Microkit VMM runs.
type Core = Vmm<MicrokitKernel, MicrokitPlatform, { manifest::VMS }>;

/// The core's VM and vCPU of each Microkit vCPU, indexed by its id.
type VcpuMap = [Option<(VmId, VcpuId)>; MAX_VCPU_ID as usize + 1];

/// What a fault asks of the Microkit event loop.
pub enum Reply {
    /// Resume the vCPU as it is.
    Resume,
    /// Resume it with the first this many message registers, written in
    /// place (seL4's UnknownSyscall reply: x0-x7, then the PC).
    Registers(usize),
    /// Leave it stopped: no reply.
    Stopped,
}

/// A started VMM.
pub struct Instance {
    pd: &'static str,
    vm: heapless::String<16>,
    vmm: Core,
    manifest: Manifest,
    console: Console,
    /// The internal VM, once built.
    internal: Option<VmId>,
    /// The VM's exits by kind (the boot figures).
    #[cfg(feature = "exit-counts")]
    exits: crate::exit_counts::ExitCounts,
    /// A byte of console input the guest's full receive FIFO could not
    /// take: it goes first, and the board's UART is not read until it has.
    pending: Option<u8>,
    /// Whose exit a fault from each Microkit vCPU is, found once per
    /// request instead of once per exit: only a request (or building the
    /// internal VM) changes which core vCPU a Microkit TCB is, never an
    /// exit.
    vcpus: VcpuMap,
}

impl Instance {
    /// Starts the VMM of the PD named `pd` in `place`, with its book of the
    /// core's slots in `caps` and the inflater of a compressed guest Image
    /// in `inflater`: verifies its boot manifest against what
    /// Microkit mapped, configures the core from it, loads the guest image,
    /// and builds and starts an internal VM. Both places are statics, so
    /// the stack never holds the book and holds the core only while it is
    /// put in place.
    pub fn start(
        place: &'static mut MaybeUninit<Instance>,
        caps: &'static mut CapTable,
        inflater: &'static mut Inflater,
        pd: &'static str,
        mapped: &Mapped,
    ) -> Result<&'static mut Instance, Refusal> {
        let manifest = boot_manifest::load(pd, mapped).map_err(Refusal::Manifest)?;
        let config = VmmConfig::from_manifest(&manifest, CORE_SLOTS, RAM_FRAME_SLOTS).map_err(Refusal::Config)?;
        let layout = StaticMap::new(&manifest, RAM_FRAME_SLOTS).map_err(Refusal::Layout)?;
        // Cannot be absent: boot_manifest::load insists on one RAM record.
        let gpa = manifest.ram.first().map_or(0, |r| r.gpa.get());
        let linux = manifest.linux().then_some(LinuxPlaces {
            entry: manifest.entry,
            dtb: manifest.dtb,
            initrd: manifest.initrd,
        });
        // Infallible: one more early return here, and the compiler keeps
        // two copies of the core (28 KiB each) in this frame, past the stack.
        let mut image = GuestImage::new(mapped.ram_vaddr, mapped.ram_size, gpa, linux, inflater);
        let loaded = image.load().map_err(Refusal::Image)?;
        if loaded.entry != manifest.entry {
            return Err(Refusal::Entry { image: loaded.entry, manifest: manifest.entry });
        }
        let mut vm = heapless::String::new();
        let _ = write!(vm, "vm{}", pd.strip_prefix("vmm").unwrap_or(pd));
        let console = Console::new(vm.clone(), Serial::new(mapped.uart_vaddr));
        let platform = MicrokitPlatform::new(pd, manifest.devices.clone(), layout.clone(), image);
        let kernel = MicrokitKernel::new(u64::from(manifest.vcpus), layout, caps);
        let vmm = Vmm::new(kernel, platform, config).map_err(Refusal::Core)?;
        let vcpus = [None; MAX_VCPU_ID as usize + 1];
        #[cfg(feature = "exit-counts")]
        let exits = crate::exit_counts::ExitCounts::new(&manifest.devices);
        let this = place.write(Instance {
            pd,
            vm,
            vmm,
            manifest,
            console,
            internal: None,
            #[cfg(feature = "exit-counts")]
            exits,
            pending: None,
            vcpus,
        });
        match this.manifest.internal() {
            true => debug_println!("{pd}: VMM of {}, an internal VM; boot manifest verified", this.vm),
            false => debug_println!(
                "{pd}: VMM of {}, controlled by the client on channel {}; boot manifest verified",
                this.vm,
                this.manifest.client_channel
            ),
        }
        debug_println!(
            "{pd}: guest image loaded ({} bytes), entry {:#x}; data cache cleaned over {:#x}..{:#x}",
            loaded.image_bytes,
            loaded.entry,
            loaded.cleaned.0,
            loaded.cleaned.1
        );
        if this.manifest.internal() {
            this.start_internal();
        }
        this.map_vcpus();
        Ok(this)
    }

    /// Builds the internal VM from the manifest and starts vCPU 0: the test
    /// guest in its normal mode, Linux with its device tree's address in x0.
    fn start_internal(&mut self) {
        let (pd, vm) = (self.pd, &self.vm);
        let arg = if self.manifest.linux() { self.manifest.dtb } else { board::guest_mode::NORMAL };
        match self.vmm.build_from_manifest(&self.manifest, Owner::Internal, Some(arg)) {
            Ok(id) => {
                self.internal = Some(id);
                debug_println!(
                    "{pd}: built {vm} (VM id {}) from its boot manifest and started it at {:#x}",
                    id.0,
                    self.manifest.entry
                );
            }
            Err(e) => debug_println!("{pd}: cannot build {vm} from its boot manifest: {e}"),
        }
    }

    /// One protected call from the client on `channel`: decoded once and
    /// carried out by the core's one entry point, with this platform's work
    /// around it.
    pub fn request(&mut self, channel: Channel, label: u64, payload: &[u8]) -> Response {
        let response = self.vmm.handle(ClientId(channel.index() as u32), label, payload);
        self.map_vcpus();
        // An interrupt the request delivered that the kernel refused
        // stopped the VM: its owner is told, as of a stop at an exit.
        if let Some((owner, id)) = self.vmm.take_stopped() {
            debug_println!("{}: VM {} stopped: the kernel refused to deliver an interrupt", self.vm, id.0);
            Channel::new(owner.0 as usize).notify();
        }
        response
    }

    /// Console input: the bytes the board's UART has received go to the
    /// internal VM's PL011 while its receive FIFO has room. When it is full,
    /// the byte waits here and the UART's receive interrupt is masked until
    /// the guest has read some (retried after each of its exits): typed
    /// input is never dropped.
    pub fn input(&mut self) {
        let Instance { console, vmm, internal, pending, .. } = self;
        let Some(serial) = console.serial() else { return };
        loop {
            let Some(byte) = pending.take().or_else(|| serial.receive()) else { break };
            let Some(id) = *internal else { continue };
            if let Ok(false) = vmm.console_input(Owner::Internal, id, byte) {
                *pending = Some(byte);
                serial.receiving(false);
                return;
            }
        }
        serial.clear();
        serial.receiving(true);
    }

    /// Finds the core's VM and vCPU of each Microkit vCPU.
    fn map_vcpus(&mut self) {
        let vmm = &self.vmm;
        for (id, entry) in (0..).zip(self.vcpus.iter_mut()) {
            *entry = VmVcpu::new(id).and_then(|v| vmm.kernel().tcb_slot_of(v)).and_then(|slot| vmm.vcpu_by_tcb(slot));
        }
    }

    /// A fault of Microkit vCPU `child` with label `label` and `count`
    /// message registers, read (and the reply written) where they are, in
    /// the IPC buffer.
    pub fn fault(&mut self, child: usize, label: u64, count: usize) -> Reply {
        let Some((id, vcpu)) = self.vcpus.get(child).copied().flatten() else {
            debug_println!("{}: fault from vCPU {child}, which no VM has: left stopped", self.pd);
            if let Some(v) = VmVcpu::new(child as u64) {
                let _ = v.tcb().tcb_suspend();
            }
            return Reply::Stopped;
        };
        // Decoded before the core makes any invocation, which would reuse
        // the IPC buffer.
        let decoded = with_msg_regs(|r| fault::decode(label, r.get(..count).unwrap_or(&[])));
        #[cfg(feature = "exit-counts")]
        let (start, kind) = (crate::counter::now(), self.exits.kind(&decoded));
        let action = self.vmm.handle_decoded_exit(id, vcpu, decoded, &mut self.console);
        #[cfg(feature = "exit-counts")]
        self.exits.add(kind, start);
        if self.pending.is_some() {
            self.input();
        }
        match action {
            ExitAction::Resume => Reply::Resume,
            ExitAction::ResumeWith(regs) => {
                // Word by word: nine stores are fewer instructions than the
                // call to the bare-metal memcpy a slice copy becomes.
                with_msg_regs_mut(|r| {
                    if let [d0, d1, d2, d3, d4, d5, d6, d7, d8, ..] = r {
                        let [x0, x1, x2, x3, x4, x5, x6, x7, pc] = regs;
                        (*d0, *d1, *d2, *d3, *d4, *d5, *d6, *d7, *d8) = (x0, x1, x2, x3, x4, x5, x6, x7, pc);
                    }
                });
                Reply::Registers(regs.len())
            }
            ExitAction::Park => Reply::Stopped,
            ExitAction::Stop { reason, notify } => {
                self.console.flush();
                #[cfg(feature = "exit-counts")]
                self.console.say(self.pd, format_args!("{}", self.exits));
                self.console.say(self.vm.as_str(), format_args!("stopped: {reason}"));
                debug_println!("{}: stack used so far: {} of {} bytes", self.pd, stack::used(), stack::SIZE);
                if let Some(client) = notify {
                    Channel::new(client.0 as usize).notify();
                }
                Reply::Stopped
            }
        }
    }
}
