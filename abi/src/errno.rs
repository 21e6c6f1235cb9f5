//! Linux errno values, so that people who know KVM recognise every result.

/// An errno as KVM would return it, positive here and negated on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Errno {
    /// Operation not permitted.
    EPERM = 1,
    /// No such entity.
    ENOENT = 2,
    /// I/O error: the kernel refused an invocation that should not fail.
    EIO = 5,
    /// Bad file handle.
    EBADF = 9,
    /// Try again.
    EAGAIN = 11,
    /// Out of memory, capability slots or memlock budget.
    ENOMEM = 12,
    /// Bad address.
    EFAULT = 14,
    /// Resource busy.
    EBUSY = 16,
    /// Already exists.
    EEXIST = 17,
    /// Invalid argument.
    EINVAL = 22,
    /// No space left in a fixed-capacity table.
    ENOSPC = 28,
    /// Operation not supported.
    EOPNOTSUPP = 95,
}

impl Errno {
    /// Every errno, for decoding and exhaustive tests.
    pub const ALL: [Errno; 12] = [
        Errno::EPERM,
        Errno::ENOENT,
        Errno::EIO,
        Errno::EBADF,
        Errno::EAGAIN,
        Errno::ENOMEM,
        Errno::EFAULT,
        Errno::EBUSY,
        Errno::EEXIST,
        Errno::EINVAL,
        Errno::ENOSPC,
        Errno::EOPNOTSUPP,
    ];

    /// The positive errno number.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The errno with this positive number, if it is one of ours.
    pub fn from_code(code: i32) -> Option<Errno> {
        Errno::ALL.iter().copied().find(|e| e.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_linux_values() {
        let expected = [1, 2, 5, 9, 11, 12, 14, 16, 17, 22, 28, 95];
        for (e, c) in Errno::ALL.iter().zip(expected) {
            assert_eq!(e.code(), c);
            assert_eq!(Errno::from_code(c), Some(*e));
        }
        assert_eq!(Errno::from_code(0), None);
        assert_eq!(Errno::from_code(3), None);
    }
}
