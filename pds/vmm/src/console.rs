//! Where a guest's PL011 output goes, each line prefixed with the VM's name:
//! - the board's UART, if this VMM has it ([`Serial`]): byte by byte as the
//!   guest writes it, so that a person sees a shell's prompt and the echo of
//!   what they type (no other VM writes there);
//! - else the kernel's debug console, which every PD shares: a whole line
//!   at a time, so that the output of two guests never interleaves within a
//!   line.

use sel4_microkit::debug_println;

use crate::serial::Serial;

/// The longest line printed at once; longer ones are split.
const LINE: usize = 160;

/// One VM's UART output.
pub struct Console {
    vm: heapless::String<16>,
    line: [u8; LINE],
    len: usize,
    serial: Option<Serial>,
    /// On the UART: the next byte starts a line (and gets the label).
    line_start: bool,
}

impl Console {
    /// The console of the VM named `vm`, printed on `serial` if given.
    pub fn new(vm: heapless::String<16>, serial: Option<Serial>) -> Console {
        Console { vm, line: [0; LINE], len: 0, serial, line_start: true }
    }

    /// Prints a line of the VMM's own: on the board's UART if this console
    /// has it (so that a release build, whose kernel prints nothing, shows
    /// it), else on the debug console.
    pub fn say(&mut self, pd: &str, args: core::fmt::Arguments<'_>) {
        match &self.serial {
            Some(s) => {
                let mut out = SerialOut(s);
                if !self.line_start {
                    s.send(b"\r\n");
                    self.line_start = true;
                }
                let _ = core::fmt::write(&mut out, format_args!("{pd}: {args}\r\n"));
            }
            None => debug_println!("{pd}: {args}"),
        }
    }

    /// The board's UART, if this console prints on it.
    pub fn serial(&self) -> Option<&Serial> {
        self.serial.as_ref()
    }

    /// Prints what is pending, if anything.
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        let line = self.line.get(..self.len).unwrap_or(&[]);
        let text = core::str::from_utf8(line).unwrap_or("<not UTF-8>");
        debug_println!("{}| {text}", self.vm);
        self.len = 0;
    }
}

/// The board's UART as a `core::fmt::Write`.
struct SerialOut<'a>(&'a Serial);

impl core::fmt::Write for SerialOut<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.send(s.as_bytes());
        Ok(())
    }
}

impl vmm::devices::pl011::Console for Console {
    fn put(&mut self, byte: u8) {
        if let Some(s) = &self.serial {
            if self.line_start {
                s.send(self.vm.as_bytes());
                s.send(b"| ");
            }
            // The guest's own line ends stay as it wrote them.
            s.send(&[byte]);
            self.line_start = byte == b'\n';
            return;
        }
        match byte {
            b'\n' => self.flush(),
            b'\r' => {}
            _ => {
                if self.len == LINE {
                    self.flush();
                }
                self.line[self.len] = byte;
                self.len += 1;
            }
        }
    }
}
