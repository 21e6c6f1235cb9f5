//! `check` on bad descriptions and bad system.xml files: each test breaks
//! one rule of the fixture in `data/` (which passes) and asserts the exact
//! messages, line numbers included.

mod common;

use common::{check, edit, TOML, XML};

#[test]
fn the_fixture_passes() {
    assert_eq!(check(TOML, XML), Vec::<String>::new());
}

// ---- The description on its own. ----

#[test]
fn a_vm_is_either_internal_or_a_clients() {
    let toml = edit(TOML, "entry = 0x4000_0000\ninternal = true", "entry = 0x4000_0000");
    assert_eq!(
        check(&toml, XML),
        ["system.toml:5: vm0: a VM is either internal (`internal = true`) or controlled by a client ([vm.client]); \
          say exactly one"]
    );
    let toml = edit(TOML, "vcpus = 2\nentry = 0x4000_0000\n", "vcpus = 2\nentry = 0x4000_0000\ninternal = true\n");
    assert_eq!(
        check(&toml, XML),
        ["system.toml:40: vm1: a VM is either internal (`internal = true`) or controlled by a client ([vm.client]); \
          say exactly one"]
    );
}

#[test]
fn a_client_has_a_budget_or_privilege_not_both() {
    let toml = edit(TOML, "memlock_pages = 256", "memlock_pages = 256\nprivileged = true");
    assert_eq!(
        check(&toml, XML),
        ["system.toml:46: client vmctl of vm1: give either `memlock_pages` or `privileged = true`"]
    );
}

#[test]
fn vcpu_count_within_the_cores_limit() {
    let toml = edit(TOML, "vcpus = 2", "vcpus = 9");
    assert_eq!(check(&toml, XML), ["system.toml:43: vm1: vcpus = 9 is outside 1..=8 (the core's MAX_VCPUS)"]);
}

#[test]
fn names_and_regions_are_described_once() {
    let toml = edit(TOML, "name = \"vm1\"\nvmm = \"vmm1\"", "name = \"vm0\"\nvmm = \"vmm0\"");
    let got = check(&toml, XML);
    assert!(got.contains(&"system.toml:40: VM vm0 is described twice (first at line 5)".to_string()), "{got:#?}");
    assert!(
        got.contains(
            &"system.toml:40: vmm0 already manages vm0 (line 5): a Microkit PD manages at most one VM, so each VM \
              needs its own VMM PD"
                .to_string()
        ),
        "{got:#?}"
    );
    let toml = edit(TOML, "[[vm.private]]\nregion = \"vm1_private\"", "[[vm.private]]\nregion = \"vm0_private\"");
    let got = check(&toml, XML);
    assert!(
        got.contains(
            &"system.toml:57: region vm0_private is already described at line 18: a region backs one VM, once"
                .to_string()
        ),
        "{got:#?}"
    );
}

#[test]
fn regions_are_page_aligned() {
    let toml = edit(
        TOML,
        "vmm_vaddr = 0x2000_0000\nsize = 0x20_0000\n\n[[vm.private]]\nregion = \"vm1",
        "vmm_vaddr = 0x2000_0800\nsize = 0x20_0000\n\n[[vm.private]]\nregion = \"vm1",
    );
    let xml = edit(XML, "<map mr=\"vm1_ram\" vaddr=\"0x20000000\"", "<map mr=\"vm1_ram\" vaddr=\"0x20000800\"");
    assert_eq!(check(&toml, &xml), ["system.toml:51: ram vm1_ram: vmm_vaddr 0x20000800 must be 4 KiB aligned"]);
    let toml = edit(
        TOML,
        "gpa = 0x5000_0000\nsize = 0x1_0000\n\n[[vm.memslot]]\nid = 0\nregion = \"vm1",
        "gpa = 0x5000_0000\nsize = 0x1_0800\n\n[[vm.memslot]]\nid = 0\nregion = \"vm1",
    );
    assert_eq!(
        check(&toml, XML),
        [
            "system.toml:57: private vm1_private: size 0x10800 differs from the memory region's 0x10000 (system.xml:7)",
            "system.toml:57: private vm1_private: size 0x10800 must be a non-zero multiple of 4 KiB",
        ]
    );
}

#[test]
fn a_memslot_names_a_region_of_its_vm() {
    let toml = edit(TOML, "id = 1\nregion = \"vm1_private\"", "id = 1\nregion = \"vm0_private\"");
    assert_eq!(
        check(&toml, XML),
        ["system.toml:76: memslot 1 of vm1: `vm0_private` is neither a ram nor a private region of vm1"]
    );
}

#[test]
fn memslot_ids_do_not_repeat() {
    let toml = edit(TOML, "id = 2\n", "id = 0\n");
    assert_eq!(check(&toml, XML), ["system.toml:69: memslot id 0 of vm1 repeats (first at line 62)"]);
}

#[test]
fn a_memslot_stays_inside_its_region() {
    let toml = edit(TOML, "size = 0x10_0000\noffset = 0x10_0000", "size = 0x20_0000\noffset = 0x10_0000");
    let got = check(&toml, XML);
    assert_eq!(
        got,
        ["system.toml:69: memslot 2 of vm1 covers offsets 0x100000..0x300000 of vm1_ram, which is 0x200000 bytes",]
    );
}

#[test]
fn a_memslot_is_where_its_region_puts_that_offset() {
    let toml = edit(TOML, "gpa = 0x4010_0000", "gpa = 0x4020_0000");
    assert_eq!(
        check(&toml, XML),
        ["system.toml:69: memslot 2 of vm1 is at gpa 0x40200000, but offset 0x100000 of vm1_ram is at gpa 0x40100000 in the VM"]
    );
}

#[test]
fn memslots_do_not_overlap() {
    // Slot 0 grows over slot 2; slot 2 stays where its offset puts it.
    let toml = edit(TOML, "size = 0x10_0000\nlockable = true", "size = 0x10_1000\nlockable = true");
    assert_eq!(
        check(&toml, XML),
        ["system.toml:69: memslot 2 of vm1 [0x40100000, 0x40200000) overlaps memslot 0 [0x40000000, 0x40101000) (line 62)"]
    );
}

#[test]
fn guest_memfd_slots_are_neither_lockable_nor_read_only() {
    let toml = edit(
        TOML,
        "id = 1\nregion = \"vm1_private\"",
        "id = 1\nlockable = true\nreadonly = true\nregion = \"vm1_private\"",
    );
    assert_eq!(
        check(&toml, XML),
        [
            "system.toml:76: memslot 1 of vm1 is lockable, but it is backed by private region vm1_private: guest_memfd \
             slots cannot be locked (the VMM answers EINVAL)",
            "system.toml:76: memslot 1 of vm1 is read-only, but it is backed by private region vm1_private: a \
             guest_memfd slot cannot be read-only (GUEST_MEMFD with READONLY is EINVAL)",
        ]
    );
}

#[test]
fn the_entry_point_is_in_a_ram_memslot() {
    let toml = edit(TOML, "vcpus = 2\nentry = 0x4000_0000", "vcpus = 2\nentry = 0x5000_0000");
    assert_eq!(
        check(&toml, XML),
        ["system.toml:44: vm1: entry 0x50000000 is outside every RAM memslot: the VMM loads the guest image into shared RAM"]
    );
}

#[test]
fn a_device_is_outside_every_memslot() {
    let toml = edit(TOML, "base = 0x0900_0000\nsize = 0x1000\n\n[[vm]]", "base = 0x4000_0000\nsize = 0x1000\n\n[[vm]]");
    assert_eq!(
        check(&toml, XML),
        ["system.toml:35: pl011 of vm0 at [0x40000000, 0x40001000) overlaps memslot 0 (line 23): the VMM would map \
          memory there and the device would never see an access"]
    );
}

#[test]
fn a_manifest_holds_at_most_32_memslots() {
    // 31 more one-page slots of vm1's RAM, 34 in all, where slot 2 was.
    let mut toml = TOML.to_string();
    for i in 0..31u64 {
        toml.push_str(&format!(
            "\n[[vm.memslot]]\nid = {}\nregion = \"vm1_ram\"\ngpa = {:#x}\nsize = 0x1000\noffset = {:#x}\n",
            10 + i,
            0x4000_0000u64 + 0x10_0000 + i * 0x1000,
            0x10_0000 + i * 0x1000
        ));
    }
    let toml = edit(
        &toml,
        "id = 2\nregion = \"vm1_ram\"\ngpa = 0x4010_0000\nsize = 0x10_0000\noffset = 0x10_0000",
        "id = 2\nregion = \"vm1_ram\"\ngpa = 0x4014_0000\nsize = 0xc_0000\noffset = 0x14_0000",
    );
    assert_eq!(check(&toml, XML), ["system.toml:40: vm1: 34 memslots; a boot manifest holds at most 32"]);
}

// ---- Names that must resolve in system.xml. ----

#[test]
fn every_name_resolves_in_system_xml() {
    let toml = edit(TOML, "vmm = \"vmm1\"", "vmm = \"vmm9\"");
    assert_eq!(
        check(&toml, XML),
        [
            "system.toml:40: vm1: system.xml has no protection domain vmm9",
            "system.xml:22: virtual machine vm1 belongs to PD vmm1, but the description makes vmm9 its VMM (system.toml:40)",
        ]
    );
    let toml = edit(TOML, "name = \"vm1\"", "name = \"vm9\"");
    let got = check(&toml, XML);
    assert!(got.contains(&"system.toml:40: vm9: system.xml has no virtual machine vm9".to_string()), "{got:#?}");
    let toml = edit(TOML, "pd = \"vmctl\"", "pd = \"ctl\"");
    assert_eq!(
        check(&toml, XML),
        [
            "system.toml:46: client ctl of vm1: system.xml has no protection domain ctl",
            "system.toml:46: vm1 is controlled by ctl, but system.xml gives ctl no protected-call channel to vmm1",
            "system.xml:35: PD vmctl can call vmm1 (channel 0 at the VMM's end), but only ctl on channel 0 controls vm1",
        ]
    );
}

#[test]
fn described_regions_exist_with_their_size() {
    let xml = edit(XML, "name=\"vm1_private\" size=\"0x10000\"", "name=\"vm1_private\" size=\"0x20000\"");
    assert_eq!(
        check(TOML, &xml),
        ["system.toml:57: private vm1_private: size 0x10000 differs from the memory region's 0x20000 (system.xml:7)"]
    );
    let toml = edit(TOML, "[[vm.ram]]\nregion = \"vm0_ram\"", "[[vm.ram]]\nregion = \"vm0_rom\"");
    let got = check(&toml, XML);
    assert!(
        got.contains(&"system.toml:12: ram vm0_rom: system.xml has no memory region vm0_rom".to_string()),
        "{got:#?}"
    );
}

// ---- Who maps each region. ----

#[test]
fn a_private_region_is_mapped_into_no_pd_not_even_its_vmm() {
    let vmm = "<map mr=\"vm1_ram\" vaddr=\"0x20000000\" perms=\"rw\" />";
    let xml = edit(XML, vmm, &format!("{vmm}<map mr=\"vm1_private\" vaddr=\"0x30000000\" perms=\"r\" />"));
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:21: private region vm1_private (guest_memfd of vm1) is mapped into PD vmm1: private memory may \
          be mapped into its VM only"]
    );
    let ctl = "<program_image path=\"vmctl.elf\" />";
    let xml = edit(XML, ctl, &format!("{ctl}<map mr=\"vm0_private\" vaddr=\"0x30000000\" perms=\"rw\" />"));
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:31: private region vm0_private (guest_memfd of vm0) is mapped into PD vmctl: private memory may \
          be mapped into its VM only"]
    );
}

#[test]
fn a_private_region_is_mapped_into_no_second_vm() {
    let own = "<map mr=\"vm0_private\" vaddr=\"0x50000000\" perms=\"rw\" />";
    let xml = edit(XML, own, &format!("{own}<map mr=\"vm1_private\" vaddr=\"0x60000000\" perms=\"rw\" />"));
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:15: private region vm1_private (guest_memfd of vm1) is mapped into VM vm0: private memory may be \
          mapped into its own VM only"]
    );
}

#[test]
fn a_private_region_is_mapped_into_its_vm_once_at_its_address() {
    let own = "<map mr=\"vm1_private\" vaddr=\"0x50000000\" perms=\"rw\" />";
    let xml = edit(XML, own, "<map mr=\"vm1_private\" vaddr=\"0x51000000\" perms=\"rw\" />");
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:26: private region vm1_private is mapped into vm1 at 0x51000000; the description says 0x50000000"]
    );
    let xml = edit(XML, own, &format!("{own}\n{own}"));
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:27: private region vm1_private is mapped into vm1 a second time (first at system.xml:26)"]
    );
    let xml = edit(XML, own, "");
    assert_eq!(check(TOML, &xml), ["system.toml:57: private region vm1_private is not mapped into vm1"]);
}

#[test]
fn shared_ram_is_mapped_into_its_vmm_at_the_manifests_address_read_write() {
    let vmm = "<map mr=\"vm1_ram\" vaddr=\"0x20000000\" perms=\"rw\" />";
    let xml = edit(XML, vmm, "");
    assert_eq!(
        check(TOML, &xml),
        ["system.toml:51: shared RAM vm1_ram is not mapped into its VMM vmm1 (the manifest says at 0x20000000)"]
    );
    let xml = edit(XML, vmm, "<map mr=\"vm1_ram\" vaddr=\"0x30000000\" perms=\"r\" />");
    assert_eq!(
        check(TOML, &xml),
        [
            "system.xml:21: shared RAM vm1_ram is mapped into its VMM vmm1 `r`; the VMM needs `rw` to load the guest \
             and emulate devices",
            "system.xml:21: shared RAM vm1_ram is mapped into its VMM vmm1 at 0x30000000; the manifest says 0x20000000",
        ]
    );
}

#[test]
fn shared_ram_is_mapped_into_no_other_pd_or_vm() {
    let ctl = "<program_image path=\"vmctl.elf\" />";
    let xml = edit(XML, ctl, &format!("{ctl}<map mr=\"vm1_ram\" vaddr=\"0x30000000\" perms=\"r\" />"));
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:31: shared RAM vm1_ram of vm1 is mapped into PD vmctl: guest RAM may be shared with its VMM vmm1 only"]
    );
    let own = "<map mr=\"vm0_private\" vaddr=\"0x50000000\" perms=\"rw\" />";
    let xml = edit(XML, own, &format!("{own}<map mr=\"vm1_ram\" vaddr=\"0x60000000\" perms=\"rw\" />"));
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:15: shared RAM vm1_ram of vm1 is mapped into VM vm0: guest RAM belongs to one VM"]
    );
    let xml = edit(XML, "<map mr=\"vm0_ram\" vaddr=\"0x40000000\" perms=\"rwx\" />", "");
    assert_eq!(check(TOML, &xml), ["system.toml:12: shared RAM vm0_ram is not mapped into vm0"]);
}

#[test]
fn a_memslots_region_is_mapped_with_its_rights() {
    let xml = edit(
        XML,
        "<map mr=\"vm1_ram\" vaddr=\"0x40000000\" perms=\"rwx\" />",
        "<map mr=\"vm1_ram\" vaddr=\"0x40000000\" perms=\"rx\" />",
    );
    assert_eq!(
        check(TOML, &xml),
        [
            "system.toml:62: memslot 0 of vm1 needs vm1_ram mapped `rw` into vm1; system.xml:25 maps it `rx`",
            "system.toml:69: memslot 2 of vm1 needs vm1_ram mapped `rw` into vm1; system.xml:25 maps it `rx`",
        ]
    );
    let toml = edit(TOML, "offset = 0x10_0000\n", "offset = 0x10_0000\nreadonly = true\n");
    assert_eq!(
        check(&toml, XML),
        ["system.toml:69: memslot 2 of vm1 is read-only, but system.xml:25 maps vm1_ram writable into vm1: the \
          guest's writes would not fault"]
    );
}

#[test]
fn a_lockable_slot_uses_4k_pages() {
    let xml = edit(
        XML,
        "name=\"vm1_ram\" size=\"0x200000\" page_size=\"0x1000\"",
        "name=\"vm1_ram\" size=\"0x200000\" page_size=\"0x200000\"",
    );
    assert_eq!(
        check(TOML, &xml),
        ["system.toml:62: memslot 0 of vm1 is lockable, but vm1_ram uses 0x200000-byte pages (system.xml:6): locking \
          needs 4 KiB pages"]
    );
    // Without page_size, Microkit picks 2 MiB pages for a 2 MiB region
    // mapped at 2 MiB-aligned addresses.
    let xml =
        edit(XML, "name=\"vm1_ram\" size=\"0x200000\" page_size=\"0x1000\"", "name=\"vm1_ram\" size=\"0x200000\"");
    assert_eq!(
        check(TOML, &xml),
        ["system.toml:62: memslot 0 of vm1 is lockable, but vm1_ram uses 0x200000-byte pages (system.xml:6, \
          Microkit's choice when page_size is omitted): locking needs 4 KiB pages"]
    );
}

#[test]
fn nothing_else_mapped_into_a_vm_overlaps_a_memslot_or_covers_a_device() {
    let xml = edit(
        XML,
        "<memory_region name=\"vm0_ram\"",
        "<memory_region name=\"extra\" size=\"0x2000\" />\n<memory_region name=\"vm0_ram\"",
    );
    let own = "<map mr=\"vm0_private\" vaddr=\"0x50000000\" perms=\"rw\" />";
    let bad = edit(&xml, own, &format!("{own}<map mr=\"extra\" vaddr=\"0x501ff000\" perms=\"rw\" />"));
    let got = check(TOML, &bad);
    assert!(got.is_empty(), "0x501ff000 is past vm0_private's 64 KiB slot: {got:#?}");
    let bad = edit(&xml, own, &format!("{own}<map mr=\"extra\" vaddr=\"0x5000f000\" perms=\"rw\" />"));
    assert_eq!(
        check(TOML, &bad),
        ["system.xml:16: region extra mapped into vm0 at [0x5000f000, 0x50011000) overlaps memslot 1 [0x50000000, \
          0x50010000) (system.toml:29)"]
    );
    let bad = edit(&xml, own, &format!("{own}<map mr=\"extra\" vaddr=\"0x08fff000\" perms=\"rw\" />"));
    assert_eq!(
        check(TOML, &bad),
        ["system.xml:16: region extra mapped into vm0 at [0x8fff000, 0x9001000) covers the pl011 at 0x9000000 \
          (system.toml:35): its accesses would not trap to the VMM"]
    );
}

// ---- Channels and priorities. ----

#[test]
fn an_internal_vms_vmm_has_no_client() {
    let xml = edit(XML, "    </channel>\n", "    </channel>\n    <channel>\n        <end pd=\"vmctl\" id=\"1\" pp=\"true\" />\n        <end pd=\"vmm0\" id=\"0\" />\n    </channel>\n");
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:39: vm0 is internal, but PD vmctl can call its VMM vmm0 over this channel: an internal VM's VMM \
          has no client"]
    );
}

#[test]
fn a_client_calls_its_vmm_over_a_pp_channel() {
    let xml = edit(XML, "<end pd=\"vmctl\" id=\"0\" pp=\"true\" />", "<end pd=\"vmctl\" id=\"0\" />");
    assert_eq!(
        check(TOML, &xml),
        ["system.toml:46: vm1 is controlled by vmctl, but system.xml gives vmctl no protected-call channel to vmm1 (the \
          channel at system.xml:34 has no pp=\"true\" on vmctl's end)"]
    );
    let xml = edit(XML, "<end pd=\"vmm1\" id=\"0\" />", "<end pd=\"vmm1\" id=\"3\" />");
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:36: vmm1's end of its channel from vmctl has id 3; the description says the client's channel is 0"]
    );
}

#[test]
fn only_its_client_calls_a_client_vms_vmm() {
    let xml = edit(XML, "    </channel>\n", "    </channel>\n    <channel>\n        <end pd=\"vmm0\" id=\"1\" pp=\"true\" />\n        <end pd=\"vmm1\" id=\"1\" />\n    </channel>\n");
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:39: PD vmm0 can call vmm1 (channel 1 at the VMM's end), but only vmctl on channel 0 controls vm1"]
    );
}

#[test]
fn a_client_sits_below_its_vmm_and_a_vm_below_its_vmm() {
    let xml = edit(XML, "name=\"vmctl\" priority=\"100\"", "name=\"vmctl\" priority=\"200\"");
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:30: client vmctl (priority 200) is not below its VMM vmm1 (priority 200): a protected call must \
          go to a strictly higher priority"]
    );
    let xml = edit(XML, "name=\"vm0\" priority=\"50\"", "name=\"vm0\" priority=\"254\"");
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:12: vm0 (priority 254) is not below its VMM vmm0 (priority 200): the VMM must preempt its VM to \
          handle its faults"]
    );
    // Microkit's default VM priority is 0: below any VMM.
    let xml = edit(XML, "name=\"vm0\" priority=\"50\"", "name=\"vm0\"");
    assert_eq!(check(TOML, &xml), Vec::<String>::new());
}

// ---- vCPUs. ----

#[test]
fn vcpu_ids_are_unique_below_the_limit_and_as_described() {
    let xml = edit(XML, "<vcpu id=\"1\" />", "<vcpu id=\"0\" />");
    assert_eq!(check(TOML, &xml), ["system.xml:24: vCPU id 0 of vm1 repeats (first at system.xml:23)"]);
    let xml = edit(XML, "<vcpu id=\"1\" />", "<vcpu id=\"8\" />");
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:24: vCPU id 8 of vm1 is over the limit: ids run from 0 to 7 (the core's MAX_VCPUS is 8)"]
    );
    let xml = edit(XML, "<vcpu id=\"1\" />", "<vcpu id=\"2\" />");
    assert_eq!(
        check(TOML, &xml),
        ["system.xml:22: vm1's vCPU ids in system.xml are 0, 2; the description's vcpus = 2 needs exactly 0, 1"]
    );
}

// ---- The core's own rules. ----

#[test]
fn the_cores_memslot_rules_refuse_the_record_that_breaks_them() {
    // Slot 2 moved half a page: consistent with its region, but not page
    // aligned, which is the core's rule 3.2.
    let toml = edit(
        TOML,
        "gpa = 0x4010_0000\nsize = 0x10_0000\noffset = 0x10_0000",
        "gpa = 0x4010_0800\nsize = 0xf_f000\noffset = 0x10_0800",
    );
    assert_eq!(
        check(&toml, XML),
        ["system.toml:69: vm1: the VMM refuses memslot 2: EINVAL: memslot: memory_size, guest_phys_addr and \
          userspace_addr must be page-aligned"]
    );
}

#[test]
fn the_cores_rules_run_on_what_the_layout_rules_cannot_see() {
    // A second PL011 over the first: the core refuses device record 1.
    let toml = edit(
        TOML,
        "size = 0x1000\n\n[[vm]]",
        "size = 0x1000\n\n[[vm.device]]\nkind = \"pl011\"\nbase = 0x0900_0800\nsize = 0x1000\n\n[[vm]]",
    );
    assert_eq!(
        check(&toml, XML),
        ["system.toml:40: vm0: the VMM refuses device 1: EEXIST: device: device range overlaps another device"]
    );
}

// ---- Files that do not parse. ----

#[test]
fn a_bad_description_is_refused_with_its_line() {
    let toml = edit(TOML, "vcpus = 2", "vcpus = -2");
    assert_eq!(common::parse_errors(&toml, XML), ["system.toml:43: invalid value: integer `-2`, expected u32"]);
    let toml = edit(TOML, "vcpus = 2", "vcpu = 2");
    assert_eq!(
        common::parse_errors(&toml, XML),
        ["system.toml:43: unknown field `vcpu`, expected one of `name`, `vmm`, `vcpus`, `entry`, `internal`, `client`, \
          `ram`, `private`, `memslot`, `device`, `gic`, `linux`"]
    );
    let toml = edit(
        TOML,
        "kind = \"pl011\"\nbase = 0x0900_0000\nsize = 0x1000\n\n[[vm]]",
        "kind = \"uart\"\nbase = 0x0900_0000\nsize = 0x1000\n\n[[vm]]",
    );
    assert_eq!(common::parse_errors(&toml, XML), ["system.toml:36: unknown variant `uart`, expected `pl011`"]);
}

#[test]
fn a_bad_system_xml_is_refused_with_its_line() {
    let xml = edit(
        XML,
        "</virtual_machine>\n    </protection_domain>\n\n    <protection_domain name=\"vmctl\"",
        "</virtual_machine>\n\n    <protection_domain name=\"vmctl\"",
    );
    assert_eq!(
        common::parse_errors(TOML, &xml),
        ["system.xml:37: not well-formed XML: expected 'protection_domain' tag, not 'system' at 37:1"]
    );
    let xml = edit(XML, "vaddr=\"0x50000000\" perms=\"rw\" />\n        </virtual_machine>\n    </protection_domain>\n\n    <protection_domain name=\"vmm1\"", "vaddr=\"0x5000000g\" perms=\"rw\" />\n        </virtual_machine>\n    </protection_domain>\n\n    <protection_domain name=\"vmm1\"");
    assert_eq!(common::parse_errors(TOML, &xml), ["system.xml:15: `vaddr` of <map> is not a number: \"0x5000000g\""]);
    let xml = edit(
        XML,
        "<map mr=\"vm1_ram\" vaddr=\"0x40000000\" perms=\"rwx\" />",
        "<map vaddr=\"0x40000000\" perms=\"rwy\" />",
    );
    assert_eq!(
        common::parse_errors(TOML, &xml),
        [
            "system.xml:25: <map> has no `mr` attribute",
            "system.xml:25: perms \"rwy\" must be a combination of r, w and x",
        ]
    );
    let xml = edit(XML, "<end pd=\"vmm1\" id=\"0\" />", "<end pd=\"vmm1\" id=\"0\" pp=\"yes\" />");
    assert_eq!(common::parse_errors(TOML, &xml), ["system.xml:36: pp must be \"true\" or \"false\", not \"yes\""]);
}

// ---- A VM's virtual GIC against system.xml. ----

/// vm0 with a GICv2: distributor at 0x800_0000, CPU interface at
/// 0x801_0000.
const GIC: &str = "kind = \"pl011\"\nbase = 0x0900_0000\nsize = 0x1000\n\n[vm.gic]\nversion = 2\ndist = 0x0800_0000\ncpu = 0x0801_0000\n";
/// The board's GICV frame, mapped into vm0 where its CPU interface is.
const GICV: (&str, &str) = (
    "    <memory_region name=\"vm0_private\" size=\"0x10000\" page_size=\"0x1000\" />\n",
    "    <memory_region name=\"vm0_private\" size=\"0x10000\" page_size=\"0x1000\" />\n    <memory_region name=\"gicv\" size=\"0x2000\" phys_addr=\"0x8040000\" />\n",
);
const GICV_MAP: (&str, &str) = (
    "            <map mr=\"vm0_private\" vaddr=\"0x50000000\" perms=\"rw\" />\n",
    "            <map mr=\"vm0_private\" vaddr=\"0x50000000\" perms=\"rw\" />\n            <map mr=\"gicv\" vaddr=\"0x8010000\" perms=\"rw\" cached=\"false\" />\n",
);

fn with_gic() -> (String, String) {
    let toml = edit(TOML, "kind = \"pl011\"\nbase = 0x0900_0000\nsize = 0x1000\n\n[[vm]]", &format!("{GIC}\n[[vm]]"));
    let xml = edit(&edit(XML, GICV.0, GICV.1), GICV_MAP.0, GICV_MAP.1);
    (toml, xml)
}

#[test]
fn an_internal_vm_with_a_gic_and_its_cpu_interface_mapped_passes() {
    let (toml, xml) = with_gic();
    assert_eq!(check(&toml, &xml), Vec::<String>::new());
}

#[test]
fn a_gicv2_cpu_interface_must_be_mapped_into_its_vm() {
    let (toml, _) = with_gic();
    let xml = edit(XML, GICV.0, GICV.1);
    assert_eq!(
        check(&toml, &xml),
        ["system.toml:40: vm0: nothing is mapped into it at its GIC CPU interface 0x8010000: map the board's \
          virtual CPU interface (GICV) there"]
    );
}

#[test]
fn no_region_may_cover_the_gic_distributor() {
    let (toml, xml) = with_gic();
    let xml = edit(&xml, "vaddr=\"0x8010000\"", "vaddr=\"0x8000000\"");
    let m = check(&toml, &xml);
    assert!(
        m.iter().any(|l| l.contains(
            "region gicv mapped into vm0 at [0x8000000, 0x8002000) covers the GIC distributor \
                                     at 0x8000000 (system.toml:40): its accesses would not trap to the VMM"
        )),
        "{m:#?}"
    );
}

#[test]
fn a_clients_vm_cannot_have_a_gic() {
    // vm1, the last VM of the fixture, is vmctl's.
    let toml = format!("{TOML}\n[vm.gic]\nversion = 2\ndist = 0x0800_0000\ncpu = 0x0801_0000\n");
    let m = check(&toml, XML);
    assert!(
        m.iter().any(|l| l.ends_with(
            "vm1: a client's VM (client vmctl) cannot have a virtual GIC: the VMM gives one to its internal VM only, \
             from the boot manifest"
        )),
        "{m:#?}"
    );
}
