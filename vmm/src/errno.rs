//! The macro that gives each module its own error enum, and the trait that
//! reports each as its errno.
//!
//! Each module states its failures as one enum, a message per variant and the
//! errno the variant is reported as (the Firecracker shape). The wire carries
//! only the errno; host tools and logs can print the message.

use vmm_abi::Errno;

/// Anything that is reported to a client as an errno.
pub(crate) trait AsErrno {
    /// The errno the client sees.
    fn errno(&self) -> Errno;
}

/// Declares a module's error enum: each variant with its errno and message.
///
/// ```ignore
/// errors! {
///     /// Why a vCPU operation failed.
///     pub enum VcpuError {
///         /// The id is at or above the VM's vCPU limit.
///         IdOutOfRange => EINVAL, "vCPU id at or above the limit",
///     }
/// }
/// ```
#[macro_export]
macro_rules! errors {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $errno:ident, $msg:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $crate::errno::AsErrno for $name {
            fn errno(&self) -> ::vmm_abi::Errno {
                match self {
                    $( $name::$variant => ::vmm_abi::Errno::$errno, )*
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(match self {
                    $( $name::$variant => $msg, )*
                })
            }
        }
    };
}
