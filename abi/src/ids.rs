//! The ids a request names: a VM, a vCPU of a VM, a guest_memfd file.

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
