//! A readable, stable JSON view of a Definition: what `torchkit llb --format json` prints
//! and what golden tests compare.
//!
//! Shape:
//! ```text
//! { "ops": [ { "digest", "kind": "source"|"exec"|"file"|"build"|"merge"|"diff"|"terminal",
//!              "inputs": [{"digest", "index"}], "platform"?: "linux/amd64",
//!              "source"? | "exec"? | "file"?: {…},
//!              "metadata"?: {"custom_name"?, "ignore_cache", "description"?, "caps"},
//!              "locations"?: [{"file", "ranges": [[start_line, start_char, end_line, end_char]]}] } ],
//!   "result": {"digest", "index"},
//!   "sources": [{"filename", "language", "bytes"}] }
//! ```
//! Ops keep the Definition's order; every map is emitted in sorted key order.

use prost::Message;
use serde_json::{json, Map, Value};

use super::marshal::{digest_of, validate};
use super::{pb, LlbError, CUSTOM_NAME_KEY};

/// Dumps a (valid) Definition as JSON; see the module docs for the shape.
pub fn dump(def: &pb::Definition) -> Result<Value, LlbError> {
    validate(def)?;
    let source = def.source.clone().unwrap_or_default();
    let mut ops = Vec::with_capacity(def.def.len());
    let mut result = Value::Null;
    for (i, bytes) in def.def.iter().enumerate() {
        let digest = digest_of(bytes);
        let op = pb::Op::decode(bytes.as_slice()).map_err(|e| LlbError::BadOp {
            index: i,
            reason: e.to_string(),
        })?;
        let mut o = Map::new();
        o.insert("digest".into(), json!(digest));
        let kind = match &op.op {
            None => "terminal",
            Some(pb::op::Op::Source(_)) => "source",
            Some(pb::op::Op::Exec(_)) => "exec",
            Some(pb::op::Op::File(_)) => "file",
            Some(pb::op::Op::Build(_)) => "build",
            Some(pb::op::Op::Merge(_)) => "merge",
            Some(pb::op::Op::Diff(_)) => "diff",
        };
        o.insert("kind".into(), json!(kind));
        let inputs: Vec<Value> = op
            .inputs
            .iter()
            .map(|inp| json!({"digest": inp.digest, "index": inp.index}))
            .collect();
        o.insert("inputs".into(), Value::Array(inputs));
        if let Some(p) = &op.platform {
            let mut s = format!("{}/{}", p.os, p.architecture);
            if !p.variant.is_empty() {
                s.push('/');
                s.push_str(&p.variant);
            }
            o.insert("platform".into(), json!(s));
        }
        if let Some(c) = &op.constraints {
            if !c.filter.is_empty() {
                o.insert("constraints".into(), json!(c.filter));
            }
        }
        match &op.op {
            Some(pb::op::Op::Source(s)) => {
                o.insert(
                    "source".into(),
                    json!({"identifier": s.identifier, "attrs": s.attrs}),
                );
            }
            Some(pb::op::Op::Exec(e)) => {
                o.insert("exec".into(), exec_json(e));
            }
            Some(pb::op::Op::File(f)) => {
                let actions: Vec<Value> = f.actions.iter().map(action_json).collect();
                o.insert("file".into(), json!({ "actions": actions }));
            }
            Some(pb::op::Op::Merge(m)) => {
                let ins: Vec<i64> = m.inputs.iter().map(|i| i.input).collect();
                o.insert("merge".into(), json!({ "inputs": ins }));
            }
            Some(pb::op::Op::Diff(d)) => {
                o.insert(
                    "diff".into(),
                    json!({
                        "lower": d.lower.as_ref().map(|l| l.input),
                        "upper": d.upper.as_ref().map(|u| u.input),
                    }),
                );
            }
            Some(pb::op::Op::Build(_)) | None => {}
        }
        if let Some(md) = def.metadata.get(&digest) {
            o.insert("metadata".into(), metadata_json(md));
        }
        if let Some(locs) = source.locations.get(&digest) {
            let list: Vec<Value> = locs
                .locations
                .iter()
                .map(|l| {
                    let file = source
                        .infos
                        .get(l.source_index as usize)
                        .map(|i| i.filename.clone());
                    let ranges: Vec<Value> = l
                        .ranges
                        .iter()
                        .map(|r| {
                            let s = r.start.unwrap_or_default();
                            let e = r.end.unwrap_or_default();
                            json!([s.line, s.character, e.line, e.character])
                        })
                        .collect();
                    json!({"file": file, "source_index": l.source_index, "ranges": ranges})
                })
                .collect();
            o.insert("locations".into(), Value::Array(list));
        }
        if i == def.def.len() - 1 {
            if let Some(inp) = op.inputs.first() {
                result = json!({"digest": inp.digest, "index": inp.index});
            }
        }
        ops.push(Value::Object(o));
    }
    let sources: Vec<Value> = source
        .infos
        .iter()
        .map(|i| json!({"filename": i.filename, "language": i.language, "bytes": i.data.len()}))
        .collect();
    Ok(json!({"ops": ops, "result": result, "sources": sources}))
}

fn metadata_json(md: &pb::OpMetadata) -> Value {
    let mut m = Map::new();
    if let Some(name) = md.description.get(CUSTOM_NAME_KEY) {
        m.insert("custom_name".into(), json!(name));
    }
    m.insert("ignore_cache".into(), json!(md.ignore_cache));
    let rest: Map<String, Value> = md
        .description
        .iter()
        .filter(|(k, _)| k.as_str() != CUSTOM_NAME_KEY)
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    if !rest.is_empty() {
        m.insert("description".into(), Value::Object(rest));
    }
    let caps: Vec<&String> = md
        .caps
        .iter()
        .filter(|(_, on)| **on)
        .map(|(k, _)| k)
        .collect();
    m.insert("caps".into(), json!(caps));
    Value::Object(m)
}

fn octal(mode: i64) -> Value {
    if mode < 0 {
        Value::Null
    } else {
        json!(format!("0{mode:o}"))
    }
}

fn exec_json(e: &pb::ExecOp) -> Value {
    let meta = e.meta.clone().unwrap_or_default();
    let network = match pb::NetMode::try_from(e.network) {
        Ok(pb::NetMode::Unset) => "sandbox".to_owned(),
        Ok(pb::NetMode::Host) => "host".to_owned(),
        Ok(pb::NetMode::None) => "none".to_owned(),
        Err(_) => format!("unknown({})", e.network),
    };
    let security = match pb::SecurityMode::try_from(e.security) {
        Ok(pb::SecurityMode::Sandbox) => "sandbox".to_owned(),
        Ok(pb::SecurityMode::Insecure) => "insecure".to_owned(),
        Err(_) => format!("unknown({})", e.security),
    };
    let mounts: Vec<Value> = e
        .mounts
        .iter()
        .map(|m| {
            let mut o = Map::new();
            o.insert("dest".into(), json!(m.dest));
            let ty = match pb::MountType::try_from(m.mount_type) {
                Ok(pb::MountType::Bind) => "bind".to_owned(),
                Ok(pb::MountType::Secret) => "secret".to_owned(),
                Ok(pb::MountType::Ssh) => "ssh".to_owned(),
                Ok(pb::MountType::Cache) => "cache".to_owned(),
                Ok(pb::MountType::Tmpfs) => "tmpfs".to_owned(),
                Err(_) => format!("unknown({})", m.mount_type),
            };
            o.insert("type".into(), json!(ty));
            o.insert("input".into(), json!(m.input));
            o.insert("output".into(), json!(m.output));
            o.insert("readonly".into(), json!(m.readonly));
            if !m.selector.is_empty() {
                o.insert("selector".into(), json!(m.selector));
            }
            if let Some(c) = &m.cache_opt {
                let sharing = match pb::CacheSharingOpt::try_from(c.sharing) {
                    Ok(pb::CacheSharingOpt::Shared) => "shared".to_owned(),
                    Ok(pb::CacheSharingOpt::Private) => "private".to_owned(),
                    Ok(pb::CacheSharingOpt::Locked) => "locked".to_owned(),
                    Err(_) => format!("unknown({})", c.sharing),
                };
                o.insert("cache".into(), json!({"id": c.id, "sharing": sharing}));
            }
            if let Some(s) = &m.secret_opt {
                o.insert(
                    "secret".into(),
                    json!({"id": s.id, "uid": s.uid, "gid": s.gid,
                           "mode": octal(i64::from(s.mode)), "optional": s.optional}),
                );
            }
            if let Some(t) = &m.tmpfs_opt {
                o.insert("tmpfs".into(), json!({"size": t.size}));
            }
            Value::Object(o)
        })
        .collect();
    let mut out = json!({
        "args": meta.args,
        "env": meta.env,
        "cwd": meta.cwd,
        "user": meta.user,
        "network": network,
        "security": security,
        "mounts": mounts,
    });
    if !e.cdi_devices.is_empty() {
        out["cdi_devices"] = e
            .cdi_devices
            .iter()
            .map(|d| json!({"name": d.name, "optional": d.optional}))
            .collect();
    }
    out
}

fn owner_json(c: &Option<pb::ChownOpt>) -> Value {
    let one = |u: &Option<pb::UserOpt>| match u.as_ref().and_then(|u| u.user.as_ref()) {
        Some(pb::user_opt::User::ById(id)) => json!(id),
        Some(pb::user_opt::User::ByName(n)) => json!(n.name),
        None => Value::Null,
    };
    match c {
        None => Value::Null,
        Some(c) => json!({"user": one(&c.user), "group": one(&c.group)}),
    }
}

fn action_json(a: &pb::FileAction) -> Value {
    let mut o = Map::new();
    o.insert("input".into(), json!(a.input));
    o.insert("secondary_input".into(), json!(a.secondary_input));
    o.insert("output".into(), json!(a.output));
    match &a.action {
        Some(pb::file_action::Action::Mkdir(m)) => {
            o.insert(
                "mkdir".into(),
                json!({"path": m.path, "mode": octal(i64::from(m.mode)),
                       "parents": m.make_parents, "owner": owner_json(&m.owner)}),
            );
        }
        Some(pb::file_action::Action::Mkfile(m)) => {
            let data = match std::str::from_utf8(&m.data) {
                Ok(s) => json!(s),
                Err(_) => json!({ "hex": hex::encode(&m.data) }),
            };
            o.insert(
                "mkfile".into(),
                json!({"path": m.path, "mode": octal(i64::from(m.mode)),
                       "owner": owner_json(&m.owner), "data": data}),
            );
        }
        Some(pb::file_action::Action::Copy(c)) => {
            o.insert(
                "copy".into(),
                json!({
                    "src": c.src, "dest": c.dest, "owner": owner_json(&c.owner),
                    "mode": octal(i64::from(c.mode)),
                    "follow_symlinks": c.follow_symlink,
                    "dir_copy_contents": c.dir_copy_contents,
                    "create_dest_path": c.create_dest_path,
                    "allow_wildcard": c.allow_wildcard,
                    "allow_empty_wildcard": c.allow_empty_wildcard,
                    "include_patterns": c.include_patterns,
                    "exclude_patterns": c.exclude_patterns,
                }),
            );
        }
        Some(pb::file_action::Action::Rm(r)) => {
            o.insert(
                "rm".into(),
                json!({"path": r.path, "allow_not_found": r.allow_not_found,
                       "allow_wildcard": r.allow_wildcard}),
            );
        }
        None => {}
    }
    Value::Object(o)
}
