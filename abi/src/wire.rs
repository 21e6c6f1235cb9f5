//! Fixed-layout payloads, little-endian, each a whole number of 64-bit
//! message registers. Padding fields must be zero.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

macro_rules! wire {
    ($($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* })*) => {
        $(
            $(#[$m])*
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
            #[repr(C)]
            pub struct $name { $($(#[$fm])* pub $f: $t,)* }
        )*
    };
}

wire! {
    /// CREATE_VM. No field can ask for an internal VM; flags must be 0.
    pub struct CreateVm {
        /// Reserved, 0.
        pub flags: U64,
    }

    /// DESTROY_VM.
    pub struct VmArg {
        /// The VM.
        pub vm: U32,
        /// Zero.
        pub pad: U32,
    }

    /// CREATE_VCPU, STOP_VCPU.
    pub struct VcpuArg {
        /// The VM.
        pub vm: U32,
        /// The vCPU id.
        pub vcpu: U32,
    }

    /// RUN_VCPU.
    pub struct RunVcpu {
        /// The VM.
        pub vm: U32,
        /// The vCPU id.
        pub vcpu: U32,
        /// Guest-physical entry point.
        pub entry: U64,
        /// Value for x0.
        pub arg: U64,
    }

    /// GET_REG.
    pub struct GetReg {
        /// The VM.
        pub vm: U32,
        /// The vCPU id.
        pub vcpu: U32,
        /// Register number (see `regs`).
        pub reg: U32,
        /// Zero.
        pub pad: U32,
    }

    /// SET_REG.
    pub struct SetReg {
        /// The VM.
        pub vm: U32,
        /// The vCPU id.
        pub vcpu: U32,
        /// Register number.
        pub reg: U32,
        /// Zero.
        pub pad: U32,
        /// The value.
        pub value: U64,
    }

    /// IRQ_LINE.
    pub struct IrqLine {
        /// The VM.
        pub vm: U32,
        /// The line.
        pub irq: U32,
        /// 0 or 1.
        pub level: U32,
        /// Zero.
        pub pad: U32,
    }

    /// SET_USER_MEMORY_REGION2.
    pub struct SetRegion {
        /// The VM.
        pub vm: U32,
        /// Slot id (low 16 bits) and address-space id (high 16 bits).
        pub slot: U32,
        /// Memslot flags.
        pub flags: U32,
        /// guest_memfd handle.
        pub guest_memfd: U32,
        /// Guest-physical base.
        pub guest_phys_addr: U64,
        /// Size in bytes (0 deletes).
        pub memory_size: U64,
        /// VMM address of the backing.
        pub userspace_addr: U64,
        /// Offset in the guest_memfd.
        pub guest_memfd_offset: U64,
    }

    /// CREATE_GUEST_MEMFD.
    pub struct CreateGmem {
        /// The VM.
        pub vm: U32,
        /// Zero.
        pub pad: U32,
        /// Size in bytes.
        pub size: U64,
        /// Flags (0).
        pub flags: U64,
    }

    /// CLOSE_GUEST_MEMFD.
    pub struct CloseGmem {
        /// The handle.
        pub handle: U32,
        /// Zero.
        pub pad: U32,
    }

    /// LOCK_MEMSLOT, UNLOCK_MEMSLOT.
    pub struct LockArg {
        /// The VM.
        pub vm: U32,
        /// The slot id.
        pub slot: U32,
        /// Flags.
        pub flags: U64,
    }

    /// ENABLE_CAP.
    pub struct EnableCap {
        /// The VM.
        pub vm: U32,
        /// The capability.
        pub cap: U32,
        /// Its argument.
        pub arg: U64,
    }

    /// The response: status 0 or a negative errno, and one result value.
    pub struct ResponseWire {
        /// 0 or -errno.
        pub status: U64,
        /// The result (VM id, handle, register value), else 0.
        pub value: U64,
    }
}
