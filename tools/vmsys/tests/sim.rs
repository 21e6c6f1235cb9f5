//! The simulator: its file format, its report, and the guest's exits on
//! the fixture system (vm1 has two vCPUs and a lockable slot).

mod common;

use common::{edit, parse, TOML, XML};
use vmsys::inputs::Inputs;
use vmsys::sim::{self, Tally};

fn inputs(toml: &str, xml: &str) -> Inputs {
    let (desc, sdf) = parse(toml, xml);
    Inputs { desc, sdf }
}

/// Runs `scenario` (named `t.sim`) on the fixture: the tally and the report.
fn sim(scenario: &str) -> (Tally, String) {
    sim_on(&inputs(TOML, XML), scenario)
}

fn sim_on(i: &Inputs, scenario: &str) -> (Tally, String) {
    let mut out = Vec::new();
    let tally = sim::run(i, &[("t.sim".into(), scenario.into())], &mut out).unwrap_or_else(|d| panic!("{d:#?}"));
    (tally, String::from_utf8(out).unwrap())
}

/// The lines of a report after the boot lines.
fn steps(report: &str) -> Vec<&str> {
    report.lines().filter(|l| l.starts_with("t.sim:") && !l.starts_with("t.sim: ")).collect()
}

/// vm1 created by vmctl with both vCPUs, its RAM and private memory, and
/// vCPU 0 running at 0x4000_0000.
const SETUP: &str = "\
vmctl -> vmm1: create_vm => vm 1
vmctl -> vmm1: create_vcpu vm=1 vcpu=0 => ok
vmctl -> vmm1: create_vcpu vm=1 vcpu=1 => ok
vmctl -> vmm1: set_region vm=1 slot=0 gpa=0x4000_0000 size=0x10_0000 uaddr=0x2000_0000 => ok
vmctl -> vmm1: set_region vm=1 slot=2 flags=readonly gpa=0x4010_0000 size=0x10_0000 uaddr=0x2010_0000 => ok
vmctl -> vmm1: create_guest_memfd vm=1 size=0x1_0000 => fd 1
vmctl -> vmm1: set_region vm=1 slot=1 flags=guest_memfd gpa=0x5000_0000 size=0x1_0000 fd=1 => ok
vmctl -> vmm1: run_vcpu vm=1 vcpu=0 entry=0x4000_0000 => ok
";

#[test]
fn every_bad_line_is_named_and_nothing_runs() {
    let scenario = "\
vm0: hvc vcpu=0 x0=0x84000000 => resume x0=0x10001
vmctl -> vmm1: create_vm
vmctl vmm1: create_vm => vm 1
vmctl -> vmm1: frobnicate vm=1 => ok
vmctl -> vmm1: destroy_vm vm=1 vm=2 => ok
vmctl -> vmm1: destroy_vm vm=1 colour=red => ok
vmctl -> vmm1: destroy_vm vm=1 => EWHAT
vm0: hvc vcpu=0 x9=1 => resume
vm0: load vcpu=0 gpa=0x4000_0000 size=3 reg=x0 => resume
vm0: console => hello
vm0: print vcpu=0 \"unterminated => resume
vmctl -> vmm1: create_guest_memfd vm=1 size=0x1000 => vm 1
";
    let mut out = Vec::new();
    let errors = sim::run(&inputs(TOML, XML), &[("t.sim".into(), scenario.into())], &mut out).unwrap_err();
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "t.sim:2: no `=>` before the expected result",
            "t.sim:3: a step starts with `CLIENT -> VMM:` or `VM:`",
            "t.sim:4: unknown request `frobnicate`",
            "t.sim:5: `vm` is given twice",
            "t.sim:6: unknown argument `colour=`",
            "t.sim:7: `EWHAT` is not a result: ok, ok N, no-channel or an errno (EINVAL, ...)",
            "t.sim:8: unknown argument `x9=`",
            "t.sim:9: `size=3` must be 1, 2, 4 or 8",
            "t.sim:10: `console` expects one quoted string",
            "t.sim:11: a quoted string is not closed",
            "t.sim:12: expected a result: ok, fd N, no-channel or an errno (EINVAL, ...)",
        ]
    );
    assert!(out.is_empty(), "nothing runs");
}

#[test]
fn a_step_that_does_not_go_as_expected_fails_and_says_what_happened() {
    let (tally, report) = sim("vmctl -> vmm1: create_vm => vm 2\nvmctl -> vmm1: destroy_vm vm=1 => ok\n");
    assert_eq!(tally, Tally { passed: 1, failed: 1 });
    assert_eq!(
        report,
        "t.sim: booting the system of system.toml\n\
         \x20 vmm0: built internal VM vm0 (core VM 1) from its manifest, vCPU 0 started at 0x40000000\n\
         \x20 vmm1: serves vmctl on channel 0, no VM yet\n\
         t.sim:1: FAIL vmctl -> vmm1: create_vm => vm 2\n\
         \x20   got: vm 1\n\
         t.sim:2: ok   vmctl -> vmm1: destroy_vm vm=1 => ok\n\
         1 passed, 1 failed\n"
    );
}

#[test]
fn authority_is_the_channel() {
    // vmctl has no channel to vmm0; vmm0 is given one to vmm1 that vmm1 was
    // not configured to serve.
    let xml = edit(
        XML,
        "    </channel>\n",
        "    </channel>\n    <channel>\n        <end pd=\"vmm0\" id=\"1\" pp=\"true\" />\n        <end pd=\"vmm1\" id=\"1\" />\n    </channel>\n",
    );
    let (tally, report) = sim_on(
        &inputs(TOML, &xml),
        "vmctl -> vmm0: create_vm => no-channel\nvmm0 -> vmm1: create_vm => EPERM\nvmctl -> vmm1: destroy_vm vm=1 => ENOENT\n",
    );
    assert_eq!(tally.failed, 0, "{report}");
}

#[test]
fn the_guests_exits() {
    let scenario = format!(
        "{SETUP}\
vm1: smc vcpu=0 x0=0x8400_0000 => resume x0=0x1_0001 pc=0x4000_0004
vm1: wfi vcpu=0 => resume pc=0x4000_0008
vm1: hvc vcpu=0 x0=0x8400_00ff => resume x0=0xffff_ffff_ffff_ffff pc=0x4000_000c
vm1: fetch vcpu=0 gpa=0x4000_1000 => resume
vm1: load vcpu=0 gpa=0x4010_0000 size=4 reg=x5 => resume x5=0
vm1: hvc vcpu=1 x0=0 => not-running
vm1: hvc vcpu=0 x0=0xc400_0003 x1=1 x2=0x4000_2000 x3=7 => resume x0=0
vm1: hvc vcpu=1 x0=0x8400_0002 => park
vm1: hvc vcpu=1 x0=0 => not-running
vm1: load vcpu=0 gpa=0x0900_0018 size=4 reg=x1 => resume x1=0x90
vm1: store vcpu=0 gpa=0x4010_0000 size=4 reg=x5 value=1 => stop read-only-write gpa=0x4010_0000 notify=vmctl
vm1: hvc vcpu=0 x0=0 => not-running
vmctl -> vmm1: destroy_vm vm=1 => ok
vmctl -> vmm1: close_guest_memfd fd=1 => ok
"
    );
    let (tally, report) = sim(&scenario);
    assert_eq!(tally.failed, 0, "{report}");
}

#[test]
fn private_memory_is_lost_with_its_file() {
    let scenario = format!(
        "{SETUP}\
vm1: store vcpu=0 gpa=0x5000_0000 size=8 reg=x0 value=0x1234 => resume
vmctl -> vmm1: close_guest_memfd fd=1 => ok
vm1: load vcpu=0 gpa=0x5000_0000 size=8 reg=x0 => stop no-backing gpa=0x5000_0000 notify=vmctl
"
    );
    let (tally, report) = sim(&scenario);
    assert_eq!(tally.failed, 0, "{report}");
}

#[test]
fn console_output_is_compared_and_consumed() {
    let scenario = format!(
        "{SETUP}\
vm1: print vcpu=0 \"a\\tb\\\\\\\"\\x01\\n\" => resume
vm1: console => \"a\\tb\\\\\\\"\\x01\\n\"
vm1: console => \"\"
vm1: print vcpu=0 \"x\" => resume
vm1: console => \"y\"
"
    );
    let (tally, report) = sim(&scenario);
    assert_eq!(tally, Tally { passed: 12, failed: 1 }, "{report}");
    assert!(report.contains("t.sim:13: FAIL vm1: console => \"y\"\n    got: \"x\"\n"), "{report}");
}

#[test]
fn locking_charges_the_clients_budget() {
    let scenario = format!(
        "{SETUP}\
vmctl -> vmm1: lock vm=1 slot=0 flags=read|write => ok
vmctl -> vmm1: set_region vm=1 slot=0 size=0 => EBUSY
vmctl -> vmm1: unlock vm=1 flags=all => ok
vmctl -> vmm1: unlock vm=1 slot=0 => EINVAL
"
    );
    let (tally, report) = sim(&scenario);
    assert_eq!(tally.failed, 0, "{report}");
    // The fixture's budget of 256 pages is exactly slot 0.
    let tight = edit(TOML, "memlock_pages = 256", "memlock_pages = 255");
    let (tally, report) =
        sim_on(&inputs(&tight, XML), &format!("{SETUP}vmctl -> vmm1: lock vm=1 slot=0 flags=read => ENOMEM\n"));
    assert_eq!(tally.failed, 0, "{report}");
    assert_eq!(steps(&report).len(), 9);
}
