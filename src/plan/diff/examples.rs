//! The worked examples of docs/ci-review.md, generated rather than written.
//!
//! [`render_examples`] runs the diff and check renderings on a fixed change to
//! a plan and returns each output by name; [`splice_examples`] puts them
//! between the `<!-- example:NAME -->` / `<!-- /example -->` markers of the
//! document, and [`splice_class_table`] puts the classification table between
//! `<!-- classes:begin -->` / `<!-- classes:end -->`. Tests check that the
//! committed document equals the spliced one; `SANDBOXCTL_BLESS_DOCS=1 cargo
//! test docs_` rewrites it.

use std::path::PathBuf;

use crate::plan::check::{CaseOutcome, CaseReport, CheckReport};
use crate::plan::classes::render_markdown_table;
use crate::plan::diff::{diff, render, PlanDiff};
use crate::plan::types::*;

/// The change every example shows, between two real compiled plans from the
/// golden tests: the `runc-untrusted` case, and the `inheritance` case, whose
/// policy extends untrusted to allow loopback networking and 256 tasks.
pub fn example_plans() -> (LaunchPlan, LaunchPlan) {
    let load = |text: &str| crate::plan::render::load(text).expect("golden plans load");
    (
        load(include_str!("../../../tests/golden/cases/runc-untrusted/plan.toml")),
        load(include_str!("../../../tests/golden/cases/inheritance/plan.toml")),
    )
}

fn example_diff() -> PlanDiff {
    let (old, new) = example_plans();
    diff(&old, &new)
}

/// The policy of the small example: untrusted with a higher pids ceiling
/// (`pids` on line 4).
pub const PIDS_POLICY: &str = "extends = \"untrusted\"\n\n[limits]\npids = 256\n";

/// The small example's two plans, compiled now: runc's default spec
/// (tests/golden/inputs/runc-spec.json) on the host facts
/// tests/golden/hosts/hybrid-root.toml, with `--id web`, under `untrusted`
/// and under [`PIDS_POLICY`] as `pids.toml`.
pub fn pids_plans() -> (LaunchPlan, LaunchPlan) {
    use crate::policy::{self, PolicyRef};
    let spec_text = include_str!("../../../tests/golden/inputs/runc-spec.json");
    let spec = crate::spec::SpecInput {
        name: "runc-spec.json".into(),
        text: spec_text.into(),
        spec: Box::new(crate::spec::parse_json("runc-spec.json", spec_text).expect("the golden spec parses")),
        dir: Some(PathBuf::from("/srv/bundle")),
        builtin: false,
    };
    let host: crate::host::HostFacts =
        toml::from_str(include_str!("../../../tests/golden/hosts/hybrid-root.toml")).expect("golden host facts load");
    let opts = crate::plan::CompileOptions {
        policy_from: None,
        host_name: "hybrid-root.toml".into(),
        ..Default::default()
    };
    let compile = |r: PolicyRef| {
        let policy = policy::load(&[r], std::path::Path::new(".")).expect("the example policies load");
        crate::plan::compile(&policy, &spec, &host, &opts)
            .expect("the example plans compile")
            .plan
    };
    (
        compile(PolicyRef::Builtin("untrusted".into())),
        compile(PolicyRef::Text {
            name: "pids.toml".into(),
            text: PIDS_POLICY.into(),
        }),
    )
}

/// Each example's name and text, in document order. Names end in the fence
/// language they are shown in (`-text`, `-markdown`, `-json`).
pub fn render_examples() -> Vec<(&'static str, String)> {
    let d = example_diff();
    let (old, pids) = pids_plans();
    let small = diff(&old, &pids);
    let small_json = render::json(&small).unwrap_or_else(|e| format!("error: {e}\n"));
    // `check` on a tree of two cases: runc-untrusted, current, and
    // inheritance, whose `cmd` was just switched from untrusted to
    // strict.toml while its plan.toml is still the one untrusted gave (which
    // is runc-untrusted's: the same inputs). tests/docs.rs runs this check
    // for real and compares.
    let report = CheckReport {
        cases: vec![
            CaseReport {
                case: PathBuf::from("inheritance"),
                outcome: CaseOutcome::Changed(d.clone()),
            },
            CaseReport {
                case: PathBuf::from("runc-untrusted"),
                outcome: CaseOutcome::Unchanged,
            },
        ],
    };
    vec![
        ("check-text", report.render_text(false)),
        ("check-markdown", report.render_markdown()),
        ("diff-text", render::text(&d, false)),
        ("diff-markdown", render::markdown(&d, "runc-untrusted → inheritance")),
        ("diff-json", small_json),
    ]
}

/// Why a document could not be spliced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpliceError {
    /// A begin marker without its end marker.
    #[error("marker {0} is not closed")]
    Unclosed(String),
    /// An example the document has no place for.
    #[error("the document has no <!-- example:{0} --> marker")]
    MissingExample(String),
}

/// Replaces the text between `begin` and `end` (exclusive) with `body`.
fn splice(doc: &str, begin: &str, end: &str, body: &str) -> Result<Option<String>, SpliceError> {
    let Some(b) = doc.find(begin) else {
        return Ok(None);
    };
    let from = b + begin.len();
    let e = doc[from..]
        .find(end)
        .ok_or_else(|| SpliceError::Unclosed(begin.to_string()))?
        + from;
    Ok(Some(format!("{}\n{}{}", &doc[..from], body, &doc[e..])))
}

/// The fence language of an example, from its name's last part.
fn fence(name: &str) -> &str {
    name.rsplit('-').next().unwrap_or("text")
}

/// The document with each example's current text between its markers, fenced.
pub fn splice_examples(doc: &str, examples: &[(&str, String)]) -> Result<String, SpliceError> {
    let mut out = doc.to_string();
    for (name, text) in examples {
        let body = format!("```{}\n{}```\n", fence(name), text);
        out = splice(&out, &format!("<!-- example:{name} -->"), "<!-- /example -->", &body)?
            .ok_or_else(|| SpliceError::MissingExample(name.to_string()))?;
    }
    Ok(out)
}

/// The document with the current classification table between its markers.
pub fn splice_class_table(doc: &str) -> Result<String, SpliceError> {
    splice(
        doc,
        "<!-- classes:begin -->",
        "<!-- classes:end -->",
        &render_markdown_table(),
    )?
    .ok_or_else(|| SpliceError::MissingExample("classes:begin".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/ci-review.md")
    }

    /// Compares the committed document with `expected`; rewrites it when
    /// SANDBOXCTL_BLESS_DOCS is set.
    fn assert_doc_current(doc: &str, expected: &str, what: &str) {
        if doc == expected && std::env::var_os("SANDBOXCTL_BLESS_DOCS").is_none() {
            return;
        }
        if std::env::var_os("SANDBOXCTL_BLESS_DOCS").is_some() {
            // Both doc tests may bless at once: each writes the whole current
            // document, which depends only on the markers, so the writes agree.
            let current = splice_class_table(&splice_examples(doc, &render_examples()).unwrap()).unwrap();
            // Write beside and rename, so a concurrent reader never sees half a file.
            let tmp = doc_path().with_extension(format!("md.{what_len}.tmp", what_len = what.len()));
            std::fs::write(&tmp, current).unwrap();
            std::fs::rename(&tmp, doc_path()).unwrap();
            return;
        }
        let first = doc.lines().zip(expected.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "docs/ci-review.md: {what} is not current (first difference at line {}); \
             run `SANDBOXCTL_BLESS_DOCS=1 cargo test docs_` and review the change",
            first + 1
        );
    }

    #[test]
    fn docs_class_table_matches_code() {
        let doc = std::fs::read_to_string(doc_path()).unwrap();
        if std::env::var_os("SANDBOXCTL_BLESS_DOCS").is_some() {
            assert_doc_current(&doc, &splice_class_table(&doc).unwrap(), "the classification table");
            return;
        }
        // Parse the table out of the document and compare row by row, so a
        // mismatch names the class.
        let begin = doc.find("<!-- classes:begin -->").expect("classes:begin marker");
        let end = doc.find("<!-- classes:end -->").expect("classes:end marker");
        let in_doc: Vec<&str> = doc[begin..end].lines().filter(|l| l.starts_with('|')).collect();
        let code = render_markdown_table();
        let in_code: Vec<&str> = code.lines().collect();
        for (a, b) in in_doc.iter().zip(&in_code) {
            assert_eq!(a, b, "classification table row differs");
        }
        assert_eq!(
            in_doc.len(),
            in_code.len(),
            "classification table has a different number of rows"
        );
        assert_doc_current(&doc, &splice_class_table(&doc).unwrap(), "the classification table");
    }

    #[test]
    fn docs_examples_are_current() {
        let doc = std::fs::read_to_string(doc_path()).unwrap();
        let spliced = splice_examples(&doc, &render_examples()).unwrap();
        assert_doc_current(&doc, &spliced, "a worked example");
    }

    #[test]
    fn docs_show_the_pids_policy_the_json_example_is_compiled_from() {
        let doc = std::fs::read_to_string(doc_path()).unwrap();
        assert!(
            doc.contains(&format!("```toml\n{PIDS_POLICY}```\n")),
            "docs/ci-review.md does not show PIDS_POLICY as the json example's policy"
        );
        let (old, new) = pids_plans();
        let d = diff(&old, &new);
        assert!(d.changes.iter().any(|c| c.field == "cgroup.limits.pids"
            && c.new_from.as_ref().map(|o| o.to_string()).as_deref() == Some("policy:pids.toml:4")));
    }

    #[test]
    fn splicing_needs_every_marker() {
        let ex = vec![("a-text", "x\n".to_string())];
        assert_eq!(
            splice_examples("<!-- example:a-text -->\nold\n<!-- /example -->\n", &ex).unwrap(),
            "<!-- example:a-text -->\n```text\nx\n```\n<!-- /example -->\n"
        );
        assert_eq!(
            splice_examples("nothing", &ex),
            Err(SpliceError::MissingExample("a-text".into()))
        );
        assert_eq!(
            splice_examples("<!-- example:a-text -->", &ex),
            Err(SpliceError::Unclosed("<!-- example:a-text -->".into()))
        );
    }

    #[test]
    fn the_example_widens_narrows_and_is_neutral() {
        let s = example_diff().summary();
        assert!(s.widens >= 2 && s.narrows >= 1 && s.neutral >= 1, "{s:?}");
    }
}
