//! Authority and scheduling: who may call each VMM, and the priorities
//! that protected calls and fault handling need.
//!
//! A client controls a VM only through a protected-call channel to its
//! VMM (`pp="true"` on the client's end), so the channels in system.xml are
//! the authority: an internal VM's VMM may be called by nobody, and a
//! client VM's VMM by its client alone, on the channel the manifest names.
//! Protected calls go to strictly higher priority, so a client sits below
//! its VMM; a VMM handles its VM's faults, so the VM sits below it too.

use super::Ctx;
use crate::description::Control;
use crate::sdf::End;

/// Reports every channel and priority that breaks a rule above.
pub fn check(ctx: &mut Ctx) {
    let (desc, sdf) = (ctx.desc, ctx.sdf);
    for vm in &desc.vms {
        let Some(vmm) = sdf.pd(&vm.vmm) else { continue };
        // Every channel on which another PD can call this VMM: (the
        // caller's end, the VMM's end).
        let calls: Vec<(&End, &End)> = sdf
            .channels
            .iter()
            .filter_map(|c| {
                let [a, b] = &c.ends;
                if b.pd == vm.vmm && a.pp && a.pd != vm.vmm {
                    Some((a, b))
                } else if a.pd == vm.vmm && b.pp && b.pd != vm.vmm {
                    Some((b, a))
                } else {
                    None
                }
            })
            .collect();
        match &vm.control {
            Control::Internal { .. } => {
                for (caller, _) in &calls {
                    ctx.xml_at(
                        caller.line,
                        format!(
                            "{} is internal, but PD {} can call its VMM {} over this channel: an internal VM's \
                             VMM has no client",
                            vm.name, caller.pd, vm.vmm
                        ),
                    );
                }
            }
            Control::Client(client) => {
                let served: Vec<&(&End, &End)> = calls.iter().filter(|(c, _)| c.pd == client.pd).collect();
                let matching = served.iter().find(|(_, v)| v.id == u64::from(client.channel));
                if served.is_empty() {
                    let unpp = sdf.channels.iter().find(|c| {
                        let [a, b] = &c.ends;
                        (a.pd == client.pd && b.pd == vm.vmm) || (b.pd == client.pd && a.pd == vm.vmm)
                    });
                    let hint = match unpp {
                        Some(c) => format!(
                            " (the channel at {} has no pp=\"true\" on {}'s end)",
                            ctx.xml_ref(c.line),
                            client.pd
                        ),
                        None => String::new(),
                    };
                    ctx.desc_at(
                        client.line,
                        format!(
                            "{} is controlled by {}, but system.xml gives {} no protected-call channel to {}{hint}",
                            vm.name, client.pd, client.pd, vm.vmm
                        ),
                    );
                } else if matching.is_none() {
                    if let Some((_, vmm_end)) = served.first() {
                        ctx.xml_at(
                            vmm_end.line,
                            format!(
                                "{}'s end of its channel from {} has id {}; the description says the client's \
                                 channel is {}",
                                vm.vmm, client.pd, vmm_end.id, client.channel
                            ),
                        );
                    }
                }
                let first_served = matching.or(served.first()).map(|(c, _)| c.line);
                for (caller, vmm_end) in &calls {
                    if Some(caller.line) == first_served {
                        continue;
                    }
                    ctx.xml_at(
                        caller.line,
                        format!(
                            "PD {} can call {} (channel {} at the VMM's end), but only {} on channel {} controls {}",
                            caller.pd, vm.vmm, vmm_end.id, client.pd, client.channel, vm.name
                        ),
                    );
                }
                if let Some(c) = sdf.pd(&client.pd) {
                    if c.priority >= vmm.priority {
                        ctx.xml_at(
                            c.line,
                            format!(
                                "client {} (priority {}) is not below its VMM {} (priority {}): a protected call \
                                 must go to a strictly higher priority",
                                c.name, c.priority, vmm.name, vmm.priority
                            ),
                        );
                    }
                }
            }
            Control::Unclear => {}
        }
        if let Some(xml_vm) = vmm.vm.as_ref().filter(|v| v.name == vm.name) {
            if xml_vm.priority >= vmm.priority {
                ctx.xml_at(
                    xml_vm.line,
                    format!(
                        "{} (priority {}) is not below its VMM {} (priority {}): the VMM must preempt its VM to \
                         handle its faults",
                        vm.name, xml_vm.priority, vmm.name, vmm.priority
                    ),
                );
            }
        }
    }
}
