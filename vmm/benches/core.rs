//! Benchmarks of the core (criterion), each group followed by the
//! comparison the targets are about, computed from this run's estimates:
//!
//! - memslot lookup by guest-physical address with 8, 64 and 509 slots,
//!   binary search against a linear scan (target: 509 slots no more than 3x
//!   the cost of 8);
//! - locking a slot of 16 MiB and of 1 GiB (262144 pages) on the model, and
//!   the same on a kernel that does no work: the cost per page (target: the
//!   core's cost linear in pages);
//! - guest_memfd bind and unbind beside every other binding the file can
//!   hold (`MAX_BINDINGS - 1`);
//! - request decode for every label, and decode + dispatch of each
//!   operation;
//! - exit decode + PL011 emulation, and an HVC PSCI call, on a kernel that
//!   only keeps registers (target: no allocation).
//!
//! Run: `cargo bench -p vmm --bench core` (add `-- lookup` to run one
//! group). The comparisons are printed at the end.

mod support;

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion};
use support::alloc_count::{allocations_in, Counting};
use support::null_kernel::NullKernel;
use vmm::addr::Gpa;
use vmm::arch::aarch64::fault::label;
use vmm::caps::{Slot, SlotRange};
use vmm::config::{ClientConfig, RamRegion, VmmConfig};
use vmm::devices::pl011::{Console, Pl011};
use vmm::devices::Device;
use vmm::platform::NoHooks;
use vmm::registry::Owner;
use vmm::vm::memslots::{Backing, Memslot, MemslotTable};
use vmm::Vmm;
use vmm_abi::limits::{MAX_BINDINGS, MAX_MEMSLOTS, PAGE_SIZE};
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, LOCK_READ, LOCK_WRITE};
use vmm_abi::protocol::{label as op, Request, MAX_PAYLOAD};
use vmm_abi::{ClientId, VcpuId, VmId};
use vmm_model::Model;

#[global_allocator]
static ALLOC: Counting = Counting;

const CLIENT: ClientId = ClientId(1);
const A: Owner = Owner::Client(CLIENT);
const RAM_VADDR: u64 = 0x1_0000_0000;
const UART: u64 = 0x900_0000;

fn config(ram_pages: u64) -> VmmConfig {
    let mut ram = heapless::Vec::new();
    let _ = ram.push(RamRegion { vmm_vaddr: RAM_VADDR, pages: ram_pages, frames: Slot(1 << 32) });
    let mut clients = heapless::Vec::new();
    let _ = clients.push(ClientConfig { id: CLIENT, memlock_pages: 0, privileged: true });
    VmmConfig {
        cspace: SlotRange { base: Slot(1 << 20), len: 1 << 24 },
        ram,
        clients,
        vcpu_limit: 2,
        dirty_log: false,
        page_tables: vmm_abi::limits::MAX_PAGE_TABLES,
    }
}

/// A VMM on the model with `ram_pages` of guest RAM and one VM of client A.
fn model_world(ram_pages: u64) -> (Box<Vmm<Model, NoHooks>>, VmId) {
    let mut m = Model::new(1 << 40);
    m.setup_vspace(Slot(1)).expect("vspace");
    m.setup_ram(Slot(1 << 32), ram_pages, Slot(1), RAM_VADDR).expect("ram");
    let mut v: Box<Vmm<_, _>> = Box::new(Vmm::new(m, NoHooks, config(ram_pages)).expect("config"));
    let vm = v.create_vm(A).expect("vm");
    v.create_vcpu(A, vm, VcpuId(0)).expect("vcpu");
    (v, vm)
}

/// A table of `n` slots, with room for KVM's 509 (more than a VM's).
fn table(n: usize) -> MemslotTable<512> {
    let mut t = MemslotTable::default();
    for i in 0..n {
        let req = MemoryRegion {
            slot: i as u32,
            guest_phys_addr: 0x4000_0000 + (i as u64) * 0x20_0000,
            memory_size: 0x10_0000,
            ..MemoryRegion::default()
        };
        let slot = Memslot::new(&req, Backing::Ram { frames: Slot(0) }, SlotRange { base: Slot(0), len: 1 });
        t.insert(slot).expect("capacity");
    }
    t
}

/// Addresses spread over the slots, a quarter of them in the gaps.
fn probes(n: usize) -> Vec<u64> {
    (0..1024u64).map(|i| 0x4000_0000 + (i * 2_654_435_761 % (n as u64 * 0x20_0000))).collect()
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    for n in [8usize, 64, 509] {
        let (t, p) = (table(n), probes(n));
        g.bench_with_input(BenchmarkId::new("binary", n), &n, |b, _| {
            b.iter(|| p.iter().filter(|gpa| t.find_gpa(Gpa(**gpa)).is_some()).count())
        });
        g.bench_with_input(BenchmarkId::new("linear", n), &n, |b, _| {
            b.iter(|| p.iter().filter(|gpa| t.iter().any(|s| s.contains(Gpa(**gpa)))).count())
        });
    }
    g.finish();
}

const LOCK_SIZES: [u64; 2] = [4096, 262_144];

/// Slot 0: `pages` of guest RAM from its start, the slot both lock groups lock.
fn lock_slot(pages: u64) -> MemoryRegion {
    MemoryRegion {
        slot: 0,
        guest_phys_addr: 0x4000_0000,
        memory_size: pages * PAGE_SIZE,
        userspace_addr: RAM_VADDR,
        ..MemoryRegion::default()
    }
}

fn lock(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock");
    g.sample_size(10);
    for pages in LOCK_SIZES {
        let (mut base, vm) = model_world(pages);
        base.set_memory_region(A, vm, &lock_slot(pages)).expect("slot");
        g.bench_with_input(BenchmarkId::from_parameter(pages), &pages, |b, _| {
            b.iter_batched_ref(
                || base.clone(),
                |v| {
                    v.lock_memslot(A, vm, 0, LOCK_READ | LOCK_WRITE).expect("lock");
                    v.unlock_memslot(A, vm, 0, 0).expect("unlock");
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// The same lock and unlock on a kernel that does no work: the core's own
/// cost per page, apart from the model's data structures.
fn lock_core(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock_core");
    g.sample_size(10);
    for pages in LOCK_SIZES {
        let mut v: Box<Vmm<_, _>> = Box::new(Vmm::new(NullKernel::new(), NoHooks, config(pages)).expect("config"));
        let vm = v.create_vm(A).expect("vm");
        v.set_memory_region(A, vm, &lock_slot(pages)).expect("slot");
        g.bench_with_input(BenchmarkId::from_parameter(pages), &pages, |b, _| {
            b.iter(|| {
                v.lock_memslot(A, vm, 0, LOCK_READ | LOCK_WRITE).expect("lock");
                v.unlock_memslot(A, vm, 0, 0).expect("unlock");
            })
        });
    }
    g.finish();
}

fn gmem(c: &mut Criterion) {
    let (mut v, vm) = model_world(16);
    let fd = v.create_guest_memfd(A, vm, 128 * PAGE_SIZE, 0).expect("gmem");
    let region = |slot: u32, page: u64| MemoryRegion {
        slot,
        flags: GUEST_MEMFD,
        guest_phys_addr: 0x8000_0000 + page * PAGE_SIZE,
        memory_size: PAGE_SIZE,
        guest_memfd: fd.0,
        guest_memfd_offset: page * 2 * PAGE_SIZE,
        ..MemoryRegion::default()
    };
    let others = MAX_BINDINGS as u32 - 1;
    for i in 0..others {
        v.set_memory_region(A, vm, &region(i, u64::from(i))).expect("bind");
    }
    let last = MAX_MEMSLOTS as u32 - 1;
    let mut g = c.benchmark_group("gmem");
    g.bench_function("bind_unbind_beside_the_others", |b| {
        b.iter(|| {
            v.set_memory_region(A, vm, &region(last, u64::from(others))).expect("bind");
            v.set_memory_region(A, vm, &MemoryRegion { slot: last, ..MemoryRegion::default() }).expect("unbind");
        })
    });
    g.finish();
}

/// A well-formed request for every label, against the model world.
fn requests(vm: VmId) -> Vec<(&'static str, Request)> {
    vec![
        ("create_vm", Request::CreateVm),
        ("destroy_vm", Request::DestroyVm { vm }),
        ("create_vcpu", Request::CreateVcpu { vm, vcpu: VcpuId(1) }),
        ("run_vcpu", Request::RunVcpu { vm, vcpu: VcpuId(0), entry: 0x4000_0000, arg: 0 }),
        ("stop_vcpu", Request::StopVcpu { vm, vcpu: VcpuId(0) }),
        ("get_reg", Request::GetReg { vm, vcpu: VcpuId(0), reg: 32 }),
        ("set_reg", Request::SetReg { vm, vcpu: VcpuId(0), reg: 1, value: 5 }),
        ("irq_line", Request::IrqLine { vm, irq: 40, level: 0 }),
        (
            "set_user_memory_region2",
            Request::SetMemoryRegion {
                vm,
                region: MemoryRegion {
                    slot: 0,
                    guest_phys_addr: 0x4000_0000,
                    memory_size: 4 * PAGE_SIZE,
                    userspace_addr: RAM_VADDR,
                    ..MemoryRegion::default()
                },
            },
        ),
        ("create_guest_memfd", Request::CreateGuestMemfd { vm, size: PAGE_SIZE, flags: 0 }),
        ("close_guest_memfd", Request::CloseGuestMemfd { handle: vmm_abi::GmemHandle(1) }),
        ("lock_memslot", Request::LockMemslot { vm, slot: 0, flags: LOCK_READ }),
        ("unlock_memslot", Request::UnlockMemslot { vm, slot: 0, flags: 0 }),
        ("enable_cap", Request::EnableCap { vm, cap: vmm_abi::protocol::CAP_MEM_TAGGING, arg: 0 }),
    ]
}

fn encoded(r: &Request) -> (u64, Vec<u8>) {
    let mut buf = [0u8; MAX_PAYLOAD];
    let (l, n) = r.encode(&mut buf);
    (l, buf[..n].to_vec())
}

fn protocol(c: &mut Criterion) {
    let (mut v, vm) = model_world(16);
    // The state every dispatch starts from: slot 0 present, so the
    // identical SET_USER_MEMORY_REGION2 is a no-op and lock/unlock find it.
    let reqs = requests(vm);
    for (_, r) in &reqs {
        if let Request::SetMemoryRegion { region, .. } = r {
            v.set_memory_region(A, vm, region).expect("slot 0");
        }
    }
    let mut g = c.benchmark_group("decode");
    for (name, r) in &reqs {
        let (l, bytes) = encoded(r);
        g.bench_function(*name, |b| b.iter(|| Request::decode(black_box(l), black_box(&bytes))));
    }
    g.finish();
    let mut g = c.benchmark_group("dispatch");
    for (name, r) in &reqs {
        let (l, bytes) = encoded(r);
        g.bench_function(*name, |b| {
            b.iter_batched_ref(|| v.clone(), |v| v.handle(CLIENT, l, &bytes), BatchSize::SmallInput)
        });
    }
    g.finish();
}

/// A console that keeps the last byte only.
struct Sink(u8);

impl Console for Sink {
    fn put(&mut self, byte: u8) {
        self.0 = byte;
    }
}

fn null_world() -> (Box<Vmm<NullKernel, NoHooks>>, VmId) {
    let mut v: Box<Vmm<_, _>> = Box::new(Vmm::new(NullKernel::new(), NoHooks, config(16)).expect("config"));
    let vm = v.create_vm(A).expect("vm");
    v.create_vcpu(A, vm, VcpuId(0)).expect("vcpu");
    v.register_device(A, vm, Gpa(UART), 0x1000, Device::Pl011(Pl011::new())).expect("uart");
    (v, vm)
}

/// `strb w1, [x0]` to the UART's data register, as seL4 delivers it.
fn uart_store() -> [u64; 4] {
    let esr = (0x24u64 << 26) | (1 << 25) | (1 << 24) | (1 << 16) | (1 << 6);
    [0x4000_0000, UART, 0, esr]
}

/// `hvc #0` with PSCI_VERSION in x0.
fn hvc_version() -> [u64; 13] {
    [0x8400_0000, 0, 0, 0, 0, 0, 0, 0, 0x4000_0000, 0, 0, 0x3c5, 0]
}

fn exits(c: &mut Criterion) {
    let (mut v, vm) = null_world();
    let mut sink = Sink(0);
    let mut g = c.benchmark_group("exit");
    g.bench_function("decode_data_abort", |b| {
        b.iter(|| vmm::arch::aarch64::fault::decode(label::VM_FAULT, black_box(&uart_store())))
    });
    g.bench_function("pl011_store", |b| {
        b.iter(|| v.handle_exit(vm, VcpuId(0), label::VM_FAULT, black_box(&uart_store()), &mut sink))
    });
    g.bench_function("hvc_psci_version", |b| {
        b.iter(|| v.handle_exit(vm, VcpuId(0), label::UNKNOWN_SYSCALL, black_box(&hvc_version()), &mut sink))
    });
    g.finish();
}

fn ns(id: &str) -> String {
    support::mean_ns(id).map_or("?".into(), |t| format!("{t:.1} ns"))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn report() {
    println!("\n== comparisons from this run");
    let per_probe = |id: &str| support::mean_ns(id).map(|t| t / 1024.0);
    let b: Vec<Option<f64>> = [8, 64, 509].iter().map(|n| per_probe(&format!("lookup/binary/{n}"))).collect();
    let l: Vec<Option<f64>> = [8, 64, 509].iter().map(|n| per_probe(&format!("lookup/linear/{n}"))).collect();
    let show = |v: &Option<f64>| v.map_or("?".into(), |t| format!("{t:.1} ns"));
    println!(
        "memslot lookup, binary search: 8 slots {}, 64 slots {}, 509 slots {} per lookup",
        show(&b[0]),
        show(&b[1]),
        show(&b[2])
    );
    println!(
        "memslot lookup, linear scan:   8 slots {}, 64 slots {}, 509 slots {} per lookup",
        show(&l[0]),
        show(&l[1]),
        show(&l[2])
    );
    if let (Some(b8), Some(b509), Some(l509)) = (b[0], b[2], l[2]) {
        let r = b509 / b8;
        println!("  509 slots cost {r:.2}x 8 slots (target at most 3x: {}); at 509 slots binary search is {:.0}x faster than the scan", verdict(r <= 3.0), l509 / b509);
    }
    let per_page = |group: &str| -> Vec<Option<f64>> {
        LOCK_SIZES.iter().map(|p| support::mean_ns(&format!("{group}/{p}")).map(|t| t / *p as f64)).collect()
    };
    if let [Some(small), Some(large)] = per_page("lock_core")[..] {
        println!(
            "lock + unlock, the core's own work: {} pages {small:.1} ns/page, {} pages (1 GiB) {large:.1} ns/page: {:.2}x per page (linear in pages: {})",
            LOCK_SIZES[0],
            LOCK_SIZES[1],
            large / small,
            verdict(large / small <= 1.25)
        );
    }
    if let [Some(small), Some(large)] = per_page("lock")[..] {
        println!(
            "lock + unlock on the seL4 model: {} pages {small:.0} ns/page, {} pages (1 GiB) {large:.0} ns/page: {:.2}x per page (the model's ordered maps add a logarithmic factor and cache misses at half a million capabilities)",
            LOCK_SIZES[0],
            LOCK_SIZES[1],
            large / small,
        );
    }
    println!(
        "guest_memfd bind + unbind beside {} bindings: {}",
        MAX_BINDINGS - 1,
        ns("gmem/bind_unbind_beside_the_others")
    );
    println!(
        "exit decode: {}, PL011 store exit: {}, HVC PSCI_VERSION exit: {}",
        ns("exit/decode_data_abort"),
        ns("exit/pl011_store"),
        ns("exit/hvc_psci_version")
    );

    // Allocation: the core has no allocator; count around it to show it.
    let (mut v, vm) = null_world();
    let mut sink = Sink(0);
    let reqs = requests(vm);
    let decode = allocations_in(|| {
        for _ in 0..1000 {
            for (_, r) in &reqs {
                let mut buf = [0u8; MAX_PAYLOAD];
                let (l, n) = r.encode(&mut buf);
                black_box(Request::decode(l, &buf[..n]).ok());
                black_box(Request::decode(op::ENABLE_CAP + 99, &buf[..n]).ok());
            }
        }
    });
    let exit = allocations_in(|| {
        for _ in 0..1000 {
            black_box(v.handle_exit(vm, VcpuId(0), label::VM_FAULT, &uart_store(), &mut sink));
            black_box(v.handle_exit(vm, VcpuId(0), label::UNKNOWN_SYSCALL, &hvc_version(), &mut sink));
        }
    });
    println!(
        "allocations: {decode} in 28000 request decodes, {exit} in 2000 exits (PL011 store, HVC) (target 0: {})",
        verdict(decode == 0 && exit == 0)
    );
}

fn main() {
    let mut c = Criterion::default().output_directory(&support::output_dir()).configure_from_args();
    lookup(&mut c);
    lock(&mut c);
    lock_core(&mut c);
    gmem(&mut c);
    protocol(&mut c);
    exits(&mut c);
    c.final_summary();
    report();
}
