//! Generated protobuf types, nested as their proto packages (`pb` for LLB,
//! `moby::buildkit::v1` for the Control API, …). The definitions are the hand-written
//! files under `proto/`; `build.rs` compiles them with protox. Every map is a `BTreeMap`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/_includes.rs"));
