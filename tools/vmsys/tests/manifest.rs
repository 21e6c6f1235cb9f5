//! The boot manifests `vmsys manifest` writes read back through the core's
//! own decoder (`Manifest::parse`, which the VMM runs at initialisation:
//! version and checksum first) as exactly what the description says.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{parse, TOML, XML};
use vmm::caps::{Slot, SlotRange};
use vmm::config::VmmConfig;
use vmm_abi::manifest::{Manifest, ManifestError, CLIENT_PRIVILEGED, DEV_PL011, SLOT_GMEM, SLOT_LOCKABLE, VM_INTERNAL};
use vmsys::boot_manifest;

/// (id, flags, gpa, size, source, file) of each slot record.
fn slots(m: &Manifest) -> Vec<(u32, u32, u64, u64, u64, u32)> {
    m.slots
        .iter()
        .map(|s| (s.id.get(), s.flags.get(), s.gpa.get(), s.size.get(), s.source.get(), s.file.get()))
        .collect()
}

#[test]
fn each_vms_manifest_round_trips_through_the_cores_decoder() {
    let (desc, _) = parse(TOML, XML);
    for vm in &desc.vms {
        let m = boot_manifest::manifest(vm).unwrap();
        let bytes = boot_manifest::encode(&m).unwrap();
        assert_eq!(Manifest::parse(&bytes), Ok(m.clone()), "{}", vm.name);
        // The VMM can configure itself from it.
        let config =
            VmmConfig::from_manifest(&m, SlotRange { base: Slot(1 << 20), len: 1 << 20 }, Slot(1 << 40)).unwrap();
        assert!(config.validate().is_ok());
    }
}

#[test]
fn the_manifest_says_what_the_description_says() {
    let (desc, _) = parse(TOML, XML);
    let vm0 = boot_manifest::manifest(&desc.vms[0]).unwrap();
    assert_eq!((vm0.vm_flags, vm0.vcpus, vm0.entry), (VM_INTERNAL, 1, 0x4000_0000));
    assert_eq!((vm0.client_channel, vm0.client_flags, vm0.memlock_pages), (0, 0, 0));
    let vm1 = boot_manifest::manifest(&desc.vms[1]).unwrap();
    assert_eq!((vm1.vm_flags, vm1.vcpus, vm1.entry), (0, 2, 0x4000_0000));
    assert_eq!((vm1.client_channel, vm1.client_flags, vm1.memlock_pages), (0, 0, 256));
    let ram: Vec<(u64, u64, u64)> = vm1.ram.iter().map(|r| (r.vmm_vaddr.get(), r.size.get(), r.gpa.get())).collect();
    assert_eq!(ram, [(0x2000_0000, 0x20_0000, 0x4000_0000)]);
    let files: Vec<(u64, u64)> = vm1.files.iter().map(|f| (f.size.get(), f.gpa.get())).collect();
    assert_eq!(files, [(0x1_0000, 0x5000_0000)]);
    // RAM slots point into the VMM's view of RAM; the private slot into its
    // file.
    assert_eq!(
        slots(&vm1),
        [
            (0, SLOT_LOCKABLE, 0x4000_0000, 0x10_0000, 0x2000_0000, 0),
            (2, 0, 0x4010_0000, 0x10_0000, 0x2010_0000, 0),
            (1, SLOT_GMEM, 0x5000_0000, 0x1_0000, 0, 0),
        ]
    );
    let devs: Vec<(u32, u64, u64)> = vm1.devices.iter().map(|d| (d.kind.get(), d.base.get(), d.size.get())).collect();
    assert_eq!(devs, [(DEV_PL011, 0x900_0000, 0x1000)]);
    let privileged = common::edit(TOML, "memlock_pages = 256", "privileged = true");
    let (desc, _) = parse(&privileged, XML);
    let vm1 = boot_manifest::manifest(&desc.vms[1]).unwrap();
    assert_eq!((vm1.client_flags, vm1.memlock_pages), (CLIENT_PRIVILEGED, 0));
}

/// A folder of its own under the system's temporary folder.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmsys-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_command_writes_manifests_the_vmm_verifies() {
    let dir = scratch("manifest");
    std::fs::write(dir.join("system.toml"), TOML).unwrap();
    std::fs::write(dir.join("system.xml"), XML).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vmsys"))
        .args(["manifest", "--system"])
        .arg(dir.join("system.toml"))
        .arg("--out")
        .arg(dir.join("manifests"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (desc, _) = parse(TOML, XML);
    for vm in &desc.vms {
        let bytes = std::fs::read(dir.join("manifests").join(format!("{}.manifest", vm.vmm))).unwrap();
        assert_eq!(Manifest::parse(&bytes), Ok(boot_manifest::manifest(vm).unwrap()));
        // The VMM checks the version before anything else, then the
        // checksum over every byte.
        let mut b = bytes.clone();
        b[4] = vmm_abi::manifest::VERSION as u8 + 1;
        assert_eq!(Manifest::parse(&b), Err(ManifestError::BadVersion));
        let mut b = bytes.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(Manifest::parse(&b), Err(ManifestError::BadChecksum));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_manifest_for_a_system_that_does_not_check() {
    let dir = scratch("refused");
    std::fs::write(dir.join("system.toml"), common::edit(TOML, "vcpus = 2", "vcpus = 3")).unwrap();
    std::fs::write(dir.join("system.xml"), XML).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vmsys"))
        .args(["manifest", "--system"])
        .arg(dir.join("system.toml"))
        .arg("--out")
        .arg(dir.join("manifests"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "system.xml:22: vm1's vCPU ids in system.xml are 0, 1; the description's vcpus = 3 needs exactly 0, 1, 2"
        ),
        "{stderr}"
    );
    assert!(!dir.join("manifests").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
