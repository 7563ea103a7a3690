//! The frontend against an in-process fake LLBBridge over an in-memory pipe, through the
//! same [`stdio`] transport the real frontend uses on stdin/stdout.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prost::Message as _;
use tonic::{Request, Response, Status};

use super::*;
use crate::proto::moby::buildkit::v1::apicaps::ApiCap;
use crate::proto::moby::buildkit::v1::frontend as gw;
use crate::proto::moby::buildkit::v1::frontend::llb_bridge_server::{LlbBridge, LlbBridgeServer};
use crate::proto::pb;

const SPEC: &str = "# syntax=localhost:5000/torchkit/frontend:dev\n[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n\n[image]\nuser = \"root\"\ncmd = [\"python\"]\ncopy = [\"src/\"]\n";

/// A verify report whose every check passed.
const PASSED_REPORT: &str = r#"{"torchkit_verify": 1, "ok": true, "checks": [{"name": "torch.version", "ok": true, "expected": "2.8.0+cu128", "found": "2.8.0+cu128", "fix": null}]}"#;

#[derive(Default)]
struct Seen {
    /// Source identifiers and attrs of every solved definition's first source op.
    solves: Vec<(String, BTreeMap<String, String>, pb::Definition)>,
    returned: Option<gw::ReturnRequest>,
    warnings: Vec<String>,
    /// Every ReadFile: the path and its range (offset, length).
    reads: Vec<(String, Option<(i64, i64)>)>,
}

#[derive(Clone)]
struct Fake {
    /// `(ref id, path)` → contents.
    files: Arc<BTreeMap<(String, String), Vec<u8>>>,
    seen: Arc<Mutex<Seen>>,
}

fn first_source(def: &pb::Definition) -> (String, BTreeMap<String, String>) {
    for bytes in &def.def {
        let op = pb::Op::decode(bytes.as_slice()).expect("op");
        if let Some(pb::op::Op::Source(s)) = op.op {
            if s.identifier.starts_with("local://") {
                return (s.identifier, s.attrs);
            }
        }
    }
    ("build".into(), BTreeMap::new())
}

#[tonic::async_trait]
impl LlbBridge for Fake {
    async fn resolve_image_config(
        &self,
        req: Request<gw::ResolveImageConfigRequest>,
    ) -> Result<Response<gw::ResolveImageConfigResponse>, Status> {
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        Ok(Response::new(gw::ResolveImageConfigResponse {
            digest: format!("sha256:{}", "ab".repeat(32)),
            config: serde_json::to_vec(&config).unwrap(),
            r#ref: req.into_inner().r#ref,
        }))
    }

    async fn solve(
        &self,
        req: Request<gw::SolveRequest>,
    ) -> Result<Response<gw::SolveResponse>, Status> {
        let def = req.into_inner().definition.unwrap_or_default();
        let (id, attrs) = first_source(&def);
        let only_source = !def.def.iter().any(|b| {
            matches!(
                pb::Op::decode(b.as_slice()).map(|o| o.op),
                Ok(Some(pb::op::Op::Exec(_))) | Ok(Some(pb::op::Op::File(_)))
            )
        });
        let ref_id = if only_source {
            id.trim_start_matches("local://").to_string()
        } else {
            "build".into()
        };
        self.seen
            .lock()
            .unwrap()
            .solves
            .push((id, attrs, def.clone()));
        Ok(Response::new(gw::SolveResponse {
            r#ref: String::new(),
            result: Some(gw::Result {
                result: Some(gw::result::Result::Ref(gw::Ref {
                    id: ref_id,
                    def: Some(def),
                })),
                metadata: BTreeMap::new(),
            }),
        }))
    }

    async fn read_file(
        &self,
        req: Request<gw::ReadFileRequest>,
    ) -> Result<Response<gw::ReadFileResponse>, Status> {
        let r = req.into_inner();
        self.seen.lock().unwrap().reads.push((
            r.file_path.clone(),
            r.range.as_ref().map(|g| (g.offset, g.length)),
        ));
        match self.files.get(&(r.r#ref.clone(), r.file_path.clone())) {
            // A range reads at most `length` bytes from `offset`, as BuildKit's ReadFile.
            Some(d) => Ok(Response::new(gw::ReadFileResponse {
                data: match r.range {
                    None => d.clone(),
                    Some(gw::FileRange { offset, length }) => {
                        let start = (offset as usize).min(d.len());
                        d[start..(start + length as usize).min(d.len())].to_vec()
                    }
                },
            })),
            None => Err(Status::unknown(format!(
                "open {}: no such file or directory",
                r.file_path
            ))),
        }
    }

    async fn read_dir(
        &self,
        _: Request<gw::ReadDirRequest>,
    ) -> Result<Response<gw::ReadDirResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn stat_file(
        &self,
        req: Request<gw::StatFileRequest>,
    ) -> Result<Response<gw::StatFileResponse>, Status> {
        let r = req.into_inner();
        match self.files.get(&(r.r#ref, r.path.clone())) {
            Some(d) => Ok(Response::new(gw::StatFileResponse {
                stat: Some(crate::proto::fsutil::types::Stat {
                    path: r.path,
                    size: d.len() as i64,
                    ..Default::default()
                }),
            })),
            None => Err(Status::not_found(r.path)),
        }
    }

    async fn ping(
        &self,
        _: Request<gw::PingRequest>,
    ) -> Result<Response<gw::PongResponse>, Status> {
        let cap = |id: &str| ApiCap {
            id: id.into(),
            enabled: true,
            ..Default::default()
        };
        Ok(Response::new(gw::PongResponse {
            frontend_api_caps: [
                "solve.base",
                "return",
                "proto.refarray",
                "readfile",
                "gateway.warnings",
            ]
            .into_iter()
            .map(cap)
            .collect(),
            // The oldest daemon measured (Docker 20.10): what the frontend emits must fit.
            llb_caps: include_str!("../../tests/fixtures/caps/buildkit-v0.8.4-docker-20.10.24.txt")
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(cap)
                .collect(),
            workers: vec![],
        }))
    }

    async fn r#return(
        &self,
        req: Request<gw::ReturnRequest>,
    ) -> Result<Response<gw::ReturnResponse>, Status> {
        self.seen.lock().unwrap().returned = Some(req.into_inner());
        Ok(Response::new(gw::ReturnResponse {}))
    }

    async fn inputs(
        &self,
        _: Request<gw::InputsRequest>,
    ) -> Result<Response<gw::InputsResponse>, Status> {
        Ok(Response::new(gw::InputsResponse::default()))
    }

    async fn warn(
        &self,
        req: Request<gw::WarnRequest>,
    ) -> Result<Response<gw::WarnResponse>, Status> {
        let w = String::from_utf8_lossy(&req.into_inner().short).into_owned();
        self.seen.lock().unwrap().warnings.push(w);
        Ok(Response::new(gw::WarnResponse {}))
    }
}

/// Run the frontend against a fake serving `files` (`(local name, path)` → text) with
/// the frontend options `opts`.
async fn run_fake(
    files: &[(&str, &str, &str)],
    opts: &[(&str, &str)],
) -> (Result<(), FrontendError>, Seen) {
    let mut files: BTreeMap<(String, String), Vec<u8>> = files
        .iter()
        .map(|(r, p, d)| ((r.to_string(), p.to_string()), d.as_bytes().to_vec()))
        .collect();
    // What the verify stage's checks write, unless the test says otherwise: all passed.
    files
        .entry(("build".into(), "/report.json".into()))
        .or_insert_with(|| PASSED_REPORT.as_bytes().to_vec());
    let fake = Fake {
        files: Arc::new(files),
        seen: Arc::new(Mutex::new(Seen::default())),
    };
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(LlbBridgeServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io))),
    );
    let (r, w) = tokio::io::split(client_io);
    let channel = stdio::connect(stdio::Stdio::new(r, w))
        .await
        .expect("connect");
    let bridge = Bridge::new(channel, None).unwrap();
    let raw: BTreeMap<String, String> = opts
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = run(&bridge, &raw, Some("sess-1".into())).await;
    server.abort();
    let seen = std::mem::take(&mut *fake.seen.lock().unwrap());
    (out, seen)
}

#[tokio::test]
async fn builds_the_spec_from_the_dockerfile_local() {
    let (out, seen) = run_fake(
        &[
            ("dockerfile", "torchkit.toml", SPEC),
            ("context", ".dockerignore", "# c\n*.pyc\n\n.git\n"),
        ],
        &[
            ("filename", "torchkit.toml"),
            ("label:org.example.x", "1"),
            ("image-resolve-mode", "default"),
        ],
    )
    .await;
    out.expect("build");
    // dockerfile local and context .dockerignore local (in parallel), then the image, the
    // verify stage's checks (whose report is read) and the whole stage.
    assert_eq!(
        seen.solves.len(),
        5,
        "{:?}",
        seen.solves.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    let mut loads: Vec<_> = seen.solves[..2].iter().collect();
    loads.sort_by(|a, b| b.0.cmp(&a.0));
    let (id, attrs, _) = loads[0];
    assert_eq!(id, "local://dockerfile");
    assert_eq!(attrs["local.session"], "sess-1");
    assert_eq!(attrs["local.sharedkeyhint"], "dockerfile");
    assert_eq!(
        attrs["local.followpaths"],
        r#"["torchkit.toml","torchkit.toml.dockerignore","torchkit.lock"]"#
    );
    assert_eq!(attrs["local.differ"], "none");
    assert_eq!(loads[1].0, "local://context");
    assert_eq!(loads[1].1["local.followpaths"], r#"[".dockerignore"]"#);
    // The build's context local carries the session and the .dockerignore patterns.
    let (id, attrs, def) = &seen.solves[2];
    assert_eq!(id, "local://context");
    assert_eq!(attrs["local.session"], "sess-1");
    assert_eq!(attrs["local.excludepatterns"], r#"["*.pyc",".git"]"#);
    assert!(llb::validate(def).is_ok());
    assert!(seen.reads.iter().any(|(p, _)| p == "/report.json"));
    let verify_names = |def: &pb::Definition| -> Vec<String> {
        let dump = llb::dump(def).unwrap();
        dump["ops"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["metadata"]["custom_name"].as_str().map(String::from))
            .filter(|n| n.starts_with("[torchkit verify"))
            .collect()
    };
    assert!(verify_names(def).is_empty(), "the image has no verify exec");
    assert_eq!(verify_names(&seen.solves[3].2).len(), 1, "checks");
    assert_eq!(verify_names(&seen.solves[4].2).len(), 2, "checks and gate");
    let ret = seen.returned.expect("returned");
    assert!(ret.error.is_none());
    let result = ret.result.unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&result.metadata["containerimage.config"]).unwrap();
    assert_eq!(config["config"]["Labels"]["org.example.x"], "1");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["python"]));
    assert!(config["config"]["Labels"]["torchkit.base.digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:abab"));
}

#[tokio::test]
async fn dockerignore_beside_the_spec_wins() {
    let (out, seen) = run_fake(
        &[
            ("dockerfile", "torchkit.toml", SPEC),
            (
                "dockerfile",
                "torchkit.toml.dockerignore",
                "/secret/\n! ./secret/README\n",
            ),
            ("context", ".dockerignore", "*.pyc\n"),
        ],
        &[("filename", "torchkit.toml")],
    )
    .await;
    out.expect("build");
    // The spec, the context's .dockerignore (loaded in parallel, unused) and the build
    // (image, verify checks, verify stage).
    assert_eq!(seen.solves.len(), 5);
    let (id, attrs, _) = seen.solves.last().unwrap();
    assert_eq!(id, "local://context");
    // Read as moby's ignorefile.ReadAll reads it: cleaned, relative, `!` trimmed.
    assert_eq!(
        attrs["local.excludepatterns"],
        r#"["secret","!secret/README"]"#
    );
}

#[tokio::test]
async fn a_failed_check_fails_the_build_naming_it_and_nothing_is_returned() {
    let failed = r#"{"torchkit_verify": 1, "ok": false, "checks": [
        {"name": "torch.version", "ok": true, "expected": "2.8.0+cu128", "found": "2.8.0+cu128", "fix": null},
        {"name": "torch.cuda", "ok": false, "expected": "12.8", "found": "12.6", "fix": "a dependency replaced torch: pin it"}]}"#;
    let (out, seen) = run_fake(
        &[
            ("dockerfile", "torchkit.toml", SPEC),
            ("build", "/report.json", failed),
        ],
        &[("filename", "torchkit.toml")],
    )
    .await;
    let e = out.unwrap_err().to_string();
    assert!(e.contains("verify: 1 of 2 checks failed"), "{e}");
    assert!(e.contains("torch.cuda: expected 12.8, found 12.6"), "{e}");
    assert!(e.contains("fix: a dependency replaced torch"), "{e}");
    // The gate and tests are not solved, and the build returns the error, not a result.
    assert_eq!(seen.solves.len(), 4);
    let ret = seen.returned.expect("returned");
    assert!(ret.result.is_none());
    assert!(ret.error.unwrap().message.contains("torch.cuda"));
}

#[tokio::test]
async fn skip_verify_leaves_the_stage_out() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", SPEC)],
        &[
            ("filename", "torchkit.toml"),
            ("build-arg:TORCHKIT_SKIP_VERIFY", "1"),
        ],
    )
    .await;
    out.expect("build");
    assert_eq!(seen.solves.len(), 3, "spec, .dockerignore, image");
    assert!(!seen.reads.iter().any(|(p, _)| p == "/report.json"));
}

#[tokio::test]
async fn a_bad_spec_returns_its_line_as_an_errdefs_source() {
    let bad = "# syntax=x\n[torch]\nversion = \"2.8.0\"\n[image]\nusr = \"root\"\n";
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", bad)],
        &[("filename", "torchkit.toml")],
    )
    .await;
    assert!(matches!(out, Err(FrontendError::Spec { .. })), "{out:?}");
    let err = seen.returned.unwrap().error.unwrap();
    assert!(
        err.message
            .starts_with("torchkit.toml:5:1: unknown key `usr` in [image]"),
        "{}",
        err.message
    );
    assert!(err.message.contains("hint: did you mean `user`?"));
    assert_eq!(err.details[0].type_url, status::SOURCE_DETAIL_TYPE_URL);
    let v: serde_json::Value = serde_json::from_slice(&err.details[0].value).unwrap();
    assert_eq!(v["ranges"][0]["start"]["line"], 5);
    // Nothing but the spec and .dockerignore locals was solved.
    assert!(seen
        .solves
        .iter()
        .all(|(id, _, d)| id.starts_with("local://") && d.def.len() == 2));
}

#[tokio::test]
async fn a_resolver_error_from_the_spec_points_at_its_key() {
    let bad = "[torch]\nversion = \"2.8.0\"\ncuda = \"9.9\"\n";
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", bad)],
        &[("filename", "torchkit.toml")],
    )
    .await;
    assert!(matches!(out, Err(FrontendError::Spec { .. })), "{out:?}");
    let err = seen.returned.unwrap().error.unwrap();
    assert!(
        err.message.starts_with("torchkit.toml:3:"),
        "{}",
        err.message
    );
    let v: serde_json::Value = serde_json::from_slice(&err.details[0].value).unwrap();
    assert_eq!(v["ranges"][0]["start"]["line"], 3);
}

#[tokio::test]
async fn an_override_error_is_not_blamed_on_the_spec() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", SPEC)],
        &[
            ("filename", "torchkit.toml"),
            ("build-arg:TORCHKIT_CUDA", "9.9"),
        ],
    )
    .await;
    assert!(
        matches!(out, Err(FrontendError::Load(LoadError::Resolve(_)))),
        "{out:?}"
    );
    let err = seen.returned.unwrap().error.unwrap();
    assert!(err.details.is_empty());
}

#[tokio::test]
async fn arm64_is_refused_before_anything_is_solved() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", SPEC)],
        &[("filename", "torchkit.toml"), ("platform", "linux/arm64")],
    )
    .await;
    assert!(
        matches!(out, Err(FrontendError::Options(OptionsError::Platform(_)))),
        "{out:?}"
    );
    assert!(seen.solves.is_empty());
    let err = seen.returned.unwrap().error.unwrap();
    assert_eq!(err.code, status::UNKNOWN);
    assert!(
        err.message.contains("only for linux/amd64"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("hint: drop --platform"),
        "{}",
        err.message
    );
}

fn returned_json(seen: &Seen) -> serde_json::Value {
    let ret = seen.returned.as_ref().expect("returned");
    assert!(ret.error.is_none(), "{:?}", ret.error);
    let result = ret.result.as_ref().unwrap();
    // Metadata only: no image to export.
    assert_eq!(
        result.result,
        Some(gw::result::Result::Ref(gw::Ref::default()))
    );
    assert_eq!(result.metadata["version"], b"1.0.0");
    assert!(!result.metadata["result.txt"].is_empty());
    serde_json::from_slice(&result.metadata["result.json"]).unwrap()
}

const FULL_SPEC: &str = "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n[system]\napt = [\"jq\"]\n[python]\npackages = [\"six==1.16.0\"]\n[image]\nuser = \"root\"\ncopy = [\"src/\"]\n[cache]\nprofile = \"release\"\n";

#[tokio::test]
async fn targets_lists_the_steps_and_builds_nothing() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", FULL_SPEC)],
        &[
            ("filename", "torchkit.toml"),
            ("requestid", "frontend.targets"),
        ],
    )
    .await;
    out.expect("answered");
    // Only the two input loads: no base lookup, no build.
    assert_eq!(seen.solves.len(), 2);
    let v = returned_json(&seen);
    let names: Vec<&str> = v["Targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["base", "apt", "pip", "user", "copy"]);
    let t = &v["Targets"];
    assert_eq!(t[4]["default"], true);
    assert!(t[0].get("default").is_none());
    // A release spec whose base is not pinned yet is planned all the same (only a build
    // needs the pin), with the release rules: every step re-runs.
    assert_eq!(
        t[1]["description"],
        "apt-get install jq (re-run: release profile)"
    );
    assert_eq!(t[1]["Location"]["ranges"][0]["start"]["line"], 5);
    assert!(t[0]["base"]
        .as_str()
        .unwrap()
        .starts_with("docker.io/pytorch/pytorch:2.8.0-cuda12.8"));
    assert_eq!(v["Sources"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn outline_lists_build_args_with_this_builds_values() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", FULL_SPEC)],
        &[
            ("filename", "torchkit.toml"),
            ("requestid", "frontend.outline"),
            ("build-arg:TORCHKIT_PROFILE", "test"),
            ("build-arg:TORCHKIT_CA_SECRET", "1"),
        ],
    )
    .await;
    out.expect("answered");
    let v = returned_json(&seen);
    let arg = |n: &str| {
        v["args"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["Name"] == n)
            .unwrap_or_else(|| panic!("no {n} in {v}"))
            .clone()
    };
    assert_eq!(arg("TORCHKIT_PROFILE")["Value"], "test");
    assert_eq!(
        arg("TORCHKIT_PROFILE")["Location"]["ranges"][0]["start"]["line"],
        12
    );
    assert_eq!(arg("TORCHKIT_CUDA")["Value"], "12.8");
    assert_eq!(arg("TORCHKIT_FLAVOR")["Value"], "runtime");
    assert_eq!(arg("TORCHKIT_CA_SECRET")["Value"], "1");
    assert_eq!(
        v["secrets"],
        serde_json::json!([{"Name": "torchkit-ca", "Required": true}])
    );
    assert_eq!(
        v["cache"],
        serde_json::json!([{"ID": "torchkit/apt/cu128"}, {"ID": "torchkit/pip/cu128"}])
    );
}

/// Without `TORCHKIT_CA_SECRET` the outline lists `torchkit-ca` as not required (the
/// frontend mounts it as optional), and the build-arg as unset.
#[tokio::test]
async fn outline_says_the_ca_secret_is_optional_by_default() {
    let outline = |pairs: &'static [(&'static str, &'static str)]| async move {
        let (out, seen) = run_fake(&[("dockerfile", "torchkit.toml", FULL_SPEC)], pairs).await;
        out.expect("answered");
        returned_json(&seen)
    };
    let v = outline(&[
        ("filename", "torchkit.toml"),
        ("requestid", "frontend.outline"),
    ])
    .await;
    assert_eq!(
        v["secrets"],
        serde_json::json!([{"Name": "torchkit-ca", "Required": false}])
    );
    let ca = v["args"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Name"] == "TORCHKIT_CA_SECRET")
        .unwrap();
    assert_eq!(ca["Value"], "");
    // `0`: nothing mounts it, so the outline lists no secret.
    let v = outline(&[
        ("filename", "torchkit.toml"),
        ("requestid", "frontend.outline"),
        ("build-arg:TORCHKIT_CA_SECRET", "0"),
    ])
    .await;
    assert_eq!(v["secrets"], serde_json::json!([]));
}

/// The CA mounts of the execs of a solved definition: `optional` of each.
fn ca_mounts(def: &pb::Definition) -> Vec<bool> {
    let dump = llb::dump(def).unwrap();
    dump["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["exec"]["mounts"].as_array())
        .flatten()
        .filter(|m| m["dest"] == crate::plan::CA_SECRET_PATH)
        .map(|m| m["secret"]["optional"].as_bool().unwrap())
        .collect()
}

/// `--secret id=torchkit-ca,src=…` alone is enough: without a build-arg the steps that
/// download mount the secret as optional; `TORCHKIT_CA_SECRET=1` makes it required (a
/// build without it fails), `=0` leaves it out.
#[tokio::test]
async fn the_ca_secret_is_mounted_as_optional_unless_a_build_arg_says_otherwise() {
    for (value, want) in [
        (None, Some(true)),
        (Some("1"), Some(false)),
        (Some("0"), None),
    ] {
        let mut opts = vec![("filename", "torchkit.toml")];
        if let Some(v) = value {
            opts.push(("build-arg:TORCHKIT_CA_SECRET", v));
        }
        let (out, seen) = run_fake(&[("dockerfile", "torchkit.toml", FULL_SPEC)], &opts).await;
        out.expect("build");
        let (_, _, def) = &seen.solves[2];
        let mounts = ca_mounts(def);
        match want {
            // apt, pip's resolve and install.
            Some(optional) => assert_eq!(mounts, vec![optional; 3], "{value:?}"),
            None => assert!(mounts.is_empty(), "{value:?}: {mounts:?}"),
        }
    }
}

#[tokio::test]
async fn describe_lists_what_torchkit_answers() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", FULL_SPEC)],
        &[("requestid", "frontend.subrequests.describe")],
    )
    .await;
    out.expect("answered");
    let v = returned_json(&seen);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "frontend.outline",
            "frontend.targets",
            "frontend.subrequests.describe"
        ]
    );
    assert_eq!(v[0]["type"], "rpc");
    assert_eq!(v[0]["version"], "1.0.0");
}

#[tokio::test]
async fn an_unknown_subrequest_is_refused_with_the_ones_torchkit_answers() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", FULL_SPEC)],
        &[("requestid", "frontend.lint")],
    )
    .await;
    assert!(
        matches!(
            out,
            Err(FrontendError::Options(OptionsError::Subrequest(_)))
        ),
        "{out:?}"
    );
    let err = seen.returned.unwrap().error.unwrap();
    assert!(
        err.message
            .contains("does not answer the subrequest `frontend.lint`")
            && err.message.contains("outline, targets"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_spec_over_the_limit_is_refused_with_its_size_before_parsing() {
    // 5 MiB of comments: valid TOML, and over the 4 MiB gRPC message size a whole read hits.
    let big = format!("{SPEC}{}", "# padding padding padding\n".repeat(200_000));
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", &big)],
        &[("filename", "torchkit.toml")],
    )
    .await;
    assert!(
        matches!(out, Err(FrontendError::Load(LoadError::TooLarge { size, .. })) if size == big.len() as u64),
        "{out:?}"
    );
    let err = seen.returned.unwrap().error.unwrap();
    assert!(
        err.message
            .starts_with(&format!("torchkit.toml is {} bytes, over", big.len())),
        "{}",
        err.message
    );
    // Nothing but the spec's local was solved.
    assert_eq!(seen.solves.len(), 2, "the two loads, no build");
    // The spec was read only up to one byte past the limit: BuildKit refuses a larger
    // ReadFile answer (`grpc: received message larger than max`).
    let spec_read = seen
        .reads
        .iter()
        .find(|(p, _)| p == "torchkit.toml")
        .unwrap();
    assert_eq!(
        spec_read.1,
        Some((0, load::MAX_INPUT_BYTES as i64 + 1)),
        "{:?}",
        seen.reads
    );
}

#[tokio::test]
async fn a_missing_spec_says_to_pass_dash_f() {
    let (out, seen) = run_fake(&[("dockerfile", "torchkit.toml", SPEC)], &[]).await;
    assert!(
        matches!(out, Err(FrontendError::ReadSpec { .. })),
        "{out:?}"
    );
    let err = seen.returned.unwrap().error.unwrap();
    assert!(
        err.message.contains("cannot read the spec `Dockerfile`"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("docker build -f torchkit.toml ."),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn target_and_no_cache_reach_the_graph() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", SPEC)],
        &[
            ("filename", "torchkit.toml"),
            ("target", "user"),
            ("no-cache", ""),
        ],
    )
    .await;
    out.expect("build");
    let (_, _, def) = seen.solves.last().unwrap();
    let dump = llb::dump(def).unwrap().to_string();
    // Stopped after `user`: no context copy in the graph.
    assert!(!dump.contains("local://context"), "{dump}");
    assert!(dump.contains("[torchkit] bust"), "{dump}");
}

#[tokio::test]
async fn a_named_context_for_the_base_replaces_it_and_others_are_warned_about() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", SPEC)],
        &[
            ("filename", "torchkit.toml"),
            (
                "context:docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime",
                "docker-image://localhost:5000/mirror/pytorch:2.8.0",
            ),
            ("context:ubuntu", "docker-image://ubuntu:24.04"),
        ],
    )
    .await;
    out.expect("build");
    let (_, _, def) = seen.solves.last().unwrap();
    let dump = llb::dump(def).unwrap().to_string();
    let pinned = format!(
        "docker-image://localhost:5000/mirror/pytorch:2.8.0@sha256:{}",
        "ab".repeat(32)
    );
    assert!(dump.contains(&pinned), "{dump}");
    assert!(!dump.contains("docker.io/pytorch"), "{dump}");
    let ret = seen.returned.as_ref().expect("returned");
    let config: serde_json::Value =
        serde_json::from_slice(&ret.result.as_ref().unwrap().metadata["containerimage.config"])
            .unwrap();
    assert_eq!(
        config["config"]["Labels"]["torchkit.base"],
        "localhost:5000/mirror/pytorch:2.8.0"
    );
    let about: Vec<_> = seen
        .warnings
        .iter()
        .filter(|w| w.contains("--build-context"))
        .collect();
    assert_eq!(about.len(), 1, "{:?}", seen.warnings);
    assert!(
        about[0].contains("--build-context ubuntu names no image of this build")
            && about[0].contains("the base is pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"),
        "{about:?}"
    );
}

#[tokio::test]
async fn a_named_context_that_is_not_an_image_is_refused() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", SPEC)],
        &[
            ("filename", "torchkit.toml"),
            ("context:pytorch/pytorch", "local:pytorch"),
        ],
    )
    .await;
    assert!(
        matches!(
            out,
            Err(FrontendError::Options(OptionsError::NamedContext { .. }))
        ),
        "{out:?}"
    );
    let err = seen.returned.unwrap().error.unwrap();
    assert!(
        err.message.contains("only as an image") && err.message.contains("hint: replace the base"),
        "{}",
        err.message
    );
}

/// The lock `torchkit lock` would write for `spec_text` (with no packages), on the base the
/// spec resolves to.
fn lock_for(spec_text: &str) -> String {
    let spec = crate::spec::parse(spec_text, "torchkit.toml").unwrap();
    let res = resolve::resolve(&spec.request()).unwrap();
    let base = plan::base_plan(&spec, &res, &CompileOptions::default()).unwrap();
    lock::Lock::new(
        lock::LockedBase {
            reference: base.reference,
            digest: LOCK_DIGEST.into(),
            platform: "linux/amd64".into(),
        },
        &lock::SpecInputs::new(&spec, &res, None),
        vec![],
        vec![],
    )
    .unwrap()
    .to_toml()
}

const LOCK_DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

#[tokio::test]
async fn a_current_lock_beside_the_spec_pins_the_base() {
    let lock = lock_for(SPEC);
    let (out, seen) = run_fake(
        &[
            ("dockerfile", "sub/torchkit.toml", SPEC),
            ("dockerfile", "sub/torchkit.lock", &lock),
        ],
        &[("filename", "sub/torchkit.toml")],
    )
    .await;
    out.expect("build");
    let (_, attrs, _) = &seen.solves[0..2]
        .iter()
        .find(|s| s.0 == "local://dockerfile")
        .unwrap();
    assert_eq!(
        attrs["local.followpaths"],
        r#"["sub/torchkit.toml","sub/torchkit.toml.dockerignore","sub/torchkit.lock"]"#
    );
    let (_, _, def) = seen.solves.last().unwrap();
    let dump = llb::dump(def).unwrap().to_string();
    assert!(dump.contains(&format!("@{LOCK_DIGEST}")), "{dump}");
    assert!(
        !seen.warnings.iter().any(|w| w.contains("torchkit.lock")),
        "{:?}",
        seen.warnings
    );
}

#[tokio::test]
async fn a_stale_lock_is_ignored_with_a_warning_naming_the_change() {
    let lock = lock_for(&format!("{SPEC}[system]\napt = [\"jq\"]\n"));
    let (out, seen) = run_fake(
        &[
            ("dockerfile", "torchkit.toml", SPEC),
            ("dockerfile", "torchkit.lock", &lock),
        ],
        &[("filename", "torchkit.toml")],
    )
    .await;
    out.expect("build");
    let lock_warnings: Vec<_> = seen
        .warnings
        .iter()
        .filter(|w| w.contains("torchkit.lock"))
        .collect();
    assert_eq!(
        lock_warnings,
        [
            "torchkit.lock is out of date (system.apt was removed since the lock was made); \
          building without it. Run `torchkit lock` to update it"
        ]
    );
    let (_, _, def) = seen.solves.last().unwrap();
    let dump = llb::dump(def).unwrap().to_string();
    assert!(!dump.contains(LOCK_DIGEST), "{dump}");

    // TORCHKIT_LOCKED=1 turns the same lock into an error, as --locked does.
    let (out, seen) = run_fake(
        &[
            ("dockerfile", "torchkit.toml", SPEC),
            ("dockerfile", "torchkit.lock", &lock),
        ],
        &[
            ("filename", "torchkit.toml"),
            ("build-arg:TORCHKIT_LOCKED", "1"),
        ],
    )
    .await;
    assert!(
        matches!(out, Err(FrontendError::Lock(lock::LockError::Stale { .. }))),
        "{out:?}"
    );
    let err = seen.returned.unwrap().error.unwrap();
    assert!(
        err.message
            .contains("TORCHKIT_LOCKED: torchkit.lock is out of date")
            && err.message.contains("system.apt was removed")
            && err.message.contains("or build without TORCHKIT_LOCKED"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn locked_without_a_lock_fails_before_building() {
    let (out, seen) = run_fake(
        &[("dockerfile", "torchkit.toml", SPEC)],
        &[
            ("filename", "torchkit.toml"),
            ("build-arg:TORCHKIT_LOCKED", "1"),
        ],
    )
    .await;
    assert!(
        matches!(
            out,
            Err(FrontendError::Lock(lock::LockError::Missing { .. }))
        ),
        "{out:?}"
    );
    let err = seen.returned.unwrap().error.unwrap();
    assert!(
        err.message
            .contains("TORCHKIT_LOCKED: there is no torchkit.lock")
            && err
                .message
                .contains("create it next to the spec with `torchkit lock`"),
        "{}",
        err.message
    );
    // Only the spec and .dockerignore loads were solved.
    assert_eq!(seen.solves.len(), 2);
}

/// A read that failed for another reason than a missing file keeps the daemon's own
/// words: Docker 20.10 answered "unknown API capability source.local.differ", and the hint
/// sent users to check the -f path.
#[test]
fn only_a_missing_spec_gets_the_path_hint() {
    let read_error = |message: &str| FrontendError::ReadSpec {
        filename: "sub/torchkit.toml".into(),
        source: BridgeError::Rpc {
            method: "ReadFile",
            status: tonic::Status::unknown(message),
        },
    };
    let missing = read_error("open sub/torchkit.toml: no such file or directory");
    assert!(missing.hint().unwrap().contains("-f path"));
    let caps = read_error("failed to load LLB: unknown API capability source.local.differ");
    assert!(
        caps.hint().is_none_or(|h| !h.contains("-f path")),
        "{:?}",
        caps.hint()
    );
}
