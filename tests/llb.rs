//! Tests of the public `torchkit::llb` API: determinism, dedup by digest, layout rules,
//! digests checked against independently built bytes, and the JSON dump.

use std::collections::BTreeMap;

use prost::Message;
use torchkit::error::Hint;
use torchkit::llb::{
    self, pb, CopyOpts, Differ, Exec, FileAction, LlbError, MkdirOpts, Mount, Network, Owner,
    Platform, Range, ResolveMode, RmOpts, Sharing, SourceInfo, SourceLocation, State,
};

fn ops(def: &pb::Definition) -> Vec<(String, pb::Op)> {
    def.def
        .iter()
        .map(|b| (llb::digest_of(b), pb::Op::decode(b.as_slice()).unwrap()))
        .collect()
}

fn find_exec(def: &pb::Definition) -> (String, pb::Op, pb::ExecOp) {
    ops(def)
        .into_iter()
        .find_map(|(d, op)| match &op.op {
            Some(pb::op::Op::Exec(e)) => Some((d.clone(), op.clone(), e.clone())),
            _ => None,
        })
        .expect("an exec op")
}

fn find_file(def: &pb::Definition) -> (String, pb::Op, pb::FileOp) {
    ops(def)
        .into_iter()
        .find_map(|(d, op)| match &op.op {
            Some(pb::op::Op::File(f)) => Some((d.clone(), op.clone(), f.clone())),
            _ => None,
        })
        .expect("a file op")
}

/// A graph that uses most features; built by a closure so tests can build it twice.
fn sample(spec: &std::sync::Arc<SourceInfo>) -> State {
    let base: State = llb::image("pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime")
        .digest(Some(&format!("sha256:{}", "ab".repeat(32))))
        .platform(Platform::linux_amd64())
        .custom_name("base")
        .into();
    let ctx: State = llb::local("context")
        .session_id("sess")
        .include_patterns(["src", "pyproject.toml"])
        .shared_key_hint("context")
        .into();
    let with_src = base.dir("/workspace").file(
        FileAction::copy(&ctx, "src", "src/", CopyOpts::default())
            .custom_name("copy src")
            .source_location(SourceLocation::new(spec, [(3, 0, 3, 0)])),
    );
    with_src
        .add_env("PIP_NO_INPUT", "1")
        .run(
            Exec::shell("pip install -e .")
                .mount(Mount::cache("/root/.cache/pip", "pip", Sharing::Locked))
                .mount(Mount::secret("/run/secrets/token", "token").optional(true))
                .custom_name("pip install")
                .source_location(SourceLocation::new(spec, [(5, 0, 7, 0)])),
        )
        .root()
}

#[test]
fn busybox_source_digest_matches_hand_encoded_bytes_and_buildkit() {
    // Op{ source: SourceOp{identifier}, platform: {amd64, linux}, constraints: {} },
    // encoded by hand, field by field, in tag order.
    let ident = b"docker-image://docker.io/library/busybox:latest";
    let mut source = vec![0x0a, ident.len() as u8];
    source.extend_from_slice(ident);
    let platform = [&[0x0a, 5][..], b"amd64", &[0x12, 5][..], b"linux"].concat();
    let mut expected = vec![0x1a, source.len() as u8];
    expected.extend_from_slice(&source);
    expected.extend_from_slice(&[0x52, platform.len() as u8]);
    expected.extend_from_slice(&platform);
    expected.extend_from_slice(&[0x5a, 0x00]); // Go's empty `constraints {}`

    let def = llb::marshal(
        &llb::image("busybox")
            .platform(Platform::linux_amd64())
            .into(),
    )
    .unwrap();
    assert_eq!(def.def.len(), 2);
    assert_eq!(def.def[0], expected);
    // The same digest appears for this op in LLB graphs dumped from Go BuildKit's Dockerfile
    // frontend (`FROM busybox` on linux/amd64).
    assert_eq!(
        llb::digest_of(&def.def[0]),
        "sha256:08a03f3ffe5fba421a6403c31e153425ced631d108868f30e04985f99d69326e"
    );
    // Terminal op: just the input, no platform, no constraints.
    let terminal = pb::Op::decode(def.def[1].as_slice()).unwrap();
    assert_eq!(
        terminal,
        pb::Op {
            inputs: vec![pb::Input {
                digest: llb::digest_of(&def.def[0]),
                index: 0
            }],
            ..Default::default()
        }
    );
}

#[test]
fn same_graph_twice_gives_identical_bytes() {
    let spec = SourceInfo::new("torchkit.toml", "x = 1\n", "toml");
    let a = llb::definition_bytes(&llb::marshal(&sample(&spec)).unwrap());
    let b = llb::definition_bytes(&llb::marshal(&sample(&spec)).unwrap());
    assert_eq!(a, b);
    let spec2 = SourceInfo::new("torchkit.toml", "x = 1\n", "toml");
    let c = llb::definition_bytes(&llb::marshal(&sample(&spec2)).unwrap());
    assert_eq!(a, c, "source infos are compared by content, not identity");
}

#[test]
fn construction_order_does_not_change_bytes() {
    let base: State = llb::image("ubuntu:22.04").into();
    let data: State = llb::local("data").into();

    // Order 1: env from a map in one order, mounts in one order, branch A built first.
    let mut env1 = BTreeMap::new();
    env1.insert("B", "2");
    env1.insert("A", "1");
    let s1 = base.add_envs(env1).run(
        Exec::new(["make"])
            .mount(Mount::tmpfs("/tmp"))
            .mount(Mount::bind("/data", &data, "", true))
            .mount(Mount::cache("/cache", "c", Sharing::Shared)),
    );

    // Order 2: the same, given in another order (and the data state built later).
    let env2 = vec![("A", "1"), ("B", "2")];
    let data2: State = llb::local("data").into();
    let s2 = base.add_envs(env2).run(
        Exec::new(["make"])
            .mount(Mount::cache("/cache", "c", Sharing::Shared))
            .mount(Mount::bind("/data", &data2, "", true))
            .mount(Mount::tmpfs("/tmp")),
    );
    let b1 = llb::definition_bytes(&llb::marshal(&s1.root()).unwrap());
    let b2 = llb::definition_bytes(&llb::marshal(&s2.root()).unwrap());
    assert_eq!(b1, b2);
}

#[test]
fn an_op_used_twice_appears_once() {
    let img: State = llb::image("busybox").into();
    let same_img: State = llb::image("docker.io/library/busybox:latest").into();
    // `img` is the root and also bind-mounted twice (once through a separately built state
    // with the same content); a file op copies from it too.
    let out = img
        .run(
            Exec::new(["true"])
                .mount(Mount::bind("/a", &img, "", true))
                .mount(Mount::bind("/b", &same_img, "", true)),
        )
        .root()
        .file(FileAction::copy(
            &same_img,
            "/bin/sh",
            "/sh",
            CopyOpts::default(),
        ));
    let def = llb::marshal(&out).unwrap();
    let all = ops(&def);
    let sources = all
        .iter()
        .filter(|(_, o)| matches!(o.op, Some(pb::op::Op::Source(_))))
        .count();
    assert_eq!(sources, 1);
    assert_eq!(def.def.len(), 4); // source, exec, file, terminal
    let (_, exec_op, exec) = find_exec(&def);
    assert_eq!(exec_op.inputs.len(), 1, "equal inputs are merged");
    assert!(exec.mounts.iter().all(|m| m.input == 0));
    // Every digest in def is unique.
    let mut ds: Vec<_> = all.iter().map(|(d, _)| d.clone()).collect();
    ds.sort();
    ds.dedup();
    assert_eq!(ds.len(), def.def.len());
}

#[test]
fn decode_reencode_round_trip_is_byte_identical() {
    let spec = SourceInfo::new("torchkit.toml", "x = 1\n", "toml");
    let def = llb::marshal(&sample(&spec)).unwrap();
    let bytes = llb::definition_bytes(&def);
    let back = llb::decode(&bytes).unwrap();
    assert_eq!(back, def);
    assert_eq!(llb::definition_bytes(&back), bytes);
    for op in &def.def {
        let decoded = pb::Op::decode(op.as_slice()).unwrap();
        assert_eq!(&decoded.encode_to_vec(), op);
    }
}

#[test]
fn layout_is_post_order_with_terminal_last() {
    let spec = SourceInfo::new("torchkit.toml", "x = 1\n", "toml");
    let def = llb::marshal(&sample(&spec)).unwrap();
    llb::validate(&def).unwrap();
    let all = ops(&def);
    for (i, (d, op)) in all.iter().enumerate() {
        for inp in &op.inputs {
            let pos = all.iter().position(|(x, _)| *x == inp.digest).unwrap();
            assert!(pos < i, "input of {d} comes after it");
            assert!(inp.index >= 0);
        }
        if i + 1 < all.len() {
            assert_eq!(op.constraints, Some(pb::WorkerConstraints::default()));
            assert!(op.op.is_some());
        }
    }
    let (_, last) = all.last().unwrap();
    assert!(last.op.is_none() && last.platform.is_none() && last.constraints.is_none());
    assert_eq!(last.inputs.len(), 1);
    // Every op has a metadata entry, the terminal one with the Go client's caps.
    for (d, _) in &all {
        assert!(def.metadata.contains_key(d));
    }
    let tcaps = &def.metadata[&all.last().unwrap().0].caps;
    for cap in ["constraints", "platform", "meta.description"] {
        assert!(tcaps.contains_key(cap), "{cap}");
    }
    assert!(!tcaps.contains_key("meta.ignorecache"));
    // Platforms: image and exec only.
    for (_, op) in &all {
        match &op.op {
            Some(pb::op::Op::Exec(_)) => assert!(op.platform.is_some()),
            Some(pb::op::Op::Source(s)) if s.identifier.starts_with("docker-image://") => {
                assert!(op.platform.is_some())
            }
            _ => assert!(op.platform.is_none()),
        }
    }
}

#[test]
fn mounts_are_sorted_and_get_outputs_like_go() {
    let base: State = llb::image("ubuntu").into();
    let out_dir: State = llb::scratch();
    let src: State = llb::local("ctx").into();
    let es = base.run(
        Exec::new(["build"])
            .mount(Mount::secret("/run/secrets/b", "b"))
            .mount(Mount::bind("/z", &out_dir, "", false))
            .mount(Mount::tmpfs("/t").size(1 << 20))
            .mount(Mount::bind("/m", &src, "sub", true))
            .mount(
                Mount::secret("/run/secrets/a", "a")
                    .uid(1000)
                    .gid(1000)
                    .mode(0o440),
            )
            .mount(Mount::cache("/a", "pip", Sharing::Private))
            .mount(Mount::bind("/out", &src, "", false)),
    );
    let def = llb::marshal(&es.root()).unwrap();
    let (digest, op, exec) = find_exec(&def);
    let got: Vec<(&str, i64, i64, i32)> = exec
        .mounts
        .iter()
        .map(|m| (m.dest.as_str(), m.input, m.output, m.mount_type))
        .collect();
    let (bind, secret, cache, tmpfs) = (0, 1, 3, 4);
    assert_eq!(
        got,
        vec![
            ("/", 0, 0, bind),
            ("/a", -1, -1, cache),
            ("/m", 1, -1, bind),
            ("/out", 1, 1, bind),
            ("/t", -1, -1, tmpfs),
            ("/z", -1, 2, bind),
            ("/run/secrets/a", -1, -1, secret),
            ("/run/secrets/b", -1, -1, secret),
        ]
    );
    assert_eq!(op.inputs.len(), 2);
    assert_eq!(exec.mounts[2].selector, "sub");
    assert!(exec.mounts[2].readonly);
    assert_eq!(exec.mounts[1].cache_opt.as_ref().unwrap().sharing, 1);
    assert_eq!(exec.mounts[4].tmpfs_opt.as_ref().unwrap().size, 1 << 20);
    let s = exec.mounts[6].secret_opt.as_ref().unwrap();
    assert_eq!(
        (s.uid, s.gid, s.mode, s.optional),
        (1000, 1000, 0o440, false)
    );
    assert_eq!(exec.mounts[7].secret_opt.as_ref().unwrap().mode, 0o400);

    let caps = &def.metadata[&digest].caps;
    for cap in [
        "exec.meta.base",
        "exec.mount.bind",
        "exec.mount.cache",
        "exec.mount.cache.sharing",
        "exec.mount.selector",
        "exec.mount.tmpfs",
        "exec.mount.tmpfs.size",
        "exec.mount.secret",
    ] {
        assert!(caps.contains_key(cap), "{cap}");
    }
    assert!(!caps.contains_key("exec.meta.network"));

    // The writable mounts are states of their own, pointing at the right outputs.
    let z = llb::marshal(&es.mount("/z").unwrap()).unwrap();
    let zt = pb::Op::decode(z.def.last().unwrap().as_slice()).unwrap();
    assert_eq!(
        zt.inputs[0],
        pb::Input {
            digest: digest.clone(),
            index: 2
        }
    );
    assert!(es.mount("/a").is_none() && es.mount("/m").is_none());
}

#[test]
fn exec_inherits_state_env_dir_user_and_overrides() {
    let s: State = llb::image("ubuntu").into();
    let s = s
        .add_env("PATH", "/usr/bin")
        .add_env("A", "1")
        .dir("/work")
        .dir("sub")
        .user("app");
    assert_eq!(s.get_dir(), "/work/sub");
    let es = s.run(
        Exec::new(["env"])
            .env("A", "2")
            .cwd("..")
            .network(Network::None)
            .ignore_cache(true)
            .description("torchkit.step", "deps"),
    );
    let def = llb::marshal(&es.root()).unwrap();
    let (d, op, exec) = find_exec(&def);
    let meta = exec.meta.unwrap();
    assert_eq!(meta.env, vec!["PATH=/usr/bin", "A=2"]);
    assert_eq!(meta.cwd, "/work");
    assert_eq!(meta.user, "app");
    assert_eq!(exec.network, pb::NetMode::None as i32);
    assert_eq!(op.platform.unwrap().architecture, "amd64");
    let md = &def.metadata[&d];
    assert!(md.ignore_cache);
    assert_eq!(md.description["torchkit.step"], "deps");
    assert!(md.caps.contains_key("exec.meta.network"));
    let tcaps = &def.metadata[&llb::digest_of(def.def.last().unwrap())].caps;
    assert!(tcaps.contains_key("meta.ignorecache"));
    // The root keeps the state's meta for later runs.
    assert_eq!(es.root().get_user(), "app");
    assert_eq!(es.root().get_env("A"), Some("1"));
}

#[test]
fn file_actions_follow_the_index_rules() {
    let base: State = llb::image("ubuntu").into();
    let other: State = llb::local("ctx").into();
    let out = base.dir("/app").file(
        FileAction::mkdir(
            "cfg",
            0o755,
            MkdirOpts {
                parents: true,
                owner: Some(Owner::ids(1000, 1000)),
            },
        )
        .and_copy(
            &other,
            "a.txt",
            "cfg/",
            CopyOpts {
                owner: Some(Owner::parse("app:app")),
                ..CopyOpts::default()
            },
        )
        .and_mkfile("/etc/x", 0o644, "hello", None)
        .and_rm(
            "/tmp/*",
            RmOpts {
                allow_not_found: true,
                allow_wildcard: true,
            },
        ),
    );
    let def = llb::marshal(&out).unwrap();
    let (d, op, file) = find_file(&def);
    assert_eq!(op.inputs.len(), 2);
    let idx: Vec<(i64, i64, i64)> = file
        .actions
        .iter()
        .map(|a| (a.input, a.secondary_input, a.output))
        .collect();
    assert_eq!(idx, vec![(0, -1, -1), (2, 1, -1), (3, -1, -1), (4, -1, 0)]);
    match &file.actions[0].action {
        Some(pb::file_action::Action::Mkdir(m)) => {
            assert_eq!(
                (m.path.as_str(), m.mode, m.make_parents, m.timestamp),
                ("/app/cfg", 0o755, true, -1)
            );
        }
        other => panic!("{other:?}"),
    }
    match &file.actions[1].action {
        Some(pb::file_action::Action::Copy(c)) => {
            assert_eq!(
                (c.src.as_str(), c.dest.as_str(), c.mode),
                ("/a.txt", "/app/cfg/", -1)
            );
            let user = c.owner.as_ref().unwrap().user.as_ref().unwrap();
            assert_eq!(
                user.user,
                Some(pb::user_opt::User::ByName(pb::NamedUserOpt {
                    name: "app".into(),
                    input: 2
                }))
            );
        }
        other => panic!("{other:?}"),
    }
    let caps = &def.metadata[&d].caps;
    assert!(caps.contains_key("file.base") && caps.contains_key("file.rm.wildcard"));
    assert!(op.platform.is_none());

    // On scratch the first target is -1 and a lone action has output 0.
    let made = llb::scratch().file(FileAction::mkfile("/f", 0o600, vec![0u8, 1], None));
    let def = llb::marshal(&made).unwrap();
    let (_, op, file) = find_file(&def);
    assert!(op.inputs.is_empty());
    assert_eq!(
        (
            file.actions[0].input,
            file.actions[0].secondary_input,
            file.actions[0].output
        ),
        (-1, -1, 0)
    );
}

#[test]
fn source_locations_are_keyed_by_the_op_digest() {
    let spec = SourceInfo::new("torchkit.toml", "[a]\nb = 1\n", "toml");
    let other = SourceInfo::new("other.toml", "", "toml");
    let def = llb::marshal(
        &sample(&spec).file(
            FileAction::mkdir("/x", 0o755, MkdirOpts::default())
                .source_location(SourceLocation::new(&other, [Range::line(9)])),
        ),
    )
    .unwrap();
    let source = def.source.as_ref().unwrap();
    assert_eq!(source.infos.len(), 2);
    assert_eq!(source.infos[0].filename, "torchkit.toml");
    assert_eq!(source.infos[0].data, b"[a]\nb = 1\n");
    assert_eq!(source.infos[1].filename, "other.toml");
    let (exec_d, _, _) = find_exec(&def);
    let locs = &source.locations[&exec_d].locations;
    assert_eq!(locs.len(), 1);
    assert_eq!(locs[0].source_index, 0);
    let r = &locs[0].ranges[0];
    assert_eq!((r.start.unwrap().line, r.end.unwrap().line), (5, 7));
    assert_eq!(source.locations.len(), 3);
    for d in source.locations.keys() {
        assert!(def.def.iter().any(|b| llb::digest_of(b) == *d));
    }
}

#[test]
fn image_references_are_normalized_and_pinned() {
    let cases = [
        ("ubuntu", "docker.io/library/ubuntu:latest"),
        ("ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
        (
            "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",
            "docker.io/pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",
        ),
        (
            "nvcr.io/nvidia/pytorch:24.05-py3",
            "nvcr.io/nvidia/pytorch:24.05-py3",
        ),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        (
            "index.docker.io/library/busybox",
            "docker.io/library/busybox:latest",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(llb::normalize_image_ref(input).unwrap(), want, "{input}");
    }
    let d = format!("sha256:{}", "0123456789abcdef".repeat(4));
    assert_eq!(
        llb::image("nvidia/cuda:12.1.1-runtime-ubuntu22.04")
            .digest(Some(&d))
            .identifier()
            .unwrap(),
        format!("docker-image://docker.io/nvidia/cuda:12.1.1-runtime-ubuntu22.04@{d}")
    );
    assert_eq!(
        llb::image(&format!("ubuntu@{d}")).identifier().unwrap(),
        format!("docker-image://docker.io/library/ubuntu@{d}")
    );
    assert_eq!(
        llb::image("ubuntu").digest(None).identifier().unwrap(),
        "docker-image://docker.io/library/ubuntu:latest"
    );
    for bad in ["Ubuntu", "", "ubuntu:", "a//b"] {
        let err = llb::normalize_image_ref(bad).unwrap_err();
        assert!(matches!(err, LlbError::InvalidReference { .. }), "{bad}");
        assert!(err.hint().is_some());
    }
    let err = llb::marshal(&llb::image("ubuntu").digest(Some("sha256:short")).into()).unwrap_err();
    assert_eq!(err, LlbError::InvalidDigest("sha256:short".into()));

    let def = llb::marshal(
        &llb::image("ubuntu")
            .resolve_mode(ResolveMode::ForcePull)
            .platform(Platform::linux_arm64())
            .into(),
    )
    .unwrap();
    let (d, op) = ops(&def).remove(0);
    match op.op {
        Some(pb::op::Op::Source(s)) => assert_eq!(s.attrs["image.resolvemode"], "pull"),
        other => panic!("{other:?}"),
    }
    assert_eq!(op.platform.unwrap().architecture, "arm64");
    assert!(def.metadata[&d]
        .caps
        .contains_key("source.image.resolvemode"));
}

#[test]
fn local_sources_encode_attrs_as_go_does() {
    let def = llb::marshal(
        &llb::local("context")
            .session_id("s1")
            .include_patterns(["a", "b<c"])
            .exclude_patterns(["*.pyc"])
            .follow_paths(["link"])
            .shared_key_hint("ctx")
            .differ(Differ::None)
            .custom_name("load context")
            .into(),
    )
    .unwrap();
    let (d, op) = ops(&def).remove(0);
    let attrs = match op.op {
        Some(pb::op::Op::Source(s)) => {
            assert_eq!(s.identifier, "local://context");
            s.attrs
        }
        other => panic!("{other:?}"),
    };
    assert!(op.platform.is_none());
    assert_eq!(attrs["local.session"], "s1");
    assert_eq!(attrs["local.includepattern"], r#"["a","b\u003cc"]"#);
    assert_eq!(attrs["local.excludepatterns"], r#"["*.pyc"]"#);
    assert_eq!(attrs["local.followpaths"], r#"["link"]"#);
    assert_eq!(attrs["local.sharedkeyhint"], "ctx");
    assert_eq!(attrs["local.differ"], "none");
    assert!(!attrs.contains_key("local.unique"));
    let md = &def.metadata[&d];
    assert_eq!(md.description["llb.customname"], "load context");
    for cap in [
        "source.local",
        "source.local.sessionid",
        "source.local.includepatterns",
        "source.local.excludepatterns",
        "source.local.followpaths",
        "source.local.sharedkeyhint",
    ] {
        assert!(md.caps.contains_key(cap), "{cap}");
    }
    // As Go's `llb.Differ(t, false)`: the attribute without its cap, so that a daemon
    // older than the cap (BuildKit < v0.9) ignores it instead of refusing the Definition.
    assert!(!md.caps.contains_key("source.local.differ"));
}

#[test]
fn errors_are_typed_and_hinted() {
    assert_eq!(
        llb::marshal(&llb::scratch()).unwrap_err(),
        LlbError::EmptyState
    );
    let base: State = llb::image("ubuntu").into();
    let empty: Vec<&str> = vec![];
    assert_eq!(
        llb::marshal(&base.run(Exec::new(empty)).root()).unwrap_err(),
        LlbError::EmptyArgs
    );
    let err = llb::marshal(
        &base
            .run(Exec::new(["x"]).mount(Mount::tmpfs("/t").uid(1)))
            .root(),
    )
    .unwrap_err();
    assert!(matches!(err, LlbError::InvalidMount { .. }));
    let err = llb::marshal(
        &base
            .run(
                Exec::new(["x"])
                    .mount(Mount::tmpfs("/t"))
                    .mount(Mount::cache("/t", "c", Sharing::Shared)),
            )
            .root(),
    )
    .unwrap_err();
    assert_eq!(err, LlbError::DuplicateMount("/t".into()));

    let mut def = llb::marshal(&base).unwrap();
    let one = pb::Definition {
        def: vec![def.def[0].clone()],
        ..Default::default()
    };
    let err = llb::decode(&llb::definition_bytes(&one)).unwrap_err();
    assert_eq!(err, LlbError::TooFewOps(1));
    assert!(err.hint().is_some());

    def.def[1] = pb::Op {
        inputs: vec![pb::Input {
            digest: "sha256:00".into(),
            index: 0,
        }],
        ..Default::default()
    }
    .encode_to_vec();
    let err = llb::validate(&def).unwrap_err();
    assert!(matches!(err, LlbError::DanglingInput { .. }), "{err}");
    assert!(err.hint().is_some());
    assert!(matches!(llb::decode(b"\xff\xff"), Err(LlbError::Decode(_))));
}

#[test]
fn dump_is_readable_and_stable() {
    let spec = SourceInfo::new("torchkit.toml", "x = 1\n", "toml");
    let def = llb::marshal(&sample(&spec)).unwrap();
    let j = llb::dump(&def).unwrap();
    assert_eq!(
        j,
        llb::dump(&llb::decode(&llb::definition_bytes(&def)).unwrap()).unwrap()
    );
    let text = serde_json::to_string_pretty(&j).unwrap();
    assert_eq!(
        text,
        serde_json::to_string_pretty(&llb::dump(&llb::marshal(&sample(&spec)).unwrap()).unwrap())
            .unwrap()
    );

    let ops = j["ops"].as_array().unwrap();
    assert_eq!(ops.len(), def.def.len());
    let kinds: Vec<&str> = ops.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["source", "source", "file", "exec", "terminal"]);
    assert_eq!(
        ops[0]["source"]["identifier"],
        format!(
            "docker-image://docker.io/pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime@sha256:{}",
            "ab".repeat(32)
        )
    );
    assert_eq!(ops[0]["platform"], "linux/amd64");
    assert_eq!(ops[0]["metadata"]["custom_name"], "base");
    assert_eq!(ops[1]["source"]["attrs"]["local.session"], "sess");
    assert_eq!(
        ops[2]["file"]["actions"][0]["copy"]["dest"],
        "/workspace/src/"
    );
    assert_eq!(ops[2]["inputs"][1]["digest"], ops[1]["digest"]);
    let exec = &ops[3]["exec"];
    assert_eq!(exec["args"][2], "pip install -e .");
    assert_eq!(exec["cwd"], "/workspace");
    assert_eq!(exec["env"][0], "PIP_NO_INPUT=1");
    assert_eq!(exec["network"], "sandbox");
    assert_eq!(exec["mounts"][1]["cache"]["sharing"], "locked");
    assert_eq!(exec["mounts"][2]["secret"]["mode"], "0400");
    assert_eq!(ops[3]["locations"][0]["file"], "torchkit.toml");
    assert_eq!(
        ops[3]["locations"][0]["ranges"][0],
        serde_json::json!([5, 0, 7, 0])
    );
    assert_eq!(ops[3]["metadata"]["custom_name"], "pip install");
    assert_eq!(j["result"]["digest"], ops[3]["digest"]);
    assert_eq!(j["sources"][0]["filename"], "torchkit.toml");
}
