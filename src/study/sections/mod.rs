//! The study's questions, one module each: a module reads the runs of its
//! question and writes its part of the document. The document writer
//! (`super::doc`) numbers the questions in the order of [`Question::ALL`].

pub mod agile;
pub mod cost_figure;
pub mod effective;
pub mod efficient;
pub mod estimators;
pub mod hard_cases;
pub mod settings;
pub mod setup;
pub mod threats;
pub mod truth_check;
pub mod works;
pub mod write_only;

/// The numbered questions of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    Works,
    Effective,
    Efficient,
    Agile,
    Settings,
    Estimators,
}

impl Question {
    /// The questions in the order the document asks them.
    pub const ALL: [Question; 6] = [
        Question::Works,
        Question::Effective,
        Question::Efficient,
        Question::Agile,
        Question::Settings,
        Question::Estimators,
    ];

    /// The question as its heading asks it.
    pub fn title(self) -> &'static str {
        match self {
            Question::Works => "Does it work?",
            Question::Effective => "How effective is it?",
            Question::Efficient => "How efficient is it?",
            Question::Agile => "Is it agile?",
            Question::Settings => "Which interval and sample size to use?",
            Question::Estimators => "Does another estimator do better at equal cost?",
        }
    }

    /// Its number in the document, from 1.
    pub fn number(self) -> usize {
        Question::ALL
            .iter()
            .position(|&q| q == self)
            .map_or(0, |i| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_numbered_in_document_order() {
        let numbers: Vec<usize> = Question::ALL.iter().map(|q| q.number()).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(Question::Agile.number(), 4);
    }
}
