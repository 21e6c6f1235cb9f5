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
LINUX_DESCRIPTION := linux/virt.toml
# The kernel's metapackage: its dependency names the image package.
LINUX_KERNEL_PACKAGE ?= linux-image-cloud-arm64
LINUX_TIMEOUT ?= 300
LINUX_QEMU_FLOOR = $(QEMU) -machine virt -cpu cortex-a53 -smp 2 -m 256M -nographic \
	-icount shift=0,sleep=off -kernel $(LINUX_OUT)/Image -initrd $(LINUX_OUT)/initramfs.cpio \
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

linux-floor: linux-guest
	@command -v $(QEMU) >/dev/null || { echo "linux-floor: $(QEMU) not found: install qemu-system-arm"; exit 1; }
	linux/console $(LINUX_OUT)/floor.log $(LINUX_TIMEOUT) $(LINUX_QEMU_FLOOR)
	@echo "linux-floor: bare QEMU virt, no hypervisor, 2 CPUs, -icount shift=0,sleep=off, in the guest's uptime: $$(grep -a -o 'reached /init at [0-9.]* s' $(LINUX_OUT)/floor.log), the self-test done and the $$(grep -a -o 'shell at [0-9.]* s' $(LINUX_OUT)/floor.log)"
