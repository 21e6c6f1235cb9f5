//! A Linux guest's device tree, written from its VM description: memory,
//! vCPUs, PSCI, the virtual GIC, the architected timer, the emulated
//! devices, the command line and the initramfs all come from `system.toml`,
//! so the guest is told exactly what the VMM gives it.
//!
//! The shapes are those QEMU's `virt` machine gives its guests, which
//! Linux's drivers expect: the GICv2 as `arm,cortex-a15-gic`, the PL011
//! with its `apb_pclk` clock, level-high timer PPIs.

use vm_fdt::{FdtWriter, FdtWriterResult};

use crate::check::linux::{ram_slot_end, windows, DTB_MAX};
use crate::description::{Backing, DeviceKind, Vm};
use crate::num::hex;

/// The timer's PPIs, as PPI numbers (interrupt id - 16) in the order the
/// `arm,armv8-timer` binding lists them: secure physical, non-secure
/// physical, virtual, hypervisor.
const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];
/// The `interrupts` cell values the GIC bindings use.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
/// The phandles: the interrupt controller and the UART's clock.
const PHANDLE_GIC: u32 = 1;
const PHANDLE_CLOCK: u32 = 2;
/// The PL011's reference clock (QEMU's `virt` gives 24 MHz).
const UART_CLOCK_HZ: u32 = 24_000_000;

/// The device tree blob of `vm`, whose initramfs is `initrd_size` bytes.
/// `vm` must have passed `check`; what only the sizes can show (the
/// initramfs or the tree not fitting in RAM) is an error here.
pub fn device_tree(vm: &Vm, initrd_size: u64) -> Result<Vec<u8>, String> {
    let linux = vm.linux.as_ref().ok_or_else(|| format!("{} has no [vm.linux]: it boots no Linux", vm.name))?;
    let initrd_end = linux.initrd.checked_add(initrd_size).ok_or("the initramfs's end wraps")?;
    match ram_slot_end(vm, linux.initrd) {
        Some(end) if initrd_end <= end => {}
        _ => {
            return Err(format!(
                "{}: the initramfs, {initrd_size} bytes at {}, does not fit in its RAM memslot",
                vm.name,
                hex(linux.initrd)
            ))
        }
    }
    let blob = write(vm, linux.initrd, initrd_end).map_err(|e| format!("{}: device tree: {e}", vm.name))?;
    let len = blob.len() as u64;
    match ram_slot_end(vm, linux.dtb) {
        Some(end) if len <= DTB_MAX && linux.dtb.saturating_add(len) <= end => Ok(blob),
        _ => Err(format!("{}: the device tree, {len} bytes, does not fit at {}", vm.name, hex(linux.dtb))),
    }
}

fn write(vm: &Vm, initrd: u64, initrd_end: u64) -> FdtWriterResult<Vec<u8>> {
    let linux = vm.linux.as_ref().ok_or(vm_fdt::Error::InvalidString)?;
    let gic = vm.gic.as_ref().ok_or(vm_fdt::Error::InvalidString)?;
    let gic_windows = windows(gic, vm.vcpus).ok_or(vm_fdt::Error::InvalidString)?;
    let v2 = gic.cpu.is_some();
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", PHANDLE_GIC)?;

    // Guest RAM: the RAM memslots (guest_memfd memory is not Linux's).
    let ram: Vec<u64> = vm
        .memslots
        .iter()
        .filter(|s| matches!(vm.backing(s), Some(Backing::Ram(_))))
        .flat_map(|s| [s.gpa, s.size])
        .collect();
    let first = ram.first().copied().unwrap_or(0);
    let memory = fdt.begin_node(&format!("memory@{first:x}"))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &ram)?;
    fdt.end_node(memory)?;

    let psci = fdt.begin_node("psci")?;
    fdt.property_string_list("compatible", vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()])?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(psci)?;

    // vCPU n's MPIDR affinity is n (the VMM sets VMPIDR_EL2 so).
    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for n in 0..vm.vcpus {
        let cpu = fdt.begin_node(&format!("cpu@{n}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,armv8")?;
        fdt.property_u32("reg", n)?;
        fdt.property_string("enable-method", "psci")?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;

    // A GICv2 PPI names the CPU interfaces it reaches: all of them.
    let ppi_flags = match v2 {
        true => ((1u32 << vm.vcpus) - 1) << 8 | IRQ_TYPE_LEVEL_HIGH,
        false => IRQ_TYPE_LEVEL_HIGH,
    };
    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    let cells: Vec<u32> = TIMER_PPIS.iter().flat_map(|&p| [GIC_PPI, p, ppi_flags]).collect();
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    let intc = fdt.begin_node(&format!("intc@{:x}", gic.dist))?;
    match v2 {
        true => fdt.property_string("compatible", "arm,cortex-a15-gic")?,
        false => {
            fdt.property_string("compatible", "arm,gic-v3")?;
            fdt.property_u32("#redistributor-regions", 1)?;
        }
    }
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    // No child nodes: an interrupt map needs no address cells from it.
    fdt.property_u32("#address-cells", 0)?;
    let reg: Vec<u64> = gic_windows.iter().flat_map(|&(_, base, size)| [base, size]).collect();
    fdt.property_array_u64("reg", &reg)?;
    fdt.property_phandle(PHANDLE_GIC)?;
    fdt.end_node(intc)?;

    let clock = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(PHANDLE_CLOCK)?;
    fdt.end_node(clock)?;

    let mut console = None;
    for d in &vm.devices {
        match d.kind {
            DeviceKind::Pl011 => {
                let name = format!("pl011@{:x}", d.base);
                let node = fdt.begin_node(&name)?;
                fdt.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()])?;
                fdt.property_array_u64("reg", &[d.base, d.size])?;
                if let Some(irq) = d.irq {
                    let spi = irq.checked_sub(32).ok_or(vm_fdt::Error::InvalidString)?;
                    fdt.property_array_u32("interrupts", &[GIC_SPI, spi, IRQ_TYPE_LEVEL_HIGH])?;
                }
                fdt.property_array_u32("clocks", &[PHANDLE_CLOCK, PHANDLE_CLOCK])?;
                fdt.property_string_list("clock-names", vec!["uartclk".into(), "apb_pclk".into()])?;
                fdt.end_node(node)?;
                console.get_or_insert(format!("/{name}"));
            }
        }
    }

    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", &linux.bootargs)?;
    if let Some(path) = &console {
        fdt.property_string("stdout-path", path)?;
    }
    fdt.property_u64("linux,initrd-start", initrd)?;
    fdt.property_u64("linux,initrd-end", initrd_end)?;
    fdt.end_node(chosen)?;

    fdt.end_node(root)?;
    fdt.finish()
}
