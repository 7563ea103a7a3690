//! spec text → LLB bytes, per example: parse, resolve, compile, encode. This is everything
//! `torchkit llb` does besides reading the file and writing stdout.
//!
//! `cargo bench --bench compile` (criterion); the README quotes the medians.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};

use torchkit::{llb, plan, resolve, spec};

fn spec_to_llb_bytes(text: &str) -> Vec<u8> {
    let spec = spec::parse(text, "torchkit.toml").expect("example parses");
    let res = resolve::resolve(&spec.request()).expect("example resolves");
    let opts = plan::CompileOptions {
        build_token: Some("bench".into()),
        ..plan::CompileOptions::default()
    };
    let compiled = plan::compile(&spec, &res, &opts).expect("example compiles");
    llb::definition_bytes(&compiled.definition)
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("torchkit.toml").is_file())
        .collect();
    dirs.sort();
    let mut group = c.benchmark_group("spec_to_llb");
    for dir in dirs {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(dir.join("torchkit.toml")).expect("read");
        group.bench_function(&name, |b| {
            b.iter(|| spec_to_llb_bytes(std::hint::black_box(&text)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
