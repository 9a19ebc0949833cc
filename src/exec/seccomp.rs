//! Turns the plan's seccomp section into one BPF program, before the clone.
//!
//! The plan's rules are first compiled per match action, the way seccompiler
//! builds filters: a main part returns the plan's default action for every
//! syscall no rule matches (and allows the rest), one part per non-allow
//! action returns that action where its rules match, and a guard part kills
//! x32 syscall numbers (bit 30, which an audit-arch check alone lets through).
//! Every part checks the architecture first and kills the process for any
//! non-x86_64 audit arch (x86 and x32 entries of a spec's `architectures`
//! cannot be expressed with seccompiler).
//!
//! Loaded as separate filters, the kernel would run every part on every
//! syscall and take the strictest result (KILL_PROCESS > KILL_THREAD > TRAP >
//! ERRNO > TRACE > LOG > ALLOW). `chain` instead joins the parts into one
//! program that decides the same: the parts run strictest action first, and a
//! part that would allow jumps to the next part instead, so the first
//! non-allow result is the strictest one. One program is loaded once — one
//! validation, one JIT, one pass of the kernel's constant-action cache — and
//! runs once per syscall.

use std::collections::BTreeMap;
use std::rc::Rc;

use seccompiler::{
    BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use super::backend::PreparedFilter;
use crate::plan::syscalls::syscall_nr as syscall_number;
use crate::plan::{ArgCond, CmpOp, Seccomp, SeccompAction};

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
    compile_set_rets(nrs, u32::from(action(matched)), u32::from(action(mismatch)))
}

/// [`compile_set`] with the two return values given as raw `SECCOMP_RET_*` words.
fn compile_set_rets(nrs: &[i64], ret_in: u32, ret_out: u32) -> BpfProgram {
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

/// [`compile_set`] for the syscalls without argument conditions, seccompiler
/// for those with: the tree returns `matched` for an unconditional number and
/// sends every other number on to seccompiler's program for the conditional
/// ones (which returns `mismatch` for numbers it does not name). A built-in
/// allow-list of some 280 calls with a handful of conditional ones thus costs
/// a short tree walk per call, not seccompiler's test per syscall.
fn compile(map: RuleMap, mismatch: SeccompAction, matched: SeccompAction) -> Result<BpfProgram, String> {
    let always: Vec<i64> = map.iter().filter(|(_, r)| r.is_empty()).map(|(n, _)| *n).collect();
    if always.len() == map.len() {
        return Ok(compile_set(&always, mismatch, matched));
    }
    if always.is_empty() {
        return compile_seccompiler(map, mismatch, matched);
    }
    let conditional: RuleMap = map.into_iter().filter(|(_, r)| !r.is_empty()).collect();
    let rest = compile_seccompiler(conditional, mismatch, matched)?;
    let ret_in = u32::from(action(matched));
    // A return value the tree uses for "not in the set", replaced by a jump.
    let next = if ret_in == u32::MAX { u32::MAX - 1 } else { u32::MAX };
    let mut prog = compile_set_rets(&always, ret_in, next);
    let len = prog.len();
    for (pc, i) in prog.iter_mut().enumerate() {
        if i.code == RET_K && i.k == next {
            *i = ins(JA, 0, 0, (len - pc - 1) as u32);
        }
    }
    prog.extend(rest);
    Ok(prog)
}

fn compile_seccompiler(map: RuleMap, mismatch: SeccompAction, matched: SeccompAction) -> Result<BpfProgram, String> {
    let f =
        SeccompFilter::new(map, action(mismatch), action(matched), TargetArch::x86_64).map_err(|e| e.to_string())?;
    BpfProgram::try_from(f).map_err(|e| e.to_string())
}

/// A program that kills the process on x32 syscall numbers (nr >= 0x40000000).
fn x32_guard() -> BpfProgram {
    vec![
        ins(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        ins(JGE_K, 0, 1, 0x4000_0000),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Checks what [`prepare`] would refuse in the plan's argument conditions,
/// without building any program: the cheap part of the validation, done
/// before any effect (the programs themselves are built by the launcher after
/// the release, see `Interp::release`).
pub fn check(s: &Seccomp) -> Result<(), String> {
    for rule in &s.rules {
        for c in &rule.args {
            condition(c)?;
        }
    }
    Ok(())
}

/// The start of an encoded set of programs (see [`encode`]).
const MAGIC: &[u8; 8] = b"SBXSECC1";

/// FNV-1a, 64 bits: the digest that closes an encoded set of programs. Not a
/// defence against a hostile writer (the writer is the launcher, the same
/// binary), a check that what arrived is whole and unaltered.
fn digest(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The programs as bytes, for the sync pipe: [`MAGIC`], the number of
/// programs (u32), then per program the description's length (u32) and UTF-8
/// bytes, the instruction count (u32), each instruction as code (u16), jt,
/// jf (u8), k (u32); last the [`digest`] (u64) of everything before it. All
/// little-endian. A stream cut anywhere (a launcher that died while sending,
/// or before) does not decode: see [`decode`].
pub fn encode(filters: &[Rc<PreparedFilter>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(filters.len() as u32).to_le_bytes());
    for f in filters {
        out.extend_from_slice(&(f.describe.len() as u32).to_le_bytes());
        out.extend_from_slice(f.describe.as_bytes());
        out.extend_from_slice(&(f.program.len() as u32).to_le_bytes());
        for i in &f.program {
            out.extend_from_slice(&i.code.to_le_bytes());
            out.extend_from_slice(&[i.jt, i.jf]);
            out.extend_from_slice(&i.k.to_le_bytes());
        }
    }
    let d = digest(&out);
    out.extend_from_slice(&d.to_le_bytes());
    out
}

/// The inverse of [`encode`], failing closed. The supervisor calls it with
/// whatever the sync pipe held at the launcher's EOF: the launcher always
/// sends one encoded set, empty when the plan has no filter, and only after
/// it has filled and sealed the plan memfd, so the set is also its "done".
/// An empty stream (the launcher died after the release), a cut or altered
/// one, bytes after the digest, or a number of programs that does not match
/// the plan (none for a plan with a filter, some for a plan without) are
/// errors, never "no filter".
pub fn decode(b: &[u8], plan_has_filter: bool) -> Result<Vec<Rc<PreparedFilter>>, String> {
    if b.is_empty() {
        return Err(
            "the launcher closed the sync pipe without sending its last message (the seccomp \
                    programs): it died after the release; the workload is not started"
                .into(),
        );
    }
    if b.len() < MAGIC.len() + 4 + 8 || &b[..MAGIC.len()] != MAGIC {
        return Err(format!("seccomp programs cut short or malformed ({} bytes)", b.len()));
    }
    let (body, tail) = b.split_at(b.len() - 8);
    let want = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
    if digest(body) != want {
        return Err(format!(
            "seccomp programs cut short or altered ({} bytes, digest mismatch)",
            b.len()
        ));
    }
    let mut b = &body[MAGIC.len()..];
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if b.len() < n {
            return Err(format!(
                "seccomp programs cut short ({} bytes left, {n} wanted)",
                b.len()
            ));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    let u32_at = |b: &mut &[u8]| -> Result<u32, String> {
        let v = take(b, 4)?;
        Ok(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
    };
    let programs = u32_at(&mut b)? as usize;
    if (programs > 0) != plan_has_filter {
        return Err(format!(
            "the launcher sent {programs} seccomp programs for a plan {} a filter",
            if plan_has_filter { "with" } else { "without" }
        ));
    }
    let mut out = Vec::new();
    for _ in 0..programs {
        let n = u32_at(&mut b)? as usize;
        let describe = String::from_utf8(take(&mut b, n)?.to_vec()).map_err(|e| e.to_string())?;
        let count = u32_at(&mut b)? as usize;
        if count == 0 || count > MAX_INSNS {
            return Err(format!("seccomp program of {count} instructions (1 to {MAX_INSNS})"));
        }
        let mut program = Vec::with_capacity(count);
        for _ in 0..count {
            let v = take(&mut b, 8)?;
            program.push(ins(
                u16::from_le_bytes([v[0], v[1]]),
                v[2],
                v[3],
                u32::from_le_bytes([v[4], v[5], v[6], v[7]]),
            ));
        }
        out.push(Rc::new(PreparedFilter { describe, program }));
    }
    if !b.is_empty() {
        return Err(format!("{} bytes after the last seccomp program", b.len()));
    }
    Ok(out)
}

/// Compiles the plan's filter into the programs to load, in load order:
/// one program (see `chain`), or the separate parts when joined they would
/// exceed the kernel's program size limit.
pub fn prepare(s: &Seccomp) -> Result<Vec<Rc<PreparedFilter>>, String> {
    Ok(chain(parts(s)?).into_iter().map(Rc::new).collect())
}

/// The plan's filter as separate programs, in an order that loads: a loaded
/// filter applies to the loading of the next one, so a filter that refuses
/// seccomp(2) itself comes after the others. The kernel combines loaded
/// filters by action precedence, so the order does not change what any
/// syscall gets.
fn parts(s: &Seccomp) -> Result<Vec<PreparedFilter>, String> {
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
    Ok(out)
}

/// The kernel's largest filter program (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// How strict a return value is: the kernel compares `ACTION_ONLY` as a signed
/// number, smaller is stricter (KILL_PROCESS is 0x80000000).
/// What a program returns for one system call: a classic-BPF interpreter
/// for the instructions the programs of this module use (`None` for any
/// other instruction, or a jump out of the program).
pub fn verdict(prog: &[seccompiler::sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> Option<u32> {
    let (mut pc, mut a) = (0usize, 0u32);
    loop {
        let i = prog.get(pc)?;
        pc += 1;
        let jump = |cond: bool| usize::from(if cond { i.jt } else { i.jf });
        match i.code {
            0x20 => {
                a = match i.k {
                    0 => nr,
                    4 => arch,
                    k @ 16..=63 => {
                        let arg = args[(k as usize - 16) / 8];
                        if k % 8 == 0 {
                            arg as u32
                        } else {
                            (arg >> 32) as u32
                        }
                    }
                    _ => return None,
                }
            }
            0x54 => a &= i.k,
            0x05 => pc += i.k as usize,
            0x15 => pc += jump(a == i.k),
            0x25 => pc += jump(a > i.k),
            0x35 => pc += jump(a >= i.k),
            0x45 => pc += jump(a & i.k != 0),
            0x06 => return Some(i.k),
            _ => return None,
        }
    }
}

/// Checks, before the spawn, that the programs let the workload's `execve`
/// through, with the arguments it will pass: a program that kills or traps
/// it would kill the child at its last step, after its filter is loaded,
/// where it can report nothing. Programs with instructions [`verdict`] does
/// not know are not judged here.
pub fn check_execve(filters: &[Rc<PreparedFilter>], args: &[u64; 6]) -> Result<(), String> {
    let nr = syscall_number("execve").unwrap_or(59) as u32;
    for f in filters {
        let Some(ret) = verdict(&f.program, AUDIT_ARCH_X86_64, nr, args) else {
            continue;
        };
        let action = ret & libc::SECCOMP_RET_ACTION_FULL;
        let what = match action {
            libc::SECCOMP_RET_KILL_PROCESS => "kills the process on",
            libc::SECCOMP_RET_KILL_THREAD => "kills the thread on",
            libc::SECCOMP_RET_TRAP => "traps (SIGSYS)",
            _ => continue,
        };
        return Err(format!(
            "the workload's seccomp filter ({}) {what} execve: the workload could never start",
            f.describe
        ));
    }
    Ok(())
}

/// What the plan's filter decides for one call, with the plan entry that
/// decides it: the strictest action among the rules that match (a rule
/// matches when it names the call and all its argument conditions hold),
/// the default action when none does. Another audit architecture or an x32
/// number is killed by the interpreter's own guard (see the module's doc),
/// whose origin is the filter's default action. This reads the plan, not the
/// loaded programs: the tracer uses it to say which line refused a call; the
/// programs (run with [`verdict`]) say whether it was refused.
pub fn rule_verdict<'s>(s: &'s Seccomp, arch: u32, nr: u64, args: &[u64; 6]) -> RuleVerdict<'s> {
    let default = RuleVerdict {
        action: s.default_action.value,
        from: &s.default_action.from,
        why: Why::Default,
    };
    if arch != AUDIT_ARCH_X86_64 || nr >= 0x4000_0000 {
        return RuleVerdict {
            action: SeccompAction::KillProcess,
            why: Why::Architecture,
            ..default
        };
    }
    let Some(name) = crate::plan::syscalls::syscall_name(nr) else {
        return default;
    };
    let holds = |c: &ArgCond| {
        let a = args[usize::from(c.index.min(5))];
        match c.op {
            CmpOp::Eq => a == c.value,
            CmpOp::Ne => a != c.value,
            CmpOp::Lt => a < c.value,
            CmpOp::Le => a <= c.value,
            CmpOp::Gt => a > c.value,
            CmpOp::Ge => a >= c.value,
            CmpOp::MaskedEq => a & c.value == c.value_two.unwrap_or(0),
        }
    };
    let mut best: Option<RuleVerdict> = None;
    for rule in &s.rules {
        if !rule.syscalls.iter().any(|n| n == name) || !rule.args.iter().all(holds) {
            continue;
        }
        let stricter = best
            .as_ref()
            .is_none_or(|b| strictness(u32::from(action(rule.action))) < strictness(u32::from(action(b.action))));
        if stricter {
            best = Some(RuleVerdict {
                action: rule.action,
                from: &rule.from,
                why: Why::Rule,
            });
        }
    }
    best.unwrap_or(default)
}

/// Why the plan's filter decides a call as it does (see [`rule_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A rule names the call (and its conditions hold).
    Rule,
    /// No rule matches: the default action.
    Default,
    /// Another audit architecture, or an x32 number: always killed.
    Architecture,
}

/// The plan's decision on one call (see [`rule_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleVerdict<'s> {
    /// What the filter does.
    pub action: SeccompAction,
    /// The plan entry that decides it: a rule's origin, or the default
    /// action's.
    pub from: &'s crate::vocab::Origin,
    /// Which kind of entry that is.
    pub why: Why,
}

/// What the kernel returns for one call with every program loaded: the
/// strictest of their returns. `None` when a program holds an instruction
/// [`verdict`] does not know.
pub fn stacked_verdict(filters: &[Rc<PreparedFilter>], arch: u32, nr: u32, args: &[u64; 6]) -> Option<u32> {
    let mut ret = libc::SECCOMP_RET_ALLOW;
    for f in filters {
        let r = verdict(&f.program, arch, nr, args)?;
        if strictness(r) < strictness(ret) {
            ret = r;
        }
    }
    Some(ret)
}

/// Whether a return value lets the call run (allow, log, trace, user
/// notification: the last two only with a tracer or listener, which the
/// plan's filters never ask for).
pub fn permits(ret: u32) -> bool {
    matches!(
        ret & libc::SECCOMP_RET_ACTION_FULL,
        libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG | libc::SECCOMP_RET_TRACE | libc::SECCOMP_RET_USER_NOTIF
    )
}

fn strictness(ret: u32) -> i32 {
    (ret & libc::SECCOMP_RET_ACTION_FULL) as i32
}

/// Where a part runs in the chain: its one action other than allow and the
/// arch-check kill. Kills may return at once wherever they are (nothing is
/// stricter), so a part that only kills or allows ranks first. `None` when the
/// part is not of the shape this module builds: a return that is not a
/// constant, or two different actions besides allow and kill.
fn rank(program: &[seccompiler::sock_filter]) -> Option<i32> {
    let (kill, allow) = (
        strictness(libc::SECCOMP_RET_KILL_PROCESS),
        strictness(libc::SECCOMP_RET_ALLOW),
    );
    let mut rank = None;
    for i in program.iter().filter(|i| i.code & 0x07 == 0x06) {
        // BPF_RET: only constants.
        if i.code != RET_K {
            return None;
        }
        let s = strictness(i.k);
        if s == kill || s == allow {
            continue;
        }
        match rank {
            Some(r) if r != s => return None,
            _ => rank = Some(s),
        }
    }
    Some(rank.unwrap_or(kill))
}

/// Joins the parts (in load order) into one program that returns what the
/// kernel would return with all of them loaded: parts run strictest first
/// (among equals, the last loaded first, as the kernel runs newest first), and
/// each `RET ALLOW` of a part but the last becomes a jump to the next part.
/// Returns the parts unchanged when they cannot be joined (too long, or a
/// return that is not a constant).
fn chain(parts: Vec<PreparedFilter>) -> Vec<PreparedFilter> {
    if parts.len() < 2 {
        return parts;
    }
    let total: usize = parts.iter().map(|p| p.program.len()).sum();
    let ranks: Option<Vec<i32>> = parts.iter().map(|p| rank(&p.program)).collect();
    let Some(ranks) = ranks.filter(|_| total <= MAX_INSNS) else {
        return parts;
    };
    let mut order: Vec<usize> = (0..parts.len()).rev().collect();
    order.sort_by_key(|&i| ranks[i]); // stable: newest first among equals
    let mut program = Vec::with_capacity(total);
    let mut describe = Vec::with_capacity(parts.len());
    for (n, &i) in order.iter().enumerate() {
        let part = &parts[i].program;
        let is_last = n + 1 == order.len();
        for (pc, ins) in part.iter().enumerate() {
            if !is_last && ins.code == RET_K && ins.k == libc::SECCOMP_RET_ALLOW {
                // To the first instruction after this part.
                program.push(self::ins(JA, 0, 0, (part.len() - pc - 1) as u32));
            } else {
                program.push(ins.clone());
            }
        }
        describe.push(parts[i].describe.as_str());
    }
    vec![PreparedFilter {
        describe: format!(
            "one program of {} parts, in the order they run: {}",
            parts.len(),
            describe.join("; ")
        ),
        program,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_survive_the_pipe_encoding() {
        let plan = crate::plan::sample::Sample::applied(std::path::Path::new("/r")).plan();
        let filters = prepare(plan.workload.seccomp.as_ref().unwrap()).unwrap();
        let back = decode(&encode(&filters), true).unwrap();
        assert_eq!(back.len(), filters.len());
        for (a, b) in filters.iter().zip(&back) {
            assert_eq!(a.describe, b.describe);
            assert_eq!(a.program, b.program);
        }
        assert!(decode(&encode(&[]), false).unwrap().is_empty());
    }

    /// Issue 10 item 5: every way the stream can arrive incomplete fails
    /// closed — empty (the launcher died after the release), cut at any
    /// byte, one byte altered anywhere, extra bytes, or zero programs.
    #[test]
    fn an_incomplete_stream_never_decodes_as_no_filter() {
        let plan = crate::plan::sample::Sample::applied(std::path::Path::new("/r")).plan();
        let filters = prepare(plan.workload.seccomp.as_ref().unwrap()).unwrap();
        let bytes = encode(&filters);
        for has in [true, false] {
            let err = decode(&[], has).unwrap_err();
            assert!(err.contains("died after the release"), "{err}");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], true).is_err(), "cut at {cut} decoded");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode(&b, true).is_err(), "byte {i} altered decoded");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, true).is_err());
        assert!(
            decode(&encode(&[]), true).is_err(),
            "zero programs for a plan with a filter"
        );
        assert!(decode(&bytes, false).is_err(), "programs for a plan without a filter");
    }
    use crate::plan::{SeccompRule as PlanRule, Sourced};
    use crate::vocab::Origin;

    fn run(prog: &[seccompiler::sock_filter], arch: u32, nr: u32) -> u32 {
        run_args(prog, arch, nr, &[0; 6])
    }

    fn run_args(prog: &[seccompiler::sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
        verdict(prog, arch, nr, args).expect("an instruction the interpreter knows")
    }

    /// What the kernel returns with every part loaded in order: it runs the
    /// newest first and keeps the strictest, the first seen among equals.
    fn run_stacked(parts: &[PreparedFilter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
        let mut ret = libc::SECCOMP_RET_ALLOW;
        for p in parts.iter().rev() {
            let r = run_args(&p.program, arch, nr, args);
            if strictness(r) < strictness(ret) {
                ret = r;
            }
        }
        ret
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

    /// Maps mixing unconditional and conditional entries: the tree plus
    /// seccompiler's part decide every number and argument as seccompiler
    /// alone does.
    #[test]
    fn mixed_maps_decide_as_seccompiler_does() {
        let cond = |index: u8, op: CmpOp, value: u64, value_two: Option<u64>| ArgCond {
            index,
            op,
            value,
            value_two,
        };
        let conds: Vec<(i64, Vec<ArgCond>)> = vec![
            (56, vec![cond(0, CmpOp::MaskedEq, 0x7e02_0080, Some(0))]),
            (135, vec![cond(0, CmpOp::Eq, 8, None)]),
            (135, vec![cond(0, CmpOp::Eq, 0xffff_ffff, None)]),
            (
                41,
                vec![cond(0, CmpOp::Eq, 2, None), cond(1, CmpOp::MaskedEq, 0xf, Some(1))],
            ),
            (400, vec![cond(2, CmpOp::Gt, 10, None)]),
        ];
        let always: Vec<i64> = (0..462)
            .filter(|n| n % 5 != 1 && ![56, 135, 41, 400].contains(n))
            .collect();
        let build = || -> RuleMap {
            let mut m: RuleMap = always.iter().map(|n| (*n, Vec::new())).collect();
            for (nr, c) in &conds {
                m.entry(*nr)
                    .or_default()
                    .push(SeccompRule::new(c.iter().map(|c| condition(c).unwrap()).collect()).unwrap());
            }
            m
        };
        let probes: Vec<[u64; 6]> = vec![
            [0; 6],
            [8, 0, 0, 0, 0, 0],
            [0xffff_ffff, 0, 0, 0, 0, 0],
            [0x1000_0000 | 17, 0, 0, 0, 0, 0],
            [2, 1, 0, 0, 0, 0],
            [2, 3, 0, 0, 0, 0],
            [0, 0, 11, 0, 0, 0],
        ];
        for (miss, hit) in [
            (SeccompAction::Errno(1), SeccompAction::Allow),
            (SeccompAction::Allow, SeccompAction::Errno(38)),
        ] {
            let ours = compile(build(), miss, hit).unwrap();
            let theirs = compile_seccompiler(build(), miss, hit).unwrap();
            assert!(
                ours.len() < theirs.len(),
                "{} instructions, seccompiler {}",
                ours.len(),
                theirs.len()
            );
            for nr in (0..470u32).chain([0x4000_0000, u32::MAX]) {
                for arch in [AUDIT_ARCH_X86_64, 0x4000_0003] {
                    for args in &probes {
                        assert_eq!(
                            run_args(&ours, arch, nr, args),
                            run_args(&theirs, arch, nr, args),
                            "nr {nr} arch {arch:#x} args {args:?}"
                        );
                    }
                }
            }
        }
    }

    fn rule(action: SeccompAction, syscalls: &[&str], args: Vec<ArgCond>) -> PlanRule {
        PlanRule {
            action,
            syscalls: syscalls.iter().map(|s| s.to_string()).collect(),
            args,
            from: Origin::Default,
        }
    }

    fn filter(default: SeccompAction, rules: Vec<PlanRule>) -> Seccomp {
        Seccomp {
            default_action: Sourced::new(default, Origin::Default),
            architectures: vec!["SCMP_ARCH_X86_64".into()],
            rules,
            unknown_syscalls: vec![],
        }
    }

    #[test]
    fn one_part_per_action_plus_guard() {
        let s = filter(
            SeccompAction::Errno(1),
            vec![
                rule(SeccompAction::Allow, &["read", "write"], vec![]),
                rule(SeccompAction::KillProcess, &["ptrace"], vec![]),
                rule(SeccompAction::Errno(38), &["nosuchcall"], vec![]),
            ],
        );
        let p = parts(&s).unwrap();
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
        s2.rules.push(rule(SeccompAction::Errno(1), &["seccomp"], vec![]));
        let p2 = parts(&s2).unwrap();
        let last = p2.last().unwrap().describe.as_str();
        assert!(last.starts_with("errno(1) for"), "{last}");
        assert_eq!(syscall_number("getpid"), Some(39));
        // Prepared: one program.
        let one = prepare(&s).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].describe,
            "one program of 3 parts, in the order they run: killprocess for 1 syscalls; \
             kill x32 syscall numbers; default errno(1), 3 syscalls with rules pass to the rule filters"
        );
    }

    /// The chained program decides every syscall number, architecture and
    /// argument probe exactly as the parts loaded one by one would.
    #[test]
    fn chained_program_decides_as_the_stacked_parts() {
        let cond = |index: u8, op: CmpOp, value: u64| ArgCond {
            index,
            op,
            value,
            value_two: None,
        };
        let cases = [
            filter(
                SeccompAction::Errno(1),
                vec![
                    rule(
                        SeccompAction::Allow,
                        &["read", "write", "close", "ptrace", "kill"],
                        vec![],
                    ),
                    rule(SeccompAction::KillProcess, &["ptrace"], vec![]),
                    rule(SeccompAction::Errno(38), &["kill", "bpf"], vec![]),
                    rule(SeccompAction::Trap, &["close"], vec![]),
                ],
            ),
            filter(
                SeccompAction::Allow,
                vec![
                    rule(SeccompAction::Errno(1), &["mount", "umount2", "seccomp"], vec![]),
                    rule(SeccompAction::Log, &["getpid"], vec![]),
                    rule(SeccompAction::KillThread, &["reboot"], vec![]),
                ],
            ),
            filter(
                SeccompAction::KillProcess,
                vec![
                    rule(SeccompAction::Allow, &["read", "write", "exit_group"], vec![]),
                    rule(SeccompAction::Allow, &["personality"], vec![cond(0, CmpOp::Eq, 8)]),
                    rule(
                        SeccompAction::Errno(22),
                        &["clone"],
                        vec![ArgCond {
                            value_two: Some(0x1000_0000),
                            ..cond(0, CmpOp::MaskedEq, 0x1000_0000)
                        }],
                    ),
                    rule(SeccompAction::Allow, &["clone"], vec![]),
                    rule(SeccompAction::Trace(7), &["socket"], vec![cond(0, CmpOp::Gt, 10)]),
                ],
            ),
        ];
        let probes: Vec<[u64; 6]> = vec![
            [0; 6],
            [8, 0, 0, 0, 0, 0],
            [0x1000_0000, 1, 2, 3, 4, 5],
            [11, 0, 0, 0, 0, 0],
        ];
        for (n, s) in cases.iter().enumerate() {
            let parts = parts(s).unwrap();
            assert!(parts.len() >= 3, "case {n}: {} parts", parts.len());
            let chained = chain(parts.clone());
            assert_eq!(chained.len(), 1, "case {n} not chained");
            let nrs = (0..470u32).chain([0x3fff_ffff, 0x4000_0000, 0x4000_0001, u32::MAX]);
            for nr in nrs {
                for arch in [AUDIT_ARCH_X86_64, 0x4000_0003] {
                    for args in &probes {
                        assert_eq!(
                            run_args(&chained[0].program, arch, nr, args),
                            run_stacked(&parts, arch, nr, args),
                            "case {n}: nr {nr} arch {arch:#x} args {args:?}"
                        );
                    }
                }
            }
        }
    }

    /// The built-in policies' filters, as compiled for the embedded spec and
    /// prepared for loading, decide the escape attempts of issue 14 as their
    /// comments say: one BPF program, run here call by call.
    #[test]
    fn builtin_policies_refuse_the_escape_calls() {
        const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
        const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
        let host: crate::host::HostFacts =
            toml::from_str(include_str!("../../tests/golden/hosts/hybrid-root.toml")).unwrap();
        let spec = crate::spec::builtin(&["/bin/sh".to_string()]);
        let nr = |n: &str| syscall_number(n).unwrap() as u32;
        let a0 = |v: u64| [v, 0, 0, 0, 0, 0];
        let a01 = |v: u64, w: u64| [v, w, 0, 0, 0, 0];
        for policy in ["default", "untrusted"] {
            let p = crate::policy::load(
                &[crate::policy::PolicyRef::Builtin(policy.into())],
                std::path::Path::new("/"),
            )
            .unwrap();
            let plan = crate::plan::compile(&p, &spec, &host, &Default::default())
                .unwrap()
                .plan;
            let prepared = prepare(plan.workload.seccomp.as_ref().expect("a filter")).unwrap();
            assert_eq!(prepared.len(), 1, "{policy}: one program");
            let prog = &prepared[0].program;
            println!("{policy}: {} instructions: {}", prog.len(), prepared[0].describe);
            let run = |name: &str, args: [u64; 6]| run_args(prog, AUDIT_ARCH_X86_64, nr(name), &args);
            let ns_flags = [
                libc::CLONE_NEWUSER,
                libc::CLONE_NEWNS,
                libc::CLONE_NEWNET,
                libc::CLONE_NEWPID,
                libc::CLONE_NEWIPC,
                libc::CLONE_NEWUTS,
                libc::CLONE_NEWCGROUP,
                0x80, // CLONE_NEWTIME
            ];
            let fork_flags = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
            assert_eq!(run("clone", a0(fork_flags)), ALLOW, "{policy}: fork through clone");
            for f in ns_flags {
                assert_eq!(run("clone", a0(fork_flags | f as u64)), EPERM, "{policy}: clone {f:#x}");
                assert_eq!(run("unshare", a0(f as u64)), EPERM, "{policy}: unshare {f:#x}");
            }
            assert_eq!(run("clone3", a0(0)), ENOSYS, "{policy}: clone3");
            for name in [
                "setns",
                "mount",
                "umount2",
                "fsopen",
                "open_tree",
                "move_mount",
                "keyctl",
                "add_key",
                "request_key",
                "io_uring_setup",
                "io_uring_enter",
                "bpf",
                "perf_event_open",
                "userfaultfd",
                "ptrace",
                "process_vm_readv",
                "open_by_handle_at",
                "kexec_load",
                "init_module",
                "finit_module",
                "swapon",
                "sethostname",
                "settimeofday",
                "clock_settime",
                "pivot_root",
                "reboot",
                "syslog",
                "iopl",
                "modify_ldt",
                "adjtimex",
            ] {
                assert_eq!(run(name, a0(0)), EPERM, "{policy}: {name}");
            }
            // personality: READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE refused everywhere.
            assert_eq!(run("personality", a0(0x0400000)), EPERM, "{policy}");
            assert_eq!(run("personality", a0(0x0040000)), EPERM, "{policy}");
            // socket: vsock, packet, raw, netfilter netlink refused everywhere.
            let (af_inet, af_netlink, af_packet, af_vsock) = (2, 16, 17, 40);
            assert_eq!(run("socket", a01(af_vsock, 1)), EPERM, "{policy}: vsock");
            assert_eq!(run("socket", a01(af_packet, 3)), EPERM, "{policy}: packet");
            assert_eq!(run("socket", a01(af_inet, 3)), EPERM, "{policy}: raw");
            assert_eq!(run("socket", a01(af_inet, 10)), EPERM, "{policy}: SOCK_PACKET");
            assert_eq!(
                run("socket", [af_netlink, 3, 12, 0, 0, 0]),
                EPERM,
                "{policy}: netfilter"
            );
            // mknod of a character device (S_IFCHR).
            assert_eq!(run("mknod", [0, 0o020666, 0x0101, 0, 0, 0]), EPERM, "{policy}");
            assert_eq!(run("mknodat", [0, 0, 0o020666, 0x0101, 0, 0]), EPERM, "{policy}");
            // TIOCSTI, also with garbage in the ignored upper half.
            assert_eq!(run("ioctl", a01(0, 0x5412)), EPERM, "{policy}: TIOCSTI");
            assert_eq!(run("ioctl", a01(0, 0x1_0000_5412)), EPERM, "{policy}: TIOCSTI high");
            assert_eq!(run("ioctl", a01(0, 0x541c)), EPERM, "{policy}: TIOCLINUX");
            assert_eq!(run("ioctl", a01(0, 0x5401)), ALLOW, "{policy}: TCGETS");
            // Everyday calls pass.
            for name in ["read", "write", "execve", "wait4", "exit_group", "mmap", "openat"] {
                assert_eq!(run(name, a0(0)), ALLOW, "{policy}: {name}");
            }
            // x32 numbers (bit 30) and other architectures are killed.
            assert_eq!(
                run_args(prog, AUDIT_ARCH_X86_64, 0x4000_0000, &a0(0)),
                KILL,
                "{policy}: x32 read"
            );
            assert_eq!(
                run_args(prog, AUDIT_ARCH_X86_64, 0x4000_0000 + 56, &a0(0)),
                KILL,
                "{policy}: x32 clone"
            );
            assert_eq!(run_args(prog, 0x4000_0003, 0, &a0(0)), KILL, "{policy}: i386");
            // What default allows and untrusted closes.
            let loose = if policy == "default" { ALLOW } else { EPERM };
            assert_eq!(
                run("socket", a01(af_inet, 1 | libc::SOCK_CLOEXEC as u64)),
                loose,
                "{policy}: tcp"
            );
            assert_eq!(run("socket", a01(1, 1)), loose, "{policy}: unix");
            assert_eq!(run("socket", [af_netlink, 3, 0, 0, 0, 0]), loose, "{policy}: rtnetlink");
            assert_eq!(
                run("personality", a0(0xffff_ffff)),
                loose,
                "{policy}: personality query"
            );
            assert_eq!(run("mknod", [0, 0o010644, 0, 0, 0, 0]), loose, "{policy}: fifo");
            assert_eq!(run("chroot", a0(0)), loose, "{policy}: chroot");
            assert_eq!(run("setuid", a0(0)), loose, "{policy}: setuid");
        }
    }

    #[test]
    fn parts_that_do_not_fit_one_program_stay_apart() {
        let big = PreparedFilter {
            describe: "big".into(),
            program: vec![ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW); MAX_INSNS],
        };
        let parts = vec![
            PreparedFilter {
                describe: "guard".into(),
                program: x32_guard(),
            },
            big,
        ];
        assert_eq!(chain(parts.clone()), parts);
        // Two different actions in one part: not a shape chain can order.
        let odd = PreparedFilter {
            describe: "odd".into(),
            program: vec![
                ins(JEQ_K, 0, 1, 1),
                ins(RET_K, 0, 0, libc::SECCOMP_RET_TRAP),
                ins(RET_K, 0, 0, libc::SECCOMP_RET_LOG),
            ],
        };
        let parts = vec![parts[0].clone(), odd];
        assert_eq!(chain(parts.clone()), parts);
    }

    /// Issue 15: the tracer says which plan entry refused a call from
    /// `rule_verdict` and whether it was refused from the programs: for the
    /// built-in default and untrusted filters both agree on every number
    /// and on the conditional calls' interesting arguments, and the entry
    /// named is a rule naming the call, or the default action.
    #[test]
    fn plan_rules_decide_as_the_loaded_programs() {
        for policy in ["default", "untrusted"] {
            let plan = crate::cli::compile_builtin(policy);
            let s = plan.workload.seccomp.as_ref().unwrap();
            let filters = prepare(s).unwrap();
            let probes: Vec<[u64; 6]> = vec![
                [0; 6],
                [0x7e02_0080, 0, 0, 0, 0, 0],
                [1, 1, 0, 0, 0, 0],
                [2, 3, 0, 0, 0, 0],
                [16, 3, 0, 0, 0, 0],
                [0, 0x5412, 0, 0, 0, 0],
                [0, 0x1_0000_5412, 0, 0, 0, 0],
                [0, 0x541c, 0, 0, 0, 0],
                [10, 1, 0, 0, 0, 0],
                [0xffff_ffff, 0, 0, 0, 0, 0],
            ];
            for nr in (0..470u64).chain([0x4000_0000, 0x4000_0001]) {
                for a in &probes {
                    for arch in [AUDIT_ARCH_X86_64, 0x4000_0003] {
                        let ret = stacked_verdict(&filters, arch, nr as u32, a).unwrap();
                        let plan = rule_verdict(s, arch, nr, a);
                        assert_eq!(
                            permits(ret),
                            matches!(plan.action, SeccompAction::Allow | SeccompAction::Log),
                            "{policy}: nr {nr} arch {arch:#x} args {a:?}: programs {ret:#x}, plan {plan:?}"
                        );
                        if !permits(ret) {
                            assert_eq!(
                                ret & libc::SECCOMP_RET_ACTION_FULL,
                                u32::from(action(plan.action)) & libc::SECCOMP_RET_ACTION_FULL
                            );
                            if plan.why == Why::Rule {
                                let name = crate::plan::syscalls::syscall_name(nr).unwrap();
                                assert!(s
                                    .rules
                                    .iter()
                                    .any(|r| &r.from == plan.from && r.syscalls.iter().any(|n| n == name)));
                            }
                        }
                    }
                }
            }
        }
    }
}
