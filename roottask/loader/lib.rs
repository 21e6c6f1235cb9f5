//! Nothing: the package exists for its artifact dependency, the loader.
#![no_std]
