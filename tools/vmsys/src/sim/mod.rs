//! `sim`: runs scenario files (client requests and guest exits, one a
//! line, each with its expected result) against the core on the seL4
//! model, prints each step, and ends with `N passed, M failed`.
//!
//! Each file runs on a freshly booted system ([`system::System::boot`]).
//! After every step the invariants of [`invariants`] are checked too; a
//! step whose result matches but that breaks one fails.

pub mod guest;
pub mod invariants;
pub mod outcome;
pub mod script;
pub mod system;

use std::io::Write;

use vmm::arch::aarch64::regs::TcbReg;

use crate::diag::Diag;
use crate::inputs::Inputs;
use crate::num::hex;
use script::{quote, Action, Expect, Step, Who};
use system::{Delivery, System};

/// Steps passed and failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Steps whose result matched.
    pub passed: u32,
    /// Steps whose result did not, or that broke an invariant.
    pub failed: u32,
}

/// Parses every scenario first (a file that does not parse runs nothing),
/// then runs each on a fresh system, writing one line per step to `out`.
pub fn run(inputs: &Inputs, files: &[(String, String)], out: &mut (dyn Write + Send)) -> Result<Tally, Vec<Diag>> {
    crate::world::on_big_stack(|| run_here(inputs, files, out)).map_err(|e| vec![Diag::file(&inputs.desc.file, e)])?
}

fn run_here(inputs: &Inputs, files: &[(String, String)], out: &mut (dyn Write + Send)) -> Result<Tally, Vec<Diag>> {
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in files {
        match script::parse(text) {
            Ok(steps) => parsed.push((name, steps)),
            Err(e) => errors.extend(e.into_iter().map(|(line, m)| Diag::at(name, line, m))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut tally = Tally::default();
    let io = |e: std::io::Error| vec![Diag::file("<output>", format!("cannot write: {e}"))];
    for (name, steps) in parsed {
        let (mut sys, log) = System::boot(inputs).map_err(|e| vec![Diag::file(name, format!("cannot boot: {e}"))])?;
        writeln!(out, "{name}: booting the system of {}", inputs.desc.file).map_err(io)?;
        for l in log {
            writeln!(out, "  {l}").map_err(io)?;
        }
        for step in &steps {
            let (ok, got) = match execute(&mut sys, step) {
                Ok(got) => (got.is_none(), got),
                Err(e) => (false, Some(e)),
            };
            let broken = sys.instances.iter().find_map(invariants::broken);
            let ok = ok && broken.is_none();
            if ok {
                tally.passed += 1;
                writeln!(out, "{name}:{}: ok   {}", step.line, step.text).map_err(io)?;
            } else {
                tally.failed += 1;
                writeln!(out, "{name}:{}: FAIL {}", step.line, step.text).map_err(io)?;
                if let Some(got) = got {
                    writeln!(out, "    got: {got}").map_err(io)?;
                }
                if let Some(b) = broken {
                    writeln!(out, "    invariant broken: {b}").map_err(io)?;
                }
            }
        }
    }
    writeln!(out, "{} passed, {} failed", tally.passed, tally.failed).map_err(io)?;
    Ok(tally)
}

/// Runs one step: `None` if it went as expected, else what happened.
fn execute(sys: &mut System, step: &Step) -> Result<Option<String>, String> {
    match (&step.who, &step.action, &step.expect) {
        (Who::Client { pd, vmm }, Action::Request { sent, words, result_word }, expect) => {
            let got = match sys.request(pd, vmm, sent, *words)? {
                Delivery::NoChannel => "no-channel".to_string(),
                Delivery::Answer(r) => outcome::request(r, result_word),
            };
            let want = match expect {
                Expect::NoChannel => "no-channel".to_string(),
                Expect::Errno(e) => format!("{e:?}"),
                Expect::Ok(w, v) => outcome::request(Ok(*v), w),
                other => return Err(format!("a request cannot expect {other:?}")),
            };
            Ok((got != want).then_some(got))
        }
        (Who::Guest { vm }, Action::Console, Expect::Console(want)) => {
            let inst = sys.by_vm(vm).ok_or(format!("the description has no VM {vm}"))?;
            let got = std::mem::take(&mut inst.console);
            Ok((&got != want).then(|| quote(&got)))
        }
        (Who::Guest { vm }, Action::Guest { vm: id, vcpu, op }, expect) => {
            let vmm_name =
                sys.by_vm(vm).map(|i| i.vmm_name.clone()).ok_or(format!("the description has no VM {vm}"))?;
            let inst = sys.by_vm(vm).ok_or(format!("the description has no VM {vm}"))?;
            let action = guest::run(inst, *id, *vcpu, op)?;
            let Some(action) = action else {
                return Ok((*expect != Expect::NotRunning).then(|| "not-running".to_string()));
            };
            let got = outcome::exit(&action, |c| sys.caller_on(&vmm_name, c));
            let Expect::Exit(want, regs) = expect else { return Ok(Some(got)) };
            if got != *want {
                return Ok(Some(got));
            }
            // Registers, read from the vCPU after the step.
            let inst = sys.by_vm(vm).ok_or(format!("the description has no VM {vm}"))?;
            let tcb = guest::resolve(&inst.vmm, *id, *vcpu).map(|(_, t)| t);
            let mut wrong = Vec::new();
            for (r, v) in regs {
                let actual = tcb.and_then(|t| inst.vmm.kernel().tcb_reg(t.slot(), *r)).unwrap_or(0);
                if actual != *v {
                    wrong.push(format!("{}={}", reg_name(*r), hex(actual)));
                }
            }
            Ok((!wrong.is_empty()).then(|| format!("{got} {}", wrong.join(" "))))
        }
        _ => Err("this step mixes a client and a guest".into()),
    }
}

fn reg_name(r: TcbReg) -> String {
    match r {
        TcbReg::X(n) => format!("x{n}"),
        TcbReg::Sp => "sp".into(),
        TcbReg::Pc => "pc".into(),
        TcbReg::Spsr => "spsr".into(),
    }
}
