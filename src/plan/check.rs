//! The core of `sandboxctl check DIR [--update]`: the golden-plan check that a
//! project's CI runs (and that sandboxctl's own tests/golden/ uses).
//!
//! A case is a directory holding a `cmd` file (one line: the arguments of
//! `sandboxctl plan`, paths relative to the case) and the committed plan
//! `plan.toml`. [`check`] finds every case under a root, recompiles each with
//! the compile function it is given, and compares the result with the
//! committed plan using the semantic [`diff`]. With `update`, a plan that
//! differs (or is missing) is rewritten with the serialiser it is given.
//! A case with an `exit` file and no plan is a bad-input case: it passes when
//! compiling fails (its diagnostic is the golden test's to compare). This
//! module reads and writes only the case files; compiling is the caller's.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::plan::diff::{diff, render, PlanDiff, EXIT_BAD_INPUT, EXIT_CHANGED, EXIT_UNCHANGED};
use crate::plan::types::LaunchPlan;

/// The file holding a case's `sandboxctl plan` arguments.
pub const CMD_FILE: &str = "cmd";
/// The committed plan of a case.
pub const PLAN_FILE: &str = "plan.toml";
/// Present (holding the expected non-zero status) in a case whose inputs must
/// not compile; such a case has no plan and passes when compiling fails.
pub const EXIT_FILE: &str = "exit";

/// Why the check could not run at all (a case's own failure is a
/// [`CaseOutcome::Error`] instead).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The root is missing or unreadable.
    #[error("cannot read the case tree {path}: {source}")]
    ReadTree {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The tree holds no case.
    #[error("no cases under {0}: a case is a directory with a `cmd` file (the `sandboxctl plan` arguments) and a `plan.toml`")]
    NoCases(PathBuf),
}

/// What happened to one case.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseOutcome {
    /// The recompiled plan equals the committed one.
    Unchanged,
    /// The recompiled plan differs; the diff goes from committed to recompiled.
    Changed(PlanDiff),
    /// It differed and `plan.toml` was rewritten.
    Updated(PlanDiff),
    /// There was no `plan.toml`, and `--update` wrote one.
    Created,
    /// The case could not be checked: a bad `cmd`, a compile error, an
    /// unreadable or invalid `plan.toml`, or a failed write.
    Error(String),
}

/// One case and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseReport {
    /// The case directory, relative to the root (`.` for the root itself).
    pub case: PathBuf,
    /// The outcome.
    pub outcome: CaseOutcome,
}

/// Every case, sorted by path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckReport {
    /// The cases.
    pub cases: Vec<CaseReport>,
}

impl CheckReport {
    /// The exit status: 2 when any case could not be checked, 1 when any plan
    /// differs (and was not updated), 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        let any = |f: fn(&CaseOutcome) -> bool| self.cases.iter().any(|c| f(&c.outcome));
        if any(|o| matches!(o, CaseOutcome::Error(_))) {
            EXIT_BAD_INPUT
        } else if any(|o| matches!(o, CaseOutcome::Changed(_))) {
            EXIT_CHANGED
        } else {
            EXIT_UNCHANGED
        }
    }

    /// One line, ending with the exit status of `check` (not that of any
    /// case's diff): `3 cases: 1 unchanged, 1 changed, 0 updated, 0 created, 1 errors (exit 2)`.
    pub fn summary_line(&self) -> String {
        let count = |f: fn(&CaseOutcome) -> bool| self.cases.iter().filter(|c| f(&c.outcome)).count();
        format!(
            "{} cases: {} unchanged, {} changed, {} updated, {} created, {} errors (exit {})",
            self.cases.len(),
            count(|o| matches!(o, CaseOutcome::Unchanged)),
            count(|o| matches!(o, CaseOutcome::Changed(_))),
            count(|o| matches!(o, CaseOutcome::Updated(_))),
            count(|o| matches!(o, CaseOutcome::Created)),
            count(|o| matches!(o, CaseOutcome::Error(_))),
            self.exit_code(),
        )
    }

    /// The report for people: one line per case, each changed case followed by
    /// its diff (indented), then the summary.
    pub fn render_text(&self, color: bool) -> String {
        let mut out = String::new();
        for c in &self.cases {
            let name = c.case.display();
            match &c.outcome {
                CaseOutcome::Unchanged => {
                    let _ = writeln!(out, "ok       {name}");
                }
                CaseOutcome::Created => {
                    let _ = writeln!(out, "created  {name}/{PLAN_FILE}");
                }
                CaseOutcome::Error(e) => {
                    let _ = writeln!(out, "error    {name}: {e}");
                }
                CaseOutcome::Changed(d) | CaseOutcome::Updated(d) => {
                    let word = if matches!(c.outcome, CaseOutcome::Changed(_)) {
                        "CHANGED"
                    } else {
                        "updated"
                    };
                    let _ = writeln!(out, "{word:<8} {name}  ({})", render::summary_line(&d.summary()));
                    for line in render::text_blocks(d, color).lines() {
                        if line.is_empty() {
                            out.push('\n');
                        } else {
                            let _ = writeln!(out, "    {line}");
                        }
                    }
                }
            }
        }
        let _ = writeln!(out, "{}", self.summary_line());
        out
    }

    /// The report as Markdown: the summary, then each changed or updated
    /// case's diff, and the errors.
    pub fn render_markdown(&self) -> String {
        let mut out = format!("## sandboxctl check\n\n{}\n", self.summary_line());
        for c in &self.cases {
            match &c.outcome {
                CaseOutcome::Changed(d) | CaseOutcome::Updated(d) => {
                    out.push('\n');
                    out.push_str(&render::markdown_case(d, &c.case.display().to_string()));
                }
                CaseOutcome::Error(e) => {
                    let _ = write!(out, "\n### Error: {}\n\n```\n{e}\n```\n", c.case.display());
                }
                CaseOutcome::Unchanged | CaseOutcome::Created => {}
            }
        }
        out
    }
}

/// Splits a `cmd` line into arguments: whitespace separates, single or double
/// quotes group (no escapes inside single quotes; `\"` and `\\` inside double
/// quotes), `#` starts a comment at the start of a word. One non-empty,
/// non-comment line is required.
pub fn parse_cmd(text: &str) -> Result<Vec<String>, String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let line = match lines.as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
                "`{CMD_FILE}` is empty: write the `sandboxctl plan` arguments on one line"
            ))
        }
        _ => {
            return Err(format!(
                "`{CMD_FILE}` has {} lines: write the `sandboxctl plan` arguments on one line",
                lines.len()
            ))
        }
    };
    let mut args = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(a) = cur.take() {
                    args.push(a);
                }
            }
            '#' if cur.is_none() => break,
            '\'' => {
                let s = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => s.push(c),
                        None => return Err(format!("unterminated ' in `{CMD_FILE}`: {line}")),
                    }
                }
            }
            '"' => {
                let s = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => s.push(c),
                            Some(c) => {
                                s.push('\\');
                                s.push(c);
                            }
                            None => return Err(format!("unterminated \" in `{CMD_FILE}`: {line}")),
                        },
                        Some(c) => s.push(c),
                        None => return Err(format!("unterminated \" in `{CMD_FILE}`: {line}")),
                    }
                }
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(a) = cur {
        args.push(a);
    }
    Ok(args)
}

/// Every case directory under `root` (the root included), sorted. Hidden
/// directories are skipped and symlinks are not followed.
pub fn find_cases(root: &Path) -> Result<Vec<PathBuf>, CheckError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let read = fs::read_dir(&dir).map_err(|source| CheckError::ReadTree {
            path: dir.clone(),
            source,
        })?;
        let mut entries: Vec<fs::DirEntry> = read.collect::<Result<_, _>>().map_err(|source| CheckError::ReadTree {
            path: dir.clone(),
            source,
        })?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            let ty = e
                .file_type()
                .map_err(|source| CheckError::ReadTree { path: e.path(), source })?;
            if ty.is_dir() && !name.to_string_lossy().starts_with('.') {
                stack.push(e.path());
            } else if ty.is_file() && name == CMD_FILE {
                out.push(dir.clone());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Checks every case under `root`.
///
/// `compile` gets the case directory and the arguments from its `cmd` and
/// returns the plan (or an error message); `serialize` renders a plan as the
/// text of `plan.toml` (`toml::to_string_pretty` will do). With `update`, a
/// case whose plan differs or is missing is rewritten, and counts as updated
/// or created rather than changed.
pub fn check<C, S>(root: &Path, update: bool, compile: C, serialize: S) -> Result<CheckReport, CheckError>
where
    C: Fn(&Path, &[String]) -> Result<LaunchPlan, String>,
    S: Fn(&LaunchPlan) -> Result<String, String>,
{
    let dirs = find_cases(root)?;
    if dirs.is_empty() {
        return Err(CheckError::NoCases(root.to_path_buf()));
    }
    let cases = dirs
        .into_iter()
        .map(|dir| {
            let outcome = check_case(&dir, update, &compile, &serialize);
            let case = dir
                .strip_prefix(root)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| dir.clone());
            let case = if case.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                case
            };
            CaseReport { case, outcome }
        })
        .collect();
    Ok(CheckReport { cases })
}

fn check_case<C, S>(dir: &Path, update: bool, compile: &C, serialize: &S) -> CaseOutcome
where
    C: Fn(&Path, &[String]) -> Result<LaunchPlan, String>,
    S: Fn(&LaunchPlan) -> Result<String, String>,
{
    match check_case_inner(dir, update, compile, serialize) {
        Ok(o) => o,
        Err(e) => CaseOutcome::Error(e),
    }
}

fn check_case_inner<C, S>(dir: &Path, update: bool, compile: &C, serialize: &S) -> Result<CaseOutcome, String>
where
    C: Fn(&Path, &[String]) -> Result<LaunchPlan, String>,
    S: Fn(&LaunchPlan) -> Result<String, String>,
{
    let cmd_path = dir.join(CMD_FILE);
    let cmd = fs::read_to_string(&cmd_path).map_err(|e| format!("{}: {e}", cmd_path.display()))?;
    let args = parse_cmd(&cmd)?;
    let plan_path = dir.join(PLAN_FILE);
    if dir.join(EXIT_FILE).is_file() && !plan_path.exists() {
        return match compile(dir, &args) {
            Err(_) => Ok(CaseOutcome::Unchanged),
            Ok(_) => Err(format!(
                "expected to fail (it has an `{EXIT_FILE}` file and no plan), but it compiled"
            )),
        };
    }
    let fresh = compile(dir, &args)?;
    let write = |plan: &LaunchPlan| -> Result<(), String> {
        let text = serialize(plan)?;
        fs::write(&plan_path, text).map_err(|e| format!("{}: {e}", plan_path.display()))
    };
    let committed_text = match fs::read_to_string(&plan_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && update => {
            write(&fresh)?;
            return Ok(CaseOutcome::Created);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{} is missing: run `sandboxctl check --update` to write it",
                plan_path.display()
            ))
        }
        Err(e) => return Err(format!("{}: {e}", plan_path.display())),
    };
    let committed = crate::plan::render::load(&committed_text).map_err(|e| format!("{}: {e}", plan_path.display()))?;
    let d = diff(&committed, &fresh);
    if d.is_empty() {
        return Ok(CaseOutcome::Unchanged);
    }
    if update {
        write(&fresh)?;
        return Ok(CaseOutcome::Updated(d));
    }
    Ok(CaseOutcome::Changed(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample::sample_plan;
    use crate::plan::types::NetworkMode;

    /// A scratch directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("sandboxctl-check-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn ser(p: &LaunchPlan) -> Result<String, String> {
        toml::to_string_pretty(p).map_err(|e| e.to_string())
    }

    /// A compile function that reads `--network host` from the arguments and
    /// fails on `--fail`.
    fn fake_compile(dir: &Path, args: &[String]) -> Result<LaunchPlan, String> {
        if args.iter().any(|a| a == "--fail") {
            return Err(format!("{}: policy.toml:3: unknown key", dir.display()));
        }
        let mut p = sample_plan();
        if args.windows(2).any(|w| w[0] == "--network" && w[1] == "host") {
            p.network.value = NetworkMode::Host;
        }
        Ok(p)
    }

    fn write_case(root: &Path, name: &str, cmd: &str, plan: Option<&LaunchPlan>) {
        let d = root.join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(CMD_FILE), cmd).unwrap();
        if let Some(p) = plan {
            fs::write(d.join(PLAN_FILE), ser(p).unwrap()).unwrap();
        }
    }

    #[test]
    fn cmd_lines_split_like_a_shell() {
        assert_eq!(
            parse_cmd("--policy 'my policy.toml' --spec \"a \\\"b\\\"\" --format toml # note\n").unwrap(),
            vec!["--policy", "my policy.toml", "--spec", "a \"b\"", "--format", "toml"]
        );
        assert_eq!(
            parse_cmd("# comment\n--host h.toml\n").unwrap(),
            vec!["--host", "h.toml"]
        );
        assert!(parse_cmd("").unwrap_err().contains("empty"));
        assert!(parse_cmd("a\nb\n").unwrap_err().contains("2 lines"));
        assert!(parse_cmd("--policy 'x").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn check_reports_each_case_and_exit_status() {
        let s = Scratch::new("report");
        let base = sample_plan();
        write_case(&s.0, "a-same", "--policy p.toml", Some(&base));
        write_case(&s.0, "b-changed", "--policy p.toml --network host", Some(&base));
        write_case(&s.0, "nested/c-same", "--policy p.toml", Some(&base));
        fs::create_dir_all(s.0.join(".hidden")).unwrap();
        fs::write(s.0.join(".hidden").join(CMD_FILE), "--fail").unwrap();
        let r = check(&s.0, false, fake_compile, ser).unwrap();
        let names: Vec<String> = r.cases.iter().map(|c| c.case.display().to_string()).collect();
        assert_eq!(names, ["a-same", "b-changed", "nested/c-same"]);
        assert_eq!(r.cases[0].outcome, CaseOutcome::Unchanged);
        match &r.cases[1].outcome {
            CaseOutcome::Changed(d) => assert_eq!(d.exit_code(), crate::plan::diff::EXIT_WIDENED),
            o => panic!("{o:?}"),
        }
        assert_eq!(r.exit_code(), EXIT_CHANGED);
        let text = r.render_text(false);
        assert!(
            text.contains("CHANGED  b-changed  (1 widen, 0 narrow, 0 neutral)"),
            "{text}"
        );
        assert!(text.contains("        network  none → host  [network]"), "{text}");
        assert!(
            text.ends_with("3 cases: 2 unchanged, 1 changed, 0 updated, 0 created, 0 errors (exit 1)\n"),
            "{text}"
        );
        // The case's diff widens (its own exit would be 3), but the report
        // states only the status `check` exits with.
        assert!(!text.contains("(exit 3)"), "{text}");
        let md = r.render_markdown();
        assert!(!md.contains("(exit 3)"), "{md}");
        assert!(md.contains("0 errors (exit 1)"), "{md}");
        // Nothing was written.
        let committed: LaunchPlan =
            toml::from_str(&fs::read_to_string(s.0.join("b-changed").join(PLAN_FILE)).unwrap()).unwrap();
        assert_eq!(committed, base);
    }

    #[test]
    fn errors_exit_two_and_name_the_case() {
        let s = Scratch::new("errors");
        let base = sample_plan();
        write_case(&s.0, "a", "--policy p.toml", Some(&base));
        write_case(&s.0, "bad-compile", "--fail", Some(&base));
        write_case(&s.0, "missing-plan", "--policy p.toml", None);
        write_case(&s.0, "bad-plan", "--policy p.toml", None);
        fs::write(s.0.join("bad-plan").join(PLAN_FILE), "format = 1\nid = 3\n").unwrap();
        let r = check(&s.0, false, fake_compile, ser).unwrap();
        assert_eq!(r.exit_code(), EXIT_BAD_INPUT);
        let text = r.render_text(false);
        assert!(text.contains("error    bad-compile: "), "{text}");
        assert!(text.contains("policy.toml:3: unknown key"), "{text}");
        assert!(
            text.contains("error    bad-plan: ") && text.contains("bad-plan/plan.toml: "),
            "{text}"
        );
        assert!(
            text.contains("error    missing-plan: ") && text.contains("--update"),
            "{text}"
        );
    }

    #[test]
    fn update_rewrites_changed_and_missing_plans_only() {
        let s = Scratch::new("update");
        let base = sample_plan();
        write_case(&s.0, "same", "--policy p.toml", Some(&base));
        write_case(&s.0, "changed", "--network host", Some(&base));
        write_case(&s.0, "new", "--policy p.toml", None);
        // A semantically equal plan in another layout is left alone.
        let same_plan = s.0.join("same").join(PLAN_FILE);
        let odd_layout = format!("# reviewed\n{}", toml::to_string(&base).unwrap());
        fs::write(&same_plan, &odd_layout).unwrap();
        let r = check(&s.0, true, fake_compile, ser).unwrap();
        assert_eq!(r.exit_code(), EXIT_UNCHANGED);
        assert!(
            matches!(r.cases[0].outcome, CaseOutcome::Updated(_)),
            "{:?}",
            r.cases[0]
        );
        assert_eq!(r.cases[1].outcome, CaseOutcome::Created);
        assert_eq!(r.cases[2].outcome, CaseOutcome::Unchanged);
        assert_eq!(fs::read_to_string(&same_plan).unwrap(), odd_layout);
        // A second run finds everything current.
        let again = check(&s.0, false, fake_compile, ser).unwrap();
        assert!(
            again.cases.iter().all(|c| c.outcome == CaseOutcome::Unchanged),
            "{}",
            again.render_text(false)
        );
        assert_eq!(again.exit_code(), EXIT_UNCHANGED);
    }

    #[test]
    fn bad_input_cases_pass_when_compiling_fails() {
        let s = Scratch::new("bad-input");
        write_case(&s.0, "bad", "# a comment line\n--fail\n", None);
        fs::write(s.0.join("bad").join(EXIT_FILE), "2\n").unwrap();
        write_case(&s.0, "not-bad", "--policy p.toml", None);
        fs::write(s.0.join("not-bad").join(EXIT_FILE), "2\n").unwrap();
        let r = check(&s.0, true, fake_compile, ser).unwrap();
        assert_eq!(r.cases[0].outcome, CaseOutcome::Unchanged);
        assert!(
            matches!(&r.cases[1].outcome, CaseOutcome::Error(e) if e.contains("expected to fail")),
            "{r:?}"
        );
        assert!(!s.0.join("bad").join(PLAN_FILE).exists());
        assert!(!s.0.join("not-bad").join(PLAN_FILE).exists());
        assert_eq!(r.exit_code(), EXIT_BAD_INPUT);
    }

    #[test]
    fn an_empty_tree_is_an_error() {
        let s = Scratch::new("empty");
        assert!(matches!(
            check(&s.0, false, fake_compile, ser),
            Err(CheckError::NoCases(_))
        ));
        assert!(matches!(
            check(&s.0.join("nope"), false, fake_compile, ser),
            Err(CheckError::ReadTree { .. })
        ));
    }

    #[test]
    fn markdown_report_holds_each_changed_case() {
        let s = Scratch::new("markdown");
        let base = sample_plan();
        write_case(&s.0, "web", "--network host", Some(&base));
        write_case(&s.0, "worker", "--policy p.toml", Some(&base));
        let md = check(&s.0, false, fake_compile, ser).unwrap().render_markdown();
        assert!(md.contains("### Plan diff: web"), "{md}");
        assert!(!md.contains("### Plan diff: worker"), "{md}");
    }
}
