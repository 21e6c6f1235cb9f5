//! A Linux guest's initramfs: a `newc` cpio archive (the kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`) holding a
//! static busybox and the `/init` script, written without root (the
//! console's device node is a record, not a `mknod`) and the same bytes on
//! every run (every time stamp 0, inodes numbered in order).

/// File type bits of a cpio mode.
const DIR: u32 = 0o040000;
const FILE: u32 = 0o100000;
const SYMLINK: u32 = 0o120000;
const CHAR: u32 = 0o020000;

/// A `newc` archive being written.
#[derive(Debug, Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    /// An empty archive.
    pub fn new() -> Cpio {
        Cpio::default()
    }

    /// Appends one entry: its header, its name and its data, each padded
    /// to four bytes.
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & DIR != 0 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) {
        self.entry(name, DIR | 0o755, (0, 0), &[]);
    }

    /// A regular file with permissions `perm`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, FILE | (perm & 0o7777), (0, 0), data);
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, SYMLINK | 0o777, (0, 0), target.as_bytes());
    }

    /// A character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, CHAR | (perm & 0o7777), (major, minor), &[]);
    }

    /// The archive, ended by its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        // The kernel reads the archive in 512-byte blocks as cpio writes it.
        self.out.resize(self.out.len().next_multiple_of(512), 0);
        self.out
    }
}

/// The guest's initramfs: busybox (a static arm64 build) as `/bin/busybox`
/// and `/bin/sh`, `init` as `/init`, the directories `/init` mounts on and
/// the console's device node, which the kernel opens for `/init` before
/// any file system is mounted.
pub fn initramfs(busybox: &[u8], init: &[u8]) -> Vec<u8> {
    let mut c = Cpio::new();
    for d in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "etc"] {
        c.dir(d);
    }
    c.char_dev("dev/console", 0o600, 5, 1);
    c.file("bin/busybox", 0o755, busybox);
    c.symlink("bin/sh", "busybox");
    c.file("init", 0o755, init);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries of a `newc` archive: (name, mode, rdev major, data),
    /// read back as the kernel's unpacker reads them.
    fn entries(mut a: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0usize;
        loop {
            assert_eq!(&a[..6], b"070701", "magic at offset {at}");
            let field =
                |i: usize| u32::from_str_radix(std::str::from_utf8(&a[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap();
            let (mode, size, major, namesize) = (field(1), field(6) as usize, field(9), field(11) as usize);
            let name = std::str::from_utf8(&a[110..110 + namesize - 1]).unwrap().to_string();
            assert_eq!(a[110 + namesize - 1], 0);
            let data_at = (110 + namesize).next_multiple_of(4);
            let next = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert!(a[next..].iter().all(|&b| b == 0));
                return out;
            }
            out.push((name, mode, major, a[data_at..data_at + size].to_vec()));
            at += next;
            a = &a[next..];
        }
    }

    #[test]
    fn the_archive_holds_busybox_init_the_console_and_the_mount_points() {
        let a = initramfs(b"\x7fELF busybox", b"#!/bin/sh\necho hi\n");
        assert_eq!(a.len() % 512, 0);
        let e = entries(&a);
        let get = |n: &str| e.iter().find(|x| x.0 == n).unwrap_or_else(|| panic!("{n} missing"));
        assert_eq!(get("init").1, 0o100755);
        assert_eq!(get("init").3, b"#!/bin/sh\necho hi\n");
        assert_eq!(get("bin/busybox").3, b"\x7fELF busybox");
        assert_eq!(get("bin/sh").1, 0o120777);
        assert_eq!(get("bin/sh").3, b"busybox");
        assert_eq!((get("dev/console").1, get("dev/console").2), (0o020600, 5));
        for d in ["proc", "sys", "dev", "tmp", "usr/sbin"] {
            assert_eq!(get(d).1, 0o040755, "{d}");
        }
        // A directory comes before what it holds.
        let pos = |n: &str| e.iter().position(|x| x.0 == n).unwrap();
        assert!(pos("bin") < pos("bin/busybox") && pos("dev") < pos("dev/console"));
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes() {
        assert_eq!(initramfs(b"a", b"b"), initramfs(b"a", b"b"));
        assert_ne!(initramfs(b"a", b"b"), initramfs(b"a", b"c"));
    }

    #[test]
    fn names_and_data_of_every_length_stay_aligned() {
        let mut c = Cpio::new();
        for n in 1..9 {
            c.file(&"x".repeat(n), 0o644, &vec![n as u8; n]);
        }
        let e = entries(&c.finish());
        assert_eq!(e.len(), 8);
        for (i, (name, _, _, data)) in e.iter().enumerate() {
            assert_eq!(name.len(), i + 1);
            assert_eq!(data, &vec![(i + 1) as u8; i + 1]);
        }
    }
}
