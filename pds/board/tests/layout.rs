//! The board table's guest layout is one the guest and the VMM can use: each
//! region page aligned and apart from the others. Runs for the board
//! `MICROKIT_BOARD` names (default `qemu_virt_aarch64`).

use board::*;

const PAGE: u64 = 0x1000;

fn range(base: u64, size: u64) -> std::ops::Range<u64> {
    base..base + size
}

fn apart(a: std::ops::Range<u64>, b: std::ops::Range<u64>) -> bool {
    a.end <= b.start || b.end <= a.start
}

fn within(inner: &std::ops::Range<u64>, outer: &std::ops::Range<u64>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

#[test]
fn regions_are_page_aligned_and_not_empty() {
    for (name, base, size) in [
        ("guest RAM", GUEST_RAM_BASE, GUEST_RAM_SIZE),
        ("private memory", GUEST_PRIVATE_BASE, GUEST_PRIVATE_SIZE),
        ("UART", GUEST_UART_BASE, pl011::SIZE),
    ] {
        assert!(size > 0 && base % PAGE == 0 && size % PAGE == 0, "{BOARD}: {name} {base:#x}+{size:#x}");
    }
}

#[test]
fn ram_private_memory_uart_and_the_unmapped_address_are_apart() {
    let ram = range(GUEST_RAM_BASE, GUEST_RAM_SIZE);
    let private = range(GUEST_PRIVATE_BASE, GUEST_PRIVATE_SIZE);
    let uart = range(GUEST_UART_BASE, pl011::SIZE);
    let unmapped = range(GUEST_UNMAPPED_ADDR, 1);
    assert!(apart(ram.clone(), private.clone()), "{BOARD}: RAM and private memory overlap");
    assert!(apart(ram.clone(), uart.clone()), "{BOARD}: the UART is in RAM");
    assert!(apart(private.clone(), uart.clone()), "{BOARD}: the UART is in private memory");
    for r in [ram, private, uart] {
        assert!(apart(r, unmapped.clone()), "{BOARD}: the unmapped address {GUEST_UNMAPPED_ADDR:#x} is mapped");
    }
}

#[test]
fn the_shared_test_window_is_in_the_upper_half_of_ram_below_the_stack() {
    assert_eq!(GUEST_STACK_TOP, GUEST_RAM_BASE + GUEST_RAM_SIZE);
    let upper_half = range(GUEST_RAM_BASE + GUEST_RAM_SIZE / 2, GUEST_RAM_SIZE / 2);
    let window = range(GUEST_SHARED_TEST_BASE, GUEST_SHARED_TEST_SIZE);
    assert!(within(&window, &upper_half) && window.end < GUEST_STACK_TOP, "{BOARD}: {window:x?}");
}
