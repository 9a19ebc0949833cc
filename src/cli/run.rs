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
        let (label, help) = match e {
            render::LoadError::TextRendering => (
                "text rendering",
                "write the plan as TOML or JSON: `sandboxctl plan … -o plan.toml` (the format follows the \
                 extension) or `--format toml`",
            ),
            _ => ("here", "plans are written by `sandboxctl plan --format toml|json`"),
        };
        Failure::input(SourceDiag::new(
            format!("loading plan {}: {e}", path.display()),
            Some(Snippet {
                name: path.display().to_string(),
                text: text.clone(),
                span,
                label: label.into(),
            }),
            Some(help.into()),
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

/// How `apply` runs the plan: the launch's own options, none of which is
/// part of the plan.
pub(super) struct Launch<'a> {
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--timings`.
    pub timings: bool,
    /// `--id`.
    pub id: Option<&'a str>,
    /// `--root`.
    pub root: Option<&'a Path>,
}

#[inline(never)] // see `super::run`
pub(super) fn apply(
    inputs: &PlanInputs,
    plan_file: Option<&Path>,
    expect_hash: Option<&str>,
    launch: Launch,
) -> Result<i32, Failure> {
    let Launch {
        dry_run,
        timings,
        id,
        root,
    } = launch;
    let id = id
        .map(|s| exec::LaunchId::given(s, crate::vocab::Origin::Cli("--id".into())))
        .transpose()
        .map_err(|e| {
            Failure::input(SourceDiag::plain(
                format!("--id: {e}"),
                Some("leave --id out for a random id, unique per launch".into()),
            ))
        })?;
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
    let opts = exec::ApplyOptions {
        timings,
        id,
        root: root.map(Path::to_path_buf),
        ..Default::default()
    };
    if dry_run {
        let hash = render::hash(&plan);
        let text = exec::dry_run_text_as(&plan, &opts).map_err(|e| Failure::other(e.to_string()))?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "# dry run of plan {hash}");
        let _ = out.write_all(text.as_bytes());
        return Ok(0);
    }
    match exec::apply_to_end(&plan, &host, &opts) {
        Ok(ended) => {
            if let Some(oom) = &ended.oom_kill {
                eprintln!("error: {oom}");
            }
            Ok(ended.status)
        }
        Err(e) => Err(Failure {
            diag: Box::new(SourceDiag::plain(e.to_string(), None)),
            code: EXIT_APPLY_FAILED,
        }),
    }
}

#[inline(never)] // see `super::run`
pub(super) fn doctor(inputs: &PlanInputs, plan_file: Option<&Path>, root: Option<&Path>) -> Result<i32, Failure> {
    let (plan, host) = plan_and_host(inputs, plan_file)?;
    let mut unmet = exec::preflight::foreground_needs(&plan);
    unmet.extend(exec::preflight::check(&plan, &host));
    // apply's first effect, the state file, is the host's too.
    let state_root = root.unwrap_or(Path::new(exec::state::DEFAULT_ROOT));
    if let Err(why) = exec::state::check_root(state_root) {
        let fix = why.fix();
        unmet.push(exec::UnmetNeed {
            need: format!("the state file under {} ({why})", state_root.display()),
            from: match root {
                Some(_) => crate::vocab::Origin::Cli("--root".into()),
                None => crate::vocab::Origin::Default,
            },
            fix: fix.into(),
        });
    }
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

#[inline(never)] // see `super::run`
pub(super) fn gc(root: Option<&Path>, dry_run: bool) -> Result<i32, Failure> {
    use exec::gc::Outcome;
    let root = root.unwrap_or(Path::new(exec::state::DEFAULT_ROOT));
    let outcomes =
        exec::gc::gc(root, dry_run).map_err(|e| Failure::other(format!("gc: reading {}: {e}", root.display())))?;
    let verb = if dry_run { "would remove" } else { "removed" };
    let (mut removed, mut live, mut failed) = (0, 0, 0);
    let mut out = std::io::stdout().lock();
    for o in &outcomes {
        match o {
            Outcome::Removed { id, cgroups, killed } => {
                removed += 1;
                let _ = writeln!(
                    out,
                    "{verb} {id}: state file, {cgroups} cgroup director{}, {killed} process{}",
                    if *cgroups == 1 { "y" } else { "ies" },
                    if *killed == 1 { "" } else { "es" }
                );
            }
            Outcome::Live { .. } => live += 1,
            Outcome::Skipped { file, why } => {
                let _ = writeln!(out, "left {}: {why}", file.display());
            }
            Outcome::Failed { id, left } => {
                failed += 1;
                let _ = writeln!(out, "could not remove all of {id}: {}", left.join("; "));
            }
        }
    }
    let _ = writeln!(
        out,
        "gc: {removed} dead launch{} {verb}, {live} live sandbox{} untouched{}",
        if removed == 1 { "" } else { "es" },
        if live == 1 { "" } else { "es" },
        if failed > 0 {
            format!(", {failed} not fully removed (run gc again; see above)")
        } else {
            String::new()
        }
    );
    Ok(if failed > 0 { 1 } else { 0 })
}
