//! `vmsys`: checks a Microkit system against its VM description, writes
//! the VMMs' boot manifests, runs scenarios on the model, draws the system.
//!
//! Exit status: 0 when everything passed, 1 when a check, a step or an
//! input file failed (each with a `file:line: message`), 2 for a bad
//! command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use vmsys::description::Description;
use vmsys::diag::Diag;
use vmsys::inputs::{self, Inputs};
use vmsys::{boot_image, boot_manifest, check, fdt, graph, initramfs, sim, trace, zlib};

#[derive(Parser)]
#[command(
    name = "vmsys",
    version,
    about = "One description of the VMs of a seL4 Microkit system: check, manifest, sim, graph, a Linux guest's device tree, initramfs and compressed Image, the root task's boot image"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct System {
    /// The VM description.
    #[arg(long, default_value = "system.toml")]
    system: PathBuf,
    /// The Microkit system description (default: the one the VM description names).
    #[arg(long)]
    xml: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Check system.xml against the VM description and the core's rules; one message per violation.
    Check(System),
    /// Write each VMM's boot manifest, `<out>/<vmm>.manifest`, after checking the system.
    Manifest {
        #[command(flatten)]
        system: System,
        /// Where to write the manifests.
        #[arg(long, default_value = "build/manifests")]
        out: PathBuf,
    },
    /// Run scenario files against the core on the seL4 model, after checking the system.
    Sim {
        #[command(flatten)]
        system: System,
        /// Scenario files, each run on a freshly booted system.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Run the request trace the root task runs on seL4, on the seL4 model, and print its log.
    Trace {
        /// The seed of the random requests.
        #[arg(long, default_value_t = vmm_trace::SEED)]
        seed: u64,
        /// How many random requests follow the client scenario.
        #[arg(long, default_value_t = vmm_trace::RANDOM)]
        random: usize,
    },
    /// Write a Linux guest's device tree from its VM description, after checking the description.
    Fdt {
        /// The VM description (checked against the system.xml it names, if it names one).
        #[arg(long, default_value = "system.toml")]
        system: PathBuf,
        /// The VM whose device tree to write.
        #[arg(long)]
        vm: String,
        /// The initramfs the VMM loads with it (its size is in the tree).
        #[arg(long)]
        initrd: PathBuf,
        /// Words added to the description's kernel command line (a
        /// benchmark's variant of the guest).
        #[arg(long)]
        append: Option<String>,
        /// The device tree blob to write.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Write a Linux guest's initramfs: a static busybox and an /init script.
    Initramfs {
        /// busybox, a static build for the guest's architecture.
        #[arg(long)]
        busybox: PathBuf,
        /// The script to run as /init.
        #[arg(long)]
        init: PathBuf,
        /// The cpio archive to write.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Write a kernel Image zlib-compressed, checked to inflate back, for a VMM to embed.
    Zlib {
        /// The file to compress.
        input: PathBuf,
        /// The zlib stream to write.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Write the root task's boot image: the SDK's kernel loader with the kernel and the root task.
    BootImage {
        /// The Microkit SDK's loader for the board and configuration (`elf/loader.elf`).
        #[arg(long)]
        loader: PathBuf,
        /// The seL4 kernel (`elf/sel4.elf`).
        #[arg(long)]
        kernel: PathBuf,
        /// The root task's ELF file.
        #[arg(long)]
        root_task: PathBuf,
        /// The image to write (QEMU loads it at the loader's address).
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Draw the system (PDs, VMs, memory regions, channels) as SVG.
    Graph {
        #[command(flatten)]
        system: System,
        /// The SVG file to write.
        #[arg(short, long, default_value = "system.svg")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(diags) => {
            for d in diags {
                eprintln!("{d}");
            }
            ExitCode::from(1)
        }
    }
}

/// Loads the inputs and refuses a system that does not check.
fn checked(s: &System) -> Result<Inputs, Vec<Diag>> {
    let inputs = inputs::load(&s.system, s.xml.as_deref())?;
    let diags = check::check(&inputs.desc, &inputs.sdf);
    if diags.is_empty() {
        Ok(inputs)
    } else {
        Err(diags)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Vec<Diag>> {
    let fail = |e: std::io::Error| vec![Diag::file(&path.display().to_string(), format!("cannot write: {e}"))];
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, bytes).map_err(fail)
}

fn read_bytes(p: &Path) -> Result<Vec<u8>, Vec<Diag>> {
    std::fs::read(p).map_err(|e| vec![Diag::file(&p.display().to_string(), format!("cannot read: {e}"))])
}

fn run(command: Command) -> Result<(), Vec<Diag>> {
    match command {
        Command::Check(s) => {
            let i = checked(&s)?;
            println!("{} and {}: {} VMs, no violations", i.desc.file, i.sdf.file, i.desc.vms.len());
        }
        Command::Manifest { system, out } => {
            let i = checked(&system)?;
            for vm in &i.desc.vms {
                let at = |e: String| vec![Diag::at(&i.desc.file, vm.line, format!("{}: {e}", vm.name))];
                let bytes = boot_manifest::manifest(vm).and_then(|m| boot_manifest::encode(&m)).map_err(at)?;
                let path = out.join(format!("{}.manifest", vm.vmm));
                write(&path, &bytes)?;
                println!("{}: {} bytes, the boot manifest of {} for {}", path.display(), bytes.len(), vm.name, vm.vmm);
            }
        }
        Command::Sim { system, scenarios } => {
            let i = checked(&system)?;
            let mut files = Vec::new();
            for p in &scenarios {
                files.push((p.display().to_string(), inputs::read(p)?));
            }
            let mut stdout = std::io::stdout();
            let tally = sim::run(&i, &files, &mut stdout)?;
            let _ = stdout.flush();
            if tally.failed > 0 {
                return Err(Vec::new());
            }
        }
        Command::Trace { seed, random } => {
            let log = trace::run(seed, random).map_err(|e| vec![Diag::file("trace", e)])?;
            print!("{log}");
        }
        Command::Fdt { system, vm, initrd, append, out } => {
            let desc = match Description::parse(&system.display().to_string(), &inputs::read(&system)?)? {
                d if d.system_xml.is_some() => checked(&System { system: system.clone(), xml: None })?.desc,
                d => match check::check_description(&d) {
                    diags if diags.is_empty() => d,
                    diags => return Err(diags),
                },
            };
            let mut v =
                desc.vm(&vm).ok_or_else(|| vec![Diag::file(&desc.file, format!("describes no VM {vm}"))])?.clone();
            if let (Some(linux), Some(words)) = (v.linux.as_mut(), &append) {
                linux.bootargs = format!("{} {words}", linux.bootargs);
            }
            let v = &v;
            let size = std::fs::metadata(&initrd)
                .map_err(|e| vec![Diag::file(&initrd.display().to_string(), format!("cannot read: {e}"))])?
                .len();
            let blob = fdt::device_tree(v, size).map_err(|e| vec![Diag::at(&desc.file, v.line, e)])?;
            write(&out, &blob)?;
            println!("{}: {} bytes, the device tree of {vm} (initramfs {size} bytes)", out.display(), blob.len());
        }
        Command::Initramfs { busybox, init, out } => {
            let archive = initramfs::initramfs(&read_bytes(&busybox)?, &read_bytes(&init)?);
            write(&out, &archive)?;
            println!("{}: {} bytes, busybox and {} as /init", out.display(), archive.len(), init.display());
        }
        Command::Zlib { input, out } => {
            let data = read_bytes(&input)?;
            let stream = zlib::compress(&data).map_err(|e| vec![Diag::file(&input.display().to_string(), e)])?;
            write(&out, &stream)?;
            println!(
                "{}: {} bytes, {} ({} bytes) zlib-compressed",
                out.display(),
                stream.len(),
                input.display(),
                data.len()
            );
        }
        Command::BootImage { loader, kernel, root_task, out } => {
            let (image, at) = boot_image::image(&read_bytes(&loader)?, &read_bytes(&kernel)?, &read_bytes(&root_task)?)
                .map_err(|e| vec![Diag::file(&out.display().to_string(), e)])?;
            write(&out, &image)?;
            println!(
                "{}: {} bytes, loaded at {:#x}: kernel at {:#x}..{:#x}, root task at {:#x}..{:#x}",
                out.display(),
                image.len(),
                at.loader,
                at.kernel.0,
                at.kernel.1,
                at.root_task.0,
                at.root_task.1
            );
        }
        Command::Graph { system, out } => {
            let i = inputs::load(&system.system, system.xml.as_deref())?;
            write(&out, graph::svg(&i).as_bytes())?;
            println!("{}: the system of {} and {}", out.display(), i.desc.file, i.sdf.file);
        }
    }
    Ok(())
}
