//! The document writer: the one place that numbers the questions and the
//! figures, so that prose names them through it ("Figure 3", "section 2")
//! and never by a typed-in number.

use std::fmt::Write as _;
use std::path::Path;

use super::execute::Results;
use super::figures::{Figure, Figures, figure_ref};
use super::plan::{Plan, Spec};
use super::render::Provenance;
use super::sections::Question;
use crate::report::summary::Summary;

/// The document being written: the inputs every section reads, the text
/// so far, and the summary lines the sections contribute.
pub(in crate::study) struct Doc<'a> {
    pub(in crate::study) plan: &'a Plan,
    pub(in crate::study) results: &'a Results,
    pub(in crate::study) figs: &'a Figures,
    pub(in crate::study) prov: &'a Provenance,
    pub(in crate::study) out: String,
    /// One line per question for the summary at the top, filled in as the
    /// sections are written.
    pub(in crate::study) summary: Vec<String>,
}

impl Doc<'_> {
    pub(in crate::study) fn s(&self, spec: &Spec) -> Option<&Summary> {
        self.results.summary(spec)
    }

    pub(in crate::study) fn line(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
    }

    pub(in crate::study) fn para(&mut self, text: &str) {
        self.out.push_str(text.trim());
        self.out.push_str("\n\n");
    }

    pub(in crate::study) fn number_of(&self, fig: &Figure) -> usize {
        self.figs
            .all()
            .iter()
            .position(|f| f.stem == fig.stem)
            .map_or(0, |i| i + 1)
    }

    pub(in crate::study) fn figure(&mut self, fig: &Figure) {
        let n = self.number_of(fig);
        let mut runs: Vec<&Spec> = Vec::new();
        for r in &fig.runs {
            if !runs.iter().any(|x| x.id() == r.id()) {
                runs.push(r);
            }
        }
        let commands: Vec<String> = runs
            .iter()
            .map(|r| r.command(&Path::new(&self.prov.runs_dir).join(r.id())))
            .collect();
        let _ = write!(
            self.out,
            "![Figure {n}: {title}]({png})\n\n\
             **Figure {n}.** {title}. {caption} Made by `{cmd}`, which draws it from the \
             {k} runs listed below (each equivalent to the `kvm-wss run` command shown). \
             Data: [{csv}]({csv}); vector version: [{svg}]({svg}).\n\n\
             <details><summary>The {k} runs behind Figure {n}</summary>\n\n```sh\n{list}\n```\n\n\
             </details>\n\n",
            title = fig.title,
            png = fig.png(),
            caption = self.resolve_figure_refs(&fig.caption),
            cmd = self.prov.command,
            k = runs.len(),
            csv = fig.csv(),
            svg = fig.svg(),
            list = commands.join("\n"),
        );
    }

    pub(in crate::study) fn default_of(&self, label: &str) -> Option<&Spec> {
        self.plan
            .defaults
            .iter()
            .find(|s| s.workload.label == label)
    }

    /// Domain pages, read from any finished run (all share the layout).
    pub(in crate::study) fn domain_pages(&self) -> Option<u64> {
        self.plan
            .runs()
            .into_iter()
            .find_map(|s| self.s(s).map(|s| s.domain_pages))
    }

    /// `text` with every `figures::figure_ref` replaced by "Figure N".
    fn resolve_figure_refs(&self, text: &str) -> String {
        let mut text = text.to_string();
        for f in self.figs.all() {
            text = text.replace(&figure_ref(f.stem), &self.fig_ref(f));
        }
        text
    }

    /// "Figure N" for `fig`, numbered by its place among the figures.
    pub(in crate::study) fn fig_ref(&self, fig: &Figure) -> String {
        format!("Figure {}", self.number_of(fig))
    }

    /// "section N" for question `q`.
    pub(in crate::study) fn section_ref(&self, q: Question) -> String {
        format!("section {}", q.number())
    }

    /// "sections 1, 3 and 4" for the questions `qs`.
    pub(in crate::study) fn sections_ref(&self, qs: &[Question]) -> String {
        let numbers: Vec<String> = qs.iter().map(|q| q.number().to_string()).collect();
        format!("sections {}", super::format::list(&numbers))
    }

    /// The numbered heading of question `q`.
    pub(in crate::study) fn heading(&mut self, q: Question) {
        self.line(&format!("## {}. {}", q.number(), q.title()));
        self.line("");
    }
}
