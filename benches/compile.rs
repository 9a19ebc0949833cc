//! Compile time of the podman-sized spec (its full default seccomp profile)
//! under the untrusted policy, and of the runc default spec under the default
//! policy: inputs loaded once, `compile` measured alone, then compile plus
//! render to TOML. Run with `cargo bench --bench compile`. It allocates as
//! the binary does (the same `#[global_allocator]`).

use std::path::Path;

/// The binary's allocator (src/main.rs, dlmalloc on every target), so the
/// bench measures with it, not with the C library's malloc.
#[global_allocator]
static ALLOC: sandboxctl::alloc::Allocator = sandboxctl::alloc::Allocator::new();

use criterion::{criterion_group, criterion_main, Criterion};
use sandboxctl::plan::{compile, render, CompileOptions};
use sandboxctl::policy::{self, PolicyRef};

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let host: sandboxctl::host::HostFacts =
        toml::from_str(&std::fs::read_to_string(root.join("tests/golden/hosts/hybrid-root.toml")).unwrap()).unwrap();
    let opts = CompileOptions {
        policy_from: None,
        host_name: "hybrid-root.toml".into(),
        ..Default::default()
    };
    for (name, policy_name, spec) in [
        ("podman+untrusted", "untrusted", "tests/golden/inputs/podman.json"),
        ("runc+default", "default", "tests/golden/inputs/runc-spec.json"),
    ] {
        let policy = policy::load(&[PolicyRef::Builtin(policy_name.into())], root).unwrap();
        let spec = sandboxctl::spec::load_file(Path::new(spec), root).unwrap();
        c.bench_function(&format!("compile {name}"), |b| {
            b.iter(|| compile(&policy, &spec, &host, &opts).unwrap())
        });
        c.bench_function(&format!("compile+toml {name}"), |b| {
            b.iter(|| render::to_toml(&compile(&policy, &spec, &host, &opts).unwrap().plan))
        });
    }
    let text = std::fs::read_to_string(root.join("tests/golden/inputs/podman.json")).unwrap();
    c.bench_function("parse podman config.json", |b| {
        b.iter(|| sandboxctl::spec::parse_json::<oci_spec::runtime::Spec>("podman.json", &text).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
