//! Section 7 of the rules: the protocol, through the one entry point
//! `Vmm::handle(client, label, payload)`.
//!
//! Every refused request goes through `fails_unchanged` (errno and the whole
//! state, model included, unchanged); every successful step is followed by
//! `check_invariants`.

mod common;
use common::*;

use core::mem::{offset_of, size_of};
use core::ops::Range;

use vmm::arch::aarch64::regs::TcbReg;
use vmm::Error;
use vmm_abi::memslot::{MemoryRegion, LOCK_READ, LOCK_WRITE, UNLOCK_ALL};
use vmm_abi::protocol::{label, Request, Response, CAP_MEM_TAGGING, MAX_PAYLOAD};
use vmm_abi::wire::*;
use vmm_abi::{ClientId, Errno, VcpuId, VmId};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, IntoBytes};

/// Client A's channel.
const CA: ClientId = ClientId(1);
/// Guest-physical base of test memslots.
const GPA: u64 = 0x8000_0000;
/// Every label the protocol knows.
const LABELS: Range<u64> = label::CREATE_VM..label::ENABLE_CAP + 1;

fn u32le(x: u32) -> U32 {
    U32::new(x)
}

fn u64le(x: u64) -> U64 {
    U64::new(x)
}

/// Encodes `req` and hands it to the entry point as `client`.
fn call(v: &mut TestVmm, client: ClientId, req: Request) -> Result<u64, Errno> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let (l, n) = req.encode(&mut buf);
    v.handle(client, l, &buf[..n]).result
}

/// A request of A that must succeed; returns its value.
fn ok(v: &mut TestVmm, req: Request) -> u64 {
    let r = call(v, CA, req).unwrap_or_else(|e| panic!("{req:?} failed with {e:?}"));
    check_invariants(v);
    r
}

/// `label` and `payload` from `client` must fail with `errno` and change
/// nothing.
fn handle_fails(v: &mut TestVmm, client: ClientId, label: u64, payload: &[u8], errno: Errno) {
    fails_unchanged(v, errno, |v| v.handle(client, label, payload).result.map_err(Error::Protocol));
}

/// The size of the payload of each known label.
fn payload_size(l: u64) -> Option<usize> {
    Some(match l {
        label::CREATE_VM => size_of::<CreateVm>(),
        label::DESTROY_VM => size_of::<VmArg>(),
        label::CREATE_VCPU | label::STOP_VCPU => size_of::<VcpuArg>(),
        label::RUN_VCPU => size_of::<RunVcpu>(),
        label::GET_REG => size_of::<GetReg>(),
        label::SET_REG => size_of::<SetReg>(),
        label::IRQ_LINE => size_of::<IrqLine>(),
        label::SET_USER_MEMORY_REGION2 => size_of::<SetRegion>(),
        label::CREATE_GUEST_MEMFD => size_of::<CreateGmem>(),
        label::CLOSE_GUEST_MEMFD => size_of::<CloseGmem>(),
        label::LOCK_MEMSLOT | label::UNLOCK_MEMSLOT => size_of::<LockArg>(),
        label::ENABLE_CAP => size_of::<EnableCap>(),
        _ => return None,
    })
}

/// A VM of A with vCPU 0, RAM slot 0 (4 pages at [`GPA`]) and an open
/// one-page guest_memfd; returns the world, the VM and the file's handle.
fn fixture() -> (Box<TestVmm>, VmId, u32) {
    let mut v = world();
    let vm = VmId(u32::try_from(ok(&mut v, Request::CreateVm)).unwrap());
    ok(&mut v, Request::CreateVcpu { vm, vcpu: VcpuId(0) });
    ok(&mut v, Request::SetMemoryRegion { vm, region: ram_region(0, GPA, 4, 0) });
    let h = u32::try_from(ok(&mut v, Request::CreateGuestMemfd { vm, size: 4096, flags: 0 })).unwrap();
    (v, vm, h)
}

/// One label with a well-formed payload that succeeds on the [`fixture`],
/// and where its padding (or reserved field) lies.
struct Case {
    label: u64,
    bytes: Vec<u8>,
    pad: Option<Range<usize>>,
}

fn cases(vm: VmId, h: u32) -> Vec<Case> {
    let vm32 = u32le(vm.0);
    let case = |label: u64, bytes: &[u8], pad: Option<Range<usize>>| Case { label, bytes: bytes.to_vec(), pad };
    vec![
        // The reserved flags of CREATE_VM play the part of padding.
        case(label::CREATE_VM, CreateVm::default().as_bytes(), Some(0..8)),
        case(
            label::DESTROY_VM,
            VmArg { vm: vm32, pad: u32le(0) }.as_bytes(),
            Some(pad_of::<VmArg>(offset_of!(VmArg, pad))),
        ),
        case(label::CREATE_VCPU, VcpuArg { vm: vm32, vcpu: u32le(1) }.as_bytes(), None),
        case(label::RUN_VCPU, RunVcpu { vm: vm32, vcpu: u32le(0), entry: u64le(GPA), arg: u64le(7) }.as_bytes(), None),
        case(label::STOP_VCPU, VcpuArg { vm: vm32, vcpu: u32le(0) }.as_bytes(), None),
        case(
            label::GET_REG,
            GetReg { vm: vm32, vcpu: u32le(0), reg: u32le(32), pad: u32le(0) }.as_bytes(),
            Some(pad_of::<GetReg>(offset_of!(GetReg, pad))),
        ),
        case(
            label::SET_REG,
            SetReg { vm: vm32, vcpu: u32le(0), reg: u32le(0), pad: u32le(0), value: u64le(5) }.as_bytes(),
            Some(pad_of::<SetReg>(offset_of!(SetReg, pad))),
        ),
        case(
            label::IRQ_LINE,
            IrqLine { vm: vm32, irq: u32le(32), level: u32le(1), pad: u32le(0) }.as_bytes(),
            Some(pad_of::<IrqLine>(offset_of!(IrqLine, pad))),
        ),
        case(
            label::SET_USER_MEMORY_REGION2,
            SetRegion {
                vm: vm32,
                slot: u32le(1),
                flags: u32le(0),
                guest_memfd: u32le(0),
                guest_phys_addr: u64le(GPA + 0x10_0000),
                memory_size: u64le(4096),
                userspace_addr: u64le(RAM_VADDR + 8 * 4096),
                guest_memfd_offset: u64le(0),
            }
            .as_bytes(),
            None,
        ),
        case(
            label::CREATE_GUEST_MEMFD,
            CreateGmem { vm: vm32, pad: u32le(0), size: u64le(4096), flags: u64le(0) }.as_bytes(),
            Some(pad_of::<CreateGmem>(offset_of!(CreateGmem, pad))),
        ),
        case(
            label::CLOSE_GUEST_MEMFD,
            CloseGmem { handle: u32le(h), pad: u32le(0) }.as_bytes(),
            Some(pad_of::<CloseGmem>(offset_of!(CloseGmem, pad))),
        ),
        case(label::LOCK_MEMSLOT, LockArg { vm: vm32, slot: u32le(0), flags: u64le(LOCK_READ) }.as_bytes(), None),
        case(label::UNLOCK_MEMSLOT, LockArg { vm: vm32, slot: u32le(0), flags: u64le(UNLOCK_ALL) }.as_bytes(), None),
        case(label::ENABLE_CAP, EnableCap { vm: vm32, cap: u32le(CAP_MEM_TAGGING), arg: u64le(0) }.as_bytes(), None),
    ]
}

/// The byte range of a `u32` padding field at `offset` in `T`.
fn pad_of<T>(offset: usize) -> Range<usize> {
    assert!(offset + 4 <= size_of::<T>());
    offset..offset + 4
}

/// The variants of every request, with ordinary and extreme field values.
fn sample_requests() -> Vec<Request> {
    let mut out = vec![Request::CreateVm];
    for (vm, a, b, x, y) in [
        (VmId(1), 0u32, 1u32, 0u64, 1u64),
        (VmId(0x0102_0304), 7, 0x100, 0x8000_1000, 0xdead_beef),
        (VmId(u32::MAX), u32::MAX, u32::MAX, u64::MAX, u64::MAX),
    ] {
        out.extend([
            Request::DestroyVm { vm },
            Request::CreateVcpu { vm, vcpu: VcpuId(a) },
            Request::RunVcpu { vm, vcpu: VcpuId(a), entry: x, arg: y },
            Request::StopVcpu { vm, vcpu: VcpuId(a) },
            Request::GetReg { vm, vcpu: VcpuId(a), reg: b },
            Request::SetReg { vm, vcpu: VcpuId(a), reg: b, value: y },
            Request::IrqLine { vm, irq: a, level: b },
            Request::SetMemoryRegion {
                vm,
                region: MemoryRegion {
                    slot: a,
                    flags: b,
                    guest_phys_addr: x,
                    memory_size: y,
                    userspace_addr: x ^ 0x5a5a,
                    guest_memfd_offset: y.rotate_left(7),
                    guest_memfd: a ^ b,
                },
            },
            Request::CreateGuestMemfd { vm, size: x, flags: y },
            Request::CloseGuestMemfd { handle: GmemHandle(a) },
            Request::LockMemslot { vm, slot: a, flags: y },
            Request::UnlockMemslot { vm, slot: b, flags: x },
            Request::EnableCap { vm, cap: b, arg: y },
        ]);
    }
    out
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Bytes biased towards zero, so that padding is often clean and VM,
    /// vCPU and slot numbers are often small.
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                let r = self.next();
                match r % 4 {
                    0 | 1 => 0,
                    2 => (r >> 8) as u8 % 4,
                    _ => (r >> 8) as u8,
                }
            })
            .collect()
    }
}

// ---- Every label's control: its well-formed payload succeeds.           ----

#[test]
fn each_well_formed_payload_succeeds() {
    let (v, vm, h) = fixture();
    let cases = cases(vm, h);
    assert_eq!(cases.iter().map(|c| c.label).collect::<Vec<_>>(), LABELS.collect::<Vec<_>>(), "a label is missing");
    for c in cases {
        let mut w = Box::new(v.clone());
        let r = w.handle(CA, c.label, &c.bytes).result;
        assert!(r.is_ok(), "label {} failed with {r:?}", c.label);
        check_invariants(&w);
    }
}

#[test]
fn every_payload_is_a_whole_number_of_message_registers() {
    for l in LABELS {
        let n = payload_size(l).unwrap();
        assert!(n > 0 && n.is_multiple_of(8) && n <= MAX_PAYLOAD, "label {l}: {n} bytes");
    }
    assert_eq!(size_of::<ResponseWire>(), 16);
}

// ---- Rule 7.3: unknown labels are EOPNOTSUPP.                           ----

#[test]
fn unknown_labels_are_eopnotsupp_whatever_the_payload() {
    let (mut v, vm, h) = fixture();
    let mut payloads: Vec<Vec<u8>> = cases(vm, h).into_iter().map(|c| c.bytes).collect();
    payloads.push(Vec::new());
    payloads.push(vec![0; MAX_PAYLOAD]);
    payloads.push(vec![0xff; MAX_PAYLOAD + 8]);
    // 1 << 32 | 1 would be CREATE_VM were the label truncated to 32 bits.
    for l in [0, 15, 16, 20, 255, 1 << 32 | label::CREATE_VM, 1 << 63 | label::DESTROY_VM, u64::MAX] {
        for p in &payloads {
            handle_fails(&mut v, CA, l, p, Errno::EOPNOTSUPP);
        }
    }
}

#[test]
fn unknown_labels_are_eopnotsupp_for_unconfigured_clients_too() {
    let (mut v, _, _) = fixture();
    handle_fails(&mut v, ClientId(9), 0, &[], Errno::EOPNOTSUPP);
    handle_fails(&mut v, ClientId(9), u64::MAX, &[0; 8], Errno::EOPNOTSUPP);
}

// ---- Rule 7.3: short or malformed payloads are EINVAL.                  ----

#[test]
fn a_short_payload_is_einval_for_every_label() {
    let (mut v, vm, h) = fixture();
    for c in cases(vm, h) {
        for len in 0..c.bytes.len() {
            handle_fails(&mut v, CA, c.label, &c.bytes[..len], Errno::EINVAL);
        }
    }
}

#[test]
fn a_long_payload_is_einval_for_every_label() {
    let (mut v, vm, h) = fixture();
    for c in cases(vm, h) {
        for extra in [1, 4, 8, MAX_PAYLOAD] {
            let mut long = c.bytes.clone();
            long.resize(c.bytes.len() + extra, 0);
            handle_fails(&mut v, CA, c.label, &long, Errno::EINVAL);
        }
    }
}

#[test]
fn a_payload_of_another_labels_size_is_einval() {
    let (mut v, vm, h) = fixture();
    let sizes: Vec<usize> = LABELS.map(|l| payload_size(l).unwrap()).collect();
    for c in cases(vm, h) {
        for &n in sizes.iter().filter(|&&n| n != c.bytes.len()) {
            let mut other = c.bytes.clone();
            other.resize(n, 0);
            handle_fails(&mut v, CA, c.label, &other, Errno::EINVAL);
        }
    }
}

#[test]
fn non_zero_padding_is_einval() {
    let (mut v, vm, h) = fixture();
    let mut padded = 0;
    for c in cases(vm, h) {
        let Some(pad) = c.pad.clone() else { continue };
        padded += 1;
        for i in pad.clone() {
            for byte in [0x01, 0x80, 0xff] {
                let mut p = c.bytes.clone();
                p[i] = byte;
                handle_fails(&mut v, CA, c.label, &p, Errno::EINVAL);
            }
        }
        let mut p = c.bytes.clone();
        p[pad].fill(0xff);
        handle_fails(&mut v, CA, c.label, &p, Errno::EINVAL);
    }
    // CREATE_VM flags, and the pad of DESTROY_VM, GET_REG, SET_REG,
    // IRQ_LINE, CREATE_GUEST_MEMFD, CLOSE_GUEST_MEMFD.
    assert_eq!(padded, 7);
}

#[test]
fn create_vm_with_non_zero_flags_is_einval() {
    let mut v = world();
    for flags in [1, 2, 1 << 31, 1 << 32, 1 << 63, u64::MAX] {
        handle_fails(&mut v, CA, label::CREATE_VM, CreateVm { flags: u64le(flags) }.as_bytes(), Errno::EINVAL);
    }
    assert_eq!(v.usage_count(), 0);
}

// ---- Decoding never panics; what decodes encodes back to the same bytes. ----

#[test]
fn decoding_arbitrary_bytes_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    for l in 0..20u64 {
        for len in 0..=64usize {
            for _ in 0..16 {
                let p = rng.bytes(len);
                match (Request::decode(l, &p), payload_size(l)) {
                    (Err(e), None) => assert_eq!(e, Errno::EOPNOTSUPP, "label {l}"),
                    (Ok(r), None) => panic!("unknown label {l} decoded as {r:?}"),
                    (Err(e), Some(_)) => assert_eq!(e, Errno::EINVAL, "label {l}, {p:02x?}"),
                    (Ok(r), Some(n)) => {
                        assert_eq!(len, n, "label {l} decoded a payload of the wrong size");
                        let mut buf = [0u8; MAX_PAYLOAD];
                        let (el, en) = r.encode(&mut buf);
                        assert_eq!((el, &buf[..en]), (l, &p[..]), "{r:?} does not encode back");
                        decoded += 1;
                    }
                }
            }
        }
    }
    assert!(decoded > 100, "the generator hardly ever produced a valid payload: {decoded}");
}

#[test]
fn handling_arbitrary_bytes_never_panics_and_keeps_the_invariants() {
    let (mut v, _, _) = fixture();
    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    for l in 0..20u64 {
        for len in 0..=64usize {
            for _ in 0..2 {
                let p = rng.bytes(len);
                let client = ClientId((rng.next() % 4) as u32);
                let before = v.clone();
                let r = v.handle(client, l, &p).result;
                if r.is_err() {
                    assert!(v == before, "label {l} payload {p:02x?} failed with {r:?} and changed the state");
                }
                check_invariants(&v);
            }
        }
    }
}

#[test]
fn every_request_round_trips_through_encode_and_decode() {
    let samples = sample_requests();
    let mut seen = std::collections::BTreeSet::new();
    for req in samples {
        let mut buf = [0u8; MAX_PAYLOAD];
        let (l, n) = req.encode(&mut buf);
        assert_eq!(payload_size(l), Some(n), "{req:?} encoded to {n} bytes under label {l}");
        assert_eq!(Request::decode(l, &buf[..n]), Ok(req));
        seen.insert(l);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), LABELS.collect::<Vec<_>>(), "a variant is missing");
}

#[test]
fn requests_encode_to_their_labels() {
    let vm = VmId(3);
    let want = [
        (Request::CreateVm, label::CREATE_VM),
        (Request::DestroyVm { vm }, label::DESTROY_VM),
        (Request::CreateVcpu { vm, vcpu: VcpuId(0) }, label::CREATE_VCPU),
        (Request::RunVcpu { vm, vcpu: VcpuId(0), entry: 0, arg: 0 }, label::RUN_VCPU),
        (Request::StopVcpu { vm, vcpu: VcpuId(0) }, label::STOP_VCPU),
        (Request::GetReg { vm, vcpu: VcpuId(0), reg: 0 }, label::GET_REG),
        (Request::SetReg { vm, vcpu: VcpuId(0), reg: 0, value: 0 }, label::SET_REG),
        (Request::IrqLine { vm, irq: 0, level: 0 }, label::IRQ_LINE),
        (Request::SetMemoryRegion { vm, region: MemoryRegion::default() }, label::SET_USER_MEMORY_REGION2),
        (Request::CreateGuestMemfd { vm, size: 0, flags: 0 }, label::CREATE_GUEST_MEMFD),
        (Request::CloseGuestMemfd { handle: GmemHandle(0) }, label::CLOSE_GUEST_MEMFD),
        (Request::LockMemslot { vm, slot: 0, flags: 0 }, label::LOCK_MEMSLOT),
        (Request::UnlockMemslot { vm, slot: 0, flags: 0 }, label::UNLOCK_MEMSLOT),
        (Request::EnableCap { vm, cap: 0, arg: 0 }, label::ENABLE_CAP),
    ];
    for (req, l) in want {
        let mut buf = [0u8; MAX_PAYLOAD];
        assert_eq!(req.encode(&mut buf).0, l, "{req:?}");
    }
}

#[test]
fn the_wire_layout_is_little_endian_in_field_order() {
    let mut buf = [0u8; MAX_PAYLOAD];
    let req =
        Request::SetReg { vm: VmId(0x0403_0201), vcpu: VcpuId(0x0807_0605), reg: 0x21, value: 0x1817_1615_1413_1211 };
    let (_, n) = req.encode(&mut buf);
    let want: [u8; 24] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x21, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
        0x17, 0x18,
    ];
    assert_eq!(&buf[..n], &want);
    let w = SetRegion::read_from_bytes(&{
        let (_, n) =
            Request::SetMemoryRegion { vm: VmId(9), region: gmem_region(0x0001_0002, 0x3000, 2, GmemHandle(5), 1) }
                .encode(&mut buf);
        buf[..n].to_vec()
    })
    .unwrap();
    assert_eq!(
        (w.vm.get(), w.slot.get(), w.flags.get(), w.guest_memfd.get()),
        (9, 0x0001_0002, vmm_abi::memslot::GUEST_MEMFD, 5)
    );
    assert_eq!((w.guest_phys_addr.get(), w.memory_size.get(), w.guest_memfd_offset.get()), (0x3000, 0x2000, 0x1000));
}

// ---- Responses: status 0 or -errno, and the value.                      ----

#[test]
fn responses_round_trip_through_the_wire() {
    for v in [0, 1, 0x8000_0000, u64::MAX] {
        let r = Response { result: Ok(v) };
        let w = r.to_wire();
        assert_eq!((w.status.get(), w.value.get()), (0, v));
        assert_eq!(Response::from_wire(&w), Some(r));
        let back = ResponseWire::read_from_bytes(w.as_bytes()).unwrap();
        assert_eq!(Response::from_wire(&back), Some(r));
    }
    for e in Errno::ALL {
        let r = Response { result: Err(e) };
        let w = r.to_wire();
        assert_eq!(w.status.get() as i64, -i64::from(e.code()), "{e:?}");
        assert_eq!(w.value.get(), 0);
        assert_eq!(Response::from_wire(&w), Some(r));
    }
}

#[test]
fn a_response_with_an_unknown_status_is_refused() {
    for status in [1i64, 22, -3, -4, -1000, i64::from(i32::MIN) - 1, i64::MIN, i64::MAX] {
        let w = ResponseWire { status: u64le(status as u64), value: u64le(0) };
        assert_eq!(Response::from_wire(&w), None, "status {status}");
    }
}

#[test]
fn a_client_reads_a_reply_as_its_value_its_errno_or_eio() {
    let ok = Response { result: Ok(7) }.to_wire();
    let busy = Response { result: Err(Errno::EBUSY) }.to_wire();
    let mut long = [0u8; 24];
    long[..16].copy_from_slice(ok.as_bytes());
    assert_eq!(Response::from_reply(2, ok.as_bytes()), Ok(7));
    assert_eq!(Response::from_reply(3, &long), Ok(7), "words past the wire form are ignored");
    assert_eq!(Response::from_reply(2, busy.as_bytes()), Err(Errno::EBUSY));
    assert_eq!(Response::from_reply(1, ok.as_bytes()), Err(Errno::EIO), "a reply of one word");
    assert_eq!(Response::from_reply(2, &ok.as_bytes()[..8]), Err(Errno::EIO), "bytes short of the wire form");
    let unknown = ResponseWire { status: u64le(-3i64 as u64), value: u64le(0) };
    assert_eq!(Response::from_reply(2, unknown.as_bytes()), Err(Errno::EIO), "a status that is no errno");
}

#[test]
fn handle_answers_with_the_errno_of_the_operation() {
    let (mut v, vm, _) = fixture();
    // One errno per layer: decode, registry, vCPU table.
    assert_eq!(v.handle(CA, 0, &[]).to_wire().status.get() as i64, -95);
    assert_eq!(call(&mut v, CA, Request::DestroyVm { vm: VmId(77) }), Err(Errno::ENOENT));
    assert_eq!(call(&mut v, CA, Request::CreateVcpu { vm, vcpu: VcpuId(0) }), Err(Errno::EEXIST));
    check_invariants(&v);
}

// ---- A whole life through handle().                                     ----

#[test]
fn the_happy_path_through_handle() {
    let mut v = world();
    let fresh = v.clone();

    let id = ok(&mut v, Request::CreateVm);
    let vm = VmId(u32::try_from(id).unwrap());
    assert_eq!(v.registry().entry(vm).unwrap().owner(), A);

    assert_eq!(ok(&mut v, Request::CreateVcpu { vm, vcpu: VcpuId(0) }), 0);
    assert_eq!(ok(&mut v, Request::SetMemoryRegion { vm, region: ram_region(0, GPA, 4, 0) }), 0);
    assert_eq!(v.registry().entry(vm).unwrap().vm().memslots().len(), 1);

    let h = GmemHandle(u32::try_from(ok(&mut v, Request::CreateGuestMemfd { vm, size: 2 * 4096, flags: 0 })).unwrap());
    assert_eq!(v.guest_memfd_vm(h), Some(vm));
    ok(&mut v, Request::SetMemoryRegion { vm, region: gmem_region(1, GPA + 0x10_0000, 2, h, 0) });
    assert_eq!(v.gmem().get(h).unwrap().bindings().len(), 1);

    ok(&mut v, Request::LockMemslot { vm, slot: 0, flags: LOCK_READ | LOCK_WRITE });
    assert_eq!(v.charges().charged(A), 4);
    assert_eq!(guest_pages(&v, vm).len(), 4);
    let mut buf = [0u8; MAX_PAYLOAD];
    let (l, n) = Request::EnableCap { vm, cap: CAP_MEM_TAGGING, arg: 0 }.encode(&mut buf);
    handle_fails(&mut v, CA, l, &buf[..n], Errno::EPERM);
    ok(&mut v, Request::UnlockMemslot { vm, slot: 0, flags: 0 });
    assert_eq!(v.charges().charged(A), 0);
    ok(&mut v, Request::EnableCap { vm, cap: CAP_MEM_TAGGING, arg: 0 });
    assert!(v.registry().entry(vm).unwrap().vm().mem_tagging());

    assert_eq!(ok(&mut v, Request::GetReg { vm, vcpu: VcpuId(0), reg: 33 }), 0x3c5);
    ok(&mut v, Request::SetReg { vm, vcpu: VcpuId(0), reg: 5, value: 0x55 });
    assert_eq!(ok(&mut v, Request::GetReg { vm, vcpu: VcpuId(0), reg: 5 }), 0x55);
    ok(&mut v, Request::SetReg { vm, vcpu: VcpuId(0), reg: 0x100, value: 0x30d0_0800 });
    assert_eq!(ok(&mut v, Request::GetReg { vm, vcpu: VcpuId(0), reg: 0x100 }), 0x30d0_0800);

    ok(&mut v, Request::RunVcpu { vm, vcpu: VcpuId(0), entry: GPA + 0x80, arg: 0x1234 });
    let (tcb, vc) = v.registry().entry(vm).unwrap().vm().vcpu_caps(VcpuId(0)).unwrap();
    assert!(v.kernel().tcb_running(tcb.slot()));
    assert_eq!(v.kernel().tcb_reg(tcb.slot(), TcbReg::Pc), Some(GPA + 0x80));
    assert_eq!(v.kernel().tcb_reg(tcb.slot(), TcbReg::X(0)), Some(0x1234));
    ok(&mut v, Request::IrqLine { vm, irq: 33, level: 1 });
    assert_eq!(v.kernel().injected(vc.slot()), [33]);
    ok(&mut v, Request::IrqLine { vm, irq: 33, level: 0 });
    ok(&mut v, Request::StopVcpu { vm, vcpu: VcpuId(0) });
    assert!(!v.kernel().tcb_running(tcb.slot()));

    ok(&mut v, Request::CloseGuestMemfd { handle: h });
    assert!(v.gmem().get(h).is_none());
    ok(&mut v, Request::DestroyVm { vm });
    assert_eq!(v.usage_count(), 0);
    assert!(v.registry().entry(vm).is_none());
    assert_eq!(v.hooks().log, [format!("add {} 1", vm.0), format!("remove {}", vm.0), "drop 0".to_string()]);
    // Everything taken is given back.
    assert!(v.kernel() == fresh.kernel(), "the model differs from the fresh world");
    assert_eq!(v.cspace(), fresh.cspace());
    assert_eq!(v.charges(), fresh.charges());
    assert!(v.gmem().iter().next().is_none());
}
