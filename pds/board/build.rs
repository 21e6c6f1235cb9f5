//! Writes the board table (`boards/<MICROKIT_BOARD>.mk`, default
//! `qemu_virt_aarch64`) as Rust constants: every `NAME := number` line
//! becomes `pub const NAME: u64`. The table stays the one place an address
//! is named; the Makefile reads the same file.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let board = std::env::var("MICROKIT_BOARD").unwrap_or_else(|_| "qemu_virt_aarch64".into());
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let table = dir.join("../../boards").join(format!("{board}.mk"));
    println!("cargo:rerun-if-env-changed=MICROKIT_BOARD");
    println!("cargo:rerun-if-changed={}", table.display());
    let text = std::fs::read_to_string(&table)
        .unwrap_or_else(|e| panic!("no board table for MICROKIT_BOARD={board} at {}: {e}", table.display()));
    let mut out = String::new();
    writeln!(out, "// Generated from boards/{board}.mk by pds/board/build.rs.").unwrap();
    writeln!(out, "/// The board this was generated for.\npub const BOARD: &str = {board:?};").unwrap();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(":=") else { continue };
        let (name, value) = (name.trim(), value.trim());
        let number = match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => value.parse::<u64>().ok(),
        };
        let named = !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if let (true, Some(n)) = (named, number) {
            writeln!(out, "/// `{name}` of the board table.\npub const {name}: u64 = {n:#x};").unwrap();
        }
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out_dir.join("board.rs"), out).expect("OUT_DIR is writable");
}
