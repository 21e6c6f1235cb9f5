//! A Linux guest's description: its GIC, interrupts and boot addresses are
//! checked, and its device tree (`vmsys fdt`) states exactly them. The
//! fixture is the guest the build boots, `linux/virt.toml`.

use vmsys::check::check_description;
use vmsys::description::Description;
use vmsys::fdt::device_tree;

const VIRT: &str = include_str!("../../../linux/virt.toml");

fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "the fixture must hold {from:?} exactly once");
    text.replacen(from, to, 1)
}

fn parse(toml: &str) -> Description {
    Description::parse("virt.toml", toml).unwrap_or_else(|d| panic!("{d:?}"))
}

/// Every message of the description-only checks.
fn messages(toml: &str) -> Vec<String> {
    check_description(&parse(toml)).iter().map(ToString::to_string).collect()
}

/// The one message the checks give, without its `file:line: `.
fn only_message(toml: &str) -> String {
    let m = messages(toml);
    assert_eq!(m.len(), 1, "{m:#?}");
    m[0].split_once(": ").unwrap().1.to_string()
}

/// Each `(from, to, message)`: the fixture with `from` made `to` gives
/// exactly `message`.
fn refused(cases: &[(&str, &str, &str)]) {
    for &(from, to, want) in cases {
        assert_eq!(only_message(&edit(VIRT, from, to)), want, "{from} -> {to}");
    }
}

fn tree(toml: &str, initrd_size: u64) -> Vec<u8> {
    let desc = parse(toml);
    device_tree(&desc.vms[0], initrd_size).unwrap()
}

fn cells(prop: &[u8]) -> Vec<u32> {
    prop.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect()
}

fn u64s(prop: &[u8]) -> Vec<u64> {
    prop.chunks(8).map(|c| u64::from_be_bytes(c.try_into().unwrap())).collect()
}

fn prop<'a>(fdt: &'a fdt::Fdt, node: &str, name: &str) -> &'a [u8] {
    let n = fdt.find_node(node).unwrap_or_else(|| panic!("no node {node}"));
    n.property(name).unwrap_or_else(|| panic!("{node} has no {name}")).value
}

#[test]
fn the_guest_the_build_boots_passes() {
    assert_eq!(messages(VIRT), Vec::<String>::new());
}

#[test]
fn the_device_tree_states_what_the_description_gives() {
    let blob = tree(VIRT, 0x1234);
    let fdt = fdt::Fdt::new(&blob).unwrap();
    assert_eq!(u64s(prop(&fdt, "/memory@40000000", "reg")), [0x4000_0000, 0x1000_0000]);
    let cpus: Vec<_> = fdt.cpus().map(|c| c.ids().first()).collect();
    assert_eq!(cpus, [0, 1]);
    assert_eq!(prop(&fdt, "/cpus/cpu@1", "enable-method"), b"psci\0");
    assert_eq!(prop(&fdt, "/psci", "method"), b"hvc\0");
    // GICv2: the distributor's 4 KiB and the CPU interface's 8 KiB.
    assert_eq!(prop(&fdt, "/intc@8000000", "compatible"), b"arm,cortex-a15-gic\0");
    assert_eq!(u64s(prop(&fdt, "/intc@8000000", "reg")), [0x0800_0000, 0x1000, 0x0801_0000, 0x2000]);
    assert_eq!(cells(prop(&fdt, "/intc@8000000", "phandle")), [1]);
    assert_eq!(cells(prop(&fdt, "/", "interrupt-parent")), [1]);
    // Timer PPIs 13, 14, 11, 10, level-high, to both CPU interfaces.
    assert_eq!(cells(prop(&fdt, "/timer", "interrupts")), [1, 13, 0x304, 1, 14, 0x304, 1, 11, 0x304, 1, 10, 0x304]);
    // The UART: irq 33 is SPI 1.
    assert_eq!(u64s(prop(&fdt, "/pl011@9000000", "reg")), [0x0900_0000, 0x1000]);
    assert_eq!(cells(prop(&fdt, "/pl011@9000000", "interrupts")), [0, 1, 4]);
    assert_eq!(cells(prop(&fdt, "/pl011@9000000", "clocks")), [2, 2]);
    assert_eq!(cells(prop(&fdt, "/apb-pclk", "phandle")), [2]);
    // The command line, the console, and the initramfs's exact extent.
    assert_eq!(prop(&fdt, "/chosen", "bootargs"), b"console=ttyAMA0 shell=1\0");
    assert_eq!(prop(&fdt, "/chosen", "stdout-path"), b"/pl011@9000000\0");
    assert_eq!(u64s(prop(&fdt, "/chosen", "linux,initrd-start")), [0x4820_0000]);
    assert_eq!(u64s(prop(&fdt, "/chosen", "linux,initrd-end")), [0x4820_1234]);
}

#[test]
fn a_gicv3_guest_is_told_of_one_redistributor_per_vcpu() {
    let toml = edit(VIRT, "version = 2", "version = 3");
    let toml = edit(&toml, "cpu = 0x08010000 ", "redist = 0x080a0000");
    assert_eq!(messages(&toml), Vec::<String>::new());
    let blob = tree(&toml, 4096);
    let fdt = fdt::Fdt::new(&blob).unwrap();
    assert_eq!(prop(&fdt, "/intc@8000000", "compatible"), b"arm,gic-v3\0");
    assert_eq!(u64s(prop(&fdt, "/intc@8000000", "reg")), [0x0800_0000, 0x1_0000, 0x080a_0000, 2 * 0x2_0000]);
    assert_eq!(cells(prop(&fdt, "/intc@8000000", "#redistributor-regions")), [1]);
    // No CPU interface mask on a GICv3.
    assert_eq!(cells(prop(&fdt, "/timer", "interrupts"))[2], 4);
}

#[test]
fn the_same_description_gives_the_same_bytes() {
    assert_eq!(tree(VIRT, 100), tree(VIRT, 100));
    assert_ne!(tree(VIRT, 100), tree(VIRT, 200));
}

#[test]
fn an_initramfs_that_does_not_fit_in_its_memslot_is_refused() {
    let desc = parse(VIRT);
    // RAM ends at 0x5000_0000; the initramfs starts at 0x4820_0000.
    assert!(device_tree(&desc.vms[0], 0x5000_0000 - 0x4820_0000).is_ok());
    let e = device_tree(&desc.vms[0], 0x5000_0000 - 0x4820_0000 + 1).unwrap_err();
    assert!(e.contains("the initramfs") && e.contains("does not fit"), "{e}");
}

#[test]
fn a_vm_without_linux_has_no_device_tree() {
    let toml = VIRT.split("[vm.linux]").next().unwrap();
    let e = device_tree(&parse(toml).vms[0], 10).unwrap_err();
    assert_eq!(e, "linux has no [vm.linux]: it boots no Linux");
}

#[test]
fn linux_needs_a_gic() {
    let gic = "[vm.gic]\nversion = 2\ndist = 0x08000000\ncpu = 0x08010000            # where the hardware's virtual CPU interface appears\n";
    let m = messages(&edit(VIRT, gic, ""));
    // Without a GIC, the UART's interrupt has nowhere to go either.
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(m[0].ends_with("pl011 of linux has an interrupt but linux has no [vm.gic] to deliver it"), "{m:#?}");
    assert!(m[1].ends_with("linux boots Linux but has no [vm.gic]: Linux needs an interrupt controller"), "{m:#?}");
}

#[test]
fn the_gic_version_is_2_or_3_with_its_own_frames() {
    assert_eq!(only_message(&edit(VIRT, "version = 2", "version = 4")), "linux: GIC version 4 is not 2 or 3");
    let v2_with_redist = edit(VIRT, "cpu = 0x08010000 ", "cpu = 0x08010000\nredist = 0x080a0000 ");
    assert_eq!(only_message(&v2_with_redist), "linux: a GICv2 has no `redist`");
    let v3_with_cpu = edit(VIRT, "version = 2", "version = 3");
    let m = messages(&v3_with_cpu);
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(m.iter().any(|l| l.ends_with("linux: a GICv3 needs `redist`")), "{m:#?}");
    assert!(m.iter().any(|l| l.ends_with("linux: a GICv3 has no `cpu`")), "{m:#?}");
}

#[test]
fn gic_frames_are_aligned_and_overlap_nothing() {
    refused(&[
        ("dist = 0x08000000", "dist = 0x08000800", "linux: the GIC distributor at 0x8000800 must be 4 KiB aligned"),
        (
            "cpu = 0x08010000",
            "cpu = 0x09000000",
            "linux: the GIC CPU interface [0x9000000, 0x9002000) overlaps pl011 [0x9000000, 0x9001000)",
        ),
        (
            "cpu = 0x08010000",
            "cpu = 0x4fff_f000",
            "linux: the GIC CPU interface [0x4ffff000, 0x50001000) overlaps memslot 0 [0x40000000, 0x50000000)",
        ),
        (
            "cpu = 0x08010000",
            "cpu = 0x08000000",
            "linux: the GIC CPU interface [0x8000000, 0x8002000) overlaps the GIC distributor [0x8000000, 0x8001000)",
        ),
    ]);
}

#[test]
fn a_device_interrupt_is_an_spi_the_vgic_implements() {
    refused(&[
        ("irq = 33", "irq = 27", "pl011 of linux: irq 27 is not an SPI the vGIC implements (32..96)"),
        ("irq = 33", "irq = 96", "pl011 of linux: irq 96 is not an SPI the vGIC implements (32..96)"),
    ]);
    assert_eq!(messages(&edit(VIRT, "irq = 33", "irq = 95")), Vec::<String>::new());
}

#[test]
fn the_device_tree_and_initramfs_go_into_ram_apart() {
    refused(&[
        ("dtb = 0x48000000", "dtb = 0x47000004", "linux: dtb 0x47000004 must be 8-byte aligned"),
        ("dtb = 0x48000000", "dtb = 0x60000000", "linux: dtb 0x60000000 is outside every RAM memslot"),
        ("initrd = 0x48200000", "initrd = 0x48200800", "linux: initrd 0x48200800 must be 4096-byte aligned"),
        (
            "initrd = 0x48200000",
            "initrd = 0x481ff000",
            "linux: initrd 0x481ff000 is within the 2 MiB after dtb 0x48000000 that the device tree may take",
        ),
    ]);
}

#[test]
fn the_boot_manifest_carries_the_gic_frames_the_vmm_emulates() {
    let devices = |toml: &str| {
        let m = vmsys::boot_manifest::manifest(&parse(toml).vms[0]).unwrap();
        m.devices.iter().map(|d| (d.kind.get(), d.base.get(), d.size.get())).collect::<Vec<_>>()
    };
    use vmm_abi::manifest::{DEV_GICV2_DIST, DEV_GICV3_DIST, DEV_GICV3_REDIST, DEV_PL011};
    // GICv2: the distributor only (the CPU interface is the hardware's).
    assert_eq!(devices(VIRT), [(DEV_PL011, 0x900_0000, 0x1000), (DEV_GICV2_DIST, 0x800_0000, 0x1000)]);
    // The UART's interrupt goes with it.
    let m = vmsys::boot_manifest::manifest(&parse(VIRT).vms[0]).unwrap();
    assert_eq!(m.devices.iter().map(|d| d.irq.get()).collect::<Vec<_>>(), [33, 0]);
    let v3 = edit(&edit(VIRT, "version = 2", "version = 3"), "cpu = 0x08010000 ", "redist = 0x080a0000");
    assert_eq!(
        devices(&v3),
        [
            (DEV_PL011, 0x900_0000, 0x1000),
            (DEV_GICV3_DIST, 0x800_0000, 0x1_0000),
            (DEV_GICV3_REDIST, 0x80a_0000, 0x4_0000)
        ]
    );
}

#[test]
fn the_boot_manifest_tells_the_vmm_where_the_images_go() {
    use vmm_abi::manifest::{VM_INTERNAL, VM_LINUX};
    let d = parse(VIRT);
    let m = vmsys::boot_manifest::manifest(&d.vms[0]).unwrap();
    assert_eq!(m.vm_flags, VM_INTERNAL | VM_LINUX);
    assert_eq!((m.entry, m.dtb, m.initrd), (0x4020_0000, 0x4800_0000, 0x4820_0000));
    // And it survives the wire.
    let bytes = vmsys::boot_manifest::encode(&m).unwrap();
    assert_eq!(vmm_abi::manifest::Manifest::parse(&bytes).unwrap(), m);
    // A VM that is not Linux has none.
    let mut vm = d.vms[0].clone();
    vm.linux = None;
    let m = vmsys::boot_manifest::manifest(&vm).unwrap();
    assert_eq!((m.vm_flags, m.dtb, m.initrd), (VM_INTERNAL, 0, 0));
}

#[test]
fn the_fdt_command_adds_words_to_the_command_line_and_nothing_else() {
    let dir = std::env::temp_dir().join(format!("vmsys-fdt-append-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let initrd = dir.join("initramfs.cpio");
    std::fs::write(&initrd, vec![0u8; 4096]).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fdt_of = |extra: &[&str], out: &str| {
        let out = dir.join(out);
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_vmsys"))
            .current_dir(&root)
            .args(["fdt", "--system", "linux/virt.toml", "--vm", "linux", "--initrd"])
            .arg(&initrd)
            .args(extra)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        std::fs::read(out).unwrap()
    };
    let plain = fdt_of(&[], "plain.dtb");
    let bench = fdt_of(&["--append", "bench=1"], "bench.dtb");
    let bootargs = |blob: &[u8]| {
        let t = fdt::Fdt::new(blob).unwrap();
        let v = prop(&t, "/chosen", "bootargs");
        String::from_utf8(v.strip_suffix(&[0]).unwrap().to_vec()).unwrap()
    };
    assert_eq!(bootargs(&plain), "console=ttyAMA0 shell=1");
    assert_eq!(bootargs(&bench), "console=ttyAMA0 shell=1 bench=1");
    assert_eq!(plain, tree(VIRT, 4096), "without --append, the description's tree");
    std::fs::remove_dir_all(&dir).unwrap();
}
