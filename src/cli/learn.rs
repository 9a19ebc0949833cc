//! `learn`: runs a workload under the ptrace platform and writes a policy
//! fragment whose seccomp filter allows exactly the system calls it made.
//!
//! The run is an ordinary `apply` of the plan the inputs compile to, with
//! one layer added on top (written to a private temporary directory):
//! `platform = "ptrace"` and a user log, where the supervisor's tracer
//! writes what it saw (`exec::trace::summary_line`). The fragment is built
//! from that plan's filter and those counts ([`fragment`], pure): the calls
//! the filter let through, unconditionally allowed ones in `allow`, the
//! filter's conditional rules kept for the calls made (so a learned `clone`
//! keeps its flag conditions), its refusing rules kept for the calls made
//! (same errno as while learning), and the rest refused by the default
//! action. Layered last (`--policy BASE --policy learned.toml`), it only
//! narrows: `sandboxctl diff` of the two plans shows each call it drops.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use super::{compile_inputs, Failure, PlanInputs};
use crate::diag::SourceDiag;
use crate::exec;
use crate::exec::trace::{parse_summary, Counts};
use crate::plan::syscalls::errno_name;
use crate::plan::{CmpOp, LaunchPlan, SeccompAction};

/// What the fragment's header says about the run it was learned from.
pub struct About<'a> {
    /// The workload's argv.
    pub command: &'a [String],
    /// The policy chain of the learning run (without the ptrace layer).
    pub policies: &'a [String],
}

#[inline(never)] // see `super::run`
pub(super) fn learn(inputs: &PlanInputs, output: Option<&Path>, root: Option<&Path>) -> Result<i32, Failure> {
    let dir = std::env::temp_dir().join(format!("sandboxctl-learn-{}", std::process::id()));
    let made = std::fs::create_dir(&dir)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        })
        .map_err(|e| Failure::other(format!("learn: making the temporary directory {}: {e}", dir.display())));
    made?;
    let result = learn_in(&dir, inputs, output, root);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn learn_in(dir: &Path, inputs: &PlanInputs, output: Option<&Path>, root: Option<&Path>) -> Result<i32, Failure> {
    let log = dir.join("trace.log");
    let layer = dir.join("learn.toml");
    let text = format!(
        "# added by sandboxctl learn: run under the tracer, its summary in the user log\n\
         platform = \"ptrace\"\n\n[logs]\nuser_log = \"{}\"\n",
        log.display()
    );
    std::fs::write(&layer, text).map_err(|e| Failure::other(format!("learn: writing {}: {e}", layer.display())))?;
    let mut traced = inputs.clone();
    let mut choice = traced.policy.clone().unwrap_or_else(super::current_choice);
    let policies: Vec<String> = choice
        .refs
        .iter()
        .map(|r| match r {
            crate::policy::PolicyRef::Builtin(n) => n.clone(),
            crate::policy::PolicyRef::File(p) => p.display().to_string(),
            crate::policy::PolicyRef::Text { name, .. } => name.clone(),
        })
        .collect();
    choice
        .refs
        .push(crate::policy::PolicyRef::parse(&layer.display().to_string()));
    traced.policy = Some(choice);
    let (compiled, loaded) = compile_inputs(&traced, Path::new("."))?;
    let plan = compiled.plan;
    let opts = exec::ApplyOptions {
        root: root.map(Path::to_path_buf),
        ..Default::default()
    };
    let status = exec::apply(&plan, &loaded.host, &opts).map_err(|e| Failure {
        diag: Box::new(SourceDiag::plain(format!("learn: running the workload: {e}"), None)),
        code: super::run::EXIT_APPLY_FAILED,
    })?;
    let seen = std::fs::read_to_string(&log)
        .map(|t| parse_summary(&t))
        .map_err(|e| Failure::other(format!("learn: reading the tracer's summary {}: {e}", log.display())))?;
    if seen.is_empty() {
        return Err(Failure::other(format!(
            "learn: the tracer wrote no summary (the workload exited with status {status} before any call was seen)"
        )));
    }
    let about = About {
        command: &plan.workload.args.value,
        policies: &policies,
    };
    let text = fragment(&plan, &seen, &about).map_err(|m| Failure::other(format!("learn: {m}")))?;
    match output {
        Some(p) => {
            std::fs::write(p, &text).map_err(|e| Failure::other(format!("learn: writing {}: {e}", p.display())))?;
            eprintln!(
                "learn: {} syscalls seen ({} refused), workload status {status}; policy fragment written to {}",
                seen.len(),
                seen.values().filter(|s| s.refused > 0).count(),
                p.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(status)
}

/// An action as a policy writes it; `None` for one a policy cannot hold.
fn action_toml(a: SeccompAction) -> Option<String> {
    Some(match a {
        SeccompAction::Allow => "allow".into(),
        SeccompAction::Errno(n) => match errno_name(n) {
            Some(e) => format!("errno:{e}"),
            None => format!("errno:{n}"),
        },
        SeccompAction::KillProcess => "kill_process".into(),
        SeccompAction::KillThread => "kill_thread".into(),
        SeccompAction::Trap => "trap".into(),
        SeccompAction::Log => "log".into(),
        SeccompAction::Trace(_) => return None,
    })
}

fn permits(a: SeccompAction) -> bool {
    matches!(a, SeccompAction::Allow | SeccompAction::Log)
}

/// A TOML string (names and paths here hold no quotes or backslashes, but
/// a command line may).
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The policy fragment for `plan`'s filter and the calls `seen` (see the
/// module's doc). Deterministic: the same plan and counts give the same text.
pub fn fragment(plan: &LaunchPlan, seen: &Counts, about: &About) -> Result<String, String> {
    let filter = plan.workload.seccomp.as_ref();
    let made: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    let let_through: BTreeSet<&str> = seen
        .iter()
        .filter(|(_, s)| s.allowed > 0)
        .map(|(n, _)| n.as_str())
        .collect();
    // Calls the filter allows whatever their arguments.
    let unconditional = |name: &str| match filter {
        None => true,
        Some(f) => {
            let named: Vec<_> = f
                .rules
                .iter()
                .filter(|r| r.syscalls.iter().any(|s| s == name))
                .collect();
            if named.is_empty() {
                permits(f.default_action.value)
            } else {
                named.iter().any(|r| permits(r.action) && r.args.is_empty())
            }
        }
    };
    let default = match filter.map(|f| f.default_action.value) {
        Some(a) if !permits(a) => a,
        _ => SeccompAction::Errno(1),
    };
    let mut out = String::new();
    let total: u64 = seen.values().map(|s| s.allowed + s.refused).sum();
    let _ = writeln!(
        out,
        "# Learned by `sandboxctl learn` under the ptrace platform: the system calls of"
    );
    let _ = writeln!(out, "#   {}", about.command.join(" "));
    let _ = writeln!(
        out,
        "# ({total} calls of {} syscalls), learned on top of: {}.",
        seen.len(),
        about.policies.join(", ")
    );
    let _ = writeln!(out, "# Layer it last to allow exactly these calls:");
    let mut layers: String = about.policies.iter().map(|p| format!("--policy {p} ")).collect();
    layers.push_str("--policy THIS_FILE");
    let _ = writeln!(out, "#   sandboxctl apply {layers} ...");
    let _ = writeln!(
        out,
        "# It sets only [seccomp]; every other key comes from the layers below it."
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "[seccomp]");
    let _ = writeln!(out, "source = \"policy\"");
    let default_text = action_toml(default).ok_or("the filter's default action cannot be written in a policy")?;
    let _ = writeln!(out, "default_action = {}", quoted(&default_text));
    let _ = writeln!(out, "# each with how often it was made");
    let _ = writeln!(out, "allow = [");
    let mut unknown = Vec::new();
    for name in &let_through {
        if crate::plan::syscalls::syscall_nr(name).is_none() {
            unknown.push(*name);
            continue;
        }
        if unconditional(name) {
            let _ = writeln!(out, "  {:<24} # {}", format!("{},", quoted(name)), seen[*name].allowed);
        }
    }
    let _ = writeln!(out, "]");
    let refused: Vec<_> = seen.iter().filter(|(_, s)| s.refused > 0).collect();
    if !refused.is_empty() {
        let _ = writeln!(out, "# Refused while learning, and still refused:");
        for (name, s) in refused {
            let _ = writeln!(out, "#   {name} ({} calls)", s.refused);
        }
    }
    for name in unknown {
        let _ = writeln!(
            out,
            "# {name}: a number x86_64 has no name for; left to the default action"
        );
    }
    if let Some(f) = filter {
        for rule in &f.rules {
            let keep: Vec<&str> = rule
                .syscalls
                .iter()
                .map(String::as_str)
                .filter(|n| match (permits(rule.action), rule.args.is_empty()) {
                    (true, true) => false, // in `allow`
                    (true, false) => let_through.contains(n) && !unconditional(n),
                    (false, _) => made.contains(n),
                })
                .collect();
            if keep.is_empty() {
                continue;
            }
            let Some(action) = action_toml(rule.action) else {
                return Err(format!(
                    "the rule from {} traces ({:?}), which a policy cannot write",
                    rule.from, rule.action
                ));
            };
            let _ = writeln!(out);
            let _ = writeln!(out, "# kept from {}", rule.from);
            let _ = writeln!(out, "[[seccomp.rules]]");
            let _ = writeln!(out, "action = {}", quoted(&action));
            let names: Vec<String> = keep.iter().map(|n| quoted(n)).collect();
            let _ = writeln!(out, "syscalls = [{}]", names.join(", "));
            if !rule.args.is_empty() {
                let mut conds = Vec::new();
                for c in &rule.args {
                    let big = |v: u64| i64::try_from(v).is_err();
                    let (value, mask) = match c.op {
                        CmpOp::MaskedEq => (c.value_two.unwrap_or(0), Some(c.value)),
                        _ => (c.value, None),
                    };
                    if big(value) || mask.is_some_and(big) {
                        return Err(format!(
                            "the rule from {} compares with a value above 2^63-1, which a policy cannot write",
                            rule.from
                        ));
                    }
                    let op = serde_json::to_value(c.op)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    conds.push(match mask {
                        Some(m) => format!(
                            "{{ index = {}, op = \"{op}\", mask = {m:#x}, value = {value:#x} }}",
                            c.index
                        ),
                        None => format!("{{ index = {}, op = \"{op}\", value = {value:#x} }}", c.index),
                    });
                }
                let _ = writeln!(out, "args = [{}]", conds.join(", "));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::trace::Seen;

    fn seen(calls: &[(&str, u64, u64)]) -> Counts {
        calls
            .iter()
            .map(|(n, a, r)| {
                (
                    n.to_string(),
                    Seen {
                        allowed: *a,
                        refused: *r,
                    },
                )
            })
            .collect()
    }

    fn default_plan() -> LaunchPlan {
        crate::cli::compile_builtin("default")
    }

    /// The fragment of a run that made read, write, exit_group, execve,
    /// clone (conditional in `default`) and a refused unshare: those are
    /// allowed, clone with its conditions, the rest refused; it loads as a
    /// policy layer.
    #[test]
    fn fragment_allows_what_was_made_and_keeps_conditions() {
        let plan = default_plan();
        let calls = seen(&[
            ("read", 5, 0),
            ("write", 2, 0),
            ("exit_group", 1, 0),
            ("execve", 1, 0),
            ("clone", 1, 0),
            ("unshare", 0, 1),
        ]);
        let about = About {
            command: &["true".into()],
            policies: &["default".into()],
        };
        let text = fragment(&plan, &calls, &about).unwrap();
        assert_eq!(text, fragment(&plan, &calls, &about).unwrap(), "deterministic");
        let v: toml::Value = toml::from_str(&text).unwrap();
        let allow: Vec<&str> = v["seccomp"]["allow"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(allow, ["execve", "exit_group", "read", "write"]);
        assert!(text.contains("\"read\",") && text.contains("# 5"), "{text}");
        assert!(text.contains("#   unshare (1 calls)"), "{text}");
        let rules = v["seccomp"]["rules"].as_array().unwrap();
        let clone = rules
            .iter()
            .find(|r| {
                r["syscalls"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s.as_str() == Some("clone"))
            })
            .expect("clone's conditional rule kept");
        assert_eq!(clone["action"].as_str(), Some("allow"));
        assert!(!clone["args"].as_array().unwrap().is_empty());
        // No rule for a call never made (default's clone3 ENOSYS rule, socket families).
        assert!(!text.contains("clone3") && !text.contains("\"socket\""), "{text}");
        assert_eq!(v["seccomp"]["default_action"].as_str(), Some("errno:EPERM"));
    }
}
