//! Resolver tests: the reference's worked examples (§9) and the edge cases of each rule.

use super::*;
use crate::error::Hint;
use crate::matrix::facts::ReleaseFacts;

fn req(torch: &str) -> Request {
    Request {
        torch: torch.into(),
        ..Request::default()
    }
}

fn with(torch: &str, cuda: &str, driver: Option<&str>, gpus: &[&str]) -> Request {
    Request {
        torch: torch.into(),
        cuda: cuda.parse().unwrap(),
        driver: driver.map(Into::into),
        gpus: gpus.iter().map(|g| g.to_string()).collect(),
        ..Request::default()
    }
}

fn ok(r: &Request) -> Resolution {
    resolve(r).unwrap_or_else(|e| panic!("{e}\nhint: {:?}", e.hint()))
}

fn has(list: &[String], needle: &str) -> bool {
    list.iter().any(|l| l.contains(needle))
}

#[test]
fn plain_release_takes_its_pypi_default() {
    let r = ok(&req("2.8.0"));
    assert_eq!(
        r.image.full(),
        "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
    );
    assert_eq!(r.cuda.as_deref(), Some("12.8"));
    assert_eq!(r.cudnn.as_deref(), Some("9"));
    assert_eq!(r.python, "3.11");
    assert_eq!(r.torchvision, "0.23.0");
    assert_eq!(r.torchaudio, "2.8.0");
    assert_eq!(r.index_url, "https://download.pytorch.org/whl/cu128");
    assert_eq!(r.min_driver.as_deref(), Some("570.26"));
    // Both other variants are listed with a reason.
    assert_eq!(r.rejected.len(), 2);
    assert!(
        r.rejected.iter().all(|x| x.reason.contains("PyPI default")),
        "{:?}",
        r.rejected
    );
    assert!(has(&r.reasons, "no driver given"));
    // Python 3.11 for 2.8 rests on one third-party label.
    assert!(has(&r.warnings, "Python 3.11"));
}

#[test]
fn major_minor_is_refused_naming_its_patches_and_devel_flavor_works() {
    // pip reads torch==2.9 as 2.9.0: a spec that means a patch says which.
    let e = resolve(&req("2.9")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`2.9` is not a torch release: a release has three fields: 2.9's patches are 2.9.0, 2.9.1 (pip reads torch==2.9 as 2.9.0)"
    );
    let mut r = req("2.9.1");
    r.flavor = Flavor::Devel;
    let res = ok(&r);
    assert_eq!(res.image.tag, "2.9.1-cuda12.8-cudnn9-devel");
}

// §9 worked example 1: H200, driver 550.x (C = 12.4).
#[test]
fn h200_driver_550_strict_for_2_6_cu124() {
    let r = ok(&with("2.6.0", "auto", Some("550.54.14"), &["H200"]));
    assert_eq!(r.image.tag, "2.6.0-cuda12.4-cudnn9-runtime");
    assert!(!has(&r.warnings, "minor-version"), "{:?}", r.warnings);
    assert_eq!(r.gpus[0].verdict, Verdict::Native);
    assert_eq!(r.gpus[0].compute_capability, "9.0");
    // cu126 fails strictly but passes through MVC: listed as worse, not chosen.
    let cu126 = r
        .rejected
        .iter()
        .find(|x| x.candidate.starts_with("cuda 12.6"))
        .unwrap();
    assert!(cu126.reason.contains("minor-version"), "{}", cu126.reason);
}

#[test]
fn h200_driver_550_mvc_warning_for_2_8_cu128() {
    let r = ok(&with("2.8.0", "auto", Some("550.54.14"), &["NVIDIA H200"]));
    assert_eq!(r.image.tag, "2.8.0-cuda12.8-cudnn9-runtime");
    assert!(
        has(&r.warnings, "relies on CUDA minor-version compatibility"),
        "{:?}",
        r.warnings
    );
    assert!(has(&r.warnings, "NVIDIA_DISABLE_REQUIRE"));
    assert_eq!(r.gpus[0].verdict, Verdict::Native);
    assert!(has(&r.reasons, "minor-version compatibility"));
}

#[test]
fn h200_driver_550_rejects_cu130() {
    let e = resolve(&with("2.9.0", "13.0", Some("550.54.14"), &["H200"])).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("580.65.06"), "{msg}");
    assert!(msg.contains("forward-compatibility"), "{msg}");
    let hint = e.hint().unwrap();
    assert!(hint.contains("torch 2.9.0 with CUDA 12.8"), "{hint}");
    assert!(
        hint.contains("install NVIDIA driver >= 580.65.06"),
        "{hint}"
    );
    // Auto picks cu128 through MVC and says why cu130 lost.
    let r = ok(&with("2.9.0", "auto", Some("550.54.14"), &["H200"]));
    assert_eq!(r.cuda.as_deref(), Some("12.8"));
    let cu130 = r
        .rejected
        .iter()
        .find(|x| x.candidate.starts_with("cuda 13.0"))
        .unwrap();
    assert!(cu130.reason.contains("580.65.06"));
}

// §9 worked example 2: RTX 5090 (12.0), driver 570.x.
#[test]
fn rtx_5090_needs_cu128_or_newer() {
    let r = ok(&with("2.7.1", "auto", Some("570.124.06"), &["RTX 5090"]));
    assert_eq!(r.image.tag, "2.7.1-cuda12.8-cudnn9-runtime");
    assert_eq!(r.gpus[0].verdict, Verdict::Native);
    for (cu, why) in [("11.8", "unsupported GPU"), ("12.6", "unsupported GPU")] {
        let x = r
            .rejected
            .iter()
            .find(|x| x.candidate.starts_with(&format!("cuda {cu}")))
            .unwrap();
        assert!(x.reason.contains(why), "{cu}: {}", x.reason);
    }
    // Every ≤ cu126 image is unsupported: 2.6.0 has nothing for it, and the unconfirmed
    // 9.0+PTX of 2.6 cu126 is not relied on.
    let e = resolve(&with("2.6.0", "auto", Some("570.124.06"), &["RTX 5090"])).unwrap_err();
    assert!(e.to_string().contains("unconfirmed"), "{e}");
    assert!(e.hint().unwrap().contains("torch 2.11.0"), "{:?}", e.hint());
}

// §9 worked example 3: V100 (7.0).
#[test]
fn v100_coverage_across_releases() {
    let works = |t: &str, c: &str| resolve(&with(t, c, None, &["V100"])).is_ok();
    assert!(!works("2.7.1", "12.8"));
    assert!(works("2.8.0", "12.8"));
    assert!(works("2.8.0", "12.9"));
    assert!(works("2.9.0", "12.8"));
    assert!(works("2.10.0", "12.8"));
    assert!(!works("2.11.0", "12.8"));
    assert!(!works("2.9.0", "13.0"));
    assert!(!works("2.11.0", "13.0"));
    assert!(works("2.11.0", "12.6"));
    assert!(works("2.7.1", "12.6"));
    // Auto on 2.11.0 skips the PyPI default (cu130) and cu128, lands on cu126.
    let r = ok(&with("2.11.0", "auto", None, &["Tesla V100-SXM2-16GB"]));
    assert_eq!(r.cuda.as_deref(), Some("12.6"));
    assert_eq!(r.rejected.len(), 2);
    assert!(r
        .rejected
        .iter()
        .all(|x| x.reason.contains("unsupported GPU")));
}

// §9 worked example 4: GTX 1080 (6.1).
#[test]
fn gtx_1080_runs_the_sm_60_cubin() {
    let r = ok(&with("2.7.1", "11.8", None, &["NVIDIA GeForce GTX 1080"]));
    assert_eq!(r.gpus[0].verdict, Verdict::Native);
    assert!(r.gpus[0].detail.contains("sm_60"), "{}", r.gpus[0].detail);
    for (t, c, good) in [
        ("2.3.1", "12.1", true),
        ("2.6.0", "12.4", true),
        ("2.8.0", "12.6", true),
        ("2.8.0", "12.8", false),
        ("2.8.0", "12.9", false),
        ("2.9.0", "13.0", false),
    ] {
        assert_eq!(
            resolve(&with(t, c, None, &["GTX 1080"])).is_ok(),
            good,
            "{t} cu{c}"
        );
    }
}

// §9 worked example 5: H200, driver 580.159.04 (the project fixture).
#[test]
fn h200_driver_580_fixture() {
    let r = ok(&with(
        "2.11.0",
        "auto",
        Some("580.159.04"),
        &["NVIDIA H200"],
    ));
    assert_eq!(
        r.image.full(),
        "docker.io/pytorch/pytorch:2.11.0-cuda13.0-cudnn9-runtime"
    );
    assert!(!has(&r.warnings, "minor-version"));
    assert!(has(&r.reasons, "strict"));
    // 2.11 cu130's arch list was read from the wheel (no compute_120, as the fixture says):
    // it is confirmed, so no arch warning, and no PTX to JIT for a newer GPU.
    assert!(!has(&r.warnings, "arch list"), "{:?}", r.warnings);
    assert!(r.gpus[0]
        .detail
        .contains("sm_90 cubin in the cu130 arch list"));
    let e = resolve(&with("2.11.0", "13.0", Some("580.159.04"), &["13.0"])).unwrap_err();
    assert!(e.to_string().contains("no PTX"), "{e}");
    let r = ok(&with("2.8.0", "auto", Some("580.159.04"), &["NVIDIA H200"]));
    assert_eq!(r.image.tag, "2.8.0-cuda12.8-cudnn9-runtime");
}

// §9 worked example 6: the impossible request.
#[test]
fn torch_2_8_with_cuda_11_8_is_refused() {
    let e = resolve(&with("2.8.0", "11.8", None, &[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "torch 2.8.0 ships CUDA 12.6, 12.8, 12.9; 2.7.1 is the last release with 11.8"
    );
    let hint = e.hint().unwrap();
    assert!(
        hint.contains("pytorch/pytorch:2.7.1-cuda11.8-cudnn9-runtime"),
        "{hint}"
    );
    assert!(hint.contains("CUDA 12.6"), "{hint}");
    // The same via the cuXYZ spelling.
    assert!(matches!(
        resolve(&with("2.8.0", "cu118", None, &[])),
        Err(ResolveError::CudaNotShipped(_))
    ));
}

#[test]
fn cuda_newer_than_the_release_names_the_first_release_with_it() {
    let e = resolve(&with("2.6.0", "12.8", None, &[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "torch 2.6.0 ships CUDA 11.8, 12.4, 12.6; 2.7.0 is the first release with 12.8"
    );
    let e = resolve(&with("2.8.0", "12.7", None, &[])).unwrap_err();
    assert!(
        e.to_string()
            .contains("no torch release in the matrix ships CUDA 12.7"),
        "{e}"
    );
}

#[test]
fn ptx_jit_verdict_with_strict_driver() {
    // A capability above every cubin major, covered only by 2.9 cu130's confirmed 12.0+PTX.
    let r = ok(&with("2.9.0", "13.0", Some("580.65.06"), &["13.0"]));
    assert_eq!(r.gpus[0].verdict, Verdict::PtxJit);
    assert!(
        r.gpus[0].detail.contains("compute_120"),
        "{}",
        r.gpus[0].detail
    );
    assert!(has(&r.warnings, "PTX JIT"));
    // Under minor-version compatibility the same PTX cannot be used.
    let e = resolve(&with("2.8.0", "12.9", Some("570.124.06"), &["13.0"])).unwrap_err();
    assert!(e.to_string().contains("PTX JIT"), "{e}");
    // Auto prefers native over PTX-JIT: a 12.1 part is native on every Blackwell build.
    let r = ok(&with("2.8.0", "auto", Some("580.65.06"), &["GB10"]));
    assert_eq!(r.gpus[0].verdict, Verdict::Native);
}

#[test]
fn unsupported_gpu_names_a_release_that_works() {
    let e = resolve(&with("2.8.0", "auto", None, &["K80"])).unwrap_err();
    match &e {
        ResolveError::NoCompatibleVariant { rejected, .. } => {
            assert_eq!(rejected.len(), 3);
            assert!(rejected
                .iter()
                .all(|r| r.reason.contains("unsupported GPU")));
        }
        other => panic!("{other:?}"),
    }
    let hint = e.hint().unwrap();
    assert!(hint.contains("torch 2.7.1 with CUDA 11.8"), "{hint}");
    assert!(
        !hint.contains("install NVIDIA driver"),
        "no driver fixes a missing arch: {hint}"
    );
}

#[test]
fn old_driver_names_the_driver_to_install_and_an_older_torch() {
    let e = resolve(&with("2.9.0", "auto", Some("470.82.01"), &["A100"])).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "no CUDA variant of torch 2.9.0 works for driver 470.82.01 and GPU A100 (8.0)"
        ),
        "{msg}"
    );
    assert!(msg.contains("supports CUDA <= 11.4"), "{msg}");
    let hint = e.hint().unwrap();
    assert!(
        hint.contains("install NVIDIA driver >= 560.28.03"),
        "{hint}"
    );
    assert!(hint.contains("525.60.13"), "{hint}");
    assert!(hint.contains("torch 2.7.1 with CUDA 11.8"), "{hint}");
    assert!(hint.contains("minor-version compatibility"), "{hint}");
    // A driver below every floor.
    let e = resolve(&with("2.9.0", "auto", Some("440.33"), &[])).unwrap_err();
    assert!(
        e.to_string().contains("older than every CUDA 11 toolkit"),
        "{e}"
    );
}

#[test]
fn mvc_without_gpus_warns_that_it_needs_cubins() {
    let r = ok(&with("2.8.0", "12.8", Some("535.104.05"), &[]));
    assert!(has(
        &r.warnings,
        "minor-version compatibility only holds for GPUs with a cubin"
    ));
}

#[test]
fn cpu_uses_the_pypi_default_cuda_image_and_says_why() {
    let r = ok(&with("2.8.0", "cpu", Some("470.82.01"), &["K80"]));
    assert_eq!(r.image.tag, "2.8.0-cuda12.8-cudnn9-runtime");
    assert_eq!(r.min_driver, None);
    assert!(r.gpus.is_empty());
    assert!(has(&r.reasons, "cuda = cpu"));
    assert!(has(&r.warnings, "not checked"));
}

#[test]
fn unknown_torch_names_nearest_known() {
    match resolve(&req("2.8.1")).unwrap_err() {
        ResolveError::UnknownTorch { nearest, .. } => {
            assert_eq!(nearest, ["2.7.1", "2.8.0", "2.9.0"])
        }
        other => panic!("{other:?}"),
    }
    let e = resolve(&req("2.12.2")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown torch 2.12.2; the nearest known releases are 2.12.0, 2.12.1, 2.13.0"
    );
    assert_eq!(
        e.hint().unwrap(),
        "the matrix (facts gathered 2026-12-03) covers torch 1.13.0 to 2.15.0; pick one of those"
    );
    assert!(matches!(
        resolve(&req("2.8.0+cu128")),
        Err(ResolveError::InvalidTorch { .. })
    ));
}

#[test]
fn torch_newer_than_the_matrix_names_the_newest_release_and_the_date() {
    for newer in ["2.15.1", "2.16.0", "3.0.0"] {
        let e = resolve(&req(newer)).unwrap_err();
        assert!(
            matches!(&e, ResolveError::UnknownTorch { newer: true, .. }),
            "{newer}: {e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("torch {newer} is newer than this torchkit's matrix: its newest release is 2.15.0 (facts gathered 2026-12-03)")
        );
        assert_eq!(
            e.hint().unwrap(),
            "look the release up with --online (or `online = true` under [torch]), upgrade torchkit for a matrix gathered after 2026-12-03, or use torch 2.15.0, the newest release this one knows"
        );
    }
    // A gap below the newest release is not "newer".
    assert!(matches!(
        resolve(&req("2.14.2")),
        Err(ResolveError::UnknownTorch { newer: false, .. })
    ));
}

#[test]
fn torch_strings_that_are_not_releases_name_the_accepted_form() {
    const FORM: &str = "MAJOR.MINOR.PATCH (e.g. 2.15.0)";
    for (input, why) in [
        ("latest", format!("expected {FORM}")),
        (
            "2.15",
            "a release has three fields: 2.15's patches are 2.15.0 (pip reads torch==2.15 as 2.15.0)".into(),
        ),
        ("2.16", format!("expected {FORM}")),
        ("2", format!("expected {FORM}")),
        ("2.15.0.1", format!("expected {FORM}")),
        ("v2.15.0", format!("expected {FORM}")),
        (
            "2.15.0a0",
            "pre-releases and development builds are not in the matrix (the final release is 2.15.0)".into(),
        ),
        (
            "2.15.0rc1",
            "pre-releases and development builds are not in the matrix (the final release is 2.15.0)".into(),
        ),
        (
            "2.16.0.dev20261201",
            "pre-releases and development builds are not in the matrix (the final release is 2.16.0)".into(),
        ),
        (
            "2.15.0+cu132",
            "drop the local suffix `+cu132` (use 2.15.0 and request the CUDA variant separately)".into(),
        ),
    ] {
        let e = resolve(&req(input)).unwrap_err();
        assert!(
            matches!(e, ResolveError::InvalidTorch { .. }),
            "{input}: {e:?}"
        );
        assert_eq!(e.to_string(), format!("`{input}` is not a torch release: {why}"));
        assert_eq!(
            e.hint().unwrap(),
            format!("give a torch release as {FORM}; the newest this torchkit knows is 2.15.0 (matrix gathered 2026-12-03); choose CUDA separately")
        );
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    // The spellings of a CUDA request are the vocabulary's (src/vocab.rs); a variant built
    // by hand that is not MAJOR.MINOR is still refused here.
    assert!(matches!(
        resolve(&Request {
            cuda: CudaRequest::Version("twelve".into()),
            ..req("2.8.0")
        }),
        Err(ResolveError::InvalidCuda { .. })
    ));
    assert!(matches!(
        resolve(&with("2.8.0", "auto", Some("latest"), &[])),
        Err(ResolveError::InvalidDriver { .. })
    ));
    match resolve(&with("2.8.0", "auto", None, &["H1000"])).unwrap_err() {
        ResolveError::UnknownGpu { nearest, .. } => assert!(nearest.contains(&"H100".to_string())),
        other => panic!("{other:?}"),
    }
}

#[test]
fn companion_overrides_are_explained() {
    let mut r = req("2.8.0");
    r.torchvision = Some("0.23.1".into());
    let res = ok(&r);
    assert_eq!(res.torchvision, "0.23.1");
    assert!(has(&res.warnings, "torchvision 0.23.1 differs from 0.23.0"));
    // Inferred pairings are flagged.
    assert!(has(
        &ok(&req("2.7.1")).warnings,
        "torchvision 0.22.1 for torch 2.7.1 is inferred"
    ));
}

#[test]
fn weakly_evidenced_tags_warn() {
    let r = ok(&with("2.0.1", "11.8", None, &[]));
    assert!(has(&r.warnings, "weak evidence"), "{:?}", r.warnings);
    let r = ok(&with("1.13.1", "11.6", None, &[]));
    assert!(
        has(&r.warnings, "1.13.0"),
        "known defect is surfaced: {:?}",
        r.warnings
    );
}

/// Every tag the resolver can produce, over every release, variant, flavor and a spread of
/// targets, is a tag the matrix lists as existing.
#[test]
fn every_resolvable_tag_is_listed() {
    let m = matrix::matrix();
    let drivers = [
        None,
        Some("450.80.02"),
        Some("550.54.14"),
        Some("595.71.05"),
    ];
    let gpus: [&[&str]; 5] = [&[], &["K80"], &["V100"], &["H100"], &["RTX 5090", "A100"]];
    let mut produced = 0;
    for p in m.all_patches() {
        for cuda in ["auto", "cpu", "11.8", "12.6", "12.8", "13.0"] {
            for d in drivers {
                for g in gpus {
                    for flavor in [Flavor::Runtime, Flavor::Devel] {
                        let mut r = with(p.as_str(), cuda, d, g);
                        r.flavor = flavor;
                        if let Ok(res) = resolve(&r) {
                            produced += 1;
                            assert_eq!(res.image.registry, "docker.io");
                            assert_eq!(res.image.repository, "pytorch/pytorch");
                            assert!(
                                m.image(&res.image.tag).is_some(),
                                "{} not listed",
                                res.image.tag
                            );
                            assert!(m.absent(&res.image.tag).is_none());
                        }
                    }
                }
            }
        }
    }
    assert!(produced > 500, "only {produced} resolutions");
}

/// Facts as `--online` finds them for an unseen torch 2.16.0: PyPI pins `pin`, the
/// registry has `tags`.
fn online_facts(pin: Option<&str>, tags: &[&str]) -> ReleaseFacts {
    let torch = Version::parse("2.16.0").unwrap();
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    ReleaseFacts {
        tags: crate::matrix::facts::image_tags(&torch, &tags),
        torch,
        looked_up: vec!["http://pypi.test/pypi/torch/2.16.0/json".into()],
        uploaded: Some("2027-01-20".into()),
        requires_python: Some(">=3.11".into()),
        pypi_default_cuda: pin.map(|p| Version::parse(p).unwrap()),
        torchvision: Some("0.30.0".into()),
        torchaudio: None,
        variants: Vec::new(),
    }
}

const ONLINE_TAGS: [&str; 3] = [
    "2.16.0-cuda13.2-cudnn9-runtime",
    "2.16.0-cuda13.2-cudnn9-devel",
    "2.16.0-cuda13.6-cudnn9-runtime",
];

#[test]
fn online_lookup_only_for_a_newer_full_release_when_allowed() {
    let mut r = req("2.16.0");
    let e = resolve(&r).unwrap_err();
    assert_eq!(online_lookup(&r, &e), None, "not allowed without online");
    r.online = true;
    assert_eq!(
        online_lookup(&r, &e),
        Some(Version::parse("2.16.0").unwrap())
    );
    // A gap inside the matrix or MAJOR.MINOR is not looked up.
    for t in ["2.14.2", "2.16"] {
        let r = Request {
            online: true,
            ..req(t)
        };
        let e = resolve(&r).unwrap_err();
        assert_eq!(online_lookup(&r, &e), None, "{t}");
    }
}

#[test]
fn online_release_on_an_h200_with_driver_580_takes_the_known_toolkit() {
    // PyPI pins 13.2 (a toolkit the matrix knows); the registry also has a 13.6 tag.
    let facts = online_facts(Some("13.2"), &ONLINE_TAGS);
    let r = with("2.16.0", "auto", Some("580.159.04"), &["H200"]);
    let res = resolve_online(&r, &facts).unwrap();
    assert_eq!(
        res.image.full(),
        "docker.io/pytorch/pytorch:2.16.0-cuda13.2-cudnn9-runtime"
    );
    assert_eq!(res.torch, "2.16.0");
    assert_eq!(res.torchvision, "0.30.0");
    assert!(has(&res.reasons, "torch 2.16.0 is newer than the matrix (gathered 2026-12-03): looked up online (http://pypi.test/pypi/torch/2.16.0/json)"));
    assert!(has(&res.reasons, "its PyPI wheel pins CUDA 13.2"));
    // What was assumed is said first: the cu132 arch list is 2.15's, not read.
    assert!(res.warnings[0].starts_with("torch 2.16.0 is not in this torchkit's matrix (gathered 2026-12-03): the tag 2.16.0-cuda13.2-cudnn9-runtime exists, but these facts were not checked: the cu132 arch list"), "{:?}", res.warnings);
    assert!(res.warnings[0].contains("torchkit matrix refresh"));
    assert!(
        !res.warnings[0].contains("driver floor"),
        "13.2's floor is known"
    );
    // Hopper has native kernels in 2.15's cu132 list.
    assert_eq!(res.gpus[0].verdict, Verdict::Native);
    assert!(
        has(&res.warnings, "torchaudio"),
        "torchaudio was not found: assumed"
    );
}

#[test]
fn online_release_with_an_unknown_toolkit_warns_that_its_floor_was_assumed() {
    let facts = online_facts(Some("13.6"), &ONLINE_TAGS);
    let res = resolve_online(&req_online("2.16.0"), &facts).unwrap();
    assert_eq!(res.image.tag, "2.16.0-cuda13.6-cudnn9-runtime");
    assert!(
        res.warnings[0]
            .contains("the driver floor of CUDA 13.6: floor assumed from CUDA 13.3.1; not checked"),
        "{:?}",
        res.warnings
    );
    // A 570-series driver is below every 13.x floor and the 13.x MVC floor (580).
    let r = with("2.16.0", "auto", Some("570.195.03"), &[]);
    let e = resolve_online(&r, &facts).unwrap_err();
    assert!(matches!(e, ResolveError::NoCompatibleVariant { .. }), "{e}");
}

fn req_online(torch: &str) -> Request {
    Request {
        online: true,
        ..req(torch)
    }
}

#[test]
fn online_release_refuses_volta_and_pascal_as_2_15_does() {
    let facts = online_facts(Some("13.2"), &ONLINE_TAGS);
    for gpu in ["7.0", "6.1"] {
        let r = with("2.16.0", "auto", Some("580.159.04"), &[gpu]);
        let e = resolve_online(&r, &facts).unwrap_err();
        assert!(
            matches!(e, ResolveError::NoCompatibleVariant { .. }),
            "{gpu}: {e}"
        );
        assert!(e.to_string().contains("unsupported GPU"), "{e}");
    }
}

#[test]
fn online_release_with_a_cuda_it_lacks_or_no_tag_is_refused_with_a_hint() {
    let facts = online_facts(Some("13.2"), &ONLINE_TAGS);
    let r = with("2.16.0", "12.6", None, &[]);
    let e = resolve_online(&r, &facts).unwrap_err();
    assert!(matches!(e, ResolveError::CudaNotShipped(_)), "{e}");
    let e = resolve_online(&req_online("2.16.0"), &online_facts(Some("13.2"), &[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "torch 2.16.0 looked up online: the registry has no pytorch/pytorch CUDA tag for it"
    );
    assert!(e
        .hint()
        .unwrap()
        .contains("some days after the PyPI release"));
    // The frontend reads no PyPI default: the newest release's (13.2) comes first, and
    // the answer says the default was not read.
    let mut f = online_facts(None, &ONLINE_TAGS);
    f.uploaded = None;
    let res = resolve_online(&req_online("2.16.0"), &f).unwrap();
    assert_eq!(res.image.tag, "2.16.0-cuda13.2-cudnn9-runtime");
    assert!(
        res.warnings[0].contains("the PyPI default CUDA"),
        "{:?}",
        res.warnings
    );
    assert!(has(&res.reasons, "its PyPI default CUDA was not read"));
}
