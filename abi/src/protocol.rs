//! The request protocol between a client PD and the VMM PD.
//!
//! A request is an operation label (the Microkit message label) and a
//! fixed-layout payload (the message registers, as little-endian bytes).
//! [`Request::decode`] turns any label and byte string into a request or an
//! errno and never panics: unknown labels are EOPNOTSUPP, a payload of the
//! wrong length or with non-zero padding is EINVAL. A request encodes and
//! decodes back to itself. The core's `Vmm::handle` is the VMM's one entry
//! point: caller, label, payload in; response out.

use zerocopy::{FromBytes, IntoBytes};

use crate::memslot::MemoryRegion;
use crate::wire::*;
use crate::{Errno, GmemHandle, VcpuId, VmId};

/// Operation labels.
pub mod label {
    /// Create a VM owned by the caller.
    pub const CREATE_VM: u64 = 1;
    /// Destroy a VM.
    pub const DESTROY_VM: u64 = 2;
    /// Create a vCPU.
    pub const CREATE_VCPU: u64 = 3;
    /// Restart a vCPU at an entry point.
    pub const RUN_VCPU: u64 = 4;
    /// Suspend a vCPU.
    pub const STOP_VCPU: u64 = 5;
    /// Read a register.
    pub const GET_REG: u64 = 6;
    /// Write a register.
    pub const SET_REG: u64 = 7;
    /// Set a virtual interrupt line.
    pub const IRQ_LINE: u64 = 8;
    /// SET_USER_MEMORY_REGION2.
    pub const SET_USER_MEMORY_REGION2: u64 = 9;
    /// Create a guest_memfd.
    pub const CREATE_GUEST_MEMFD: u64 = 10;
    /// Close a guest_memfd.
    pub const CLOSE_GUEST_MEMFD: u64 = 11;
    /// Lock a memslot.
    pub const LOCK_MEMSLOT: u64 = 12;
    /// Unlock a memslot (or all).
    pub const UNLOCK_MEMSLOT: u64 = 13;
    /// Enable a VM-wide capability.
    pub const ENABLE_CAP: u64 = 14;
}

/// The VM-wide capability that changes how memory must be prepared (the
/// memory tagging of the KVM lock proposal, rule 5.6): cannot be enabled while
/// a slot is locked.
pub const CAP_MEM_TAGGING: u32 = 1;

/// The largest payload, in bytes.
pub const MAX_PAYLOAD: usize = core::mem::size_of::<SetRegion>();

/// A decoded request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// CREATE_VM.
    CreateVm,
    /// DESTROY_VM.
    DestroyVm {
        /// The VM.
        vm: VmId,
    },
    /// CREATE_VCPU.
    CreateVcpu {
        /// The VM.
        vm: VmId,
        /// The vCPU id.
        vcpu: VcpuId,
    },
    /// RUN_VCPU.
    RunVcpu {
        /// The VM.
        vm: VmId,
        /// The vCPU id.
        vcpu: VcpuId,
        /// Entry point.
        entry: u64,
        /// x0.
        arg: u64,
    },
    /// STOP_VCPU.
    StopVcpu {
        /// The VM.
        vm: VmId,
        /// The vCPU id.
        vcpu: VcpuId,
    },
    /// GET_REG.
    GetReg {
        /// The VM.
        vm: VmId,
        /// The vCPU id.
        vcpu: VcpuId,
        /// Register number.
        reg: u32,
    },
    /// SET_REG.
    SetReg {
        /// The VM.
        vm: VmId,
        /// The vCPU id.
        vcpu: VcpuId,
        /// Register number.
        reg: u32,
        /// Value.
        value: u64,
    },
    /// IRQ_LINE.
    IrqLine {
        /// The VM.
        vm: VmId,
        /// Line.
        irq: u32,
        /// Level.
        level: u32,
    },
    /// SET_USER_MEMORY_REGION2.
    SetMemoryRegion {
        /// The VM.
        vm: VmId,
        /// The region.
        region: MemoryRegion,
    },
    /// CREATE_GUEST_MEMFD.
    CreateGuestMemfd {
        /// The VM.
        vm: VmId,
        /// Size in bytes.
        size: u64,
        /// Flags.
        flags: u64,
    },
    /// CLOSE_GUEST_MEMFD.
    CloseGuestMemfd {
        /// The handle.
        handle: GmemHandle,
    },
    /// LOCK_MEMSLOT.
    LockMemslot {
        /// The VM.
        vm: VmId,
        /// Slot id.
        slot: u32,
        /// Flags.
        flags: u64,
    },
    /// UNLOCK_MEMSLOT.
    UnlockMemslot {
        /// The VM.
        vm: VmId,
        /// Slot id.
        slot: u32,
        /// Flags.
        flags: u64,
    },
    /// ENABLE_CAP.
    EnableCap {
        /// The VM.
        vm: VmId,
        /// Capability.
        cap: u32,
        /// Argument.
        arg: u64,
    },
}

/// Reads a payload of exactly `T`'s size.
fn read<T: FromBytes>(bytes: &[u8]) -> Result<T, Errno> {
    T::read_from_bytes(bytes).map_err(|_| Errno::EINVAL)
}

/// Padding and reserved fields must be zero.
fn zero(x: u32) -> Result<(), Errno> {
    if x == 0 {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

impl Request {
    /// Decodes a request. Never panics.
    pub fn decode(label: u64, payload: &[u8]) -> Result<Request, Errno> {
        use label::*;
        Ok(match label {
            CREATE_VM => {
                let w: CreateVm = read(payload)?;
                if w.flags.get() != 0 {
                    return Err(Errno::EINVAL);
                }
                Request::CreateVm
            }
            DESTROY_VM => {
                let w: VmArg = read(payload)?;
                zero(w.pad.get())?;
                Request::DestroyVm { vm: VmId(w.vm.get()) }
            }
            CREATE_VCPU | STOP_VCPU => {
                let w: VcpuArg = read(payload)?;
                let (vm, vcpu) = (VmId(w.vm.get()), VcpuId(w.vcpu.get()));
                if label == CREATE_VCPU {
                    Request::CreateVcpu { vm, vcpu }
                } else {
                    Request::StopVcpu { vm, vcpu }
                }
            }
            RUN_VCPU => {
                let w: RunVcpu = read(payload)?;
                Request::RunVcpu {
                    vm: VmId(w.vm.get()),
                    vcpu: VcpuId(w.vcpu.get()),
                    entry: w.entry.get(),
                    arg: w.arg.get(),
                }
            }
            GET_REG => {
                let w: GetReg = read(payload)?;
                zero(w.pad.get())?;
                Request::GetReg { vm: VmId(w.vm.get()), vcpu: VcpuId(w.vcpu.get()), reg: w.reg.get() }
            }
            SET_REG => {
                let w: SetReg = read(payload)?;
                zero(w.pad.get())?;
                Request::SetReg {
                    vm: VmId(w.vm.get()),
                    vcpu: VcpuId(w.vcpu.get()),
                    reg: w.reg.get(),
                    value: w.value.get(),
                }
            }
            IRQ_LINE => {
                let w: IrqLine = read(payload)?;
                zero(w.pad.get())?;
                Request::IrqLine { vm: VmId(w.vm.get()), irq: w.irq.get(), level: w.level.get() }
            }
            SET_USER_MEMORY_REGION2 => {
                let w: SetRegion = read(payload)?;
                Request::SetMemoryRegion {
                    vm: VmId(w.vm.get()),
                    region: MemoryRegion {
                        slot: w.slot.get(),
                        flags: w.flags.get(),
                        guest_phys_addr: w.guest_phys_addr.get(),
                        memory_size: w.memory_size.get(),
                        userspace_addr: w.userspace_addr.get(),
                        guest_memfd_offset: w.guest_memfd_offset.get(),
                        guest_memfd: w.guest_memfd.get(),
                    },
                }
            }
            CREATE_GUEST_MEMFD => {
                let w: CreateGmem = read(payload)?;
                zero(w.pad.get())?;
                Request::CreateGuestMemfd { vm: VmId(w.vm.get()), size: w.size.get(), flags: w.flags.get() }
            }
            CLOSE_GUEST_MEMFD => {
                let w: CloseGmem = read(payload)?;
                zero(w.pad.get())?;
                Request::CloseGuestMemfd { handle: GmemHandle(w.handle.get()) }
            }
            LOCK_MEMSLOT | UNLOCK_MEMSLOT => {
                let w: LockArg = read(payload)?;
                let (vm, slot, flags) = (VmId(w.vm.get()), w.slot.get(), w.flags.get());
                if label == LOCK_MEMSLOT {
                    Request::LockMemslot { vm, slot, flags }
                } else {
                    Request::UnlockMemslot { vm, slot, flags }
                }
            }
            ENABLE_CAP => {
                let w: EnableCap = read(payload)?;
                Request::EnableCap { vm: VmId(w.vm.get()), cap: w.cap.get(), arg: w.arg.get() }
            }
            _ => return Err(Errno::EOPNOTSUPP),
        })
    }

    /// Encodes the request into `out`; returns the label and the payload
    /// length.
    pub fn encode(&self, out: &mut [u8; MAX_PAYLOAD]) -> (u64, usize) {
        use label::*;
        fn put<T: IntoBytes + zerocopy::Immutable>(out: &mut [u8; MAX_PAYLOAD], label: u64, w: T) -> (u64, usize) {
            let bytes = w.as_bytes();
            let n = bytes.len().min(MAX_PAYLOAD);
            if let (Some(dst), Some(src)) = (out.get_mut(..n), bytes.get(..n)) {
                dst.copy_from_slice(src);
            }
            (label, n)
        }
        let (u32le, u64le) = (zerocopy::little_endian::U32::new, zerocopy::little_endian::U64::new);
        match *self {
            Request::CreateVm => put(out, CREATE_VM, CreateVm::default()),
            Request::DestroyVm { vm } => put(out, DESTROY_VM, VmArg { vm: u32le(vm.0), ..Default::default() }),
            Request::CreateVcpu { vm, vcpu } => put(out, CREATE_VCPU, VcpuArg { vm: u32le(vm.0), vcpu: u32le(vcpu.0) }),
            Request::StopVcpu { vm, vcpu } => put(out, STOP_VCPU, VcpuArg { vm: u32le(vm.0), vcpu: u32le(vcpu.0) }),
            Request::RunVcpu { vm, vcpu, entry, arg } => put(
                out,
                RUN_VCPU,
                RunVcpu { vm: u32le(vm.0), vcpu: u32le(vcpu.0), entry: u64le(entry), arg: u64le(arg) },
            ),
            Request::GetReg { vm, vcpu, reg } => put(
                out,
                GET_REG,
                GetReg { vm: u32le(vm.0), vcpu: u32le(vcpu.0), reg: u32le(reg), ..Default::default() },
            ),
            Request::SetReg { vm, vcpu, reg, value } => put(
                out,
                SET_REG,
                SetReg {
                    vm: u32le(vm.0),
                    vcpu: u32le(vcpu.0),
                    reg: u32le(reg),
                    value: u64le(value),
                    ..Default::default()
                },
            ),
            Request::IrqLine { vm, irq, level } => put(
                out,
                IRQ_LINE,
                IrqLine { vm: u32le(vm.0), irq: u32le(irq), level: u32le(level), ..Default::default() },
            ),
            Request::SetMemoryRegion { vm, region: r } => put(
                out,
                SET_USER_MEMORY_REGION2,
                SetRegion {
                    vm: u32le(vm.0),
                    slot: u32le(r.slot),
                    flags: u32le(r.flags),
                    guest_memfd: u32le(r.guest_memfd),
                    guest_phys_addr: u64le(r.guest_phys_addr),
                    memory_size: u64le(r.memory_size),
                    userspace_addr: u64le(r.userspace_addr),
                    guest_memfd_offset: u64le(r.guest_memfd_offset),
                },
            ),
            Request::CreateGuestMemfd { vm, size, flags } => put(
                out,
                CREATE_GUEST_MEMFD,
                CreateGmem { vm: u32le(vm.0), size: u64le(size), flags: u64le(flags), ..Default::default() },
            ),
            Request::CloseGuestMemfd { handle } => {
                put(out, CLOSE_GUEST_MEMFD, CloseGmem { handle: u32le(handle.0), ..Default::default() })
            }
            Request::LockMemslot { vm, slot, flags } => {
                put(out, LOCK_MEMSLOT, LockArg { vm: u32le(vm.0), slot: u32le(slot), flags: u64le(flags) })
            }
            Request::UnlockMemslot { vm, slot, flags } => {
                put(out, UNLOCK_MEMSLOT, LockArg { vm: u32le(vm.0), slot: u32le(slot), flags: u64le(flags) })
            }
            Request::EnableCap { vm, cap, arg } => {
                put(out, ENABLE_CAP, EnableCap { vm: u32le(vm.0), cap: u32le(cap), arg: u64le(arg) })
            }
        }
    }
}

/// The response to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// `Ok(value)` or the errno.
    pub result: Result<u64, Errno>,
}

impl Response {
    /// The wire form: status 0 or -errno, then the value.
    pub fn to_wire(self) -> ResponseWire {
        let (status, value) = match self.result {
            Ok(v) => (0i64, v),
            Err(e) => (-i64::from(e.code()), 0),
        };
        ResponseWire {
            status: zerocopy::little_endian::U64::new(status as u64),
            value: zerocopy::little_endian::U64::new(value),
        }
    }

    /// Reads the wire form back (for clients).
    pub fn from_wire(w: &ResponseWire) -> Option<Response> {
        let status = w.status.get() as i64;
        if status == 0 {
            return Some(Response { result: Ok(w.value.get()) });
        }
        let code = i32::try_from(status.checked_neg()?).ok()?;
        Errno::from_code(code).map(|e| Response { result: Err(e) })
    }

    /// What a client makes of a reply of `words` message registers whose
    /// bytes are `bytes`: the value, the errno, or EIO for a reply that is
    /// no response at all (shorter than the wire form, or a status that is
    /// no errno).
    pub fn from_reply(words: usize, bytes: &[u8]) -> Result<u64, Errno> {
        let size = core::mem::size_of::<ResponseWire>();
        if words * 8 < size {
            return Err(Errno::EIO);
        }
        let wire = bytes.get(..size).and_then(|w| ResponseWire::read_from_bytes(w).ok());
        match wire.as_ref().and_then(Response::from_wire) {
            Some(r) => r.result,
            None => Err(Errno::EIO),
        }
    }
}

/// Proofs over every input (`cargo kani -p vmm`).
#[cfg(kani)]
mod proofs {
    use super::*;

    /// Decoding is total: any label and any payload of up to
    /// [`MAX_PAYLOAD`] bytes decodes to a request or an errno, without a
    /// panic; and what decodes is canonical: it encodes back to the very
    /// label and bytes it came from (so no two payloads mean the same).
    #[kani::proof]
    #[kani::unwind(50)]
    fn decoding_is_total_and_canonical() {
        let label: u64 = kani::any();
        let bytes: [u8; MAX_PAYLOAD] = kani::any();
        let len: usize = kani::any();
        kani::assume(len <= MAX_PAYLOAD);
        let payload = bytes.get(..len).unwrap_or(&[]);
        if let Ok(req) = Request::decode(label, payload) {
            let mut out = [0u8; MAX_PAYLOAD];
            let (l, n) = req.encode(&mut out);
            assert!(l == label);
            assert!(n == len);
            assert!(out.get(..n) == Some(payload));
        }
    }
}
