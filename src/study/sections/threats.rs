//! Threats to validity.

use super::Question;
use crate::study::doc::Doc;
use crate::study::evidence::{HOST_NOTES_BARE_METAL, HOST_NOTES_US, fitted_for};
use crate::study::format::{NA, list, sig};
use crate::study::plan::TRACKERS;

impl Doc<'_> {
    pub(in crate::study) fn threats(&mut self) {
        let measured: Vec<String> = TRACKERS
            .iter()
            .filter_map(|&t| {
                let c = fitted_for(self.plan, self.results, t)?;
                Some(format!("{} µs ({})", sig(c, 3), t.name()))
            })
            .collect();
        let notes: Vec<String> = HOST_NOTES_US
            .iter()
            .map(|(t, c)| format!("{c} ({})", t.name()))
            .collect();
        self.line("## Threats to validity");
        self.line("");
        self.line(&format!(
            "- **Fault costs of this host.** The host notes report the cost of one tracked \
             access on this kind of machine (KVM served by PVM, shadow paging, no VT-x) as {} \
             and expect bare-metal VT-x hosts to be {}. The study measured {} of guest time \
             per tracked fault in steady state, all per-interval costs of the mechanism \
             included ({}). Every cost \
             and slowdown in {}, and any accuracy loss that comes from tracking \
             slowing the guest, would shrink accordingly on hardware virtualisation; the \
             sampling error does not depend on the mechanism.",
            list(&notes),
            HOST_NOTES_BARE_METAL,
            if measured.is_empty() {
                NA.to_string()
            } else {
                list(&measured)
            },
            self.section_ref(Question::Efficient),
            self.section_ref(Question::Efficient)
        ));
        self.line(
            "- **One vCPU, no guest kernel.** The guest is a single user-mode program on one \
             vCPU. A real guest has several vCPUs (tracked faults then stall one of them while \
             the others run on), a kernel, page cache and its own memory management.",
        );
        let apps: Vec<String> = self
            .plan
            .applications
            .iter()
            .map(|w| format!("`{}`", w.label))
            .collect();
        self.line(&format!(
            "- **Synthetic workloads.** The access patterns are small generators with known \
             truth; real programs mix them and change over time in ways these do not. The \
             application programs ({}) run real algorithms with phases, but small ones, \
             paced, without the allocator, libraries and kernel of a real program; and the \
             study runs them only at the default setting of {} ({} judges that one setting): \
             the sweeps, costs and agility above are measured on the access patterns alone. Each setting was run once with one seed, so differences of a few \
             percent between neighbouring settings are within run-to-run noise.",
            list(&apps),
            self.section_ref(Question::Works),
            self.section_ref(Question::Settings)
        ));
        self.line(
            "- **A shared, noisy machine.** Runs share two cores with other work; slowdowns \
             measured against an untracked twin include the noise between the two runs and \
             can come out slightly negative when tracking costs little.",
        );
        self.line("");
    }
}
