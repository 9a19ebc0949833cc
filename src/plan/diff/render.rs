//! Renderings of a [`PlanDiff`]: text for people, JSON for tools, Markdown for
//! a pull-request comment.
//!
//! All three list widenings first, then narrowings, then neutral changes, and
//! last the values whose only change is where they came from. Within a kind,
//! changes are grouped by plan section in plan order. Colour is used only when
//! the caller asks for it (the CLI decides whether stdout is a terminal).

use serde::Serialize;

use super::{Change, ChangeKind, PlanDiff, Summary};
use crate::plan::classes::PrivilegeClass;

/// The plan's sections, in printed order; changes are grouped by these.
pub const SECTIONS: &[&str] = &[
    "format",
    "inputs",
    "platform",
    "network",
    "namespaces",
    "id_maps",
    "root",
    "mounts",
    "masked_paths",
    "readonly_paths",
    "devices",
    "hostname",
    "cgroup",
    "stdio",
    "supervisor",
    "workload",
    "clamps",
    "steps",
];

fn section_rank(c: &Change) -> usize {
    SECTIONS
        .iter()
        .position(|s| *s == c.section())
        .unwrap_or(SECTIONS.len())
}

/// The blocks of a rendering: a title and the changes in it, in order.
fn blocks(d: &PlanDiff) -> Vec<(&'static str, Vec<&Change>)> {
    let pick = |kind: ChangeKind, provenance: bool| {
        let mut v: Vec<&Change> = d
            .changes
            .iter()
            .filter(|c| c.kind == kind && (c.class == PrivilegeClass::Provenance) == provenance)
            .collect();
        v.sort_by_key(|c| section_rank(c)); // stable: plan order within a section
        v
    };
    vec![
        ("Widens", pick(ChangeKind::Widens, false)),
        ("Narrows", pick(ChangeKind::Narrows, false)),
        ("Neutral", pick(ChangeKind::Neutral, false)),
        ("Provenance only", pick(ChangeKind::Neutral, true)),
    ]
}

/// One line summary: `2 widen, 1 narrow, 3 neutral`.
pub fn summary_line(s: &Summary) -> String {
    format!("{} widen, {} narrow, {} neutral", s.widens, s.narrows, s.neutral)
}

/// What a change did to the value, in a few words.
fn value_text(c: &Change) -> String {
    match (&c.old, &c.new) {
        (Some(o), Some(n)) if o == n => n.clone(),
        (Some(o), Some(n)) => format!("{o} → {n}"),
        (None, Some(n)) => format!("+ {n}"),
        (Some(o), None) => format!("- {o}"),
        (None, None) => String::new(),
    }
}

/// Provenance of both sides, in a few words.
fn from_text(c: &Change) -> String {
    match (&c.old_from, &c.new_from) {
        (Some(o), Some(n)) if o == n => format!("from {n}"),
        (Some(o), Some(n)) => format!("from {o} → {n}"),
        (None, Some(n)) => format!("from {n}"),
        (Some(o), None) => format!("was from {o}"),
        (None, None) => String::new(),
    }
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// The diff as text for people. `color` adds ANSI colours (red widens, green
/// narrows, dim neutral). The first line is the summary and `diff`'s exit
/// status.
pub fn text(d: &PlanDiff, color: bool) -> String {
    if d.is_empty() {
        return "plan diff: no changes\n".to_string();
    }
    format!(
        "plan diff: {} (exit {})\n{}",
        summary_line(&d.summary()),
        d.exit_code(),
        text_blocks(d, color)
    )
}

/// The changes of [`text`] without its summary line, each block (widens,
/// narrows, …) after an empty line; empty when nothing changed. `check` prints
/// this under a case's own line, which has the summary and no exit status: the
/// status of `check` is its own.
pub fn text_blocks(d: &PlanDiff, color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("{code}{s}{RESET}")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    for (title, changes) in blocks(d) {
        if changes.is_empty() {
            continue;
        }
        let code = match title {
            "Widens" => RED,
            "Narrows" => GREEN,
            _ => DIM,
        };
        out.push('\n');
        out.push_str(&paint(BOLD, &format!("{} ({})", title.to_uppercase(), changes.len())));
        out.push('\n');
        let mut section = "";
        for c in changes {
            if c.section() != section {
                section = c.section();
                out.push_str(&format!("  {section}\n"));
            }
            out.push_str(&format!(
                "    {}  {}  [{}]\n",
                paint(code, &c.field),
                value_text(c),
                c.class
            ));
            if let Some(note) = &c.note {
                out.push_str(&format!("        {note}\n"));
            }
            let from = from_text(c);
            if !from.is_empty() {
                out.push_str(&format!("        {}\n", paint(DIM, &from)));
            }
        }
    }
    out
}

/// The JSON document `sandboxctl diff --format json` prints.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// Counts by kind.
    pub summary: Summary,
    /// The exit status the CLI returns.
    pub exit_code: u8,
    /// Every change, in plan order.
    pub changes: &'a [Change],
}

/// The diff as pretty JSON for tools: `{summary, exit_code, changes}`.
pub fn json(d: &PlanDiff) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(&JsonReport {
        summary: d.summary(),
        exit_code: d.exit_code(),
        changes: &d.changes,
    })?;
    s.push('\n');
    Ok(s)
}

/// Escapes a table cell.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace('\n', "<br>")
}

/// A value in a table cell: code, or a dash when absent.
fn code_cell(s: Option<&str>) -> String {
    match s {
        None => "—".to_string(),
        Some(s) if s.contains('`') => cell(s),
        Some(s) => format!("`{}`", cell(s)),
    }
}

/// The diff as Markdown for a pull-request comment: a summary line with
/// counts, then a table each of widenings, narrowings and neutral changes
/// (provenance of both sides in each row), and the provenance-only changes
/// folded away. `title` names what was compared (a case directory, or
/// `old.toml → new.toml`). The summary line ends with `diff`'s exit status.
pub fn markdown(d: &PlanDiff, title: &str) -> String {
    markdown_with(d, title, Some(d.exit_code()))
}

/// [`markdown`] without the exit status, for a case of `check`'s report (whose
/// status is its own).
pub fn markdown_case(d: &PlanDiff, title: &str) -> String {
    markdown_with(d, title, None)
}

fn markdown_with(d: &PlanDiff, title: &str, exit: Option<u8>) -> String {
    let s = d.summary();
    let mut out = format!("### Plan diff: {}\n\n", cell(title));
    if d.is_empty() {
        out.push_str("No changes.\n");
        return out;
    }
    let verdict = if s.widens > 0 {
        "**widens the sandbox: needs a security review**"
    } else {
        "nothing widens"
    };
    let provenance = if s.provenance > 0 {
        format!(" · {} provenance only", s.provenance)
    } else {
        String::new()
    };
    let exit = exit.map(|e| format!(" (exit {e})")).unwrap_or_default();
    out.push_str(&format!(
        "**{}** widen · **{}** narrow · **{}** neutral{provenance} — {verdict}{exit}\n",
        s.widens, s.narrows, s.neutral
    ));
    for (title, changes) in blocks(d) {
        if changes.is_empty() {
            continue;
        }
        let provenance = title == "Provenance only";
        if provenance {
            out.push_str(&format!(
                "\n<details><summary>Provenance only ({})</summary>\n\n",
                changes.len()
            ));
        } else {
            out.push_str(&format!("\n#### {title} ({})\n\n", changes.len()));
        }
        out.push_str("| Field | Class | Old | New | Old from | New from |\n|---|---|---|---|---|---|\n");
        for c in changes {
            let mut field = format!("`{}`", cell(&c.field));
            if let Some(note) = &c.note {
                field.push_str(&format!("<br>{}", cell(note)));
            }
            let from = |o: &Option<crate::vocab::Origin>| code_cell(o.as_ref().map(|o| o.to_string()).as_deref());
            out.push_str(&format!(
                "| {field} | {} | {} | {} | {} | {} |\n",
                c.class,
                code_cell(c.old.as_deref()),
                code_cell(c.new.as_deref()),
                from(&c.old_from),
                from(&c.new_from)
            ));
        }
        if provenance {
            out.push_str("\n</details>\n");
        }
    }
    out
}
