//! Messages about input files, each tied to a file and, where there is one,
//! a line: the one shape every refusal of this tool takes.

use std::fmt;

/// One violation or input error, printed `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diag {
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line; `None` when the problem is the file as a whole.
    pub line: Option<u32>,
    /// What is wrong, and where it matters why.
    pub message: String,
}

impl Diag {
    /// A message about line `line` of `file`.
    pub fn at(file: &str, line: u32, message: impl Into<String>) -> Diag {
        Diag { file: file.to_string(), line: Some(line), message: message.into() }
    }

    /// A message about `file` as a whole.
    pub fn file(file: &str, message: impl Into<String>) -> Diag {
        Diag { file: file.to_string(), line: None, message: message.into() }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Sorts messages by file and line, so a reader can walk the files top to
/// bottom, and drops exact repeats.
pub fn sorted(mut diags: Vec<Diag>) -> Vec<Diag> {
    diags.sort();
    diags.dedup();
    diags
}

/// The 1-based line of byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> u32 {
    let end = at.min(text.len());
    let newlines = text.as_bytes().iter().take(end).filter(|b| **b == b'\n').count();
    u32::try_from(newlines).map_or(u32::MAX, |n| n.saturating_add(1))
}
