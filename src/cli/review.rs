//! `diff` and `check`: the CI review commands.

use std::io::IsTerminal;
use std::path::Path;

use super::run::load_plan_file;
use super::{compile_args_in, compile_inputs, CheckFormat, DiffFormat, Failure, PlanInputs};
use crate::diag::SourceDiag;
use crate::plan::{check, diff, render};

#[inline(never)] // see `super::run`
pub(super) fn diff(old: &Path, new: Option<&Path>, format: DiffFormat, inputs: &PlanInputs) -> Result<i32, Failure> {
    let old_plan = load_plan_file(old)?;
    let (new_plan, new_name) = match new {
        Some(p) => (load_plan_file(p)?, p.display().to_string()),
        None => (
            compile_inputs(inputs, Path::new("."))?.0.plan,
            "compiled inputs".to_string(),
        ),
    };
    let d = diff::diff(&old_plan, &new_plan);
    let text = match format {
        DiffFormat::Text => diff::render::text(
            &d,
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        ),
        DiffFormat::Json => diff::render::json(&d).map_err(|e| Failure::other(format!("rendering diff: {e}")))?,
        DiffFormat::Markdown => diff::render::markdown(&d, &format!("{} → {new_name}", old.display())),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(d.exit_code() as i32)
}

#[inline(never)] // see `super::run`
pub(super) fn check(dir: &Path, update: bool, format: CheckFormat) -> Result<i32, Failure> {
    let report = check::check(dir, update, compile_args_in, |p| Ok(render::to_toml(p)))
        .map_err(|e| Failure::input(SourceDiag::plain(e.to_string(), None)))?;
    let text = match format {
        CheckFormat::Text => {
            report.render_text(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        }
        CheckFormat::Markdown => report.render_markdown(),
    };
    print!("{text}");
    Ok(report.exit_code() as i32)
}
