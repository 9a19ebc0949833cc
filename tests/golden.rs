//! Golden tests: every case under tests/golden/cases/ is a `cmd` file (the
//! arguments of `sandboxctl plan`, one line, paths relative to the case) and
//! the expected results: `plan.toml` and `plan.txt` for a plan that compiles,
//! `dryrun.txt` for the operations `apply --dry-run` records for it, `stderr`
//! for its warnings or its diagnostic, `exit` for a non-zero status; where a
//! case holds `create-id`, `create-dryrun.txt` for `create --dry-run` (the
//! split between create and start); where it holds `apply-stderr`, `apply
//! --dry-run` must refuse the plan with that text (a plan with OCI hooks).
//!
//! Regenerate with `scripts/regen-golden` (sets UPDATE_GOLDEN=1, runs this
//! test, shows `git diff --stat tests/golden`).

use std::fs;
use std::path::{Path, PathBuf};

mod common;
use common::run;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases");
    let mut v: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("cmd").exists())
        .collect();
    v.sort();
    v
}

/// The arguments of a case, parsed as `sandboxctl check` parses them.
pub fn case_args(dir: &Path) -> Vec<String> {
    sandboxctl::plan::check::parse_cmd(&fs::read_to_string(dir.join("cmd")).unwrap()).unwrap()
}

/// Compares `actual` with the file, or rewrites it under UPDATE_GOLDEN. An
/// empty `actual` means the file must not exist.
fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let expected = fs::read_to_string(path).ok();
    let want_file = !actual.is_empty();
    match (update, want_file) {
        (true, true) => fs::write(path, actual).unwrap(),
        (true, false) => {
            let _ = fs::remove_file(path);
        }
        (false, _) => {
            let exp = expected.unwrap_or_default();
            if exp != actual {
                let diff = similar::TextDiff::from_lines(exp.as_str(), actual)
                    .unified_diff()
                    .header("expected", "actual")
                    .to_string();
                failures.push(format!("{}:\n{diff}", path.display()));
            }
        }
    }
}

#[test]
fn golden_cases() {
    let cases = cases();
    assert!(
        cases.len() >= 25,
        "expected at least 25 golden cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut bad = 0;
    for dir in &cases {
        let args = case_args(dir);
        let mut toml_args = vec!["plan".to_string(), "--format".into(), "toml".into()];
        toml_args.extend(args.iter().cloned());
        let r = run(dir, &toml_args);
        // Plans hold absolute host paths: a case naming a spec must say where
        // its bundle is (--target-bundle), or its plan would hold this
        // checkout's path and differ in every other one.
        if r.stdout.contains(env!("CARGO_MANIFEST_DIR")) {
            failures.push(format!(
                "{}: the plan holds this checkout's path {}; add --target-bundle /srv/golden/... to cmd",
                dir.display(),
                env!("CARGO_MANIFEST_DIR")
            ));
        }
        check(&dir.join("stderr"), &r.stderr, &mut failures);
        check(
            &dir.join("exit"),
            &if r.code == 0 {
                String::new()
            } else {
                format!("{}\n", r.code)
            },
            &mut failures,
        );
        check(&dir.join("plan.toml"), &r.stdout, &mut failures);
        if r.code == 0 {
            let mut text_args = vec!["plan".to_string(), "--format".into(), "text".into()];
            text_args.extend(args.iter().cloned());
            let t = run(dir, &text_args);
            check(&dir.join("plan.txt"), &t.stdout, &mut failures);
            // The interpreter on the recording backend: the exact ordered operations.
            let mut dry_args = vec!["apply".to_string(), "--dry-run".into()];
            dry_args.extend(args.iter().cloned());
            let d = run(dir, &dry_args);
            if d.code == 0 {
                check(&dir.join("dryrun.txt"), &d.stdout, &mut failures);
            } else if dir.join("apply-stderr").exists() {
                // A plan apply refuses (OCI hooks: create/start/delete only).
                check(&dir.join("apply-stderr"), &d.stderr, &mut failures);
            } else {
                failures.push(format!("{}: apply --dry-run failed:\n{}", dir.display(), d.stderr));
            }
            // `create` as a dry run where the case asks for it (a file
            // `create-id` holding the id): the split between create and start.
            if let Ok(id) = fs::read_to_string(dir.join("create-id")) {
                let mut create_args = vec!["create".to_string(), "--dry-run".into(), id.trim().to_string()];
                create_args.extend(args.iter().cloned());
                let c = run(dir, &create_args);
                if c.code == 0 {
                    check(&dir.join("create-dryrun.txt"), &c.stdout, &mut failures);
                } else {
                    failures.push(format!("{}: create --dry-run failed:\n{}", dir.display(), c.stderr));
                }
            }
        } else {
            bad += 1;
            assert_eq!(r.code, 2, "{}: bad input must exit 2", dir.display());
            assert!(!r.stderr.contains("panicked"), "{}: panicked", dir.display());
            check(&dir.join("plan.txt"), "", &mut failures);
            check(&dir.join("dryrun.txt"), "", &mut failures);
        }
    }
    assert!(bad >= 10, "expected at least 10 bad-input cases, found {bad}");
    assert!(
        failures.is_empty(),
        "{} golden mismatches (regenerate with scripts/regen-golden and review the diff):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Plan diffs between golden plans: each case under tests/golden/diffs/ is a
/// `cmd` file naming OLD and NEW; expected `diff.txt`, `diff.md` and `exit`
/// (0 unchanged, 1 changed, 3 widened).
#[test]
fn golden_diffs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/diffs");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("cmd").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 6);
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeSet::new();
    for dir in &dirs {
        let args = case_args(dir);
        let mut text_args = vec!["diff".to_string()];
        text_args.extend(args.iter().cloned());
        let t = run(dir, &text_args);
        codes.insert(t.code);
        check(&dir.join("diff.txt"), &t.stdout, &mut failures);
        check(&dir.join("exit"), &format!("{}\n", t.code), &mut failures);
        let mut md_args = vec!["diff".to_string(), "--format".into(), "markdown".into()];
        md_args.extend(args.iter().cloned());
        let m = run(dir, &md_args);
        assert_eq!(m.code, t.code, "{}: exit status differs by format", dir.display());
        check(&dir.join("diff.md"), &m.stdout, &mut failures);
    }
    assert!(
        codes.contains(&0) && codes.contains(&1) && codes.contains(&3),
        "exit statuses seen: {codes:?}"
    );
    assert!(
        failures.is_empty(),
        "{} golden diff mismatches (scripts/regen-golden):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn printed_plans_load_back_to_the_same_plan() {
    let mut n = 0;
    for dir in cases() {
        let Ok(text) = fs::read_to_string(dir.join("plan.toml")) else {
            continue;
        };
        let plan = sandboxctl::plan::render::load(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert_eq!(
            sandboxctl::plan::render::to_toml(&plan),
            text,
            "{}: TOML round trip",
            dir.display()
        );
        let json = sandboxctl::plan::render::render(&plan, sandboxctl::plan::render::Format::Json);
        let back = sandboxctl::plan::render::load(&json).unwrap();
        assert_eq!(back, plan, "{}: JSON round trip", dir.display());
        assert_eq!(
            sandboxctl::plan::render::hash(&back),
            sandboxctl::plan::render::hash(&plan)
        );
        n += 1;
    }
    assert!(n >= 15, "only {n} plans checked");
}

#[test]
fn library_compile_matches_the_cli() {
    // The same mechanism `sandboxctl check` uses.
    for dir in cases() {
        let Ok(text) = fs::read_to_string(dir.join("plan.toml")) else {
            continue;
        };
        let plan = sandboxctl::cli::compile_args_in(&dir, &case_args(&dir)).unwrap();
        assert_eq!(sandboxctl::plan::render::to_toml(&plan), text, "{}", dir.display());
    }
}
