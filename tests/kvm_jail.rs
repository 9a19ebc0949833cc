//! The kvm platform as a jailer for virtual machine monitors (issue 15): a
//! process inside the sandbox, with nothing but what the plan gives it,
//! creates a VM through the donated `/dev/kvm` fd (kvm-ioctls), runs a
//! real-mode guest that writes a line to I/O port 0x3f8 and halts, and prints
//! what the guest wrote. Under the `vmm` built-in policy it also reports the
//! jailer's other elements from inside (chroot into the bundle's rootfs, uid,
//! PID namespace, the joined network namespace, cgroup, rlimits, the
//! `/dev/kvm` and `/dev/net/tun` nodes); daemonized, its stdio is /dev/null.
//! Under the `default` policy the same program has no kvm fd and cannot open
//! `/dev/kvm` (ENOENT: the node is not in its /dev), and a spec that asks for
//! the node is refused at compile time.
//!
//! The VMM is this test binary itself (static, copied into a busybox rootfs),
//! started with `--vmm`. A plain `main` (harness = false), privileged: run it
//! under the machine lock (`flock /tmp/sandboxctl-priv.lock cargo test
//! --features fault-injection --test kvm_jail`). Skipped when not root, or when
//! the host has no usable `/dev/kvm`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--vmm") {
        vmm::main(args.get(2).map(String::as_str));
        return;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("kvm_jail: skipped: needs root (run as root on this machine)");
        return;
    }
    if kvm_ioctls::Kvm::new().is_err() {
        println!("kvm_jail: skipped: no usable /dev/kvm on this host");
        return;
    }
    if let Err(why) = common::busybox() {
        println!("kvm_jail: skipped: {why}");
        return;
    }
    let filter: Option<String> = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    type Case = fn() -> Result<String, String>;
    let cases: &[(&str, Case)] = &[
        ("vmm_runs_a_guest_through_the_donated_fd", vmm_runs_a_guest),
        ("vmm_daemonized_stdio_is_dev_null", vmm_daemonized),
        ("vmm_daemonized_run_detach_returns_at_once", vmm_run_detach),
        ("default_policy_cannot_open_dev_kvm", default_cannot_open_kvm),
        ("missing_kvm_extension_doctor_and_apply_agree", missing_extension_agree),
    ];
    let mut failed = Vec::new();
    for (name, f) in cases {
        if filter.as_deref().is_some_and(|flt| !name.contains(flt)) {
            continue;
        }
        match f() {
            Ok(how) => println!("test {name} ... ok ({how})"),
            Err(e) => {
                println!("test {name} ... FAILED\n{e}");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}

fn sandboxctl() -> &'static str {
    env!("CARGO_BIN_EXE_sandboxctl")
}

/// A bundle directory: a busybox rootfs holding this binary as `/vmm`, a
/// world-writable `/out`, and a config.json whose process runs `/vmm --vmm`
/// with `extra_ns` added to the namespaces and `devices` as `linux.devices`.
struct Bundle(PathBuf);

impl Bundle {
    fn new(name: &str, extra_ns: serde_json::Value, devices: serde_json::Value) -> Result<Bundle, String> {
        let dir = PathBuf::from(format!("/var/tmp/sbx-kvm-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "tmp", "out"] {
            fs::create_dir_all(root.join(d)).map_err(|e| e.to_string())?;
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root.join("out"), fs::Permissions::from_mode(0o777)).map_err(|e| e.to_string())?;
        fs::copy(common::busybox()?, root.join("bin/busybox")).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink("busybox", root.join("bin/sh")).map_err(|e| e.to_string())?;
        let me = std::env::current_exe().unwrap();
        if !common::is_static_elf(&me) {
            return Err(format!(
                "{} is not static: it cannot run inside a busybox rootfs",
                me.display()
            ));
        }
        fs::copy(&me, root.join("vmm")).map_err(|e| e.to_string())?;
        let mut namespaces = serde_json::json!([
            { "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }
        ]);
        for n in extra_ns.as_array().into_iter().flatten() {
            namespaces.as_array_mut().unwrap().push(n.clone());
        }
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "user": { "uid": 0, "gid": 0 },
                "args": ["/vmm", "--vmm", "/out/report"],
                "env": ["PATH=/bin"],
                "cwd": "/",
                "noNewPrivileges": true
            },
            "root": { "path": "rootfs", "readonly": false },
            "hostname": "vmm",
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc" },
                { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"] }
            ],
            "linux": { "namespaces": namespaces, "devices": devices }
        });
        fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap())
            .map_err(|e| e.to_string())?;
        Ok(Bundle(dir))
    }

    fn report(&self) -> String {
        fs::read_to_string(self.0.join("rootfs/out/report")).unwrap_or_default()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `sandboxctl ARGS`: (exit code, stdout, stderr), with a timeout.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("timeout")
        .arg("60")
        .arg(sandboxctl())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sandbox `id` left no cgroup and no state file.
fn leftovers(id: &str) -> Result<(), String> {
    let left: Vec<String> = ["memory", "pids", "unified", ""]
        .iter()
        .map(|c| format!("/sys/fs/cgroup/{c}/sandboxctl/{id}").replace("//", "/"))
        .chain([format!("/run/sandboxctl/{id}.pid"), format!("/run/sandboxctl/{id}")])
        .filter(|p| Path::new(p).exists())
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("sandbox {id} left behind: {left:?}"))
    }
}

/// The value of `key=` on the report's line starting `key=`.
fn field<'a>(report: &'a str, key: &str) -> Option<&'a str> {
    report
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// A network namespace made with `ip netns add`, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Result<Netns, String> {
        let name = format!("sbx-kvm-{}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status();
        match ok {
            Ok(s) if s.success() => Ok(Netns(name)),
            other => Err(format!("ip netns add {name}: {other:?}")),
        }
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.0]).status();
    }
}

fn inode(path: &str) -> Result<u64, String> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).map(|m| m.ino()).map_err(|e| format!("{path}: {e}"))
}

/// Under `vmm`, with a spec that names a network namespace to join: the
/// guest's line comes back through the donated fd, and every jailer element
/// is seen from inside.
fn vmm_runs_a_guest() -> Result<String, String> {
    let netns = Netns::new()?;
    let b = Bundle::new(
        "vmm",
        serde_json::json!([{ "type": "network", "path": netns.path() }]),
        serde_json::json!([]),
    )?;
    let id = format!("kvm{}", std::process::id());
    let bundle = b.0.display().to_string();
    let t = Instant::now();
    let (code, out, err) = run(&["apply", "--policy", "vmm", "--id", &id, "--bundle", &bundle]);
    let wall = t.elapsed();
    leftovers(&id)?;
    if code != 0 {
        return Err(format!("apply --policy vmm exited {code}\n{out}{err}"));
    }
    let report = b.report();
    let mut problems = Vec::new();
    let mut want = |key: &str, ok: &dyn Fn(&str) -> bool| match field(&report, key) {
        Some(v) if ok(v) => {}
        v => problems.push(format!("{key}: {v:?}")),
    };
    want("guest", &|v| v == "hello from a real-mode guest");
    want("kvm_via", &|v| v == "fd 3");
    want("uid", &|v| v == "65534");
    // A new PID namespace: the supervisor is 1, the workload right after it.
    want("pid", &|v| v.parse::<u32>().is_ok_and(|p| p <= 3));
    // chroot into the rootfs: the bundle's own marker is at /.
    want("root_is_rootfs", &|v| v == "yes");
    let ns = inode(&netns.path())?;
    want("netns", &|v| v == format!("net:[{ns}]"));
    want("cgroup", &|v| v.contains(&format!("sandboxctl/{id}")));
    want("nofile", &|v| v == "2048/2048");
    want("fsize", &|v| v == "1073741824/1073741824");
    want("dev_kvm", &|v| v.starts_with("c 10:232"));
    want("dev_net_tun", &|v| v.starts_with("c 10:200"));
    if !out.contains("guest=hello from a real-mode guest") {
        problems.push(format!("stdout lacks the guest's line: {out:?}"));
    }
    if !problems.is_empty() {
        return Err(format!("{}\nreport:\n{report}\nstderr:\n{err}", problems.join("\n")));
    }
    Ok(format!(
        "guest wrote {:?}; VM created and run in {} µs inside the sandbox; apply took {} ms\n  {}",
        field(&report, "guest").unwrap_or(""),
        field(&report, "vm_us").unwrap_or("?"),
        wall.as_millis(),
        report.trim_end().replace('\n', "\n  ")
    ))
}

/// `vmm` with `workload.daemonize`: nothing reaches the caller's stdout,
/// the report still comes (stdio is /dev/null, the guest still runs).
fn vmm_daemonized() -> Result<String, String> {
    let b = Bundle::new(
        "daemon",
        serde_json::json!([{ "type": "network" }]),
        serde_json::json!([]),
    )?;
    let policy = b.0.join("daemon.toml");
    fs::write(
        &policy,
        "extends = \"vmm\"\n[workload]\npass_fds = [\"device\"]\ndaemonize = true\n",
    )
    .map_err(|e| e.to_string())?;
    let id = format!("kvmd{}", std::process::id());
    let (p, bundle) = (policy.display().to_string(), b.0.display().to_string());
    let (code, out, err) = run(&["apply", "--policy", &p, "--id", &id, "--bundle", &bundle]);
    leftovers(&id)?;
    let report = b.report();
    if code != 0 {
        return Err(format!("apply (daemonized) exited {code}\n{out}{err}\n{report}"));
    }
    if !out.is_empty() {
        return Err(format!("a daemonized sandbox wrote to the caller's stdout: {out:?}"));
    }
    match (field(&report, "guest"), field(&report, "stdout")) {
        (Some("hello from a real-mode guest"), Some("/dev/null")) => {
            Ok("stdout empty, stdio /dev/null, guest ran".into())
        }
        _ => Err(format!("report:\n{report}")),
    }
}

/// The jailer's `--daemonize` whole: `run --detach` with a daemonized
/// `vmm` returns once the sandbox is created and started, with nothing on
/// the caller's stdout; the guest runs on its own. The sandbox is then
/// removed by hand (supervisor killed, cgroups and state root removed).
fn vmm_run_detach() -> Result<String, String> {
    let b = Bundle::new(
        "detach",
        serde_json::json!([{ "type": "network" }]),
        serde_json::json!([]),
    )?;
    let policy = b.0.join("daemon.toml");
    fs::write(
        &policy,
        "extends = \"vmm\"\n[workload]\npass_fds = [\"device\"]\ndaemonize = true\n",
    )
    .map_err(|e| e.to_string())?;
    let root = b.0.join("state");
    let id = format!("kvmr{}", std::process::id());
    let (p, bundle, r) = (
        policy.display().to_string(),
        b.0.display().to_string(),
        root.display().to_string(),
    );
    let t = Instant::now();
    let (code, out, err) = run(&[
        "--root", &r, "run", "--detach", "--policy", &p, "--bundle", &bundle, &id,
    ]);
    let returned = t.elapsed();
    let end = Instant::now() + std::time::Duration::from_secs(10);
    while field(&b.report(), "guest").is_none() && Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let report = b.report();
    let state = run(&["--root", &r, "state", &id]).1;
    remove_detached(&root, &id);
    leftovers(&id)?;
    if code != 0 || !out.is_empty() {
        return Err(format!("run --detach exited {code}, stdout {out:?}\n{err}"));
    }
    if field(&report, "guest") != Some("hello from a real-mode guest") || field(&report, "stdout") != Some("/dev/null")
    {
        return Err(format!("report:\n{report}\nstate:\n{state}"));
    }
    if !state.contains(&format!("\"id\": \"{id}\"")) {
        return Err(format!("state of the detached sandbox:\n{state}"));
    }
    Ok(format!(
        "run --detach returned in {} ms; the guest ran detached",
        returned.as_millis()
    ))
}

/// Removes a detached sandbox: `sandboxctl delete --force`, then by hand
/// whatever is left (its supervisor killed, its cgroups, its state root).
fn remove_detached(root: &Path, id: &str) {
    let _ = std::process::Command::new(env!("CARGO_BIN_EXE_sandboxctl"))
        .arg("--root")
        .arg(root)
        .args(["delete", "--force", id])
        .output();
    let text = fs::read_to_string(root.join(id).join("state.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if let Some(pid) = v["supervisor"]["pid"].as_i64() {
        // SAFETY: kill has no memory arguments.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let end = Instant::now() + std::time::Duration::from_secs(5);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    for c in ["memory", "pids", "freezer", "unified", ""] {
        let d = format!("/sys/fs/cgroup/{c}/sandboxctl/{id}").replace("//", "/");
        let end = Instant::now() + std::time::Duration::from_secs(3);
        while Path::new(&d).exists() && fs::remove_dir(&d).is_err() && Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = fs::remove_dir(format!("/sys/fs/cgroup/{c}/sandboxctl").replace("//", "/"));
    }
    let _ = fs::remove_dir_all(root);
}

/// Under `default` the same program has no kvm fd and no node: open fails
/// with ENOENT; a spec asking for the node is refused at compile time.
fn default_cannot_open_kvm() -> Result<String, String> {
    let b = Bundle::new(
        "default",
        serde_json::json!([{ "type": "network" }]),
        serde_json::json!([]),
    )?;
    let id = format!("kvmn{}", std::process::id());
    let bundle = b.0.display().to_string();
    let (code, out, err) = run(&["apply", "--policy", "default", "--id", &id, "--bundle", &bundle]);
    leftovers(&id)?;
    let report = b.report();
    // The VMM exits 1 when it cannot drive KVM.
    if code != 1 {
        return Err(format!(
            "apply --policy default exited {code} (want 1)\n{out}{err}\n{report}"
        ));
    }
    if field(&report, "fd3") != Some("EBADF") || field(&report, "open_dev_kvm") != Some("ENOENT") {
        return Err(format!("under default: want fd3=EBADF, open_dev_kvm=ENOENT\n{report}"));
    }
    if field(&report, "guest").is_some() {
        return Err(format!("a guest ran under default\n{report}"));
    }
    let asks = Bundle::new(
        "asks",
        serde_json::json!([{ "type": "network" }]),
        serde_json::json!([{ "path": "/dev/kvm", "type": "c", "major": 10, "minor": 232 }]),
    )?;
    let asks_dir = asks.0.display().to_string();
    let (code, out, err) = run(&["plan", "--policy", "default", "--bundle", &asks_dir]);
    if code == 0 || !err.contains("c 10:232") {
        return Err(format!(
            "a spec asking for /dev/kvm under default: exit {code}\n{out}{err}"
        ));
    }
    Ok("fd 3 EBADF, open(/dev/kvm) ENOENT; a spec's /dev/kvm refused by the device ceiling".into())
}

/// A policy requiring an extension this host's KVM lacks: doctor names it,
/// apply refuses with the same need, before any effect.
fn missing_extension_agree() -> Result<String, String> {
    let (code, facts, err) = run(&["host"]);
    if code != 0 {
        return Err(format!("sandboxctl host: {err}"));
    }
    // One the host reports absent (its facts list the present ones).
    let Some(missing) = sandboxctl::vocab::KvmExtension::ALL
        .iter()
        .find(|e| !facts.contains(&format!("\"{}\"", e.name())))
    else {
        return Ok("skipped: this host's KVM offers every extension a policy can name".into());
    };
    let b = Bundle::new("ext", serde_json::json!([{ "type": "network" }]), serde_json::json!([]))?;
    let policy = b.0.join("ext.toml");
    fs::write(
        &policy,
        format!("extends = \"vmm\"\n[kvm]\nextensions = [\"{}\"]\n", missing.name()),
    )
    .map_err(|e| e.to_string())?;
    let (p, bundle) = (policy.display().to_string(), b.0.display().to_string());
    let need = format!("KVM extension {}", missing.name());
    let (dcode, dout, derr) = run(&["doctor", "--policy", &p, "--bundle", &bundle]);
    let id = format!("kvme{}", std::process::id());
    let (acode, aout, aerr) = run(&["apply", "--policy", &p, "--id", &id, "--bundle", &bundle]);
    leftovers(&id)?;
    let (d, a) = (format!("{dout}{derr}"), format!("{aout}{aerr}"));
    if dcode == 0 || !d.contains(&need) || !d.contains("[kvm] extensions") {
        return Err(format!("doctor exit {dcode}, want it to name {need:?}:\n{d}"));
    }
    if acode == 0 || !a.contains(&need) || !b.report().is_empty() {
        return Err(format!(
            "apply exit {acode}, want it to refuse naming {need:?} before launching:\n{a}"
        ));
    }
    Ok(format!("{} named by doctor and apply", missing.name()))
}

/// The program inside the sandbox: a minimal VMM. It reports what it sees
/// (one `key=value` per line, to stdout and to the report file), then drives
/// KVM through fd 3 if that is `/dev/kvm`, else through the node.
mod vmm {
    use std::ffi::CString;
    use std::fmt::Write as _;
    use std::os::fd::FromRawFd;
    use std::time::Instant;

    use kvm_bindings::kvm_userspace_memory_region;
    use kvm_ioctls::{Kvm, VcpuExit};

    /// Where the guest's code is loaded (guest physical = real-mode linear).
    const LOAD: u64 = 0x1000;
    /// The guest's serial port.
    const PORT: u16 = 0x3f8;

    /// Real-mode code: print the NUL-terminated string after it to port
    /// 0x3f8 one byte at a time, then halt.
    fn guest_code() -> Vec<u8> {
        let msg = b"hello from a real-mode guest\n\0";
        let start = LOAD as u16 + 15;
        let mut c = vec![
            0xbe,
            (start & 0xff) as u8,
            (start >> 8) as u8, // mov si, msg
            0xba,
            0xf8,
            0x03, // mov dx, 0x3f8
            0xac, // loop: lodsb
            0x84,
            0xc0, // test al, al
            0x74,
            0x03, // jz done
            0xee, // out dx, al
            0xeb,
            0xf8, // jmp loop
            0xf4, // done: hlt
        ];
        assert_eq!(c.len(), 15);
        c.extend_from_slice(msg);
        c
    }

    fn errno_name(e: i32) -> String {
        match e {
            libc::ENOENT => "ENOENT".into(),
            libc::EACCES => "EACCES".into(),
            libc::EPERM => "EPERM".into(),
            libc::EBADF => "EBADF".into(),
            libc::ENXIO => "ENXIO".into(),
            n => format!("errno {n}"),
        }
    }

    fn node(path: &str) -> String {
        let c = CString::new(path).unwrap();
        // SAFETY: a zeroed stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid C string, `st` a valid out-parameter.
        if unsafe { libc::stat(c.as_ptr(), &mut st) } != 0 {
            return errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        let kind = if st.st_mode & libc::S_IFMT == libc::S_IFCHR {
            'c'
        } else {
            '?'
        };
        format!(
            "{kind} {}:{} {:o}",
            libc::major(st.st_rdev),
            libc::minor(st.st_rdev),
            st.st_mode & 0o7777
        )
    }

    fn rlimit(r: nix::sys::resource::Resource) -> String {
        match nix::sys::resource::getrlimit(r) {
            Ok((soft, hard)) => format!("{soft}/{hard}"),
            Err(e) => e.to_string(),
        }
    }

    /// Whether fd 3 is open and `/dev/kvm` (char 10:232).
    fn fd3_is_kvm() -> Result<(), String> {
        // SAFETY: a zeroed stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat of a number; a closed one fails with EBADF.
        if unsafe { libc::fstat(3, &mut st) } != 0 {
            return Err(errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)));
        }
        let (maj, min) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
        if st.st_mode & libc::S_IFMT == libc::S_IFCHR && (maj, min) == (10, 232) {
            Ok(())
        } else {
            Err(format!("not /dev/kvm ({maj}:{min})"))
        }
    }

    /// Creates a VM with 64 KiB of memory, loads the guest, runs one vCPU
    /// until it halts; returns what it wrote to the port.
    fn run_guest(kvm: &Kvm) -> Result<String, String> {
        let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
        let size = 0x10000usize;
        // SAFETY: an anonymous private mapping; checked below.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        let code = guest_code();
        // SAFETY: `mem` maps `size` bytes; the code fits at LOAD.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), (mem as *mut u8).add(LOAD as usize), code.len()) };
        let region = kvm_userspace_memory_region {
            slot: 0,
            guest_phys_addr: 0,
            memory_size: size as u64,
            userspace_addr: mem as u64,
            flags: 0,
        };
        // SAFETY: the region maps memory this process owns for the VM's life.
        unsafe { vm.set_user_memory_region(region) }.map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
        let mut vcpu = vm.create_vcpu(0).map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
        let mut sregs = vcpu.get_sregs().map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        sregs.ds.base = 0;
        sregs.ds.selector = 0;
        vcpu.set_sregs(&sregs).map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
        let mut regs = vcpu.get_regs().map_err(|e| format!("KVM_GET_REGS: {e}"))?;
        regs.rip = LOAD;
        regs.rflags = 2;
        vcpu.set_regs(&regs).map_err(|e| format!("KVM_SET_REGS: {e}"))?;
        let mut out = Vec::new();
        for _ in 0..1000 {
            match vcpu.run().map_err(|e| format!("KVM_RUN: {e}"))? {
                VcpuExit::IoOut(PORT, data) => out.extend_from_slice(data),
                VcpuExit::Hlt => return Ok(String::from_utf8_lossy(&out).into_owned()),
                other => return Err(format!("unexpected exit {other:?}")),
            }
        }
        Err("the guest did not halt after 1000 exits".into())
    }

    /// `--vmm REPORT`: reports to stdout and to REPORT; exits 1 when it
    /// cannot drive KVM.
    pub fn main(report: Option<&str>) {
        let mut r = String::new();
        // SAFETY: these calls cannot fail.
        let (uid, pid) = unsafe { (libc::getuid(), libc::getpid()) };
        let _ = writeln!(r, "uid={uid}");
        let _ = writeln!(r, "pid={pid}");
        let root_is_rootfs = std::path::Path::new("/vmm").exists() && std::path::Path::new("/out").is_dir();
        let _ = writeln!(r, "root_is_rootfs={}", if root_is_rootfs { "yes" } else { "no" });
        let _ = writeln!(
            r,
            "netns={}",
            std::fs::read_link("/proc/self/ns/net")
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| e.to_string())
        );
        let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let _ = writeln!(r, "cgroup={}", cg.lines().collect::<Vec<_>>().join(" "));
        let _ = writeln!(r, "nofile={}", rlimit(nix::sys::resource::Resource::RLIMIT_NOFILE));
        let _ = writeln!(r, "fsize={}", rlimit(nix::sys::resource::Resource::RLIMIT_FSIZE));
        let _ = writeln!(r, "dev_kvm={}", node("/dev/kvm"));
        let _ = writeln!(r, "dev_net_tun={}", node("/dev/net/tun"));
        let _ = writeln!(
            r,
            "stdout={}",
            std::fs::read_link("/proc/self/fd/1")
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        let c = CString::new("/dev/kvm").unwrap();
        // SAFETY: `c` is a valid C string; the fd is closed right away.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            let _ = writeln!(r, "open_dev_kvm={}", errno_name(e));
        } else {
            let _ = writeln!(r, "open_dev_kvm=ok");
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
        }
        let kvm = match fd3_is_kvm() {
            Ok(()) => {
                let _ = writeln!(r, "fd3=kvm");
                let _ = writeln!(r, "kvm_via=fd 3");
                // SAFETY: fd 3 is /dev/kvm (checked), donated to this process
                // and used by nothing else; Kvm owns it from here.
                Some(unsafe { Kvm::from_raw_fd(3) })
            }
            Err(why) => {
                let _ = writeln!(r, "fd3={why}");
                None
            }
        };
        let mut code = 1;
        if let Some(kvm) = kvm {
            let t = Instant::now();
            match run_guest(&kvm) {
                Ok(s) => {
                    let _ = writeln!(r, "vm_us={}", t.elapsed().as_micros());
                    let _ = writeln!(r, "guest={}", s.trim_end());
                    code = 0;
                }
                Err(e) => {
                    let _ = writeln!(r, "error={e}");
                }
            }
        }
        print!("{r}");
        if let Some(path) = report {
            let _ = std::fs::write(path, &r);
        }
        std::process::exit(code);
    }
}
