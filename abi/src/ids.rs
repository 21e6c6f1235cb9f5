//! The ids a request names (a VM, a vCPU of a VM, a memslot, a guest_memfd
//! file) and the id of the client that sends it.

use crate::memslot::MemoryRegion;

/// A VM's identifier, never reused while anything refers to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmId(pub u32);

/// A vCPU's id within its VM: `0..` the VM's vCPU limit, and the Aff0 of
/// the MPIDR the guest sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuId(pub u32);

impl VcpuId {
    /// The id as an index into a VM's vCPUs.
    pub fn index(self) -> Option<usize> {
        usize::try_from(self.0).ok()
    }
}

impl core::fmt::Display for VcpuId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A guest_memfd handle: what CREATE_GUEST_MEMFD returns and a memslot's
/// `guest_memfd` and CLOSE name (the file descriptor of KVM's guest_memfd).
/// Handles are never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GmemHandle(pub u32);

impl From<GmemHandle> for u64 {
    fn from(h: GmemHandle) -> u64 {
        u64::from(h.0)
    }
}

impl core::fmt::Display for GmemHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A memslot's id within its VM (address space 0): `0..`[`MAX_MEMSLOTS`](crate::limits::MAX_MEMSLOTS).
/// A request's `slot` word also carries the address space in its upper
/// half; the id is its lower half.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemslotId(pub u16);

impl MemslotId {
    /// The slot id a SET_USER_MEMORY_REGION2 request names (the low half of
    /// its `slot`; the address space is checked separately).
    pub fn of_region(req: &MemoryRegion) -> MemslotId {
        MemslotId((req.slot & 0xffff) as u16)
    }

    /// The id a request's `slot` word names, if it fits (the address space
    /// is checked separately).
    pub fn of_request(slot: u32) -> Option<MemslotId> {
        u16::try_from(slot).ok().map(MemslotId)
    }
}

impl core::fmt::Display for MemslotId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A client, named by the channel its requests arrive on (on Microkit, the
/// channel id; on a kernel with badged endpoints, the badge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u32);
