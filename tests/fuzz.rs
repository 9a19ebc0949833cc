//! Bounded fuzzing on stable Rust (issue 14): a mutational fuzzer in process
//! for each input sandboxctl reads — policy files (parse, merge, validate,
//! then compile with the embedded spec), OCI specs (parse, then compile under
//! `default` and `untrusted`), and plan files in TOML and JSON (load, render,
//! check the hash, dry-run the interpreter with its recording backend).
//!
//! The seed corpus is the checked-in golden inputs (tests/golden, policies/)
//! plus tests/fuzz/ (inputs that once broke something, kept as regressions).
//! Each input is mutated at the byte level (flips, dictionary tokens, cuts,
//! copies, splices with another seed) or, half the time, at the value level
//! (a parsed TOML or JSON value with one node replaced by an extreme one).
//!
//! A panic, an input that takes more than [`SLOW`], and an allocation above
//! [`ALLOC_LIMIT`] (the allocator below prints the input and aborts) are
//! failures; the input is written to target/fuzz-failures/.
//!
//! Time per target: `SANDBOXCTL_FUZZ_SECS` (default 10; libtest runs the five
//! targets as many at a time as there are cores, so on a 2-core machine
//! `cargo test` spends about 30 s here, and `.ci/run`, which tests the glibc
//! and the musl build, about a minute in all). Longer by hand:
//! `SANDBOXCTL_FUZZ_SECS=600 cargo test --release --test fuzz -- --nocapture`.
//! `SANDBOXCTL_FUZZ_SEED` replays a run (each target prints its seed).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::frames::{self, Rng};
use sandboxctl::exec::control::proto::{self, Reply, Request, HEADER_LEN, MAX_FDS, MAX_REQUEST};
use sandboxctl::host::HostFacts;
use sandboxctl::plan::{compile, render, CompileOptions};
use sandboxctl::policy::{self, PolicyRef};

/// The largest single allocation an input may cause.
const ALLOC_LIMIT: usize = 256 << 20;
/// The longest one input may take (debug build) before it counts as a failure.
const SLOW: Duration = Duration::from_secs(3);
/// An input still running after this is a hang: the watchdog prints it and aborts.
const HANG: Duration = Duration::from_secs(60);
/// Mutated inputs above this size are not tried (the fuzzer's own growth
/// through repeated copies, not an input sandboxctl would be given: its
/// readers refuse files above 16 MiB).
const MAX_TRY: usize = 2 << 20;

thread_local! {
    /// The input under test on this thread, for the allocator's report.
    static CURRENT: Cell<(*const u8, usize)> = const { Cell::new((std::ptr::null(), 0)) };
}

/// The system allocator, refusing an allocation above [`ALLOC_LIMIT`]: it
/// writes the input being tested to stderr and aborts.
struct Limited;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to System; the report path allocates nothing (raw writes).
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            report_and_abort(layout.size());
        }
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_LIMIT {
            report_and_abort(new_size);
        }
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn report_and_abort(size: usize) -> ! {
    let msg = b"\nfuzz: an input asked for an allocation above the limit; the input follows:\n";
    // SAFETY: writes of static bytes and of the input buffer kept alive by the
    // thread under test; abort ends the process.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        let (p, n) = CURRENT.with(|c| c.get());
        if p.is_null() {
            let m = b"(none: the fuzzer itself, between inputs)";
            libc::write(2, m.as_ptr().cast(), m.len());
        } else {
            libc::write(2, p.cast(), n);
        }
        let mut num = [0u8; 24];
        let mut i = num.len();
        let mut s = size;
        loop {
            i -= 1;
            num[i] = b'0' + (s % 10) as u8;
            s /= 10;
            if s == 0 {
                break;
            }
        }
        libc::write(2, b"\nbytes asked: ".as_ptr().cast(), 14);
        libc::write(2, num[i..].as_ptr().cast(), num.len() - i);
        libc::abort();
    }
}

#[global_allocator]
static GLOBAL: Limited = Limited;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Tokens worth inserting: syntax, keys, and values that probe limits.
const DICT: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    "[[",
    "]]",
    ",",
    "=",
    ":",
    "\n",
    "\\",
    "\\u0000",
    "#",
    ".",
    "-1",
    "0",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "1e400",
    "nan",
    "inf",
    "true",
    "null",
    "\"unlimited\"",
    "\"/dev/zero\"",
    "\"../../..\"",
    "\"/\"",
    "\"\"",
    "extends = \"/dev/zero\"",
    "extends = \"default\"",
    "[[seccomp.rules]]",
    "masked_eq",
    "errno:",
    "CAP_SYS_ADMIN",
    "\"rbind\"",
    "\"bind\"",
    "\"/proc\"",
    "\"type\": \"user\"",
    "\"path\": \"/proc/1/ns/net\"",
    "0x7FFFFFFF",
    "\"destination\": \"/\"",
    "\"options\": [\"ro\"]",
    "\"size\": 4294967296",
    "{\"index\": 9, \"op\": \"SCMP_CMP_EQ\"}",
    "\"call\":\"exec\"",
    "\"call\":\"hello\"",
    "\"stdio\":\"attached\"",
    "\"stdio\":\"pty\"",
    "\"terminal\":true",
    "\"pid\":-1",
    "\"signal\":65",
    "\"image_path\":\"rel\"",
];

/// Extreme values for value-level mutation.
fn extreme(rng: &mut Rng) -> serde_json::Value {
    use serde_json::json;
    match rng.below(12) {
        0 => json!(-1),
        1 => json!(u64::MAX),
        2 => json!(i64::MIN),
        3 => json!(0),
        4 => json!(""),
        5 => json!("/dev/zero"),
        6 => json!("../../../../etc/shadow"),
        7 => json!([]),
        8 => json!({}),
        9 => json!(null),
        10 => json!("x".repeat(rng.below(5000))),
        _ => {
            let mut v = json!(1);
            for _ in 0..rng.below(200) {
                v = json!([v]);
            }
            v
        }
    }
}

/// Replaces one node of a JSON value (or deletes an object key, or
/// repeats an array element), a few levels down.
fn mutate_value(node: &mut serde_json::Value, rng: &mut Rng, depth: usize) {
    use serde_json::Value;
    if depth < 8 && !rng.chance(4) {
        let len = match node {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if len > 0 {
            let i = rng.below(len);
            let child = match node {
                Value::Object(m) => m.values_mut().nth(i),
                Value::Array(a) => a.get_mut(i),
                _ => None,
            };
            if let Some(c) = child {
                return mutate_value(c, rng, depth + 1);
            }
        }
    }
    match node {
        Value::Object(m) if !m.is_empty() && rng.chance(3) => {
            let k = m.keys().nth(rng.below(m.len())).unwrap().clone();
            m.remove(&k);
        }
        Value::Array(a) if !a.is_empty() && rng.chance(3) => {
            // Copies of one element, the array kept below 2000 elements and
            // the copies below 256 KiB in all (copies of copies, nested,
            // would otherwise grow without bound: an element that is itself
            // a large array copied 300 times, over a few rounds, made a
            // value of gigabytes and the fuzzer's process was OOM-killed).
            let e = a[rng.below(a.len())].clone();
            let size = serde_json::to_vec(&e).map_or(usize::MAX, |v| v.len()).max(1);
            let copies = rng
                .below(300)
                .min(2000usize.saturating_sub(a.len()))
                .min((256 << 10) / size);
            for _ in 0..copies {
                a.push(e.clone());
            }
        }
        _ => *node = extreme(rng),
    }
}

/// One mutation of `input`; `seeds` for splicing; `json` picks the value
/// format for value-level mutation (else TOML).
fn mutate(input: &str, seeds: &[Vec<u8>], json: bool, rng: &mut Rng) -> String {
    if rng.chance(2) && input.len() < (256 << 10) {
        let value: Option<serde_json::Value> = if json {
            serde_json::from_str(input).ok()
        } else {
            toml::from_str::<toml::Table>(input)
                .ok()
                .and_then(|t| serde_json::to_value(t).ok())
        };
        if let Some(mut v) = value {
            for _ in 0..=rng.below(3) {
                mutate_value(&mut v, rng, 0);
            }
            let out = if json {
                serde_json::to_string(&v).ok()
            } else {
                // Values TOML cannot hold (null, u64 above i64) fail here: fall through.
                serde_json::from_value::<toml::Table>(v)
                    .ok()
                    .and_then(|t| toml::to_string(&t).ok())
            };
            if let Some(out) = out {
                return out;
            }
        }
    }
    let mut b = input.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let len = b.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                let pick = b" !\"#,-./09:=[]{}azAZ\n\\";
                b[i] = pick[rng.below(pick.len())];
            }
            1 => {
                let t = DICT[rng.below(DICT.len())].as_bytes();
                let i = rng.below(len + 1);
                b.splice(i..i, t.iter().copied());
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(64) + 1);
                b.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(256) + 1);
                let copy = b[i..i + n].to_vec();
                let at = rng.below(len + 1);
                b.splice(at..at, copy);
            }
            4 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let n = rng.below((other.len() - i).min(512) + 1);
                    let at = rng.below(len + 1);
                    b.splice(at..at, other[i..i + n].iter().copied());
                }
            }
            5 if len > 0 => b.truncate(rng.below(len)),
            _ => {
                // A number somewhere made extreme.
                if let Some(i) = (0..len).map(|_| rng.below(len)).find(|&i| b[i].is_ascii_digit()) {
                    let t = ["0", "-1", "18446744073709551615", "99999999999999999999", "1e309"][rng.below(5)];
                    b.splice(i..i + 1, t.bytes());
                }
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn read_all(patterns: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for p in patterns {
        let (dir, suffix) = p.rsplit_once("/*").unwrap();
        let mut files = Vec::new();
        collect(&root().join(dir), suffix, &mut files);
        files.sort();
        out.extend(files.iter().filter_map(|f| std::fs::read_to_string(f).ok()));
    }
    out
}

fn collect(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, suffix, out);
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
}

fn host() -> HostFacts {
    toml::from_str(&std::fs::read_to_string(root().join("tests/golden/hosts/hybrid-root.toml")).unwrap()).unwrap()
}

/// [`fuzz`] of a text input: seeds and mutations are UTF-8 ([`mutate`]);
/// `json` picks the value format for value-level mutation (else TOML).
fn fuzz_text(name: &str, seeds: Vec<String>, json: bool, target: impl Fn(&str)) -> usize {
    fuzz(
        name,
        seeds.into_iter().map(String::into_bytes).collect(),
        |input, seeds, rng| mutate(&String::from_utf8_lossy(input), seeds, json, rng).into_bytes(),
        |input| target(&String::from_utf8_lossy(input)),
    )
}

/// Runs `target` on mutations (by `mutator`, given the input, the pool for
/// splicing and the generator) of `seeds` for the time budget; returns the
/// number of inputs tried. Panics (after the budget) listing every failing
/// input, each also written to target/fuzz-failures/NAME-N.
fn fuzz(
    name: &str,
    mut seeds: Vec<Vec<u8>>,
    mutator: impl Fn(&[u8], &[Vec<u8>], &mut Rng) -> Vec<u8>,
    target: impl Fn(&[u8]),
) -> usize {
    let secs: u64 = std::env::var("SANDBOXCTL_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("SANDBOXCTL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    println!("fuzz {name}: seed {seed}, {secs} s, {} seeds", seeds.len());
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let mut rng = Rng(seed ^ name.len() as u64);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut failures: Vec<(String, Vec<u8>)> = Vec::new();
    let mut n = 0;
    // The seeds themselves first, then mutations; inputs that parse join the
    // pool now and then, so mutations stack.
    let mut queue: Vec<Vec<u8>> = seeds.clone();
    // The watchdog: the input under test and when it started.
    let running = std::sync::Arc::new(std::sync::Mutex::new((Instant::now(), Vec::new(), false)));
    let watch = running.clone();
    let tag = name.to_string();
    let watchdog = std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        let g = watch.lock().unwrap();
        if g.2 {
            return;
        }
        if g.0.elapsed() > HANG {
            eprintln!(
                "\nfuzz {tag}: an input has run for {:?} (a hang); it follows:\n{}",
                g.0.elapsed(),
                String::from_utf8_lossy(&g.1)
            );
            std::process::abort();
        }
    });
    while Instant::now() < deadline || !queue.is_empty() {
        let input = match queue.pop() {
            Some(s) => s,
            None => {
                let base = &seeds[rng.below(seeds.len())];
                mutator(base, &seeds, &mut rng)
            }
        };
        if input.len() > MAX_TRY {
            continue;
        }
        n += 1;
        // SANDBOXCTL_FUZZ_LAST=FILE: each input is written there before it
        // runs, so an abort (an allocation the system refuses) leaves it.
        if let Some(p) = std::env::var_os("SANDBOXCTL_FUZZ_LAST") {
            let _ = std::fs::write(p, &input);
        }
        *running.lock().unwrap() = (Instant::now(), input.clone(), false);
        CURRENT.with(|c| c.set((input.as_ptr(), input.len())));
        let start = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
        let took = start.elapsed();
        CURRENT.with(|c| c.set((std::ptr::null(), 0)));
        running.lock().unwrap().0 = Instant::now() + Duration::from_secs(3600);
        let failure = match r {
            Err(e) => Some(format!(
                "panic: {}",
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
            Ok(()) if took > SLOW => Some(format!("slow: {took:?}")),
            Ok(()) => None,
        };
        if let Some(f) = failure {
            if failures.len() < 20 {
                failures.push((f, input));
            }
        } else if seeds.len() < 400 && input.len() < (64 << 10) && rng.chance(50) {
            seeds.push(input);
        }
    }
    running.lock().unwrap().2 = true;
    watchdog.join().unwrap();
    println!("fuzz {name}: {n} inputs, {} failures", failures.len());
    if !failures.is_empty() {
        let dir = root().join("target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let mut report = String::new();
        for (i, (why, input)) in failures.iter().enumerate() {
            let file = dir.join(format!("{name}-{i}"));
            let _ = std::fs::write(&file, input);
            report.push_str(&format!("\n{why}\n  input in {}\n", file.display()));
        }
        panic!("fuzz {name}: {} failing inputs (seed {seed}):{report}", failures.len());
    }
    n
}

/// Policy text: parse, merge with what it extends, validate; when it
/// loads, compile it with the embedded spec and render the plan.
#[test]
fn fuzz_policy() {
    let seeds: Vec<String> = read_all(&[
        "policies/*.toml",
        "tests/golden/cases/*.toml",
        "scripts/*.toml",
        "tests/fuzz/*.policy.toml",
    ])
    .into_iter()
    .filter(|t| !t.starts_with("# sandboxctl launch plan"))
    .collect();
    let host = host();
    let spec = sandboxctl::spec::builtin(&["/bin/true".to_string()]);
    let opts = CompileOptions::default();
    fuzz_text("policy", seeds, false, |text| {
        let r = PolicyRef::Text {
            name: "fuzz.toml".into(),
            text: text.into(),
        };
        match policy::load(&[r], Path::new("/nonexistent")) {
            Ok(p) => {
                if let Ok(c) = compile(&p, &spec, &host, &opts) {
                    let _ = render::to_toml(&c.plan);
                    let _ = render::text(&c.plan);
                }
            }
            Err(e) => {
                let _ = e.to_diag();
            }
        }
    });
}

/// Spec JSON: parse; when it parses, compile under default and untrusted
/// and render the plan, or render the compile error.
#[test]
fn fuzz_spec() {
    let seeds = read_all(&[
        "tests/golden/inputs/*.json",
        "tests/golden/cases/*.json",
        "tests/fuzz/*.spec.json",
    ]);
    let host = host();
    let opts = CompileOptions::default();
    let policies: Vec<_> = ["default", "untrusted"]
        .iter()
        .map(|n| policy::load(&[PolicyRef::Builtin(n.to_string())], root()).unwrap())
        .collect();
    fuzz_text("spec", seeds, true, |text| {
        match sandboxctl::spec::parse_json::<oci_spec::runtime::Spec>("fuzz.json", text) {
            Ok(spec) => {
                let input = sandboxctl::spec::SpecInput {
                    name: "fuzz.json".into(),
                    text: text.into(),
                    spec: Box::new(spec),
                    dir: Some(PathBuf::from("/nonexistent-bundle")),
                    builtin: false,
                };
                for p in &policies {
                    match compile(p, &input, &host, &opts) {
                        Ok(c) => {
                            let _ = render::to_toml(&c.plan);
                        }
                        Err(e) => {
                            let _ = e.to_string();
                        }
                    }
                }
            }
            Err(e) => {
                let _ = e.to_diag();
            }
        }
    });
}

/// A loaded plan: render it back, reload, and dry-run the interpreter on it.
fn plan_target(text: &str) {
    if let Ok(plan) = render::load(text) {
        let toml = render::to_toml(&plan);
        let _ = render::text(&plan);
        let back = render::load(&toml).expect("a rendered plan loads back");
        assert_eq!(render::to_toml(&back), toml, "plan TOML round trip");
        let _ = sandboxctl::exec::dry_run(&plan);
    }
}

/// Plan files in TOML.
#[test]
fn fuzz_plan_toml() {
    let seeds = read_all(&["tests/golden/cases/*plan.toml", "tests/fuzz/*.plan.toml"]);
    fuzz_text("plan_toml", seeds, false, plan_target);
}

/// Plan files in JSON (the golden plans rendered as JSON).
#[test]
fn fuzz_plan_json() {
    let seeds: Vec<String> = read_all(&["tests/golden/cases/*plan.toml"])
        .iter()
        .filter_map(|t| render::load(t).ok())
        .map(|p| render::render(&p, render::Format::Json))
        .chain(read_all(&["tests/fuzz/*.plan.json"]))
        .collect();
    fuzz_text("plan_json", seeds, true, plan_target);
}

/// The control protocol's seed corpus: one frame per file
/// (tests/fuzz/control/NAME.frame), valid requests of every call.
fn control_seeds() -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    collect(&root().join("tests/fuzz/control"), ".frame", &mut files);
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// One request frame as the supervisor's server meets it: [`proto::decode`]
/// must return (never panic, never read past the frame) and agree with the
/// server's own way (the header checked as it arrives, then the body). A
/// request it accepts passes its own checks, names a known call, asks for at
/// most [`MAX_FDS`] fds (what the server's SCM_RIGHTS buffer takes; any
/// other count is refused by that number), and encodes and decodes to
/// itself; a refusal becomes an error reply a client can read.
fn control_target(frame: &[u8]) {
    let decoded = proto::decode(frame);
    if let Some(header) = frame.first_chunk::<HEADER_LEN>() {
        let server = proto::parse_header(header, MAX_REQUEST).and_then(|len| {
            if frame.len() == HEADER_LEN + len {
                proto::decode_request_body(&frame[HEADER_LEN..]).map(Some)
            } else {
                Ok(None) // The server would wait for more, or read the rest as the next frame.
            }
        });
        match (&server, &decoded) {
            (Ok(Some(s)), Ok(d)) => assert_eq!(s, d, "decode and the server disagree"),
            (Ok(Some(s)), Err(e)) => panic!("the server takes {s:?}, decode refuses it: {e}"),
            (Err(s), Ok(d)) => panic!("decode takes {d:?}, the server refuses it: {s}"),
            _ => {}
        }
    }
    match decoded {
        Ok(req) => {
            assert!(Request::CALLS.contains(&req.name()), "{}", req.name());
            assert_eq!(req.validate(), Ok(()));
            assert!(req.fds_expected() <= MAX_FDS, "{} fds", req.fds_expected());
            let mut again = Vec::new();
            // A body near the limit may grow when re-encoded (defaults made
            // explicit): refused then, which is fine; taken, it must match.
            if proto::encode_request(&req, &mut again).is_ok() {
                assert_eq!(proto::decode(&again), Ok(req), "a decoded request re-encodes to itself");
            }
        }
        Err(e) => {
            let mut out = Vec::new();
            proto::encode_reply(&e.to_reply(), &mut out);
            assert!(
                matches!(proto::decode_reply(&out), Ok(Reply::Error { .. })),
                "the refusal of {e} is not an error reply"
            );
        }
    }
}

/// A control frame mutated: half the time by the shared frame mutator
/// (header, length and body bytes), else its JSON body at the value level
/// or as text (dictionary tokens, splices), the header's length then set to
/// the new body so the mutation reaches the decoder.
fn mutate_control(frame: &[u8], seeds: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut f = frame.to_vec();
    if rng.chance(2) || f.len() < HEADER_LEN {
        frames::mutate_frame(&mut f, rng);
        return f;
    }
    let body = f.split_off(HEADER_LEN);
    let value = if rng.chance(2) {
        serde_json::from_slice::<serde_json::Value>(&body).ok()
    } else {
        None
    };
    match value {
        Some(mut v) => {
            for _ in 0..=rng.below(3) {
                mutate_value(&mut v, rng, 0);
            }
            serde_json::to_writer(&mut f, &v).unwrap();
        }
        None => f.extend_from_slice(mutate(&String::from_utf8_lossy(&body), seeds, false, rng).as_bytes()),
    }
    frames::fix_length(&mut f);
    f
}

/// Control protocol request frames (issue 14): the seed corpus of every call
/// type, mutated in the header, the length and the JSON body.
#[test]
fn fuzz_control() {
    fuzz("control", control_seeds(), mutate_control, control_target);
}

/// The corpus holds a valid frame of every call (and of each `exec` stdio),
/// each decoding as it is: a seed that no longer decodes (the protocol
/// changed) fails here, not silently in the fuzzer.
#[test]
fn control_corpus_has_every_call() {
    let mut names = std::collections::BTreeSet::new();
    let mut stdio = std::collections::BTreeSet::new();
    for f in control_seeds() {
        let req = proto::decode(&f).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&f)));
        if let Request::Exec { stdio: s, .. } = &req {
            stdio.insert(format!("{s:?}"));
        }
        names.insert(req.name());
    }
    let all: std::collections::BTreeSet<&str> = Request::CALLS.into_iter().collect();
    assert_eq!(names, all, "calls without a seed in tests/fuzz/control");
    assert_eq!(stdio.len(), 3, "exec seeds for attached, null and pty: {stdio:?}");
}

/// Deterministic and quick (no time budget): 20,000 frames from the corpus,
/// each through the shared frame mutator, through [`control_target`]; some
/// must still decode, or the mutator is too destructive to test acceptance.
#[test]
fn control_frames_mutated_never_panic() {
    let seeds = control_seeds();
    let mut rng = Rng(0x5eed_c0de_1234_5678);
    let mut ok = 0;
    for _ in 0..20_000 {
        let mut f = seeds[rng.below(seeds.len())].clone();
        frames::mutate_frame(&mut f, &mut rng);
        if proto::decode(&f).is_ok() {
            ok += 1;
        }
        control_target(&f);
    }
    assert!(
        ok > 0,
        "no mutation decoded: the generator is too destructive to test acceptance"
    );
}
