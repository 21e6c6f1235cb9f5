# Board table: qemu_virt_aarch64 (QEMU's `virt` machine).
#
# Every board-specific address and option lives in this file. pds/board's
# build script turns each `NAME := number` line into a Rust constant (for
# the PDs and the guest), and the Makefile renders build/<board>/system.xml
# from boards/system.xml.in with it, so nothing else names these numbers. Keep comments on lines of their own: make keeps
# trailing blanks of a value.

# What each guest sees (guest-physical addresses):
# shared guest RAM, mapped into the VM and its VMM; the guest image is loaded
# at its base and its stack is at its top.
GUEST_RAM_BASE := 0x40000000
GUEST_RAM_SIZE := 0x200000
# the private (guest_memfd) region, mapped into the VM only, 4 KiB pages.
GUEST_PRIVATE_BASE := 0x50000000
GUEST_PRIVATE_SIZE := 0x10000
# the emulated PL011: left unmapped in the VM, so every access traps to the VMM.
GUEST_UART_BASE := 0x09000000
# an address outside every memslot, touched by the guest's faulting mode.
GUEST_UNMAPPED_ADDR := 0x60000000

# Booting on QEMU.
LOADER_ADDR := 0x70000000
QEMU_MACHINE := -machine virt,virtualization=on -cpu cortex-a53 -m size=2G
QEMU_SERIAL := -serial mon:stdio
