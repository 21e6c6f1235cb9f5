//! Where a guest's PL011 output goes: the debug console, a whole line at a
//! time and prefixed with the VM's name, so the output of two guests never
//! interleaves within a line.

use sel4_microkit::debug_println;

/// The longest line printed at once; longer ones are split.
const LINE: usize = 160;

/// One VM's UART output.
pub struct Console {
    vm: heapless::String<16>,
    line: [u8; LINE],
    len: usize,
}

impl Console {
    /// The console of the VM named `vm`.
    pub fn new(vm: heapless::String<16>) -> Console {
        Console { vm, line: [0; LINE], len: 0 }
    }

    /// Prints what is pending, if anything.
    pub fn flush(&mut self) {
        if self.len > 0 {
            let text = core::str::from_utf8(&self.line[..self.len]).unwrap_or("<not UTF-8>");
            debug_println!("{}| {text}", self.vm);
            self.len = 0;
        }
    }
}

impl vmm::devices::pl011::Console for Console {
    fn put(&mut self, byte: u8) {
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
