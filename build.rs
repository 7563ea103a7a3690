//! Compiles the hand-written BuildKit protocol definitions in `proto/` with protox
//! (a pure-Rust protobuf compiler, so no system `protoc`), then generates prost messages
//! and, with the `io` feature, tonic clients and servers. Every protobuf map becomes a
//! `BTreeMap`, so marshalling is deterministic (BuildKit marshals with `Deterministic: true`).
//! `_includes.rs` nests the generated files as the proto packages (`pb`, `moby::buildkit::v1`, …).

use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "proto") {
            out.push(p);
        }
    }
}

fn main() {
    let root = Path::new("proto");
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    collect(root, &mut files);
    let rel: Vec<PathBuf> = files
        .iter()
        .map(|p| p.strip_prefix(root).expect("under proto/").to_path_buf())
        .collect();
    let fds = protox::compile(&rel, [root]).unwrap_or_else(|e| panic!("protox: {e}"));
    let io = std::env::var_os("CARGO_FEATURE_IO").is_some();
    tonic_prost_build::configure()
        .build_client(io)
        .build_server(io)
        .btree_map(".")
        .include_file("_includes.rs")
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("codegen: {e}"));
}
