# Builds the seL4 Microkit system (two VMM PDs, a client PD, a guest) into
# loader.img and boots it on QEMU.
#
#   make              build build/<board>-<config>/loader.img
#   make run          boot it in QEMU (Ctrl-a x quits)
#   make test-qemu    test the backend's book on the host, then boot the
#                     system headless with a time limit and check the output
#   make test-book    only the host tests of the backend's book and the board table
#   make system.xml   regenerate the default system.xml and system.toml from
#                     their templates
#
# Variables, as in the SDK's own examples:
#   MICROKIT_SDK     a Microkit 2.3.0 SDK (default /opt/seL4/microkit-sdk-2.3.0)
#   MICROKIT_BOARD   qemu_virt_aarch64 (default) or imx8mp_evk
#   MICROKIT_CONFIG  debug (default) or release (release PDs print nothing)
#
# Without an SDK every target says it was skipped, and why, and succeeds.
# Board-specific numbers come from boards/$(MICROKIT_BOARD).mk only.

MICROKIT_SDK ?= /opt/seL4/microkit-sdk-2.3.0
MICROKIT_BOARD ?= qemu_virt_aarch64
# pds/board reads the board table this names.
export MICROKIT_BOARD
MICROKIT_CONFIG ?= debug

# rustup's cargo (Debian's cannot fetch git dependencies) with Debian's
# rustc, whose sysroot has the library source -Zbuild-std needs.
CARGO ?= cargo
TARGET_RUSTC ?= /usr/bin/rustc
QEMU ?= qemu-system-aarch64
PYTHON ?= python3
# Seconds `make test-qemu` waits for the expected output.
TEST_TIMEOUT ?= 60
# Seconds `make test-roottask` waits (its lifecycle check runs 1000 cycles).
ROOTTASK_TIMEOUT ?= 300
# The linker for both targets: rust-lld if present, else Debian's ld.lld.
LLD ?= $(firstword $(foreach l,rust-lld ld.lld ld.lld-22 ld.lld-19,$(shell command -v $(l) 2>/dev/null)))

.PHONY: all loader run test-qemu test-book kernel-config-check guest pds roottask roottask-image test-roottask bench-roottask clean system.xml check-system-xml manifests
.DEFAULT_GOAL := all

BOARD_TABLE := boards/$(MICROKIT_BOARD).mk
SYSTEM_TEMPLATE := boards/system.xml.in
DESCRIPTION_TEMPLATE := boards/system.toml.in
# The values of the board table the templates use (pds/board reads the
# table itself).
BOARD_VARS := GUEST_RAM_BASE GUEST_RAM_SIZE GUEST_PRIVATE_BASE GUEST_PRIVATE_SIZE GUEST_UART_BASE \
	GUEST_UNMAPPED_ADDR LOADER_ADDR

ifeq ($(wildcard $(BOARD_TABLE)),)
$(error no board table for MICROKIT_BOARD=$(MICROKIT_BOARD): expected $(BOARD_TABLE))
endif
include $(BOARD_TABLE)

# QEMU booting the image $(1) where the board's loader expects it. A board
# whose QEMU model runs no firmware where the real board has some names
# QEMU_FIRMWARE_ADDR in its table: CPU 0 starts there, in
# boards/<board>-firmware.S (assembled with binutils-aarch64-linux-gnu),
# which does that firmware's part and jumps to the loader. Every target
# that boots depends on $(QEMU_FIRMWARE) (empty on other boards).
ifdef QEMU_FIRMWARE_ADDR
QEMU_FIRMWARE := build/$(MICROKIT_BOARD)-firmware.bin
qemu-boot = $(QEMU) $(QEMU_MACHINE) -nographic $(QEMU_SERIAL) \
	-device loader,file=$(QEMU_FIRMWARE),addr=$(QEMU_FIRMWARE_ADDR),cpu-num=0 -device loader,file=$(1),addr=$(LOADER_ADDR)
AARCH64_AS ?= aarch64-linux-gnu-as
AARCH64_OBJCOPY ?= aarch64-linux-gnu-objcopy
$(QEMU_FIRMWARE): boards/$(MICROKIT_BOARD)-firmware.S $(BOARD_TABLE)
	@command -v $(AARCH64_AS) >/dev/null || { echo "$@: $(AARCH64_AS) not found: install binutils-aarch64-linux-gnu"; exit 1; }
	@mkdir -p $(@D)
	$(AARCH64_AS) --defsym LOADER_ADDR=$(LOADER_ADDR) $< -o $(@:.bin=.o)
	$(AARCH64_OBJCOPY) -O binary $(@:.bin=.o) $@
else
QEMU_FIRMWARE :=
qemu-boot = $(QEMU) $(QEMU_MACHINE) -nographic $(QEMU_SERIAL) -device loader,file=$(1),addr=$(LOADER_ADDR),cpu-num=0
endif

# Numbers of the system's layout that are the same on every board or follow
# from the board table; the templates use them beside the table's values.
# Where each VMM maps its VM's shared RAM.
VMM_RAM_VADDR := 0x20000000
# vm1's RAM is three memslots: the lower quarter and the upper half
# lockable, the second quarter not; vmctl locks the upper half.
GUEST_RAM_HALF := $(shell printf '0x%x' $$(( $(GUEST_RAM_SIZE) / 2 )))
GUEST_RAM_UPPER := $(shell printf '0x%x' $$(( $(GUEST_RAM_BASE) + $(GUEST_RAM_SIZE) / 2 )))
GUEST_RAM_QUARTER := $(shell printf '0x%x' $$(( $(GUEST_RAM_SIZE) / 4 )))
GUEST_RAM_SECOND_QUARTER := $(shell printf '0x%x' $$(( $(GUEST_RAM_BASE) + $(GUEST_RAM_SIZE) / 4 )))
CLIENT_MEMLOCK_PAGES := $(shell printf '%d' $$(( $(GUEST_RAM_SIZE) / 2 / 4096 )))
LAYOUT_VARS := VMM_RAM_VADDR GUEST_RAM_HALF GUEST_RAM_UPPER GUEST_RAM_QUARTER GUEST_RAM_SECOND_QUARTER CLIENT_MEMLOCK_PAGES

B := build/$(MICROKIT_BOARD)-$(MICROKIT_CONFIG)
SYSTEM_XML := $(B)/system.xml
# The VM description of this board's system.xml, and the boot manifests
# `vmsys manifest` writes from the two (one per VMM PD), with the Rust table
# that embeds them in the PDs.
DESCRIPTION := $(B)/system.toml
MANIFEST_DIR := $(B)/manifests
MANIFESTS_RS := $(B)/manifests.rs
TARGET_SPEC := $(B)/aarch64-sel4-microkit.json
GUEST_TARGET_DIR := $(B)/guest-target
GUEST_ELF := $(GUEST_TARGET_DIR)/aarch64-unknown-none/release/guest
PDS_TARGET_DIR := $(B)/pds-target
PDS_OUT := $(PDS_TARGET_DIR)/aarch64-sel4-microkit/release
ROOTTASK_TARGET_DIR := $(B)/roottask-target
ROOTTASK_ELF := $(ROOTTASK_TARGET_DIR)/aarch64-sel4-microkit/release/vmm-roottask.elf
ROOTTASK_IMG := $(B)/roottask.img
ROOTTASK_CLIENT_ELF := $(ROOTTASK_TARGET_DIR)/aarch64-sel4-microkit/release/vmm-roottask-client.elf
LOADER_IMG := $(B)/loader.img
REPORT := $(B)/report.txt

# system.xml and its VM description, system.toml, from their templates and
# the board table: render TEMPLATE. The files at the root are this output
# for qemu_virt_aarch64, kept in the repository for readers (and for the
# host tool's tests) and checked against the templates on every build.
define render
	sed -e 's|@GENERATED@|Generated from $(1) and boards/$(MICROKIT_BOARD).mk by `make system.xml`: edit those, not this file.|' \
	    $(foreach v,$(BOARD_VARS) $(LAYOUT_VARS),-e 's|@$(v)@|$($(v))|g') $(1)
endef

# Files that need no SDK.

$(SYSTEM_XML): $(SYSTEM_TEMPLATE) $(BOARD_TABLE) Makefile
	@mkdir -p $(@D)
	@$(call render,$(SYSTEM_TEMPLATE)) >$@

$(DESCRIPTION): $(DESCRIPTION_TEMPLATE) $(BOARD_TABLE) Makefile
	@mkdir -p $(@D)
	@$(call render,$(DESCRIPTION_TEMPLATE)) >$@

ifeq ($(MICROKIT_BOARD),qemu_virt_aarch64)
system.xml: $(SYSTEM_XML) $(DESCRIPTION)
	cp $(SYSTEM_XML) system.xml
	cp $(DESCRIPTION) system.toml

check-system-xml: $(SYSTEM_XML) $(DESCRIPTION)
	@cmp -s system.xml $(SYSTEM_XML) || { \
	    echo "system.xml differs from boards/system.xml.in + $(BOARD_TABLE): edit those and run 'make system.xml'"; \
	    exit 1; }
	@cmp -s system.toml $(DESCRIPTION) || { \
	    echo "system.toml differs from boards/system.toml.in + $(BOARD_TABLE): edit those and run 'make system.xml'"; \
	    exit 1; }
else
system.xml:
	@echo "system.xml and system.toml are the qemu_virt_aarch64 system; $(MICROKIT_BOARD)'s are generated at $(SYSTEM_XML) and $(DESCRIPTION)"

check-system-xml: $(SYSTEM_XML) $(DESCRIPTION)
	@true
endif

# The host tool, built for the host by the root workspace (none of the
# target's environment applies to it).
VMSYS = env -u RUSTC_BOOTSTRAP -u RUSTFLAGS -u RUSTC $(CARGO) run -q -p vmsys --

# The boot manifests: `vmsys manifest` checks this board's system.xml
# against its description (and the core's rules) and writes one manifest
# per VMM PD; manifests.rs names each by its PD for `include_bytes!`. Files
# are replaced only when their content changes, so the PDs rebuild only
# then.
# write-manifests DESCRIPTION, SYSTEM_XML, DIR, RS
define write-manifests
	@rm -rf $(3).new && mkdir -p $(3)
	$(VMSYS) manifest --system $(1) --xml $(2) --out $(3).new
	@set -e; dir=$(abspath $(3)); \
	for f in $(3).new/*.manifest; do \
	    n=$${f##*/}; cmp -s $$f $(3)/$$n || cp $$f $(3)/$$n; \
	done; \
	for f in $(3)/*.manifest; do \
	    [ -e $(3).new/$${f##*/} ] || rm -f $$f; \
	done; \
	rm -rf $(3).new; \
	{ echo '// Generated by the Makefile from `vmsys manifest` ($(1), $(2)); do not edit.'; \
	  echo '/// The boot manifest of each VMM protection domain, by PD name.'; \
	  echo 'pub static MANIFESTS: &[(&str, &[u8])] = &['; \
	  for f in $$dir/*.manifest; do n=$${f##*/}; echo "    (\"$${n%.manifest}\", include_bytes!(\"$$f\")),"; done; \
	  echo '];'; \
	} >$(4).tmp; \
	if cmp -s $(4).tmp $(4); then rm $(4).tmp; else mv $(4).tmp $(4); fi
endef

manifests: $(SYSTEM_XML) $(DESCRIPTION)
	$(call write-manifests,$(DESCRIPTION),$(SYSTEM_XML),$(MANIFEST_DIR),$(MANIFESTS_RS))

clean:
	rm -rf build

SDK_TOOL := $(wildcard $(MICROKIT_SDK)/bin/microkit)
SDK_BOARD := $(MICROKIT_SDK)/board/$(MICROKIT_BOARD)/$(MICROKIT_CONFIG)

ifeq ($(SDK_TOOL),)

all loader run test-qemu test-book kernel-config-check guest pds roottask roottask-image test-roottask bench-roottask:
	@echo "make $@ skipped: no Microkit SDK at $(MICROKIT_SDK) (set MICROKIT_SDK to a Microkit 2.3.0 SDK to build and boot on seL4)"

else ifeq ($(wildcard $(SDK_BOARD)/elf/sel4.elf),)

all loader run test-qemu test-book kernel-config-check guest pds roottask roottask-image test-roottask bench-roottask:
	@echo "make $@ skipped: the SDK at $(MICROKIT_SDK) has no board $(MICROKIT_BOARD) in config $(MICROKIT_CONFIG)"

else

export SEL4_INCLUDE_DIRS := $(abspath $(SDK_BOARD)/include)
export VMM_MANIFESTS_RS := $(abspath $(MANIFESTS_RS))
export RUSTC_BOOTSTRAP := 1

ifeq ($(LLD),)
$(error no lld linker found (rust-lld or ld.lld): install Debian's lld)
endif

all: loader

kernel-config-check:
	@$(PYTHON) kernel-config/check $(MICROKIT_BOARD) $(SDK_BOARD)/include/kernel/gen_config.json

$(TARGET_SPEC): pds/support/target-spec
	@mkdir -p $(@D)
	RUSTC=$(TARGET_RUSTC) pds/support/target-spec $@

# The guest: bare metal, linked at guest RAM's base.
guest:
	cd pds && RUSTC=$(TARGET_RUSTC) \
	RUSTFLAGS="-Clinker=$(LLD) -Clink-arg=-T$(abspath pds/guest/guest.ld) -Clink-arg=--defsym=GUEST_RAM_BASE=$(GUEST_RAM_BASE) -Cstrip=debuginfo" \
	$(CARGO) build -p guest --release --target aarch64-unknown-none -Zbuild-std=core \
	    --target-dir $(abspath $(GUEST_TARGET_DIR))

# The PDs, for the seL4 target; the VMM embeds the guest.
pds: guest manifests $(TARGET_SPEC) kernel-config-check
	cd pds && RUSTC=$(TARGET_RUSTC) VMM_GUEST_ELF=$(abspath $(GUEST_ELF)) \
	RUSTFLAGS="-Clinker=$(LLD)" \
	$(CARGO) build -p vmm-pd -p vmctl --release --target $(abspath $(TARGET_SPEC)) -Zjson-target-spec \
	    -Zbuild-std=core,alloc,compiler_builtins -Zbuild-std-features=compiler-builtins-mem \
	    --target-dir $(abspath $(PDS_TARGET_DIR))

# The root task is built for a debug kernel only: a release kernel prints
# nothing, and the root task prints through the kernel (it has no serial
# driver of its own).
ifneq ($(MICROKIT_CONFIG),debug)
roottask roottask-image test-roottask bench-roottask:
	@echo "make $@ skipped for $(MICROKIT_BOARD) $(MICROKIT_CONFIG): the root task runs with a debug kernel only (it prints through the kernel, which a release kernel cannot)"
else
# The VMM as seL4's root task, against the same kernel's headers, with its
# clients' program embedded (built first).
roottask: $(TARGET_SPEC) kernel-config-check
	cd roottask && RUSTC=$(TARGET_RUSTC) RUSTFLAGS="-Clinker=$(LLD)" \
	$(CARGO) build -p vmm-roottask-client --release --target $(abspath $(TARGET_SPEC)) -Zjson-target-spec \
	    -Zbuild-std=core,alloc,compiler_builtins -Zbuild-std-features=compiler-builtins-mem \
	    --target-dir $(abspath $(ROOTTASK_TARGET_DIR))
	cd roottask && RUSTC=$(TARGET_RUSTC) RUSTFLAGS="-Clinker=$(LLD)" VMM_CLIENT_ELF=$(abspath $(ROOTTASK_CLIENT_ELF)) \
	$(CARGO) build -p vmm-roottask --release --target $(abspath $(TARGET_SPEC)) -Zjson-target-spec \
	    -Zbuild-std=core,alloc,compiler_builtins -Zbuild-std-features=compiler-builtins-mem \
	    --target-dir $(abspath $(ROOTTASK_TARGET_DIR))
	@echo "built $(ROOTTASK_ELF)"

# The root task's boot image: the SDK's own kernel loader for this board
# and configuration, with the SDK's kernel and the root task (`vmsys
# boot-image`, in the loader's format), loaded by QEMU where the Microkit
# system's image is.
roottask-image: roottask $(QEMU_FIRMWARE)
	env -u RUSTC_BOOTSTRAP -u SEL4_INCLUDE_DIRS $(CARGO) run -q -p vmsys \
	    --target-dir $(abspath build/host-target) -- boot-image --loader $(SDK_BOARD)/elf/loader.elf \
	    --kernel $(SDK_BOARD)/elf/sel4.elf --root-task $(ROOTTASK_ELF) -o $(ROOTTASK_IMG)

# Boots the root task, checks its serial output, and holds every result of
# the request trace it ran on seL4 to the same trace on the host model.
test-roottask: roottask-image
	@command -v $(QEMU) >/dev/null || { echo "test-roottask: $(QEMU) not found: install qemu-system-arm"; exit 1; }
	pds/support/test-qemu roottask/expected-lines $(B)/roottask-serial.log $(ROOTTASK_TIMEOUT) \
	    $(call qemu-boot,$(ROOTTASK_IMG))
	grep -a -E '^(trace|guest) ' $(B)/roottask-serial.log >$(B)/trace-sel4.log
	env -u RUSTC_BOOTSTRAP -u SEL4_INCLUDE_DIRS $(CARGO) run -q -p vmsys \
	    --target-dir $(abspath build/host-target) -- trace >$(B)/trace-model.log
	@diff -u $(B)/trace-model.log $(B)/trace-sel4.log >$(B)/trace.diff || \
	    { head -n 40 $(B)/trace.diff; echo "test-roottask: FAILED: seL4 and the model differ ($(B)/trace.diff)"; exit 1; }
	@echo "test-roottask: all $$(grep -c '^trace ' $(B)/trace-sel4.log) results and $$(grep -c '^guest ' $(B)/trace-sel4.log) guest runs of the request trace on seL4 equal the model's"

# The root task's figures, in instructions: the same image under QEMU's
# -icount shift=0, where its counter counts executed instructions.
bench-roottask: roottask-image
	@command -v $(QEMU) >/dev/null || { echo "bench-roottask: $(QEMU) not found: install qemu-system-arm"; exit 1; }
	pds/support/test-qemu roottask/bench-lines $(B)/roottask-bench.log $(ROOTTASK_TIMEOUT) \
	    $(call qemu-boot,$(ROOTTASK_IMG)) -icount shift=0 >/dev/null
	@echo "root task on $(MICROKIT_BOARD) ($(MICROKIT_CONFIG) kernel), in instructions under QEMU -icount shift=0:"
	@grep -a '^bench:' $(B)/roottask-bench.log
endif

loader: pds $(SYSTEM_XML) check-system-xml $(QEMU_FIRMWARE)
	$(MICROKIT_SDK)/bin/microkit $(SYSTEM_XML) --search-path $(PDS_OUT) \
	    --board $(MICROKIT_BOARD) --config $(MICROKIT_CONFIG) -o $(LOADER_IMG) -r $(REPORT)
	@echo "built $(LOADER_IMG)"

QEMU_CMD = $(call qemu-boot,$(LOADER_IMG))

run: loader
	$(QEMU_CMD)

# The Microkit backend's book of capabilities, under the core, on the host
# (it makes no seL4 call). Its cargo workspace pins rust-sel4 by git, which
# is why it waits for an SDK like the rest of the target.
test-book:
	env -u RUSTC_BOOTSTRAP -u SEL4_INCLUDE_DIRS $(CARGO) test -q -p vmm-book -p board \
	    --target-dir $(abspath build/host-target)

test-qemu: test-book loader
	@command -v $(QEMU) >/dev/null || { echo "test-qemu: $(QEMU) not found: install qemu-system-arm"; exit 1; }
	pds/support/test-qemu pds/support/expected-lines $(B)/serial.log $(TEST_TIMEOUT) $(QEMU_CMD)

endif
include pds/bench/bench.mk
include linux/linux.mk
