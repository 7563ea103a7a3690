//! `torchkit matrix show` end to end: the built binary prints what the compiled-in matrix
//! says (src/matrix/matrix.toml), on stdout, as text and as JSON.

mod support;
use support::TestCommand;

/// `torchkit matrix show ARGS`.
fn show(args: &[&str]) -> TestCommand {
    let mut c = TestCommand::new();
    c.args(["matrix", "show"]).args(args);
    c
}

/// The line of `text` that starts with `start`.
fn line<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?}:\n{text}"))
}

#[test]
fn overview_has_the_date_every_release_toolkit_floors_and_sources() {
    let s = show(&[]).stdout();
    assert!(
        s.starts_with("matrix gathered 2026-12-03; torch 1.13.0 to 2.15.0\n"),
        "{s}"
    );
    // 2.15.0: CUDA 13.0 and 13.2, PyPI default 13.2 (marked *), Python from 3.11.
    let r215 = line(&s, "2.15 ");
    assert!(r215.contains("2.15.0"), "{r215}");
    assert!(r215.contains("13.0, 13.2*"), "{r215}");
    assert!(r215.contains("3.11-3.15"), "{r215}");
    assert!(r215.contains("0.29.2") && r215.contains("2.11.1"), "{r215}");
    let r214 = line(&s, "2.14 ");
    assert!(r214.contains("2.14.0, 2.14.1"), "{r214}");
    assert!(r214.contains("12.6, 13.0*, 13.2"), "{r214}");
    assert!(r214.contains("0.29.0, 0.29.1"), "{r214}");
    // Every release, oldest first.
    let first = s.find("\n1.13 ").expect("1.13 listed");
    assert!(first < s.find("\n2.15 ").unwrap());
    // Toolkits with their Table 3 floors and sources.
    let cu132 = line(&s, "13.2.0 ");
    assert!(
        cu132.contains("595.45.04") && cu132.contains("[S1][S35]"),
        "{cu132}"
    );
    assert!(line(&s, "12.8.0 ").contains("570.26"));
    // The sources, expanded.
    assert!(line(&s, "S1 ").contains("NVIDIA CUDA Toolkit Release Notes"));
    assert!(
        s.contains("\n      https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/\n"),
        "{s}"
    );
    assert!(line(&s, "S39 ").contains("Yggdrasil"));
}

#[test]
fn columns_are_aligned() {
    let s = show(&[]).stdout();
    let header = line(&s, "TORCH ");
    let col = header.find("CUDA").unwrap();
    for r in ["1.13 ", "2.9 ", "2.15 "] {
        let l = line(&s, r);
        let cell = &l[col..];
        assert!(
            cell.starts_with(|c: char| c.is_ascii_digit()),
            "CUDA column of {r:?} starts at {col}: {l}\n{header}"
        );
        assert_eq!(&l[col - 1..col], " ", "{l}");
    }
}

#[test]
fn one_release_in_full() {
    let s = show(&["--torch", "2.14.1"]).stdout();
    assert!(s.starts_with("torch 2.14 (requested 2.14.1)"), "{s}");
    assert!(s.contains("matrix gathered 2026-12-03"), "{s}");
    // Companions of 2.14.1, and the note on torchvision's decoupling.
    let c = line(&s, "2.14.1 ");
    assert!(c.contains("0.29.1") && c.contains("2.11.0"), "{c}");
    assert!(
        s.contains("torchvision 0.29.1 requires torch>=2.14.0"),
        "{s}"
    );
    // cu126: the one path left for Maxwell (5.0), Pascal and Volta; its toolkit's floor.
    let cu126 = line(&s, "cu126 ");
    assert!(cu126.contains("9.10.2.21"), "{cu126}");
    assert!(cu126.contains("5.0;6.0;7.0;7.5;8.0;8.6;9.0"), "{cu126}");
    assert!(cu126.contains(">= 560.28.03"), "{cu126}");
    let cu130 = line(&s, "cu130* ");
    assert!(
        cu130.contains("9.24.0.43") && cu130.contains(">= 580.65.06"),
        "{cu130}"
    );
    // Tags with their evidence, absent tags, cited sources expanded.
    assert!(
        s.contains("pytorch/pytorch:2.14.1-cuda12.6-cudnn9-runtime"),
        "{s}"
    );
    assert!(line(&s, "pytorch/pytorch:2.14.0-cuda13.2-cudnn9-runtime").ends_with("expected"));
    assert!(
        s.contains("2.14.0-cuda13.4-cudnn9-devel: cu134 was built"),
        "{s}"
    );
    assert!(line(&s, "S29 ").contains("torch.cuda.get_arch_list()"));
    assert!(
        s.contains("\n      https://pypi.org/project/torch/#files\n"),
        "{s}"
    );
    assert!(
        s.contains("? Python 3.11 inside the images is not observed"),
        "{s}"
    );

    // MAJOR.MINOR reads as the newest patch, as in `torchkit resolve`.
    let minor = show(&["--torch", "2.14"]).stdout();
    assert!(
        minor.starts_with("torch 2.14 (requested 2.14.1)"),
        "{minor}"
    );
}

#[test]
fn uncertain_facts_stay_marked() {
    let s = show(&["--torch", "2.15"]).stdout();
    assert!(
        line(&s, "cu130 ").contains("7.5;8.0;8.6;9.0;10.0;12.0?"),
        "{s}"
    );
    assert!(line(&s, "cu132* ").contains("9.26.0.51"), "{s}");
    assert!(line(&s, "pytorch/pytorch:2.15.0-cuda13.2-cudnn9-devel").ends_with("uncertain"));
    assert!(s.contains("? the cu130 arch list is not confirmed"), "{s}");
}

#[test]
fn json_has_the_matrix_releases() {
    let m = torchkit::matrix::matrix();
    let v = show(&["--json"]).assert_ok().json();
    assert_eq!(v["matrix"]["gathered"], m.gathered.as_str());
    assert_eq!(v["matrix"]["newest"], "2.15.0");
    let releases: Vec<&str> = v["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = m.torch.iter().map(|t| t.version.as_str()).collect();
    want.sort_by_key(|s| torchkit::matrix::Version::parse(s).unwrap());
    assert_eq!(releases, want);
    let r215 = v["releases"].as_array().unwrap().last().unwrap();
    assert_eq!(r215["cuda_variants"], serde_json::json!(["13.0", "13.2"]));
    assert_eq!(r215["pypi_default_cuda"], "13.2");
    assert_eq!(v["cuda"].as_array().unwrap().len(), m.cuda.len());
    assert_eq!(v["sources"].as_array().unwrap().len(), m.sources.len());

    let d = show(&["--torch", "2.14.1", "--json"]).assert_ok().json();
    assert_eq!(d["requested"], "2.14.1");
    assert_eq!(d["version"], "2.14");
    assert_eq!(d["companions"][1]["torchvision"], "0.29.1");
    assert_eq!(d["variants"][0]["tag"], "cu126");
    assert_eq!(d["variants"][0]["arch_list"], "5.0;6.0;7.0;7.5;8.0;8.6;9.0");
    assert_eq!(d["variants"][0]["driver_floor"], "560.28.03");
    assert_eq!(d["variants"][1]["pypi_default"], true);
    assert!(d["images"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["image"] == "pytorch/pytorch:2.14.1-cuda13.0-cudnn9-devel"));
}

#[test]
fn torch_is_read_as_the_resolver_reads_it() {
    let out = show(&["--torch", "latest"]).run();
    assert_ne!(out.code, Some(0), "{}", out.describe());
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    assert!(
        out.stderr.contains(
            "error: `latest` is not a torch release: expected MAJOR.MINOR.PATCH (e.g. 2.15.0)"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("hint: give a torch release as MAJOR.MINOR.PATCH"),
        "{}",
        out.stderr
    );
    // An unknown release: the resolver's error and hint, with the matrix date.
    let err = show(&["--torch", "2.16.0"]).assert_err();
    assert!(
        err.contains("error: torch 2.16.0 is newer than this torchkit's matrix"),
        "{err}"
    );
    assert!(
        err.contains("upgrade torchkit for a matrix gathered after 2026-12-03"),
        "{err}"
    );
}
