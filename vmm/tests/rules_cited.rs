//! Every rule the repository cites ("rule 5.4", "rules 5.1-5.3",
//! "section 3") is one `docs/RULES.md` states, so a citation cannot point
//! at a rule that was renumbered or never written.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files a citation may be in: the repository's sources and documents,
/// without build output and the rules themselves.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || ["target", "build", "docs", "artifacts"].contains(&name.as_str()) {
            continue;
        }
        if path.is_dir() {
            sources(&path, out);
        } else if ["rs", "md", "toml", "mk", "in"].iter().any(|x| name.ends_with(&format!(".{x}"))) {
            out.push(path);
        }
    }
}

/// Each "N.M" or "N" after "rule(s)"/"section", with ranges "N.M-N.K"
/// expanded.
fn citations(text: &str) -> Vec<String> {
    let mut cited = Vec::new();
    let lower = text.to_lowercase();
    for word in ["rule ", "rules ", "section "] {
        for (at, _) in lower.match_indices(word) {
            let rest = &lower[at + word.len()..];
            let number: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-').collect();
            let number = number.trim_end_matches(['.', '-']);
            let Some(first) = number.split('-').next().filter(|n| !n.is_empty()) else { continue };
            match (word, number.split_once('-')) {
                ("section ", _) => cited.push(first.split('.').next().unwrap().to_string()),
                (_, Some((a, b))) => {
                    let (sa, ma) = a.split_once('.').unwrap_or((a, "0"));
                    let mb = b.rsplit('.').next().unwrap();
                    for m in ma.parse::<u32>().unwrap_or(0)..=mb.parse::<u32>().unwrap_or(0) {
                        cited.push(format!("{sa}.{m}"));
                    }
                }
                _ => cited.push(first.to_string()),
            }
        }
    }
    cited
}

#[test]
fn every_cited_rule_is_stated() {
    let rules = std::fs::read_to_string(root().join("docs/RULES.md")).unwrap();
    let stated = |n: &str| match n.contains('.') {
        true => rules.contains(&format!("**{n}**")),
        false => rules.contains(&format!("\n## {n}. ")),
    };
    let mut files = Vec::new();
    sources(&root(), &mut files);
    let mut missing = Vec::new();
    let mut seen = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for n in citations(&text) {
            seen += 1;
            if !stated(&n) {
                missing.push(format!("{}: rule {n}", f.strip_prefix(root()).unwrap_or(&f).display()));
            }
        }
    }
    assert!(seen > 50, "only {seen} citations found: the scan is broken");
    assert!(missing.is_empty(), "cited but not in docs/RULES.md:\n{}", missing.join("\n"));
}

#[test]
fn citations_are_read_with_their_ranges() {
    let mut got = citations("see rules 5.1-5.3 and section 2, rule 9.4.");
    got.sort();
    assert_eq!(got, ["2", "5.1", "5.2", "5.3", "9.4"]);
}
