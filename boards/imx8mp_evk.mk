# Board table: imx8mp_evk (NXP i.MX 8M Plus EVK; QEMU 10's `imx8mp-evk`).
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
# the emulated PL011, at the address of the board's UART2 (the console):
# left unmapped in the VM, so every access traps to the VMM.
GUEST_UART_BASE := 0x30890000
# an address outside every memslot, touched by the guest's faulting mode.
GUEST_UNMAPPED_ADDR := 0x60000000

# Booting on QEMU. Without has_el3=off the loader hangs (no EL3 firmware
# answers PSCI); with less than 6G the kernel faults; the console is the
# second UART.
LOADER_ADDR := 0x41000000
# QEMU's model runs no firmware: CPU 0 starts here, in
# boards/imx8mp_evk-firmware.S, which puts every interrupt into Non-secure
# Group 1 (TF-A's part on the board) and jumps to the loader. The kernel
# is later copied over it.
QEMU_FIRMWARE_ADDR := 0x40000000
QEMU_MACHINE := -machine imx8mp-evk -m 6G -global cortex-a53-arm-cpu.has_el3=off
QEMU_SERIAL := -serial null -serial mon:stdio
