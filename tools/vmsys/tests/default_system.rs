//! The repository's own system: system.toml checks against system.xml and
//! the board table, and the shipped scenarios pass. This is what keeps the
//! three from drifting apart (`cargo test --workspace` runs it in CI).

use std::path::{Path, PathBuf};
use std::process::Command;

use vmsys::inputs;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_default_system_checks() {
    let i = inputs::load(&root().join("system.toml"), None).unwrap_or_else(|d| panic!("{d:#?}"));
    let diags = vmsys::check::check(&i.desc, &i.sdf);
    assert!(diags.is_empty(), "{}", diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
}

/// `NAME := value` lines of a board table.
fn board(name: &str) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(root().join("boards").join(format!("{name}.mk"))).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(":="))
        .filter_map(|(k, v)| vmsys::num::parse(v.trim()).map(|v| (k.trim().to_string(), v)))
        .collect()
}

#[test]
fn the_default_system_matches_its_board_table() {
    let table = board("qemu_virt_aarch64");
    let get = |k: &str| table.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap_or_else(|| panic!("no {k}"));
    let i = inputs::load(&root().join("system.toml"), None).unwrap();
    for vm in &i.desc.vms {
        assert_eq!(vm.entry, get("GUEST_RAM_BASE"), "{} entry", vm.name);
        assert_eq!((vm.ram[0].gpa, vm.ram[0].size), (get("GUEST_RAM_BASE"), get("GUEST_RAM_SIZE")), "{} ram", vm.name);
        let p = &vm.private[0];
        assert_eq!((p.gpa, p.size), (get("GUEST_PRIVATE_BASE"), get("GUEST_PRIVATE_SIZE")), "{} private", vm.name);
        assert_eq!(vm.devices[0].base, get("GUEST_UART_BASE"), "{} pl011", vm.name);
        let unmapped = get("GUEST_UNMAPPED_ADDR");
        assert!(vm.memslots.iter().all(|s| unmapped < s.gpa || unmapped >= s.gpa + s.size), "{}", vm.name);
    }
}

/// Every `scenarios/*.sim`, sorted.
fn scenarios() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sim"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[test]
fn the_shipped_scenarios_pass() {
    let i = inputs::load(&root().join("system.toml"), None).unwrap();
    let files: Vec<(String, String)> =
        scenarios().iter().map(|p| (p.display().to_string(), std::fs::read_to_string(p).unwrap())).collect();
    let mut out = Vec::new();
    let tally = vmsys::sim::run(&i, &files, &mut out).unwrap_or_else(|d| panic!("{d:#?}"));
    let out = String::from_utf8(out).unwrap();
    assert_eq!(tally.failed, 0, "{out}");
    assert!(tally.passed >= 60, "{out}");
    assert_eq!(out.lines().last(), Some(format!("{} passed, 0 failed", tally.passed).as_str()));
}

#[test]
fn the_commands_exit_0_on_the_default_system() {
    let run =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_vmsys")).current_dir(root()).args(args).output().unwrap();
    let out = run(&["check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "system.toml and system.xml: 2 VMs, no violations\n");
    // The command line the `run` script falls back to without an SDK.
    let out = run(&["sim", "--system", "system.toml", "scenarios/default.sim"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{stdout}");
}
