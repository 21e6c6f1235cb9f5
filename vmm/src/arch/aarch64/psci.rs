//! PSCI (0.2 and later) over HVC and SMC: the calls a guest needs to start
//! and stop its CPUs and the machine.

/// PSCI function ids (SMC32 and, where there is one, SMC64).
pub mod fid {
    /// PSCI_VERSION.
    pub const VERSION: u32 = 0x8400_0000;
    /// CPU_SUSPEND, 32-bit.
    pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
    /// CPU_SUSPEND, 64-bit.
    pub const CPU_SUSPEND_64: u32 = 0xc400_0001;
    /// AFFINITY_INFO, 32-bit.
    pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
    /// AFFINITY_INFO, 64-bit.
    pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
    /// CPU_OFF.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// CPU_ON, 32-bit.
    pub const CPU_ON_32: u32 = 0x8400_0003;
    /// CPU_ON, 64-bit.
    pub const CPU_ON_64: u32 = 0xc400_0003;
    /// SYSTEM_OFF.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// SYSTEM_RESET.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// PSCI_FEATURES.
    pub const FEATURES: u32 = 0x8400_000a;
}

/// Return codes, as the 64-bit value a guest reads in x0.
pub mod ret {
    /// Success.
    pub const SUCCESS: u64 = 0;
    /// NOT_SUPPORTED (-1).
    pub const NOT_SUPPORTED: u64 = -1i64 as u64;
    /// INVALID_PARAMETERS (-2).
    pub const INVALID_PARAMETERS: u64 = -2i64 as u64;
    /// INTERNAL_FAILURE (-6).
    pub const INTERNAL_FAILURE: u64 = -6i64 as u64;
    /// ALREADY_ON (-4).
    pub const ALREADY_ON: u64 = -4i64 as u64;
    /// INVALID_ADDRESS (-9).
    pub const INVALID_ADDRESS: u64 = -9i64 as u64;
}

/// The version this VMM implements: 1.1.
pub const VERSION_1_1: u64 = 0x0001_0001;

/// Every function this VMM implements (PSCI_FEATURES answers 0 for these):
/// those PSCI 1.1 makes mandatory.
pub const IMPLEMENTED: [u32; 11] = [
    fid::VERSION,
    fid::CPU_SUSPEND_32,
    fid::CPU_SUSPEND_64,
    fid::CPU_OFF,
    fid::CPU_ON_32,
    fid::CPU_ON_64,
    fid::AFFINITY_INFO_32,
    fid::AFFINITY_INFO_64,
    fid::SYSTEM_OFF,
    fid::SYSTEM_RESET,
    fid::FEATURES,
];

/// AFFINITY_INFO: the target is on.
pub const AFFINITY_ON: u64 = 0;
/// AFFINITY_INFO: the target is off.
pub const AFFINITY_OFF: u64 = 1;

/// A PSCI call, from x0-x3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// PSCI_VERSION.
    Version,
    /// PSCI_FEATURES(function id).
    Features(u64),
    /// CPU_ON(target MPIDR, entry point, context id).
    CpuOn {
        /// The target's MPIDR affinity.
        target: u64,
        /// Where it starts.
        entry: u64,
        /// Its x0.
        context: u64,
    },
    /// CPU_OFF.
    CpuOff,
    /// CPU_SUSPEND: returns at once, as a wake-up before the state was
    /// entered may (the vCPU does not sleep; the VMM has nothing to save).
    CpuSuspend,
    /// AFFINITY_INFO(target MPIDR, lowest affinity level).
    AffinityInfo {
        /// The target's MPIDR affinity.
        target: u64,
        /// Only level 0 (one vCPU) is answered.
        level: u64,
    },
    /// SYSTEM_OFF.
    SystemOff,
    /// SYSTEM_RESET.
    SystemReset,
    /// Anything else: NOT_SUPPORTED in x0.
    Unsupported,
}

impl Call {
    /// Decodes a call from the guest's x0-x3. The function id is w0; an
    /// SMC32 call's arguments are 32-bit.
    pub fn decode(x: [u64; 4]) -> Call {
        let [x0, x1, x2, x3] = x;
        let narrow = |v: u64| v & 0xffff_ffff;
        match x0 & 0xffff_ffff {
            _ if x0 >> 32 != 0 => Call::Unsupported,
            0x8400_0000 => Call::Version,
            0x8400_000a => Call::Features(narrow(x1)),
            0x8400_0003 => Call::CpuOn { target: narrow(x1), entry: narrow(x2), context: narrow(x3) },
            0xc400_0003 => Call::CpuOn { target: x1, entry: x2, context: x3 },
            0x8400_0002 => Call::CpuOff,
            0x8400_0001 | 0xc400_0001 => Call::CpuSuspend,
            0x8400_0004 => Call::AffinityInfo { target: narrow(x1), level: narrow(x2) },
            0xc400_0004 => Call::AffinityInfo { target: x1, level: x2 },
            0x8400_0008 => Call::SystemOff,
            0x8400_0009 => Call::SystemReset,
            _ => Call::Unsupported,
        }
    }
}

/// PSCI_FEATURES: 0 for an implemented function, else NOT_SUPPORTED.
pub fn features(function: u64) -> u64 {
    let implemented = u32::try_from(function).is_ok_and(|f| IMPLEMENTED.contains(&f));
    if implemented {
        ret::SUCCESS
    } else {
        ret::NOT_SUPPORTED
    }
}
