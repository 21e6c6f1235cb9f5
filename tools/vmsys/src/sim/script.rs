//! The scenario file: one step a line, `WHO: ACTION => EXPECTED`.
//!
//! ```text
//! # a client's request, on its channel to a VMM
//! vmctl -> vmm1: create_vm => vm 1
//! vmctl -> vmm1: lock vm=1 slot=0 flags=read|write => EBUSY
//! # what a VM's guest does (vCPU 0 of the Microkit VM vm1)
//! vm1: hvc vcpu=0 x0=0x84000008 => stop system-off notify=vmctl
//! vm1: print vcpu=0 "hello\n" => resume
//! vm1: console => "hello\n"
//! ```
//!
//! Numbers are decimal or `0x` hex, `_` allowed. `#` starts a comment
//! outside a quoted string. Every argument is `key=value`; unknown or
//! repeated keys are errors, so a typo cannot silently change a step.

use std::collections::BTreeMap;

use vmm::arch::aarch64::regs::{Reg, TcbReg};
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, LOCK_READ, LOCK_WRITE, LOG_DIRTY_PAGES, READONLY, UNLOCK_ALL};
use vmm_abi::protocol::{Request, CAP_MEM_TAGGING};
use vmm_abi::{Errno, GmemHandle, VcpuId, VmId};

use crate::num;

/// Who acts in a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// A PD calling a VMM.
    Client {
        /// The calling PD.
        pd: String,
        /// The VMM PD called.
        vmm: String,
    },
    /// The guest of a Microkit VM.
    Guest {
        /// The `<virtual_machine>` name.
        vm: String,
    },
}

/// A request as sent: a known one, or raw bytes under any label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Encoded by the core's `Request::encode`.
    Known(Request),
    /// This label and payload, as they are.
    Raw {
        /// The message label.
        label: u64,
        /// The payload bytes.
        payload: Vec<u8>,
    },
}

/// What a guest does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestOp {
    /// `hvc #0` with these registers set first.
    Hvc(Vec<(u8, u64)>),
    /// `smc #0` with these registers set first.
    Smc(Vec<(u8, u64)>),
    /// A load of `size` bytes at `gpa` into register `reg` (31: xzr).
    Load {
        /// Address.
        gpa: u64,
        /// 1, 2, 4 or 8.
        size: u8,
        /// Target register.
        reg: u8,
    },
    /// A store of `value` from register `reg`.
    Store {
        /// Address.
        gpa: u64,
        /// 1, 2, 4 or 8.
        size: u8,
        /// Source register.
        reg: u8,
        /// What the register holds.
        value: u64,
    },
    /// An instruction fetch at `gpa`.
    Fetch {
        /// Address.
        gpa: u64,
    },
    /// `wfi`.
    Wfi,
    /// Prints bytes on the VM's PL011 as a driver does: for each byte, poll
    /// the flag register, then store to the data register.
    Print(Vec<u8>),
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A protected call; `words`, if given, sends only that many 64-bit
    /// words of the payload.
    Request {
        /// The request.
        sent: Sent,
        /// Payload words to send, if not all.
        words: Option<usize>,
        /// How a successful result is written (`ok`, `vm`, `fd`, `value`).
        result_word: &'static str,
    },
    /// A guest instruction on vCPU `vcpu` of the VM (the core's VM `vm`
    /// if given, else the one VM of that VMM with this vCPU).
    Guest {
        /// The core's VM id, if the step names it.
        vm: Option<VmId>,
        /// The vCPU.
        vcpu: u32,
        /// The instruction.
        op: GuestOp,
    },
    /// Compare the VM's console output since the last comparison.
    Console,
}

/// What a step expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Success with this value, written with this word.
    Ok(&'static str, u64),
    /// This errno.
    Errno(Errno),
    /// The PD has no protected-call channel to the VMM: nothing is sent.
    NoChannel,
    /// An exit outcome, in canonical text (`resume`, `park`, `stop ...`),
    /// and register values to compare after it.
    Exit(String, Vec<(TcbReg, u64)>),
    /// The vCPU is not running: the guest cannot act.
    NotRunning,
    /// Console bytes.
    Console(Vec<u8>),
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Its line.
    pub line: u32,
    /// The line as written, trimmed, without its comment.
    pub text: String,
    /// Who acts.
    pub who: Who,
    /// What it does.
    pub action: Action,
    /// What it expects.
    pub expect: Expect,
}

/// Reads a scenario; any line that does not parse is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Step>, Vec<(u32, String)>> {
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some((text, who, action, expect))) => steps.push(Step { line, text, who, action, expect }),
            Err(e) => errors.push((line, e)),
        }
    }
    if errors.is_empty() {
        Ok(steps)
    } else {
        Err(errors)
    }
}

type Parsed = (String, Who, Action, Expect);

fn parse_line(raw: &str) -> Result<Option<Parsed>, String> {
    let tokens = tokenize(raw)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let text = tokens.iter().map(Token::show).collect::<Vec<_>>().join(" ");
    let arrow =
        tokens.iter().position(|t| *t == Token::Word("=>".into())).ok_or("no `=>` before the expected result")?;
    let (lhs, rhs) = tokens.split_at(arrow);
    let rhs = rhs.get(1..).unwrap_or_default();
    let colon = lhs.iter().position(|t| matches!(t, Token::Word(w) if w.ends_with(':')));
    let Some(colon) = colon else { return Err("a step starts with `CLIENT -> VMM:` or `VM:`".into()) };
    let (who_tokens, action_tokens) = lhs.split_at(colon + 1);
    let who_words: Vec<&str> = who_tokens.iter().filter_map(Token::word).collect();
    let who = match who_words.as_slice() {
        [vm] => Who::Guest { vm: vm.trim_end_matches(':').to_string() },
        [pd, "->", vmm] => Who::Client { pd: pd.to_string(), vmm: vmm.trim_end_matches(':').to_string() },
        _ => return Err("a step starts with `CLIENT -> VMM:` or `VM:`".into()),
    };
    let (action, expect) = match &who {
        Who::Client { .. } => {
            let (sent, words, result_word) = request(action_tokens)?;
            let expect = request_expect(rhs, result_word)?;
            (Action::Request { sent, words, result_word }, expect)
        }
        Who::Guest { .. } => match action_tokens {
            [Token::Word(w)] if w == "console" => match rhs {
                [Token::Quoted(bytes)] => (Action::Console, Expect::Console(bytes.clone())),
                _ => return Err("`console` expects one quoted string".into()),
            },
            _ => (guest(action_tokens)?, exit_expect(rhs)?),
        },
    };
    Ok(Some((text, who, action, expect)))
}

/// A word, or a quoted string with its escapes resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(Vec<u8>),
}

impl Token {
    fn word(&self) -> Option<&str> {
        match self {
            Token::Word(w) => Some(w),
            Token::Quoted(_) => None,
        }
    }

    fn show(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Quoted(b) => quote(b),
        }
    }
}

/// Bytes as a quoted string, escaped as the scenario file writes them.
pub fn quote(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for b in bytes {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(char::from(*b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '#' {
            break;
        } else if c == '"' {
            chars.next();
            let mut bytes = Vec::new();
            loop {
                match chars.next() {
                    None => return Err("a quoted string is not closed".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => bytes.push(b'\n'),
                        Some('t') => bytes.push(b'\t'),
                        Some('\\') => bytes.push(b'\\'),
                        Some('"') => bytes.push(b'"'),
                        Some('x') => {
                            let hex: String = chars.by_ref().take(2).collect();
                            let b = u8::from_str_radix(&hex, 16).map_err(|_| format!("bad escape \\x{hex}"))?;
                            bytes.push(b);
                        }
                        other => return Err(format!("unknown escape \\{}", other.map_or(String::new(), String::from))),
                    },
                    Some(c) => {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            out.push(Token::Quoted(bytes));
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' || c == '#' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push(Token::Word(w));
        }
    }
    Ok(out)
}

/// `key=value` arguments; each must be used exactly once.
struct Args {
    map: BTreeMap<String, String>,
}

impl Args {
    fn new(tokens: &[Token]) -> Result<Args, String> {
        let mut map = BTreeMap::new();
        for t in tokens {
            let Token::Word(w) = t else { return Err("a quoted string is not an argument here".into()) };
            let Some((k, v)) = w.split_once('=') else { return Err(format!("`{w}` is not key=value")) };
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(format!("`{k}` is given twice"));
            }
        }
        Ok(Args { map })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.map.remove(key)
    }

    fn num(&mut self, key: &str) -> Result<u64, String> {
        let v = self.take(key).ok_or(format!("`{key}=` is missing"))?;
        num::parse(&v).ok_or(format!("`{key}={v}` is not a number"))
    }

    fn num_or(&mut self, key: &str, default: u64) -> Result<u64, String> {
        match self.map.contains_key(key) {
            true => self.num(key),
            false => Ok(default),
        }
    }

    fn u32(&mut self, key: &str) -> Result<u32, String> {
        u32::try_from(self.num(key)?).map_err(|_| format!("`{key}=` does not fit in 32 bits"))
    }

    fn u32_or(&mut self, key: &str, default: u32) -> Result<u32, String> {
        u32::try_from(self.num_or(key, u64::from(default))?).map_err(|_| format!("`{key}=` does not fit in 32 bits"))
    }

    fn vm(&mut self) -> Result<VmId, String> {
        self.u32("vm").map(VmId)
    }

    /// Flags as names joined by `|`, or a number.
    fn flags(&mut self, key: &str, names: &[(&str, u64)]) -> Result<u64, String> {
        let Some(v) = self.take(key) else { return Ok(0) };
        if let Some(n) = num::parse(&v) {
            return Ok(n);
        }
        let mut flags = 0;
        for part in v.split('|') {
            let bit = names.iter().find(|(n, _)| *n == part).map(|(_, b)| *b);
            flags |= bit.ok_or_else(|| {
                let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                format!("unknown flag `{part}` in `{key}=` (known: {})", known.join(", "))
            })?;
        }
        Ok(flags)
    }

    fn done(self) -> Result<(), String> {
        match self.map.keys().next() {
            Some(k) => Err(format!("unknown argument `{k}=`")),
            None => Ok(()),
        }
    }
}

/// `x0`..`x30`, `xzr`, `sp`, `pc`, `spsr`, or a wire register number.
fn register(name: &str) -> Option<u32> {
    match name {
        "sp" => return Some(31),
        "pc" => return Some(32),
        "spsr" => return Some(33),
        _ => {}
    }
    if let Some(n) = name.strip_prefix('x').and_then(|n| n.parse::<u32>().ok()).filter(|n| *n <= 30) {
        return Some(n);
    }
    num::parse(name).and_then(|n| u32::try_from(n).ok())
}

/// A general register `x0`..`x30`, or `xzr` (31).
fn gpr(name: &str) -> Option<u8> {
    if name == "xzr" {
        return Some(31);
    }
    name.strip_prefix('x').and_then(|n| n.parse::<u8>().ok()).filter(|n| *n <= 30)
}

fn request(tokens: &[Token]) -> Result<(Sent, Option<usize>, &'static str), String> {
    let Some((Token::Word(op), rest)) = tokens.split_first() else { return Err("no request named".into()) };
    let mut a = Args::new(rest)?;
    let words = match a.take("words") {
        Some(w) => {
            Some(num::parse(&w).and_then(|n| usize::try_from(n).ok()).ok_or(format!("`words={w}` is not a number"))?)
        }
        None => None,
    };
    let mut word = "ok";
    let req = match op.as_str() {
        "create_vm" => {
            word = "vm";
            Request::CreateVm
        }
        "destroy_vm" => Request::DestroyVm { vm: a.vm()? },
        "create_vcpu" => Request::CreateVcpu { vm: a.vm()?, vcpu: VcpuId(a.u32("vcpu")?) },
        "run_vcpu" => Request::RunVcpu {
            vm: a.vm()?,
            vcpu: VcpuId(a.u32("vcpu")?),
            entry: a.num("entry")?,
            arg: a.num_or("arg", 0)?,
        },
        "stop_vcpu" => Request::StopVcpu { vm: a.vm()?, vcpu: VcpuId(a.u32("vcpu")?) },
        "get_reg" | "set_reg" => {
            let (vm, vcpu) = (a.vm()?, VcpuId(a.u32("vcpu")?));
            let name = a.take("reg").ok_or("`reg=` is missing")?;
            let reg = register(&name).ok_or(format!("`reg={name}` is not a register"))?;
            if op == "get_reg" {
                word = "value";
                Request::GetReg { vm, vcpu, reg }
            } else {
                Request::SetReg { vm, vcpu, reg, value: a.num("value")? }
            }
        }
        "irq_line" => Request::IrqLine { vm: a.vm()?, irq: a.u32("irq")?, level: a.u32("level")? },
        "set_region" => {
            let vm = a.vm()?;
            let names = [
                ("readonly", u64::from(READONLY)),
                ("guest_memfd", u64::from(GUEST_MEMFD)),
                ("log_dirty", u64::from(LOG_DIRTY_PAGES)),
            ];
            let flags = u32::try_from(a.flags("flags", &names)?).map_err(|_| "`flags=` does not fit in 32 bits")?;
            let region = MemoryRegion {
                slot: a.u32("slot")?,
                flags,
                guest_phys_addr: a.num_or("gpa", 0)?,
                memory_size: a.num_or("size", 0)?,
                userspace_addr: a.num_or("uaddr", 0)?,
                guest_memfd: a.u32_or("fd", 0)?,
                guest_memfd_offset: a.num_or("offset", 0)?,
            };
            Request::SetMemoryRegion { vm, region }
        }
        "create_guest_memfd" => {
            word = "fd";
            Request::CreateGuestMemfd { vm: a.vm()?, size: a.num("size")?, flags: a.num_or("flags", 0)? }
        }
        "close_guest_memfd" => Request::CloseGuestMemfd { handle: GmemHandle(a.u32("fd")?) },
        "lock" => {
            let (vm, slot) = (a.vm()?, a.u32("slot")?);
            Request::LockMemslot { vm, slot, flags: a.flags("flags", &[("read", LOCK_READ), ("write", LOCK_WRITE)])? }
        }
        "unlock" => {
            let vm = a.vm()?;
            let slot = a.u32_or("slot", 0)?;
            Request::UnlockMemslot { vm, slot, flags: a.flags("flags", &[("all", UNLOCK_ALL)])? }
        }
        "enable_cap" => {
            let vm = a.vm()?;
            let cap = u32::try_from(a.flags("cap", &[("mem_tagging", u64::from(CAP_MEM_TAGGING))])?)
                .map_err(|_| "`cap=` does not fit in 32 bits")?;
            Request::EnableCap { vm, cap, arg: a.num_or("arg", 0)? }
        }
        "raw" => {
            word = "value";
            let label = a.num("label")?;
            let payload = match a.take("payload") {
                Some(hex) => hex_bytes(&hex)?,
                None => Vec::new(),
            };
            a.done()?;
            return Ok((Sent::Raw { label, payload }, words, word));
        }
        other => return Err(format!("unknown request `{other}`")),
    };
    a.done()?;
    Ok((Sent::Known(req), words, word))
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<char> = s.chars().filter(|c| *c != '_').collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("`payload={s}` has an odd number of hex digits"));
    }
    digits
        .chunks(2)
        .map(|p| {
            let pair: String = p.iter().collect();
            u8::from_str_radix(&pair, 16).map_err(|_| format!("`payload={s}` is not hex"))
        })
        .collect()
}

fn request_expect(rhs: &[Token], word: &'static str) -> Result<Expect, String> {
    let words: Vec<&str> = rhs.iter().filter_map(Token::word).collect();
    if words.len() != rhs.len() {
        return Err("a request's result is not a quoted string".into());
    }
    match words.as_slice() {
        ["ok"] => Ok(Expect::Ok("ok", 0)),
        ["no-channel"] => Ok(Expect::NoChannel),
        [w, n] if *w == word && word != "ok" => {
            Ok(Expect::Ok(word, num::parse(n).ok_or(format!("`{n}` is not a number"))?))
        }
        [e] => match Errno::ALL.iter().find(|x| format!("{x:?}") == *e) {
            Some(e) => Ok(Expect::Errno(*e)),
            None => Err(format!("`{e}` is not a result: ok, {word} N, no-channel or an errno (EINVAL, ...)")),
        },
        _ => Err(format!("expected a result: ok, {word} N, no-channel or an errno (EINVAL, ...)")),
    }
}

fn guest(tokens: &[Token]) -> Result<Action, String> {
    let Some((Token::Word(op), rest)) = tokens.split_first() else { return Err("no guest instruction named".into()) };
    let (quoted, rest): (Vec<&Token>, Vec<&Token>) = rest.iter().partition(|t| matches!(t, Token::Quoted(_)));
    let rest: Vec<Token> = rest.into_iter().cloned().collect();
    let mut a = Args::new(&rest)?;
    let vm = match a.map.contains_key("vm") {
        true => Some(a.vm()?),
        false => None,
    };
    let vcpu = a.u32("vcpu")?;
    let size = |a: &mut Args| -> Result<u8, String> {
        match a.num("size")? {
            n @ (1 | 2 | 4 | 8) => Ok(n as u8),
            n => Err(format!("`size={n}` must be 1, 2, 4 or 8")),
        }
    };
    let reg = |a: &mut Args| -> Result<u8, String> {
        let name = a.take("reg").ok_or("`reg=` is missing")?;
        gpr(&name).ok_or(format!("`reg={name}` is not x0..x30 or xzr"))
    };
    let xregs = |a: &mut Args| -> Result<Vec<(u8, u64)>, String> {
        let keys: Vec<String> = a.map.keys().filter(|k| gpr(k).is_some_and(|r| r <= 7)).cloned().collect();
        keys.into_iter().map(|k| Ok((gpr(&k).unwrap_or(0), a.num(&k)?))).collect()
    };
    let op = match op.as_str() {
        "hvc" => GuestOp::Hvc(xregs(&mut a)?),
        "smc" => GuestOp::Smc(xregs(&mut a)?),
        "load" => GuestOp::Load { gpa: a.num("gpa")?, size: size(&mut a)?, reg: reg(&mut a)? },
        "store" => {
            GuestOp::Store { gpa: a.num("gpa")?, size: size(&mut a)?, reg: reg(&mut a)?, value: a.num("value")? }
        }
        "fetch" => GuestOp::Fetch { gpa: a.num("gpa")? },
        "wfi" => GuestOp::Wfi,
        "print" => match quoted.as_slice() {
            [Token::Quoted(b)] => GuestOp::Print(b.clone()),
            _ => return Err("`print` takes one quoted string".into()),
        },
        other => return Err(format!("unknown guest instruction `{other}` (hvc, smc, load, store, fetch, wfi, print)")),
    };
    if !matches!(op, GuestOp::Print(_)) && !quoted.is_empty() {
        return Err("only `print` takes a quoted string".into());
    }
    a.done()?;
    Ok(Action::Guest { vm, vcpu, op })
}

fn exit_expect(rhs: &[Token]) -> Result<Expect, String> {
    let words: Vec<&str> = rhs.iter().filter_map(Token::word).collect();
    if words.len() != rhs.len() {
        return Err("an exit's result is not a quoted string".into());
    }
    match words.as_slice() {
        ["not-running"] => Ok(Expect::NotRunning),
        ["resume", regs @ ..] => {
            let mut checks = Vec::new();
            for r in regs {
                let (k, v) = r.split_once('=').ok_or(format!("`{r}` is not register=value"))?;
                let reg = register(k).and_then(Reg::from_wire).ok_or(format!("`{k}` is not a register"))?;
                let Reg::Tcb(reg) = reg else { return Err(format!("`{k}` is not a general register")) };
                checks.push((reg, num::parse(v).ok_or(format!("`{v}` is not a number"))?));
            }
            Ok(Expect::Exit("resume".into(), checks))
        }
        ["park"] => Ok(Expect::Exit("park".into(), Vec::new())),
        ["stop", ..] => Ok(Expect::Exit(normalize(&words.join(" ")), Vec::new())),
        _ => Err("expected resume [reg=value ...], park, stop REASON [notify=PD] or not-running".into()),
    }
}

/// Numbers in `key=value` tokens and bare numbers as lower-case hex, so
/// that `gpa=1610612736` and `gpa=0x6000_0000` compare equal.
pub fn normalize(s: &str) -> String {
    s.split_whitespace()
        .map(|t| match t.split_once('=') {
            Some((k, v)) => match num::parse(v) {
                Some(n) => format!("{k}={}", num::hex(n)),
                None => t.to_string(),
            },
            None => match num::parse(t) {
                Some(n) => num::hex(n),
                None => t.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join(" ")
}
