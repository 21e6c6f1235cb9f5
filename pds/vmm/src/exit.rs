//! A minimal decoder of VM faults, enough to see the guest on QEMU: byte
//! writes to the PL011 data register, reads of the PL011 (as 0: FIFO never
//! full), PSCI SYSTEM_OFF through `hvc`, and everything else stops the
//! vCPU. To be replaced by the core's exit handling (`vmm::exits`).

use sel4_microkit::{debug_println, get_mr};

use crate::vcpu_caps::VmVcpu;

/// seL4's fault labels on MCS kernels (Microkit's).
mod label {
    pub const UNKNOWN_SYSCALL: u64 = 2;
    pub const VM_FAULT: u64 = 6;
}

/// What to do with the faulting vCPU.
pub enum Action {
    /// Reply: the vCPU resumes (at the PC written, if one was).
    Resume,
    /// No reply: the vCPU stays stopped.
    Stop,
}

/// A line of guest UART output being collected.
pub struct Console {
    line: [u8; 160],
    len: usize,
}

impl Console {
    pub const fn new() -> Console {
        Console { line: [0; 160], len: 0 }
    }

    /// Adds a byte the guest wrote; prints a whole line at a time so that
    /// the output of two guests does not interleave within a line.
    pub fn put(&mut self, vm: &str, byte: u8) {
        if byte != b'\n' && byte != b'\r' {
            if let Some(b) = self.line.get_mut(self.len) {
                *b = byte;
                self.len += 1;
            }
        }
        if byte == b'\n' || self.len == self.line.len() {
            self.flush(vm);
        }
    }

    pub fn flush(&mut self, vm: &str) {
        if self.len > 0 {
            let text = core::str::from_utf8(&self.line[..self.len]).unwrap_or("<not UTF-8>");
            debug_println!("{vm}| {text}");
            self.len = 0;
        }
    }
}

/// Handles one fault of vCPU `vcpu` of VM `vm` (named for the log).
pub fn handle(vm: &str, vcpu: VmVcpu, label: u64, console: &mut Console) -> Action {
    match label {
        label::VM_FAULT => {
            // Fault registers first: any invocation reuses the IPC buffer.
            let (ip, addr, fsr) = (get_mr(0), get_mr(1), get_mr(3));
            let uart = board::GUEST_UART_BASE..board::GUEST_UART_BASE + board::pl011::SIZE;
            let isv = fsr & (1 << 24) != 0;
            if !uart.contains(&addr) || !isv {
                console.flush(vm);
                debug_println!(
                    "{vm}: stopped: access outside every memslot at {addr:#x} (pc {ip:#x}, syndrome {fsr:#x})"
                );
                return Action::Stop;
            }
            let write = fsr & (1 << 6) != 0;
            let srt = ((fsr >> 16) & 0x1f) as usize;
            let tcb = vcpu.tcb();
            let Ok(mut ctx) = tcb.tcb_read_all_registers(false) else {
                debug_println!("{vm}: stopped: cannot read the vCPU's registers");
                return Action::Stop;
            };
            if write {
                let value = if srt == 31 { 0 } else { *ctx.gpr(srt) };
                if addr - board::GUEST_UART_BASE == board::pl011::DR {
                    console.put(vm, value as u8);
                }
            } else if srt != 31 {
                *ctx.gpr_mut(srt) = 0;
            }
            *ctx.pc_mut() += 4;
            if tcb.tcb_write_all_registers(false, &mut ctx).is_err() {
                debug_println!("{vm}: stopped: cannot write the vCPU's registers");
                return Action::Stop;
            }
            Action::Resume
        }
        label::UNKNOWN_SYSCALL => {
            let (x0, ip) = (get_mr(0), get_mr(8));
            console.flush(vm);
            if x0 == board::psci::SYSTEM_OFF {
                debug_println!("{vm}: PSCI SYSTEM_OFF from vCPU {}: stopped", vcpu.id());
            } else {
                debug_println!("{vm}: stopped: unknown hypervisor call {x0:#x} at pc {ip:#x}");
            }
            Action::Stop
        }
        other => {
            console.flush(vm);
            debug_println!("{vm}: stopped: unhandled fault (label {other})");
            Action::Stop
        }
    }
}
