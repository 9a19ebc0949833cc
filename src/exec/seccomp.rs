//! Turns the plan's seccomp section into BPF programs, before the clone.
//!
//! seccompiler builds one filter per match action, so the plan's rules become
//! one program per distinct action: the main program returns the plan's
//! default action for every syscall no rule matches (and allows the rest), and
//! one program per non-allow action returns that action where its rules match.
//! All are loaded together just before exec; the kernel runs every stacked
//! filter and takes the strictest result (KILL_PROCESS > KILL_THREAD > TRAP >
//! ERRNO > TRACE > LOG > ALLOW), which is exactly "the strictest matching rule
//! wins, else the default". Each program checks the architecture first and
//! kills the process for any non-x86_64 audit arch (x86 and x32 entries of a
//! spec's `architectures` cannot be expressed with seccompiler); a further
//! program kills x32 syscall numbers (bit 30), which an audit-arch check alone
//! lets through.

use std::collections::BTreeMap;
use std::rc::Rc;

use seccompiler::{
    BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use super::backend::PreparedFilter;
use crate::plan::syscalls_x86_64::SYSCALLS;
use crate::plan::{ArgCond, CmpOp, Seccomp, SeccompAction};

/// The syscall number of a name on x86_64.
pub fn syscall_number(name: &str) -> Option<i64> {
    SYSCALLS
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| SYSCALLS[i].1)
}

fn action(a: SeccompAction) -> seccompiler::SeccompAction {
    match a {
        SeccompAction::Allow => seccompiler::SeccompAction::Allow,
        SeccompAction::Errno(n) => seccompiler::SeccompAction::Errno(n),
        SeccompAction::KillThread => seccompiler::SeccompAction::KillThread,
        SeccompAction::KillProcess => seccompiler::SeccompAction::KillProcess,
        SeccompAction::Trap => seccompiler::SeccompAction::Trap,
        SeccompAction::Log => seccompiler::SeccompAction::Log,
        SeccompAction::Trace(n) => seccompiler::SeccompAction::Trace(n),
    }
}

fn action_text(a: SeccompAction) -> String {
    match a {
        SeccompAction::Errno(n) => format!("errno({n})"),
        SeccompAction::Trace(n) => format!("trace({n})"),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn condition(c: &ArgCond) -> Result<SeccompCondition, String> {
    let (op, value) = match c.op {
        CmpOp::Eq => (SeccompCmpOp::Eq, c.value),
        CmpOp::Ne => (SeccompCmpOp::Ne, c.value),
        CmpOp::Lt => (SeccompCmpOp::Lt, c.value),
        CmpOp::Le => (SeccompCmpOp::Le, c.value),
        CmpOp::Gt => (SeccompCmpOp::Gt, c.value),
        CmpOp::Ge => (SeccompCmpOp::Ge, c.value),
        CmpOp::MaskedEq => (SeccompCmpOp::MaskedEq(c.value), c.value_two.unwrap_or(0)),
    };
    SeccompCondition::new(c.index, SeccompCmpArgLen::Qword, op, value).map_err(|e| e.to_string())
}

type RuleMap = BTreeMap<i64, Vec<SeccompRule>>;

/// Adds a rule's syscalls to a map; an unconditional rule makes the entry
/// "always match" (an empty list in seccompiler).
fn add(map: &mut RuleMap, always: &mut Vec<i64>, nr: i64, conds: &[ArgCond]) -> Result<(), String> {
    if conds.is_empty() {
        always.push(nr);
        map.insert(nr, Vec::new());
        return Ok(());
    }
    if always.contains(&nr) {
        return Ok(());
    }
    let rule = SeccompRule::new(conds.iter().map(condition).collect::<Result<_, _>>()?).map_err(|e| e.to_string())?;
    map.entry(nr).or_default().push(rule);
    Ok(())
}

fn compile(map: RuleMap, mismatch: SeccompAction, matched: SeccompAction) -> Result<BpfProgram, String> {
    let f =
        SeccompFilter::new(map, action(mismatch), action(matched), TargetArch::x86_64).map_err(|e| e.to_string())?;
    BpfProgram::try_from(f).map_err(|e| e.to_string())
}

/// A program that kills the process on x32 syscall numbers (nr >= 0x40000000).
fn x32_guard() -> BpfProgram {
    use seccompiler::sock_filter;
    let ins = |code: u16, jt: u8, jf: u8, k: u32| sock_filter { code, jt, jf, k };
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    vec![
        ins(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        ins(JGE_K, 0, 1, 0x4000_0000),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Compiles the plan's filter into the programs to load, in load order.
pub fn prepare(s: &Seccomp) -> Result<Vec<Rc<PreparedFilter>>, String> {
    let default = s.default_action.value;
    let mut main = RuleMap::new();
    let mut main_always = Vec::new();
    let mut per_action: BTreeMap<SeccompAction, (RuleMap, Vec<i64>)> = BTreeMap::new();
    for rule in &s.rules {
        for name in &rule.syscalls {
            let Some(nr) = syscall_number(name) else {
                continue;
            };
            add(&mut main, &mut main_always, nr, &rule.args)?;
            if rule.action != SeccompAction::Allow {
                let (m, a) = per_action.entry(rule.action).or_default();
                add(m, a, nr, &rule.args)?;
            }
        }
    }
    let mut out = Vec::new();
    if default != SeccompAction::Allow {
        let n = main.len();
        out.push(PreparedFilter {
            describe: format!(
                "default {}, {n} syscalls with rules pass to the rule filters",
                action_text(default)
            ),
            program: compile(main, default, SeccompAction::Allow)?,
        });
    }
    for (a, (m, _)) in per_action {
        let n = m.len();
        if n == 0 {
            continue;
        }
        out.push(PreparedFilter {
            describe: format!("{} for {n} syscalls", action_text(a)),
            program: compile(m, SeccompAction::Allow, a)?,
        });
    }
    out.push(PreparedFilter {
        describe: "kill x32 syscall numbers".into(),
        program: x32_guard(),
    });
    Ok(out.into_iter().map(Rc::new).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{SeccompRule as PlanRule, Sourced};
    use crate::vocab::Origin;

    #[test]
    fn one_program_per_action_plus_guard() {
        let s = Seccomp {
            default_action: Sourced::new(SeccompAction::Errno(1), Origin::Default),
            architectures: vec!["SCMP_ARCH_X86_64".into()],
            rules: vec![
                PlanRule {
                    action: SeccompAction::Allow,
                    syscalls: vec!["read".into(), "write".into()],
                    args: vec![],
                    from: Origin::Default,
                },
                PlanRule {
                    action: SeccompAction::KillProcess,
                    syscalls: vec!["ptrace".into()],
                    args: vec![],
                    from: Origin::Default,
                },
                PlanRule {
                    action: SeccompAction::Errno(38),
                    syscalls: vec!["nosuchcall".into()],
                    args: vec![],
                    from: Origin::Default,
                },
            ],
            unknown_syscalls: vec![],
        };
        let p = prepare(&s).unwrap();
        let d: Vec<&str> = p.iter().map(|f| f.describe.as_str()).collect();
        assert_eq!(
            d,
            [
                "default errno(1), 3 syscalls with rules pass to the rule filters",
                "killprocess for 1 syscalls",
                "kill x32 syscall numbers"
            ]
        );
        assert_eq!(syscall_number("getpid"), Some(39));
    }
}
