# The Linux guest: Debian's arm64 cloud kernel and static busybox, fetched
# from Debian's archive (never committed), an initramfs around linux/init
# and a device tree from linux/virt.toml, both written by vmsys.
#
#   make linux-guest    fetch and build build/linux/{Image,initramfs.cpio,virt.dtb}
#   make linux-floor    boot them on bare QEMU virt (no hypervisor) under
#                       -icount shift=0,sleep=off: the self-test, commands
#                       typed at the shell, the power-off, and the guest's
#                       uptime at /init (the floor the VMM is held to)
#
# Fetching needs Debian's arm64 packages in apt's lists:
#   dpkg --add-architecture arm64 && apt-get update

LINUX_OUT := build/linux
# QEMU virt's layout: the floor boots it on bare QEMU, and the VMM on virt.
LINUX_DESCRIPTION := linux/virt.toml
# The VM description and Microkit system per board.
ifeq ($(MICROKIT_BOARD),imx8mp_evk)
LINUX_BOARD_DESCRIPTION := linux/imx8mp.toml
LINUX_SYSTEM_XML := linux/imx8mp.xml
# Microkit links this board's loader 16 MiB above the kernel, and the
# initial task (the VMM's image among it) must end below it: 27 MB of Image
# do not fit, 9.9 MB of zlib stream do. The VMM inflates it into guest RAM.
LINUX_KERNEL := Image.zlib
# QEMU 10.0's imx8mp-evk does not connect its GIC's virtual IRQ and FIQ
# outputs to the CPUs (hw/arm/fsl-imx8mp.c wires IRQ and FIQ only), so no
# guest under any hypervisor takes an interrupt on it: Linux boots until it
# first waits for one, to bring up its second CPU. With such a QEMU,
# test-linux checks that early boot (in the guest's early console); with
# one whose model wires them (QEMU=..., as hw/arm/virt.c does), the whole
# test. linux/virq-wired asks QEMU which it is.
LINUX_TEST = $(shell linux/virq-wired $(QEMU) $(QEMU_MACHINE) || echo --early-boot)
else
LINUX_KERNEL := Image
LINUX_BOARD_DESCRIPTION := linux/virt.toml
LINUX_SYSTEM_XML := linux/system.xml
endif
# The kernel's metapackage: its dependency names the image package.
LINUX_KERNEL_PACKAGE ?= linux-image-cloud-arm64
LINUX_TIMEOUT ?= 300
# QEMU's virtual time, one instruction a nanosecond, and no waiting while
# idle: the guest's clock does not depend on how busy the host is.
LINUX_ICOUNT := -icount shift=0,sleep=off
LINUX_QEMU_FLOOR = $(QEMU) -machine virt -cpu cortex-a53 -smp 2 -m 256M -nographic \
	$(LINUX_ICOUNT) -kernel $(LINUX_OUT)/Image -initrd $(LINUX_OUT)/initramfs.cpio \
	-dtb $(LINUX_OUT)/virt.dtb

.PHONY: linux-guest linux-floor

$(LINUX_OUT)/debs/stamp:
	@apt-cache show $(LINUX_KERNEL_PACKAGE):arm64 >/dev/null 2>&1 || { echo "linux-guest: Debian's arm64 packages are not in apt's lists: run 'dpkg --add-architecture arm64 && apt-get update'"; exit 1; }
	rm -rf $(LINUX_OUT)/debs && mkdir -p $(LINUX_OUT)/debs
	image=$$(apt-cache depends $(LINUX_KERNEL_PACKAGE):arm64 | sed -n 's/^ *Depends: \(linux-image-[^ :]*\).*/\1/p' | head -n1); \
	test -n "$$image" || { echo "linux-guest: $(LINUX_KERNEL_PACKAGE) names no kernel image"; exit 1; }; \
	cd $(LINUX_OUT)/debs && apt-get download -q -o APT::Sandbox::User=root $$image:arm64 busybox-static:arm64
	for d in $(LINUX_OUT)/debs/*.deb; do dpkg-deb -x $$d $(LINUX_OUT)/debs/root; done
	touch $@

$(LINUX_OUT)/Image $(LINUX_OUT)/busybox: $(LINUX_OUT)/debs/stamp
	cp $$(ls $(LINUX_OUT)/debs/root/boot/vmlinuz-* | head -n1) $(LINUX_OUT)/Image
	cp $(LINUX_OUT)/debs/root/bin/busybox $(LINUX_OUT)/busybox
	@echo "linux-guest: kernel $$(ls $(LINUX_OUT)/debs/root/boot/vmlinuz-* | sed 's|.*/vmlinuz-||'), $$(ls $(LINUX_OUT)/debs/busybox-static_*.deb | sed 's|.*/||')"

# Always rewritten (vmsys checks its inputs each time, in a second).
linux-guest: $(LINUX_OUT)/Image $(LINUX_OUT)/busybox
	env -u RUSTC_BOOTSTRAP -u SEL4_INCLUDE_DIRS $(CARGO) run -q -p vmsys --target-dir $(abspath build/host-target) -- \
	    initramfs --busybox $(LINUX_OUT)/busybox --init linux/init -o $(LINUX_OUT)/initramfs.cpio
	env -u RUSTC_BOOTSTRAP -u SEL4_INCLUDE_DIRS $(CARGO) run -q -p vmsys --target-dir $(abspath build/host-target) -- \
	    fdt --system $(LINUX_DESCRIPTION) --vm linux --initrd $(LINUX_OUT)/initramfs.cpio -o $(LINUX_OUT)/virt.dtb
	@# The guest the VMM embeds on $(MICROKIT_BOARD): its kernel as the board needs it, its device tree from the board's description.
	mkdir -p $(LINUX_OUT)/$(MICROKIT_BOARD) && ln -sf ../initramfs.cpio $(LINUX_OUT)/$(MICROKIT_BOARD)/
	rm -f $(LINUX_OUT)/$(MICROKIT_BOARD)/Image $(LINUX_OUT)/$(MICROKIT_BOARD)/Image.zlib
ifeq ($(LINUX_KERNEL),Image.zlib)
	env -u RUSTC_BOOTSTRAP -u SEL4_INCLUDE_DIRS $(CARGO) run -q -p vmsys --target-dir $(abspath build/host-target) -- \
	    zlib $(LINUX_OUT)/Image -o $(LINUX_OUT)/$(MICROKIT_BOARD)/Image.zlib
else
	ln -sf ../Image $(LINUX_OUT)/$(MICROKIT_BOARD)/
endif
	env -u RUSTC_BOOTSTRAP -u SEL4_INCLUDE_DIRS $(CARGO) run -q -p vmsys --target-dir $(abspath build/host-target) -- \
	    fdt --system $(LINUX_BOARD_DESCRIPTION) --vm linux --initrd $(LINUX_OUT)/initramfs.cpio \
	    -o $(LINUX_OUT)/$(MICROKIT_BOARD)/guest.dtb
	@# The benchmark's guest: `bench=1`, whose /init powers off once it has printed its uptime.
	mkdir -p $(LINUX_OUT)/bench && ln -sf ../Image ../initramfs.cpio $(LINUX_OUT)/bench/
	env -u RUSTC_BOOTSTRAP -u SEL4_INCLUDE_DIRS $(CARGO) run -q -p vmsys --target-dir $(abspath build/host-target) -- \
	    fdt --system $(LINUX_BOARD_DESCRIPTION) --vm linux --initrd $(LINUX_OUT)/initramfs.cpio --append bench=1 \
	    -o $(LINUX_OUT)/bench/guest.dtb

linux-floor: linux-guest
	@command -v $(QEMU) >/dev/null || { echo "linux-floor: $(QEMU) not found: install qemu-system-arm"; exit 1; }
	linux/console $(LINUX_OUT)/floor.log $(LINUX_TIMEOUT) $(LINUX_QEMU_FLOOR)
	@echo "linux-floor: bare QEMU virt, no hypervisor, 2 CPUs, -icount shift=0,sleep=off, in the guest's uptime: $$(grep -a -o 'reached /init at [0-9.]* s' $(LINUX_OUT)/floor.log), the self-test done and the $$(grep -a -o 'shell at [0-9.]* s' $(LINUX_OUT)/floor.log)"

# The Linux guest under the VMM, on seL4 (an SDK needed):
#
#   make run-linux     boot linux/system.xml (one VMM PD, vmm_linux, and its
#                      VM) in QEMU: type at the busybox prompt; `exit`
#                      powers the guest off (Ctrl-a x quits QEMU)
#   make test-linux    boot it headless: the self-test, commands typed at
#                      the shell, the power-off
#
# The VMM PD embeds the guest's Image, device tree and initramfs
# (VMM_LINUX_DIR: LINUX_IMAGES, build/linux/<board> unless a benchmark
# says otherwise) instead of the test guest, and counts the VM's exits by kind
# (its `exit-counts` feature), which it prints when the VM stops.

LINUX_IMAGES ?= $(LINUX_OUT)/$(MICROKIT_BOARD)

LINUX_B := $(B)/linux
LINUX_MANIFEST_DIR := $(LINUX_B)/manifests
LINUX_MANIFESTS_RS := $(LINUX_B)/manifests.rs
LINUX_PDS_DIR := $(LINUX_B)/pds-target
LINUX_LOADER_IMG := $(LINUX_B)/loader.img
LINUX_QEMU_CMD = $(call qemu-boot,$(LINUX_LOADER_IMG))

.PHONY: linux-manifests linux-pds linux-loader run-linux test-linux

ifeq ($(SDK_TOOL),)
linux-manifests linux-pds linux-loader run-linux test-linux:
	@echo "make $@ skipped: no Microkit SDK at $(MICROKIT_SDK) (set MICROKIT_SDK to a Microkit 2.3.0 SDK to boot Linux under the VMM)"
else
linux-manifests:
	$(call write-manifests,$(LINUX_BOARD_DESCRIPTION),$(LINUX_SYSTEM_XML),$(LINUX_MANIFEST_DIR),$(LINUX_MANIFESTS_RS))

linux-pds: linux-guest linux-manifests $(TARGET_SPEC) kernel-config-check
	cd pds && RUSTC=$(TARGET_RUSTC) VMM_LINUX_DIR=$(abspath $(LINUX_IMAGES)) VMM_MANIFESTS_RS=$(abspath $(LINUX_MANIFESTS_RS)) \
	RUSTFLAGS="-Clinker=$(LLD)" \
	$(CARGO) build -p vmm-pd --features exit-counts --release --target $(abspath $(TARGET_SPEC)) -Zjson-target-spec \
	    -Zbuild-std=core,alloc,compiler_builtins -Zbuild-std-features=compiler-builtins-mem \
	    --target-dir $(abspath $(LINUX_PDS_DIR))

linux-loader: linux-pds $(QEMU_FIRMWARE)
	$(MICROKIT_SDK)/bin/microkit $(LINUX_SYSTEM_XML) --search-path $(LINUX_PDS_DIR)/aarch64-sel4-microkit/release \
	    --board $(MICROKIT_BOARD) --config $(MICROKIT_CONFIG) -o $(LINUX_LOADER_IMG) -r $(LINUX_B)/report.txt
	@echo "built $(LINUX_LOADER_IMG)"

run-linux: linux-loader
	$(LINUX_QEMU_CMD)

# Under -icount shift=0,sleep=off the guest's time is the instructions run,
# so what the self-test measures in guest time (`sleep 1` lasting a second)
# does not depend on how busy the machine running QEMU is; `run-linux`,
# for a person, keeps the wall clock.
test-linux: linux-loader
	@command -v $(QEMU) >/dev/null || { echo "test-linux: $(QEMU) not found: install qemu-system-arm"; exit 1; }
	@mode='$(LINUX_TEST)'; set -x; linux/console $$mode $(LINUX_B)/serial.log $(LINUX_TIMEOUT) $(LINUX_QEMU_CMD) $(LINUX_ICOUNT); \
	{ set +x; } 2>/dev/null; [ -z "$$mode" ] || echo "test-linux: $(MICROKIT_BOARD): the early boot only: $(QEMU)'s model delivers no virtual interrupts (see linux/linux.mk)"
endif

# The boot's figures (`make bench-linux`), in QEMU virtual time under
# -icount shift=0,sleep=off (one instruction a nanosecond, the same on every
# run), from the guest's own /proc/uptime at /init and at its shell: the
# floor (bare QEMU virt, no hypervisor, 2 CPUs; the whole self-test and
# shell as `make linux-floor` runs them) and the guest under the VMM
# (release seL4 and VMM, 2 vCPUs on one core), first as `make test-linux`
# runs it, then with an initramfs whose /init powers off at once (`bench=1`
# on the command line), for the VM's exits by kind during the boot.
.PHONY: bench-linux
ifeq ($(SDK_TOOL),)
bench-linux:
	@echo "make $@ skipped: no Microkit SDK at $(MICROKIT_SDK) (set MICROKIT_SDK to a Microkit 2.3.0 SDK to boot Linux under the VMM)"
else ifneq ($(MICROKIT_BOARD),qemu_virt_aarch64)
bench-linux:
	@echo "make $@ skipped: the floor it is held to is bare QEMU virt's; run it with MICROKIT_BOARD=qemu_virt_aarch64"
else
LINUX_BENCH_B := build/$(MICROKIT_BOARD)-release/linux
LINUX_BENCH_QEMU = $(call qemu-boot,$(LINUX_BENCH_B)/loader.img) $(LINUX_ICOUNT)
bench-linux: linux-floor
	$(MAKE) MICROKIT_CONFIG=release linux-loader
	linux/console $(LINUX_BENCH_B)/shell.log $(LINUX_TIMEOUT) $(LINUX_BENCH_QEMU)
	$(MAKE) MICROKIT_CONFIG=release LINUX_IMAGES=$(LINUX_OUT)/bench linux-loader
	linux/console --until-init $(LINUX_BENCH_B)/bench.log $(LINUX_TIMEOUT) $(LINUX_BENCH_QEMU)
	@floor=$$(grep -a -o 'reached /init at [0-9.]*' $(LINUX_OUT)/floor.log | grep -o '[0-9.]*$$'); \
	vmm=$$(grep -a -o 'reached /init at [0-9.]*' $(LINUX_BENCH_B)/bench.log | grep -o '[0-9.]*$$'); \
	shell=$$(grep -a -o 'shell at [0-9.]*' $(LINUX_OUT)/floor.log | grep -o '[0-9.]*$$'); \
	vmm_shell=$$(grep -a -o 'shell at [0-9.]*' $(LINUX_BENCH_B)/shell.log | grep -o '[0-9.]*$$'); \
	echo "Linux boot on $(MICROKIT_BOARD): the guest's uptime, QEMU virtual time (-icount shift=0,sleep=off)"; \
	echo "  floor, bare QEMU virt, 2 CPUs, no hypervisor:  /init $$floor s, shell (after the self-test) $$shell s"; \
	echo "  under the VMM, seL4 release, 2 vCPUs:         /init $$vmm s, shell (after the self-test) $$vmm_shell s"; \
	awk -v v="$$vmm" -v f="$$floor" -v vs="$$vmm_shell" -v fs="$$shell" \
	    'BEGIN { printf "  VMM/floor: /init %.2fx (target 1.25x), shell %.2fx\n", v / f, vs / fs }'; \
	echo "under the VMM, from QEMU's start to the guest's power-off at /init:"; \
	grep -a -o 'exits:.*' $(LINUX_BENCH_B)/bench.log | tr -d '\r' | sed 's/^/  /'; \
	ticks=$$(grep -a -o 'of [0-9]* counter ticks' $(LINUX_BENCH_B)/bench.log | grep -o '[0-9]*'); \
	echo "  the guest's CNTVCT_EL0 at its power-off, just after /init: $$ticks (libvmm 0.2.0's Linux example at /init: 1392134656)"
endif
