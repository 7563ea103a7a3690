//! Marshalling a [`State`] into a `pb::Definition`, and reading one back.
//!
//! Layout (Go `client/llb/state.go` `Marshal`): ops in post-order (inputs before the ops
//! that use them, in mount/action order), each op once by content digest, then the
//! terminal `Op{inputs:[result]}`. Every non-terminal op carries an empty
//! `constraints {}` like Go's `MarshalConstraints`; platforms only on exec and
//! `docker-image://` ops. Metadata of ops with equal digests is merged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use prost::Message;
use sha2::{Digest as _, Sha256};

use super::exec::ExecNode;
use super::sourcemap::SourceInfo;
use super::state::{Node, OpKind, Output, State};
use super::support::{check_op, Supported};
use super::{caps, pb, LlbError};

/// `sha256:` + lowercase hex of the SHA-256 of `bytes`: the name BuildKit gives an op.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The protobuf bytes of a Definition, as sent to BuildKit (`buildctl build` reads them on
/// stdin). Deterministic: maps are `BTreeMap`s and prost writes fields in tag order.
pub fn definition_bytes(def: &pb::Definition) -> Vec<u8> {
    def.encode_to_vec()
}

/// Decodes Definition bytes and [`validate`]s them.
pub fn decode(bytes: &[u8]) -> Result<pb::Definition, LlbError> {
    let def = pb::Definition::decode(bytes).map_err(|e| LlbError::Decode(e.to_string()))?;
    validate(&def)?;
    Ok(def)
}

/// Checks what the daemon checks before solving (`solver/llbsolver/vertex.go` `loadLLB`),
/// plus the shape of the terminal op: at least 2 ops, every op decodes, every input digest
/// is defined and every index is ≥ 0, and the last op is a bare `Op{inputs:[result]}`.
pub fn validate(def: &pb::Definition) -> Result<(), LlbError> {
    if def.def.len() < 2 {
        return Err(LlbError::TooFewOps(def.def.len()));
    }
    let mut ops = Vec::with_capacity(def.def.len());
    for (index, bytes) in def.def.iter().enumerate() {
        let op = pb::Op::decode(bytes.as_slice()).map_err(|e| LlbError::BadOp {
            index,
            reason: e.to_string(),
        })?;
        ops.push((digest_of(bytes), op));
    }
    let known: BTreeSet<&str> = ops.iter().map(|(d, _)| d.as_str()).collect();
    for (d, op) in &ops {
        for inp in &op.inputs {
            if !known.contains(inp.digest.as_str()) {
                return Err(LlbError::DanglingInput {
                    op: d.clone(),
                    digest: inp.digest.clone(),
                });
            }
            if inp.index < 0 {
                return Err(LlbError::NegativeIndex {
                    op: d.clone(),
                    digest: inp.digest.clone(),
                    index: inp.index,
                });
            }
        }
    }
    let (_, last) = &ops[ops.len() - 1];
    if last.op.is_some() || last.inputs.len() != 1 {
        return Err(LlbError::BadTerminal);
    }
    Ok(())
}

/// Marshals the graph ending at `state` into a Definition with metadata and source maps.
///
/// Errors recorded while building (bad image references, an exec without arguments, mount
/// misuse) surface here, as in the Go client.
pub fn marshal(state: &State) -> Result<pb::Definition, LlbError> {
    marshal_for(state, &Supported::all())
}

/// [`marshal`] for a daemon that has only the `supported` LLB caps: an optional attribute
/// it lacks the cap for is left out, and an op it cannot run without one is
/// [`LlbError::Unsupported`] (see [`super::support`]).
pub fn marshal_for(state: &State, supported: &Supported) -> Result<pb::Definition, LlbError> {
    let out = state.output.as_ref().ok_or(LlbError::EmptyState)?;
    let mut m = Marshaller {
        supported: supported.clone(),
        ..Marshaller::default()
    };
    let (digest, index) = m.input(out)?;

    let terminal = pb::Op {
        inputs: vec![pb::Input { digest, index }],
        ..Default::default()
    };
    let bytes = terminal.encode_to_vec();
    let tdigest = digest_of(&bytes);
    m.defs.push(bytes);
    let mut tcaps = BTreeMap::new();
    tcaps.insert(caps::CONSTRAINTS.to_owned(), true);
    tcaps.insert(caps::PLATFORM.to_owned(), true);
    if m.metadata.values().any(|md| md.ignore_cache) {
        tcaps.insert(caps::META_IGNORE_CACHE.to_owned(), true);
    }
    if m.metadata.values().any(|md| !md.description.is_empty()) {
        tcaps.insert(caps::META_DESCRIPTION.to_owned(), true);
    }
    m.metadata.insert(
        tdigest,
        pb::OpMetadata {
            caps: tcaps,
            ..Default::default()
        },
    );

    Ok(pb::Definition {
        def: m.defs,
        metadata: m.metadata,
        source: Some(pb::Source {
            locations: m
                .locations
                .into_iter()
                .map(|(d, locations)| (d, pb::Locations { locations }))
                .collect(),
            infos: m
                .infos
                .iter()
                .map(|i| pb::SourceInfo {
                    filename: i.filename.clone(),
                    data: i.data.clone(),
                    definition: None,
                    language: i.language.clone(),
                })
                .collect(),
        }),
    })
}

#[derive(Default)]
struct Marshaller {
    /// Digest of every node already visited, by identity (keeps shared subgraphs linear).
    by_ptr: HashMap<*const Node, String>,
    /// Keeps visited nodes alive so their addresses stay unique during the walk.
    keep: Vec<Arc<Node>>,
    emitted: BTreeSet<String>,
    defs: Vec<Vec<u8>>,
    metadata: BTreeMap<String, pb::OpMetadata>,
    locations: BTreeMap<String, Vec<pb::Location>>,
    infos: Vec<Arc<SourceInfo>>,
    /// The daemon's LLB caps.
    supported: Supported,
}

impl Marshaller {
    fn input(&mut self, out: &Output) -> Result<(String, i64), LlbError> {
        Ok((self.visit(&out.node)?, out.index))
    }

    fn visit(&mut self, node: &Arc<Node>) -> Result<String, LlbError> {
        if let Some(d) = self.by_ptr.get(&Arc::as_ptr(node)) {
            return Ok(d.clone());
        }
        // Attributes (and their caps) the daemon cannot read, left out.
        let no_attrs = BTreeMap::new();
        let attrs_of = match &node.op {
            OpKind::Source { attrs, .. } => attrs,
            _ => &no_attrs,
        };
        let dropped = check_op(&self.supported, &node.meta.caps, attrs_of.keys())?;
        let op = match &node.op {
            OpKind::Source {
                identifier,
                attrs,
                platform,
                error,
            } => {
                if let Some(e) = error {
                    return Err(e.clone());
                }
                pb::Op {
                    inputs: Vec::new(),
                    op: Some(pb::op::Op::Source(pb::SourceOp {
                        identifier: identifier.clone(),
                        attrs: attrs
                            .iter()
                            .filter(|(k, _)| !dropped.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    })),
                    platform: platform.as_ref().map(|p| p.to_pb()),
                    constraints: Some(pb::WorkerConstraints::default()),
                }
            }
            OpKind::Exec(e) => self.exec_op(e)?,
            OpKind::File(f) => {
                let outs: Vec<&Output> = f
                    .target
                    .iter()
                    .chain(f.actions.iter().filter_map(|a| match a {
                        super::file::ActionNode::Copy { from, .. } => from.as_ref(),
                        _ => None,
                    }))
                    .collect();
                let mut resolved: HashMap<(*const Node, i64), (String, i64)> = HashMap::new();
                for o in outs {
                    let r = self.input(o)?;
                    resolved.insert((Arc::as_ptr(&o.node), o.index), r);
                }
                let (inputs, file) =
                    f.to_pb(|o| resolved[&(Arc::as_ptr(&o.node), o.index)].clone());
                pb::Op {
                    inputs,
                    op: Some(pb::op::Op::File(file)),
                    platform: None,
                    constraints: Some(pb::WorkerConstraints::default()),
                }
            }
        };
        let bytes = op.encode_to_vec();
        let digest = digest_of(&bytes);

        let md = self.metadata.entry(digest.clone()).or_default();
        let own = node.meta.to_pb();
        md.ignore_cache |= own.ignore_cache;
        md.description.extend(own.description);
        md.caps.extend(own.caps);

        for loc in &node.meta.locations {
            let source_index = match self.infos.iter().position(|i| **i == *loc.source) {
                Some(p) => p,
                None => {
                    self.infos.push(Arc::clone(&loc.source));
                    self.infos.len() - 1
                }
            } as i32;
            let pbloc = pb::Location {
                source_index,
                ranges: loc
                    .ranges
                    .iter()
                    .map(|r| pb::Range {
                        start: Some(pb::Position {
                            line: r.start_line,
                            character: r.start_char,
                        }),
                        end: Some(pb::Position {
                            line: r.end_line,
                            character: r.end_char,
                        }),
                    })
                    .collect(),
            };
            let list = self.locations.entry(digest.clone()).or_default();
            if !list.contains(&pbloc) {
                list.push(pbloc);
            }
        }

        if self.emitted.insert(digest.clone()) {
            self.defs.push(bytes);
        }
        self.by_ptr.insert(Arc::as_ptr(node), digest.clone());
        self.keep.push(Arc::clone(node));
        Ok(digest)
    }

    fn exec_op(&mut self, e: &ExecNode) -> Result<pb::Op, LlbError> {
        if let Some(err) = &e.error {
            return Err(err.clone());
        }
        let mut inputs: Vec<pb::Input> = Vec::new();
        let mut mount_inputs = Vec::with_capacity(e.mounts.len());
        for m in &e.mounts {
            let idx = match &m.source {
                None => -1,
                Some(o) => {
                    let (digest, index) = self.input(o)?;
                    match inputs
                        .iter()
                        .position(|x| x.digest == digest && x.index == index)
                    {
                        Some(p) => p as i64,
                        None => {
                            inputs.push(pb::Input { digest, index });
                            inputs.len() as i64 - 1
                        }
                    }
                }
            };
            mount_inputs.push(idx);
        }
        Ok(pb::Op {
            inputs,
            op: Some(pb::op::Op::Exec(e.to_pb(&mount_inputs))),
            platform: Some(e.platform.to_pb()),
            constraints: Some(pb::WorkerConstraints::default()),
        })
    }
}
