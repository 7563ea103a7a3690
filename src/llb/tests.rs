//! Unit tests of internals: path cleaning, state immutability, dedup by identity vs content.

use super::file::{clean, join_clean};
use super::*;

#[test]
fn paths_clean_like_go() {
    assert_eq!(clean("/a/b/../c/./d/"), "/a/c/d");
    assert_eq!(clean("/../.."), "/");
    assert_eq!(clean("a/../../b"), "../b");
    assert_eq!(clean(""), ".");
    assert_eq!(join_clean("/work", "sub/../x"), "/work/x");
    assert_eq!(join_clean("/work", "/abs"), "/abs");
    assert_eq!(join_clean("/", "."), "/");
}

#[test]
fn states_are_immutable() {
    let base: State = image("ubuntu").into();
    let a = base.add_env("A", "1").dir("/a").user("u");
    assert!(base.env().is_empty());
    assert_eq!(base.get_dir(), "/");
    assert_eq!(base.get_user(), "");
    assert_eq!(a.get_env("A"), Some("1"));
    // Re-adding a key moves it to the end (Go AddOrReplace).
    let b = a.add_env("B", "2").add_env("A", "3");
    let keys: Vec<&str> = b.env().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["B", "A"]);
    assert_eq!(b.del_env("A").env().len(), 1);
    // Branching does not copy ops: both branches share the image node.
    let r1 = base.run(Exec::new(["a"])).root();
    let r2 = base.run(Exec::new(["b"])).root();
    let def1 = marshal(&r1).unwrap();
    let def2 = marshal(&r2).unwrap();
    assert_eq!(def1.def[0], def2.def[0]);
    assert_ne!(def1.def[1], def2.def[1]);
}

#[test]
fn equal_ops_merge_metadata_and_locations() {
    let src = SourceInfo::new("f", "", "");
    let a: State = image("busybox")
        .custom_name("one")
        .source_location(SourceLocation::new(&src, [(1, 0, 1, 0)]))
        .into();
    let b: State = image("busybox")
        .description("k", "v")
        .source_location(SourceLocation::new(&src, [(2, 0, 2, 0)]))
        .into();
    let out = a.file(FileAction::copy(&b, "/x", "/y", CopyOpts::default()));
    let def = marshal(&out).unwrap();
    assert_eq!(def.def.len(), 3);
    let d = digest_of(&def.def[0]);
    let md = &def.metadata[&d];
    assert_eq!(md.description[CUSTOM_NAME_KEY], "one");
    assert_eq!(md.description["k"], "v");
    let locs = &def.source.as_ref().unwrap().locations[&d].locations;
    assert_eq!(locs.len(), 2);
    assert_eq!(def.source.as_ref().unwrap().infos.len(), 1);
}

#[test]
fn platform_display_and_default() {
    assert_eq!(Platform::default(), Platform::linux_amd64());
    assert_eq!(
        Platform::new("linux", "arm", "v7").to_string(),
        "linux/arm/v7"
    );
    let s: State = local("ctx").into();
    assert_eq!(s.get_platform(), None);
    let s: State = image("ubuntu").platform(Platform::linux_arm64()).into();
    assert_eq!(s.get_platform(), Some(&Platform::linux_arm64()));
}

#[test]
fn familiar_names_as_docker_prints_them() {
    for (given, familiar) in [
        ("ubuntu", "ubuntu"),
        ("docker.io/library/ubuntu:latest", "ubuntu"),
        ("index.docker.io/library/ubuntu:24.04", "ubuntu:24.04"),
        (
            "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime",
            "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime",
        ),
        (
            "localhost:5000/mirror/pytorch:2.8.0",
            "localhost:5000/mirror/pytorch:2.8.0",
        ),
        ("nvcr.io/nvidia/pytorch:latest", "nvcr.io/nvidia/pytorch"),
    ] {
        assert_eq!(familiar_image_ref(given).unwrap(), familiar, "{given}");
    }
    assert!(familiar_image_ref("Bad/Name").is_err());
}

#[test]
fn an_old_daemon_gets_no_differ_attribute_and_no_cap_it_lacks() {
    let v08 = Supported::only([caps::SOURCE_LOCAL, caps::SOURCE_LOCAL_FOLLOW_PATHS]);
    let local = || {
        local("dockerfile")
            .follow_paths(["torchkit.toml"])
            .differ(Differ::None)
            .into_state()
    };
    use prost::Message as _;
    let attrs =
        |def: &pb::Definition| match pb::Op::decode(def.def[0].as_slice()).unwrap().op.unwrap() {
            pb::op::Op::Source(s) => s.attrs,
            _ => unreachable!(),
        };
    let old = marshal_for(&local(), &v08).unwrap();
    assert!(!attrs(&old).contains_key("local.differ"));
    let new = marshal(&local()).unwrap();
    assert_eq!(attrs(&new)["local.differ"], "none");
    // As Go's `llb.Differ(t, false)`: the attribute never names its cap.
    for def in [&old, &new] {
        assert!(def
            .metadata
            .values()
            .all(|m| !m.caps.contains_key(caps::SOURCE_LOCAL_DIFFER)));
    }
}

#[test]
fn a_cap_the_graph_needs_is_an_error_naming_the_release() {
    let st = State::from(image("busybox"))
        .run(Exec::shell("true").mount(Mount::tmpfs("/tmp").size(1 << 20)))
        .root();
    let err = marshal_for(&st, &Supported::only([caps::SOURCE_IMAGE])).unwrap_err();
    assert!(matches!(err, LlbError::Unsupported { .. }), "{err}");
    let v08 = Supported::only(
        [
            caps::SOURCE_IMAGE,
            caps::EXEC_META_BASE,
            caps::EXEC_MOUNT_BIND,
            caps::EXEC_MOUNT_TMPFS,
            caps::CONSTRAINTS,
            caps::PLATFORM,
        ]
        .map(String::from),
    );
    let msg = marshal_for(&st, &v08).unwrap_err().to_string();
    assert!(
        msg.contains("exec.mount.tmpfs.size") && msg.contains("v0.10.0"),
        "{msg}"
    );
}
