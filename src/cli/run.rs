//! `apply` and `doctor`: get a plan (compiled now, or a reviewed file pinned by
//! its hash), then hand it to the interpreter.

use std::io::Write;
use std::path::Path;

use super::{compile_inputs, load_host, Failure, PlanInputs};
use crate::diag::{Snippet, SourceDiag};
use crate::exec;
use crate::host::HostFacts;
use crate::plan::{render, LaunchPlan};

/// Exit status when sandboxctl itself failed during apply (everything undone).
pub const EXIT_APPLY_FAILED: i32 = 125;

/// Loads a plan file, with a located diagnostic when it is bad.
#[inline(never)] // its parse's frame stays off the stack of a launch that compiles
pub fn load_plan_file(path: &Path) -> Result<LaunchPlan, Failure> {
    let text = crate::vocab::read_input(path)
        .map_err(|e| Failure::input(SourceDiag::plain(format!("reading plan {}: {e}", path.display()), None)))?;
    render::load(&text).map_err(|e| {
        let span = e.span(&text);
        Failure::input(SourceDiag::new(
            format!("loading plan: {e}"),
            Some(Snippet {
                name: path.display().to_string(),
                text: text.clone(),
                span,
                label: "here".into(),
            }),
            Some("plans are written by `sandboxctl plan --format toml|json`".into()),
            vec![],
        ))
    })
}

/// The plan to run and the host facts to check it against.
fn plan_and_host(inputs: &PlanInputs, plan_file: Option<&Path>) -> Result<(LaunchPlan, HostFacts), Failure> {
    match plan_file {
        Some(p) => Ok((load_plan_file(p)?, load_host(inputs.host.as_deref())?)),
        None => {
            let (compiled, loaded) = compile_inputs(inputs, Path::new("."))?;
            Ok((compiled.plan, loaded.host))
        }
    }
}

#[inline(never)] // see `super::run`
pub(super) fn apply(
    inputs: &PlanInputs,
    plan_file: Option<&Path>,
    expect_hash: Option<&str>,
    dry_run: bool,
    timings: bool,
) -> Result<i32, Failure> {
    let timings = timings.then(|| exec::Timings::since(super::started()));
    if let Some(t) = &timings {
        t.mark(crate::plan::Actor::Launcher, "arguments parsed");
    }
    let (plan, host) = plan_and_host(inputs, plan_file)?;
    if let Some(t) = &timings {
        t.mark(crate::plan::Actor::Launcher, "plan and host facts ready");
    }
    // The hash is a serialisation and a digest of the whole plan: made only
    // when something reads it (not on the launch path of a plain apply).
    if let Some(want) = expect_hash {
        let hash = render::hash(&plan);
        if want != hash {
            return Err(Failure::input(SourceDiag::plain(
                format!("refusing to run: the plan's hash is {hash}, not the expected {want}"),
                Some(
                    "the plan changed since it was reviewed; review it again (`sandboxctl diff`) and pin the new hash"
                        .into(),
                ),
            )));
        }
    }
    if dry_run {
        let hash = render::hash(&plan);
        let text = exec::dry_run_text(&plan).map_err(|e| Failure::other(e.to_string()))?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "# dry run of plan {hash}");
        let _ = out.write_all(text.as_bytes());
        return Ok(0);
    }
    let opts = exec::ApplyOptions {
        timings,
        ..Default::default()
    };
    match exec::apply(&plan, &host, &opts) {
        Ok(status) => Ok(status),
        Err(e) => Err(Failure {
            diag: Box::new(SourceDiag::plain(e.to_string(), None)),
            code: EXIT_APPLY_FAILED,
        }),
    }
}

#[inline(never)] // see `super::run`
pub(super) fn doctor(inputs: &PlanInputs, plan_file: Option<&Path>) -> Result<i32, Failure> {
    let (plan, host) = plan_and_host(inputs, plan_file)?;
    let unmet = exec::preflight(&plan, &host);
    if unmet.is_empty() {
        println!(
            "ok: this host meets every need of plan {} ({} steps)",
            render::hash(&plan),
            plan.steps.len()
        );
        return Ok(0);
    }
    println!(
        "this host does not meet {} need(s) of plan {}:",
        unmet.len(),
        render::hash(&plan)
    );
    for u in &unmet {
        println!("  - {u}");
    }
    Ok(1)
}
