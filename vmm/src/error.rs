//! The error of a VMM operation: one variant per module, each keeping the
//! module's own reason (and message) and reporting its errno.

use core::fmt;

use crate::config::ConfigError;
use crate::cspace::CSpaceError;
use crate::devices::DeviceError;
use crate::errno::AsErrno;
use crate::kernel::Refused;
use crate::registry::RegistryError;
use crate::vm::guest_memfd::GmemError;
use crate::vm::lock::LockError;
use crate::vm::memslots::MemslotError;
use crate::vm::VmError;
use vmm_abi::Errno;

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The configuration was refused.
    Config(ConfigError),
    /// The registry refused (no such VM, not the owner, full).
    Registry(RegistryError),
    /// The platform refused ([`Platform`](crate::platform::Platform)): an
    /// architecture hook refused the VM, or the platform's own work around a
    /// creation or a RUN failed.
    Platform(Errno),
    /// A vCPU or VM-wide operation was refused.
    Vm(VmError),
    /// A memslot request was refused.
    Memslot(MemslotError),
    /// A guest_memfd request was refused.
    Gmem(GmemError),
    /// A lock or unlock request was refused.
    Lock(LockError),
    /// A device could not be registered.
    Device(DeviceError),
    /// No capability slots left.
    CSpace(CSpaceError),
    /// The kernel refused an invocation: which, and why.
    Kernel(Refused),
    /// The request could not be decoded.
    Protocol(Errno),
}

impl AsErrno for Error {
    fn errno(&self) -> Errno {
        match self {
            Error::Config(e) => e.errno(),
            Error::Registry(e) => e.errno(),
            Error::Platform(e) | Error::Protocol(e) => *e,
            Error::Vm(e) => e.errno(),
            Error::Memslot(e) => e.errno(),
            Error::Gmem(e) => e.errno(),
            Error::Lock(e) => e.errno(),
            Error::CSpace(e) => e.errno(),
            Error::Device(e) => e.errno(),
            Error::Kernel(e) => e.error.errno(),
        }
    }
}

impl Error {
    /// The errno the client sees.
    pub fn errno(&self) -> Errno {
        AsErrno::errno(self)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "configuration: {e}"),
            Error::Registry(e) => write!(f, "registry: {e}"),
            Error::Platform(e) => write!(f, "the platform refused ({e:?})"),
            Error::Vm(e) => write!(f, "VM: {e}"),
            Error::Memslot(e) => write!(f, "memslot: {e}"),
            Error::Gmem(e) => write!(f, "guest_memfd: {e}"),
            Error::Lock(e) => write!(f, "memslot lock: {e}"),
            Error::CSpace(e) => write!(f, "capability slots: {e}"),
            Error::Device(e) => write!(f, "device: {e}"),
            Error::Kernel(e) => write!(f, "kernel: {e}"),
            Error::Protocol(e) => write!(f, "request malformed ({e:?})"),
        }
    }
}

macro_rules! from_module {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::$v(e)
            }
        })*
    };
}

from_module!(
    ConfigError => Config,
    RegistryError => Registry,
    VmError => Vm,
    MemslotError => Memslot,
    GmemError => Gmem,
    LockError => Lock,
    CSpaceError => CSpace,
    DeviceError => Device,
    Refused => Kernel,
);
