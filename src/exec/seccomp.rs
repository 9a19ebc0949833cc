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

/// A program for a map whose every entry is unconditional: `matched` for the
/// syscall numbers in the map, `mismatch` for every other number. Instead of
/// seccompiler's one test per syscall (about five instructions each), the set
/// is written as the sorted numbers where membership flips, searched as a
/// balanced tree of `JGE` tests: about two instructions per contiguous run of
/// numbers, and a logarithmic path. Same decisions, far smaller program —
/// which matters because the kernel emulates a filter once per syscall number
/// when it is loaded (the constant-action cache), so load time grows with
/// program length times path length.
fn compile_set(nrs: &[i64], mismatch: SeccompAction, matched: SeccompAction) -> BpfProgram {
    let ret_in = u32::from(action(matched));
    let ret_out = u32::from(action(mismatch));
    // Flip points: n is in the set iff an odd number of flips are <= n.
    let mut sorted: Vec<u32> = nrs.iter().filter_map(|n| u32::try_from(*n).ok()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut flips: Vec<u32> = Vec::new();
    for n in sorted {
        if flips.last() == Some(&n) {
            flips.pop(); // n extends the run that ended just before it
        } else {
            flips.push(n);
        }
        if let Some(next) = n.checked_add(1) {
            flips.push(next);
        }
    }
    let mut prog = vec![
        ins(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        ins(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
    ];
    search_tree(&flips, false, (ret_in, ret_out), &mut prog);
    prog
}

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> seccompiler::sock_filter {
    seccompiler::sock_filter { code, jt, jf, k }
}

/// Code that returns `rets.0` when the accumulator lies in the set (`inside`
/// says whether it does below `flips[0]`), `rets.1` otherwise. Forward jumps
/// only; a jump longer than 255 goes through `JA`.
fn search_tree(flips: &[u32], inside: bool, rets: (u32, u32), out: &mut Vec<seccompiler::sock_filter>) {
    if flips.is_empty() {
        out.push(ins(RET_K, 0, 0, if inside { rets.0 } else { rets.1 }));
        return;
    }
    let mid = flips.len() / 2;
    let mut below = Vec::new();
    search_tree(&flips[..mid], inside, rets, &mut below);
    match u8::try_from(below.len()) {
        Ok(skip) => out.push(ins(JGE_K, skip, 0, flips[mid])),
        Err(_) => {
            out.push(ins(JGE_K, 0, 1, flips[mid]));
            out.push(ins(JA, 0, 0, below.len() as u32));
        }
    }
    out.extend(below);
    // At or above flips[mid]: mid + 1 flips passed.
    search_tree(&flips[mid + 1..], inside ^ (mid % 2 == 0), rets, out);
}

/// seccompiler for maps with argument conditions, [`compile_set`] otherwise.
fn compile(map: RuleMap, mismatch: SeccompAction, matched: SeccompAction) -> Result<BpfProgram, String> {
    if map.values().all(|rules| rules.is_empty()) {
        let nrs: Vec<i64> = map.keys().copied().collect();
        return Ok(compile_set(&nrs, mismatch, matched));
    }
    compile_seccompiler(map, mismatch, matched)
}

fn compile_seccompiler(map: RuleMap, mismatch: SeccompAction, matched: SeccompAction) -> Result<BpfProgram, String> {
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
    // Load order: a loaded filter applies to the loading of the next one, so
    // a filter that refuses seccomp(2) itself must come after the others.
    // The kernel combines all loaded filters by action precedence, so the
    // order does not change what any syscall gets.
    let seccomp_nr = syscall_number("seccomp").unwrap_or(317);
    let mut out = vec![PreparedFilter {
        describe: "kill x32 syscall numbers".into(),
        program: x32_guard(),
    }];
    let mut last = Vec::new();
    for (a, (m, _)) in per_action {
        let n = m.len();
        if n == 0 {
            continue;
        }
        let matches_seccomp = m.contains_key(&seccomp_nr);
        let f = PreparedFilter {
            describe: format!("{} for {n} syscalls", action_text(a)),
            program: compile(m, SeccompAction::Allow, a)?,
        };
        if matches_seccomp {
            last.push(f);
        } else {
            out.push(f);
        }
    }
    if default != SeccompAction::Allow {
        // Blocks seccomp(2) only when no rule names it, and then nothing that
        // names it comes after.
        let n = main.len();
        out.push(PreparedFilter {
            describe: format!(
                "default {}, {n} syscalls with rules pass to the rule filters",
                action_text(default)
            ),
            program: compile(main, default, SeccompAction::Allow)?,
        });
    }
    out.extend(last);
    Ok(out.into_iter().map(Rc::new).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{SeccompRule as PlanRule, Sourced};
    use crate::vocab::Origin;

    /// A classic-BPF interpreter for the instructions these programs use.
    fn run(prog: &[seccompiler::sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = &prog[pc];
            pc += 1;
            let jump = |cond: bool| usize::from(if cond { i.jt } else { i.jf });
            match i.code {
                0x20 => {
                    a = if i.k == 4 {
                        arch
                    } else if i.k == 0 {
                        nr
                    } else {
                        0
                    }
                }
                0x54 => a &= i.k,
                0x05 => pc += i.k as usize,
                0x15 => pc += jump(a == i.k),
                0x25 => pc += jump(a > i.k),
                0x35 => pc += jump(a >= i.k),
                0x45 => pc += jump(a & i.k != 0),
                0x06 => return i.k,
                c => panic!("opcode {c:#x} not emulated"),
            }
        }
    }

    #[test]
    fn compact_programs_decide_as_seccompiler_does() {
        let sets: Vec<Vec<i64>> = vec![
            vec![],
            vec![0],
            vec![0, 1, 2, 3, 10, 11, 300, 334, 424, 461],
            (0..462).filter(|n| n % 7 != 3 && *n != 59).collect(),
            (0..1200).filter(|n| n % 3 == 0).collect(), // long jumps through JA
            vec![u32::MAX as i64 - 1, u32::MAX as i64],
        ];
        for nrs in sets {
            let map: RuleMap = nrs.iter().map(|n| (*n, Vec::new())).collect();
            let (miss, hit) = (SeccompAction::Errno(1), SeccompAction::Allow);
            let ours = compile_set(&nrs, miss, hit);
            let theirs = compile_seccompiler(map, miss, hit).unwrap();
            assert!(
                ours.len() <= theirs.len().max(8),
                "{} instructions, seccompiler {}",
                ours.len(),
                theirs.len()
            );
            let probes = (0..1300u32).chain([0x3fff_ffff, 0x4000_0000, u32::MAX - 2, u32::MAX - 1, u32::MAX]);
            for nr in probes {
                for arch in [AUDIT_ARCH_X86_64, 0x4000_0003] {
                    assert_eq!(run(&ours, arch, nr), run(&theirs, arch, nr), "nr {nr} arch {arch:#x}");
                }
            }
        }
    }

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
                "kill x32 syscall numbers",
                "killprocess for 1 syscalls",
                // last: it refuses seccomp(2), which no rule names
                "default errno(1), 3 syscalls with rules pass to the rule filters",
            ]
        );
        // A rule that names seccomp(2) goes after the default filter.
        let mut s2 = s.clone();
        s2.rules.push(crate::plan::SeccompRule {
            action: SeccompAction::Errno(1),
            syscalls: vec!["seccomp".into()],
            args: vec![],
            from: Origin::Default,
        });
        let p2 = prepare(&s2).unwrap();
        let last = p2.last().unwrap().describe.as_str();
        assert!(last.starts_with("errno(1) for"), "{last}");
        assert_eq!(syscall_number("getpid"), Some(39));
    }
}
