//! torch 2.12.0 to 2.15.0 through the resolver, one table row per release: the default choice
//! on the project's H200 with driver 580.159.04 (`tests/fixtures/gpu/h200-driver-580/`), on a
//! 570-series driver, on a Volta (7.0) and a Pascal (6.1) GPU, and one impossible pair with its
//! hint. The expected values are the facts of torch-releases.md (matrix sources S27-S39), written
//! out here rather than read back from the matrix, so a wrong transcription fails.

use torchkit::error::Hint;
use torchkit::matrix::Version;
use torchkit::probe::parse_query_gpu;
use torchkit::resolve::{resolve, Request, Resolution, ResolveError, Verdict};
use torchkit::vocab::Flavor;

/// One release and what the sources say about it.
struct Release {
    torch: &'static str,
    torchvision: &'static str,
    torchaudio: &'static str,
    /// CUDA variants, as the "ships CUDA …" message lists them.
    ships: &'static str,
    /// Still ships cu126, the one path left for Maxwell, Pascal and Volta.
    cu126: bool,
    /// An impossible CUDA request, the error it gets and the lines of its hint.
    impossible: (&'static str, &'static str, &'static [&'static str]),
}

const RELEASES: &[Release] = &[
    Release {
        torch: "2.12.0",
        torchvision: "0.27.0",
        torchaudio: "2.11.0",
        ships: "12.6, 13.0, 13.2",
        cu126: true,
        impossible: (
            "12.8",
            "torch 2.12.0 ships CUDA 12.6, 13.0, 13.2; 2.11.0 is the last release with 12.8",
            &[
                "use torch 2.11.0 with CUDA 12.8 (pytorch/pytorch:2.11.0-cuda12.8-cudnn9-runtime)",
                "or keep torch 2.12.0 with CUDA 12.6, the shipped CUDA nearest to it (or let CUDA be auto)",
            ],
        ),
    },
    Release {
        torch: "2.12.1",
        torchvision: "0.27.1",
        torchaudio: "2.11.0",
        ships: "12.6, 13.0, 13.2",
        cu126: true,
        impossible: (
            "cu129",
            "torch 2.12.1 ships CUDA 12.6, 13.0, 13.2; 2.8.0 is the last release with 12.9",
            &[
                "use torch 2.8.0 with CUDA 12.9 (pytorch/pytorch:2.8.0-cuda12.9-cudnn9-runtime)",
                "or keep torch 2.12.1 with CUDA 12.6, the shipped CUDA nearest to it (or let CUDA be auto)",
            ],
        ),
    },
    Release {
        torch: "2.13.0",
        torchvision: "0.28.0",
        torchaudio: "2.11.0",
        ships: "12.6, 13.0, 13.2",
        cu126: true,
        impossible: (
            "11.8",
            "torch 2.13.0 ships CUDA 12.6, 13.0, 13.2; 2.7.1 is the last release with 11.8",
            &[
                "use torch 2.7.1 with CUDA 11.8 (pytorch/pytorch:2.7.1-cuda11.8-cudnn9-runtime)",
                "or keep torch 2.13.0 with CUDA 12.6, the lowest CUDA it ships (or let CUDA be auto)",
            ],
        ),
    },
    Release {
        // cu134 was built on release/2.14 and pulled before the release.
        torch: "2.14.0",
        torchvision: "0.29.0",
        torchaudio: "2.11.0",
        ships: "12.6, 13.0, 13.2",
        cu126: true,
        impossible: (
            "13.4",
            "torch 2.14.0 ships CUDA 12.6, 13.0, 13.2; no torch release in the matrix ships CUDA 13.4",
            &["or keep torch 2.14.0 with CUDA 13.2, the newest CUDA it ships (or let CUDA be auto)"],
        ),
    },
    Release {
        torch: "2.14.1",
        torchvision: "0.29.1",
        torchaudio: "2.11.0",
        ships: "12.6, 13.0, 13.2",
        cu126: true,
        impossible: (
            "12.8",
            "torch 2.14.1 ships CUDA 12.6, 13.0, 13.2; 2.11.0 is the last release with 12.8",
            &[
                "use torch 2.11.0 with CUDA 12.8 (pytorch/pytorch:2.11.0-cuda12.8-cudnn9-runtime)",
                "or keep torch 2.14.1 with CUDA 12.6, the shipped CUDA nearest to it (or let CUDA be auto)",
            ],
        ),
    },
    Release {
        // cu126 dropped: no Maxwell, Pascal or Volta; PyPI default cu132.
        torch: "2.15.0",
        torchvision: "0.29.2",
        torchaudio: "2.11.1",
        ships: "13.0, 13.2",
        cu126: false,
        impossible: (
            "12.6",
            "torch 2.15.0 ships CUDA 13.0, 13.2; 2.14.1 is the last release with 12.6",
            &[
                "use torch 2.14.1 with CUDA 12.6 (pytorch/pytorch:2.14.1-cuda12.6-cudnn9-runtime)",
                "or keep torch 2.15.0 with CUDA 13.0, the lowest CUDA it ships (or let CUDA be auto)",
            ],
        ),
    },
];

/// The driver and GPU of the project's H200 host, as `nvidia-smi --query-gpu` printed them.
fn h200_host() -> (String, String, String) {
    let csv = include_str!("fixtures/gpu/h200-driver-580/query-csv.txt");
    let row = parse_query_gpu(csv, &[]).unwrap().remove(0);
    (
        row.driver_version.unwrap(),
        row.name.unwrap(),
        row.compute_cap.unwrap(),
    )
}

fn request(torch: &str, cuda: &str, driver: Option<&str>, gpus: &[&str]) -> Request {
    Request {
        torch: torch.into(),
        cuda: cuda.parse().unwrap(),
        driver: driver.map(Into::into),
        gpus: gpus.iter().map(|g| g.to_string()).collect(),
        ..Request::default()
    }
}

fn ok(r: &Request) -> Resolution {
    resolve(r).unwrap_or_else(|e| panic!("{}: {e}\nhint: {:?}", r.torch, e.hint()))
}

fn has(list: &[String], needle: &str) -> bool {
    list.iter().any(|l| l.contains(needle))
}

fn rejected<'r>(r: &'r Resolution, cuda: &str) -> &'r str {
    &r.rejected
        .iter()
        .find(|x| x.candidate.starts_with(&format!("cuda {cuda} ")))
        .unwrap_or_else(|| panic!("{}: no rejected cuda {cuda}: {:?}", r.torch, r.rejected))
        .reason
}

#[test]
fn fixture_is_the_h200_with_driver_580() {
    assert_eq!(
        h200_host(),
        ("580.159.04".into(), "NVIDIA H200".into(), "9.0".into())
    );
}

#[test]
fn h200_with_driver_580_takes_cu130_strictly() {
    let (driver, name, cc) = h200_host();
    for rel in RELEASES {
        let t = rel.torch;
        for gpu in [name.as_str(), cc.as_str()] {
            let r = ok(&request(t, "auto", Some(&driver), &[gpu]));
            assert_eq!(
                r.image.full(),
                format!("docker.io/pytorch/pytorch:{t}-cuda13.0-cudnn9-runtime"),
                "{t} on {gpu}"
            );
            assert_eq!(r.cuda.as_deref(), Some("13.0"));
            assert_eq!(r.min_driver.as_deref(), Some("580.65.06"), "{t}");
            assert_eq!(r.index_url, "https://download.pytorch.org/whl/cu130");
            assert_eq!(r.gpus[0].verdict, Verdict::Native, "{t}");
            assert!(
                r.gpus[0]
                    .detail
                    .contains("sm_90 cubin in the cu130 arch list"),
                "{t}: {}",
                r.gpus[0].detail
            );
            assert!(has(&r.reasons, "(strict)"), "{t}: {:?}", r.reasons);
            assert!(!has(&r.warnings, "minor-version"), "{t}: {:?}", r.warnings);
            // cu132 needs the 595.45.04 floor; on 580 it only runs through minor-version
            // compatibility, which loses to a strict variant.
            let cu132 = rejected(&r, "13.2");
            assert!(
                cu132.contains("works, but relies on minor-version compatibility"),
                "{t}: {cu132}"
            );
        }
        let mut devel = request(t, "auto", Some(&driver), &[&name]);
        devel.flavor = Flavor::Devel;
        assert_eq!(ok(&devel).image.tag, format!("{t}-cuda13.0-cudnn9-devel"));
    }
}

#[test]
fn h200_with_driver_580_on_2_15_says_cu132_is_pypis_default_and_what_is_unverified() {
    let (driver, _, cc) = h200_host();
    let r = ok(&request("2.15.0", "auto", Some(&driver), &[&cc]));
    assert!(
        has(&r.reasons, "candidates in order 13.2, 13.0"),
        "{:?}",
        r.reasons
    );
    assert!(has(&r.reasons, "it is the preferred variant that passes"));
    // No public reference to any 2.15.0 tag, and the 2.15 cu130 wheel was not read.
    assert!(has(
        &r.warnings,
        "2.15.0-cuda13.0-cudnn9-runtime rests on weak evidence"
    ));
    assert!(has(
        &r.warnings,
        "the cu130 arch list of torch 2.15 is not confirmed"
    ));
    // 2.12 to 2.14.1 tags are referenced by third parties: no weak-evidence warning.
    let r = ok(&request("2.14.1", "auto", Some(&driver), &[&cc]));
    assert!(!has(&r.warnings, "weak evidence"), "{:?}", r.warnings);
    assert!(!has(&r.warnings, "arch list"), "{:?}", r.warnings);
}

#[test]
fn driver_570_takes_cu126_until_2_15_drops_it() {
    for driver in ["570.124.06", "570.26"] {
        for rel in RELEASES {
            let t = rel.torch;
            let req = request(t, "auto", Some(driver), &["H200"]);
            if rel.cu126 {
                let r = ok(&req);
                assert_eq!(r.image.tag, format!("{t}-cuda12.6-cudnn9-runtime"), "{t}");
                assert_eq!(r.min_driver.as_deref(), Some("560.28.03"));
                assert!(!has(&r.warnings, "minor-version"), "{t}: {:?}", r.warnings);
                let cu130 = rejected(&r, "13.0");
                assert!(cu130.contains("needs driver >= 580.65.06"), "{t}: {cu130}");
                assert!(cu130.contains("forward-compatibility"), "{t}: {cu130}");
                let cu132 = rejected(&r, "13.2");
                assert!(
                    cu132.contains(
                        "needs driver >= 595.45.04 (CUDA 13.2 toolkit floor [S1]), or >= 580.65.06 for CUDA 13.x minor-version compatibility"
                    ),
                    "{t}: {cu132}"
                );
                continue;
            }
            let e = resolve(&req).unwrap_err();
            assert!(
                e.to_string().starts_with(&format!(
                    "no CUDA variant of torch {t} works for driver {driver} and GPU H200 (9.0):"
                )),
                "{e}"
            );
            let hint = e.hint().unwrap();
            assert_eq!(
                hint,
                format!(
                    "install NVIDIA driver >= 580.65.06 (the CUDA 13.0 floor) to run torch {t} (pytorch/pytorch:{t}-cuda13.0-cudnn9-runtime)\n\
                     or use torch 2.14.1 with CUDA 12.6 (pytorch/pytorch:2.14.1-cuda12.6-cudnn9-runtime), the newest release that works with driver {driver} and GPU H200 (9.0)"
                )
            );
        }
    }
}

#[test]
fn volta_and_pascal_have_cu126_until_2_15() {
    for (gpu, cubin) in [
        ("7.0", "sm_70 cubin in the cu126 arch list"),
        ("Tesla V100-SXM2-16GB", "sm_70 cubin in the cu126 arch list"),
        (
            "6.1",
            "sm_60 cubin in the cu126 arch list runs on 6.1 (same major, higher minor)",
        ),
        (
            "NVIDIA GeForce GTX 1080",
            "sm_60 cubin in the cu126 arch list runs on 6.1",
        ),
    ] {
        for rel in RELEASES {
            let t = rel.torch;
            let req = request(t, "auto", Some("580.159.04"), &[gpu]);
            if rel.cu126 {
                let r = ok(&req);
                assert_eq!(
                    r.image.tag,
                    format!("{t}-cuda12.6-cudnn9-runtime"),
                    "{t} {gpu}"
                );
                assert_eq!(r.gpus[0].verdict, Verdict::Native);
                assert!(r.gpus[0].detail.contains(cubin), "{}", r.gpus[0].detail);
                for cuda in ["13.0", "13.2"] {
                    assert!(rejected(&r, cuda).contains("unsupported GPU"), "{t} {gpu}");
                }
                // Asking for a CUDA 13 variant is refused with the cu126 fix.
                let e = resolve(&request(t, "13.0", None, &[gpu])).unwrap_err();
                assert!(
                    e.hint()
                        .unwrap()
                        .contains(&format!("torch {t} with CUDA 12.6 works here")),
                    "{t} {gpu}: {:?}",
                    e.hint()
                );
                continue;
            }
            let e = resolve(&req).unwrap_err();
            match &e {
                ResolveError::NoCompatibleVariant { rejected, .. } => {
                    assert_eq!(rejected.len(), 2, "{rejected:?}");
                    assert!(rejected
                        .iter()
                        .all(|r| r.reason.contains("unsupported GPU")));
                }
                other => panic!("{t} {gpu}: {other:?}"),
            }
            let hint = e.hint().unwrap();
            assert!(
                hint.starts_with(
                    "use torch 2.14.1 with CUDA 12.6 (pytorch/pytorch:2.14.1-cuda12.6-cudnn9-runtime), the newest release that works with driver 580.159.04 and GPU"
                ),
                "{t} {gpu}: {hint}"
            );
            assert!(
                !hint.contains("install NVIDIA driver"),
                "no driver brings back an arch: {hint}"
            );
        }
    }
}

#[test]
fn impossible_pairs_name_where_the_cuda_is() {
    for rel in RELEASES {
        let (cuda, message, hint) = rel.impossible;
        let e = resolve(&request(rel.torch, cuda, None, &[])).unwrap_err();
        assert!(matches!(e, ResolveError::CudaNotShipped(_)), "{e:?}");
        assert_eq!(e.to_string(), message);
        assert!(message.contains(&format!("ships CUDA {}; ", rel.ships)));
        assert_eq!(e.hint().unwrap(), hint.join("\n"), "{}", rel.torch);
    }
}

/// What each companion's wheel declares about torch (Requires-Dist, [S28]): an exact pin up to
/// torchvision 0.29.0, a floor from 0.29.1, none for torchaudio 2.11.0, a floor for 2.11.1.
fn requires_torch(package: &str, version: &str) -> Option<(&'static str, &'static str)> {
    match (package, version) {
        ("torchvision", "0.27.0") => Some(("==", "2.12.0")),
        ("torchvision", "0.27.1") => Some(("==", "2.12.1")),
        ("torchvision", "0.28.0") => Some(("==", "2.13.0")),
        ("torchvision", "0.29.0") => Some(("==", "2.14.0")),
        ("torchvision", "0.29.1") | ("torchvision", "0.29.2") => Some((">=", "2.14.0")),
        ("torchaudio", "2.11.0") => None,
        ("torchaudio", "2.11.1") => Some((">=", "2.11")),
        other => panic!("no Requires-Dist transcribed for {other:?}"),
    }
}

#[test]
fn companions_are_installable_pins_and_say_why() {
    let v = |s: &str| Version::parse(s).unwrap();
    for rel in RELEASES {
        let t = rel.torch;
        let r = ok(&request(t, "auto", None, &[]));
        assert_eq!(
            (r.torchvision.as_str(), r.torchaudio.as_str()),
            (rel.torchvision, rel.torchaudio),
            "{t}"
        );
        // The build pins torch, torchvision and torchaudio together in pip constraints: each
        // companion's own torch requirement must admit this torch.
        for (pkg, ver) in [
            ("torchvision", &r.torchvision),
            ("torchaudio", &r.torchaudio),
        ] {
            match requires_torch(pkg, ver) {
                Some(("==", want)) => assert_eq!(v(t), v(want), "{pkg} {ver} pins torch"),
                Some((_, floor)) => assert!(v(t) >= v(floor), "{pkg} {ver} needs torch>={floor}"),
                None => {}
            }
        }
        // torchaudio no longer follows torch: the reason says so instead of citing a pairing.
        let audio = r
            .reasons
            .iter()
            .find(|x| {
                x.starts_with(&format!(
                    "torchaudio {} pairs with torch {t}",
                    rel.torchaudio
                ))
            })
            .unwrap_or_else(|| panic!("{t}: {:?}", r.reasons));
        let why = if t == "2.15.0" {
            "works with every future torch release"
        } else {
            "there is no torchaudio"
        };
        assert!(audio.contains(why), "{audio}");
        assert!(!audio.contains("[S12]"), "{audio}");
        assert!(!has(&r.warnings, "is inferred"), "{t}: {:?}", r.warnings);
    }
    let r = ok(&request("2.14.1", "auto", None, &[]));
    assert!(has(
        &r.reasons,
        "torchvision 0.29.1 pairs with torch 2.14.1: torchvision 0.29.1 requires torch>=2.14.0"
    ));
}

#[test]
fn pypi_defaults_and_pythons() {
    // `pip install torch==X` on Linux: cu130 from 2.11.0, cu132 from 2.15.0 [S28][S29].
    for (t, cuda) in [
        ("2.11.0", "13.0"),
        ("2.12.0", "13.0"),
        ("2.12.1", "13.0"),
        ("2.13.0", "13.0"),
        ("2.14.0", "13.0"),
        ("2.14.1", "13.0"),
        ("2.15.0", "13.2"),
    ] {
        let r = ok(&request(t, "auto", None, &[]));
        assert_eq!(r.cuda.as_deref(), Some(cuda), "{t}");
        assert!(
            has(
                &r.reasons,
                &format!("it is torch {}'s PyPI default", &t[..t.rfind('.').unwrap()])
            ),
            "{t}: {:?}",
            r.reasons
        );
        // The image Python is an assumption for these releases, and the resolver says so.
        assert!(has(&r.warnings, "Python 3.11 in the torch"), "{t}");
    }
    let r = ok(&request("2.15.0", "cpu", None, &[]));
    assert_eq!(r.image.tag, "2.15.0-cuda13.2-cudnn9-runtime");
    // 2.15.0's cu132 cuDNN comes from the wheel's pin.
    assert!(has(
        &r.reasons,
        "cuDNN 9.26.0.51 in the cu132 wheels of torch 2.15"
    ));
}
