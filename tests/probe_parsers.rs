//! Probe parsers and the fallback chain on real output from an H200 host with driver 580
//! (`tests/fixtures/gpu/h200-driver-580/`, one test per file), plus literal samples of the
//! formats that host does not show: the proprietary kernel module, multi-GPU CSV, R470's
//! missing `compute_cap`, driver failures and garbage.

use torchkit::error::Hint;
use torchkit::probe::{
    assemble, for_resolver, needs_query_without_compute_cap, parse_proc_version, parse_query_gpu,
    parse_smi_header, Gpu, Input, ModuleFlavor, Observations, Observed, ProbeError, QueryRow,
    Source, QUERY_FIELDS, QUERY_FIELDS_NO_CC,
};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/gpu/h200-driver-580/", $name))
    };
}

const SMI: &str = fixture!("nvidia-smi.txt");
const QUERY_CSV: &str = fixture!("query-csv.txt");
const DRIVER_NOHEADER: &str = fixture!("driver-noheader.txt");
const PROC_VERSION: &str = fixture!("proc-driver-version.txt");
const SMI_XML: &str = fixture!("nvidia-smi-q.xml");
const TORCH: &str = fixture!("torch.txt");
const ENV: &str = fixture!("env.txt");

fn out(text: &str, status: i32) -> Observed {
    Observed::Output {
        text: text.to_owned(),
        status: Some(status),
    }
}

fn file(text: &str) -> Observed {
    Observed::Output {
        text: text.to_owned(),
        status: None,
    }
}

fn h200() -> Observations {
    Observations {
        query: out(QUERY_CSV, 0),
        query_no_cc: Observed::Skipped,
        smi: out(SMI, 0),
        proc_version: file(PROC_VERSION),
    }
}

/// The text between `<tag>` and `</tag>`, for every occurrence (enough for nvidia-smi's XML).
fn xml_values<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.match_indices(&open)
        .filter_map(|(i, _)| {
            let rest = &xml[i + open.len()..];
            rest.find(&close).map(|j| rest[..j].trim())
        })
        .collect()
}

// ---- fixtures: one test per file ---------------------------------------------------------

#[test]
fn fixture_nvidia_smi_banner() {
    let h = parse_smi_header(SMI).unwrap();
    assert_eq!(h.driver, "580.159.04");
    assert_eq!(h.cuda.as_deref(), Some("13.0"));
}

#[test]
fn fixture_query_csv_with_header_and_extra_column() {
    // `--format=csv` (with header) and an extra `memory.total [MiB]` column: the header wins
    // over the requested field list.
    let rows = parse_query_gpu(QUERY_CSV, QUERY_FIELDS_NO_CC).unwrap();
    assert_eq!(
        rows,
        vec![QueryRow {
            driver_version: Some("580.159.04".into()),
            name: Some("NVIDIA H200".into()),
            compute_cap: Some("9.0".into()),
        }]
    );
}

#[test]
fn fixture_driver_noheader() {
    // `--query-gpu=driver_version --format=csv,noheader`
    let rows = parse_query_gpu(DRIVER_NOHEADER, &["driver_version"]).unwrap();
    assert_eq!(
        rows,
        vec![QueryRow {
            driver_version: Some("580.159.04".into()),
            ..QueryRow::default()
        }]
    );
    // Read as the three-field query it does not match.
    match parse_query_gpu(DRIVER_NOHEADER, QUERY_FIELDS) {
        Err(ProbeError::Malformed {
            line: 1, reason, ..
        }) => {
            assert!(reason.contains("expected 3"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fixture_proc_version_open_module() {
    let m = parse_proc_version(PROC_VERSION).unwrap();
    assert_eq!(m.version, "580.159.04");
    assert_eq!(m.flavor, Some(ModuleFlavor::Open));
    assert_eq!(m.arch.as_deref(), Some("x86_64"));
}

#[test]
fn fixture_xml_agrees_with_the_parsed_text_outputs() {
    let facts = assemble(&h200());
    assert_eq!(
        xml_values(SMI_XML, "driver_version"),
        [facts.driver.as_deref().unwrap()]
    );
    assert_eq!(
        xml_values(SMI_XML, "cuda_version"),
        [facts.cuda_driver_api.as_deref().unwrap()]
    );
    let names: Vec<&str> = facts.gpus.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(xml_values(SMI_XML, "product_name"), names);
    assert_eq!(
        xml_values(SMI_XML, "attached_gpus"),
        [facts.gpus.len().to_string()]
    );
}

#[test]
fn fixture_torch_agrees_on_capability_and_device() {
    let torch: serde_json::Value = serde_json::from_str(TORCH).unwrap();
    let facts = assemble(&h200());
    let cap = torch["capability"].as_array().unwrap();
    assert_eq!(
        facts.gpus[0].compute_capability.as_deref(),
        Some(format!("{}.{}", cap[0], cap[1]).as_str())
    );
    assert_eq!(torch["device"], facts.gpus[0].name);
    // A cu130 wheel ran, so the driver's CUDA API level is at least the wheel's CUDA.
    assert_eq!(torch["cuda"], *facts.cuda_driver_api.as_ref().unwrap());
}

#[test]
fn fixture_env_arch_matches_the_kernel_module() {
    let uname = ENV.lines().find(|l| l.starts_with("Linux ")).unwrap();
    let arch = parse_proc_version(PROC_VERSION).unwrap().arch.unwrap();
    assert!(uname.ends_with(&format!("{arch} GNU/Linux")), "{uname}");
    // The fixture host had no container runtime: nothing there to probe but the driver.
    assert!(ENV.lines().any(|l| l == "nvidia-container-cli: none"));
}

#[test]
fn fixture_host_assembled() {
    let facts = assemble(&h200());
    assert_eq!(facts.driver.as_deref(), Some("580.159.04"));
    assert_eq!(facts.cuda_driver_api.as_deref(), Some("13.0"));
    assert_eq!(
        facts.gpus,
        vec![Gpu {
            name: "NVIDIA H200".into(),
            compute_capability: Some("9.0".into()),
        }]
    );
    assert_eq!(
        facts.kernel_module.as_ref().map(|m| m.flavor),
        Some(Some(ModuleFlavor::Open))
    );
    assert_eq!(
        facts.sources,
        [Source::QueryGpu, Source::SmiHeader, Source::ProcVersion]
    );
    assert!(facts.notes.is_empty(), "{:?}", facts.notes);
    assert_eq!(
        for_resolver(&facts),
        (Some("580.159.04".to_owned()), vec!["9.0".to_owned()])
    );
}

#[test]
fn fixture_host_json_shape() {
    let v = serde_json::to_value(assemble(&h200())).unwrap();
    assert_eq!(v["driver"], "580.159.04");
    assert_eq!(v["cuda_driver_api"], "13.0");
    assert_eq!(v["gpus"][0]["compute_capability"], "9.0");
    assert_eq!(v["kernel_module"]["flavor"], "open");
    assert_eq!(
        v["sources"],
        serde_json::json!(["query-gpu", "smi-header", "proc-version"])
    );
}

// ---- literal samples ---------------------------------------------------------------------

const PROC_535: &str =
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n\
GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n";

#[test]
fn proprietary_module_535() {
    let m = parse_proc_version(PROC_535).unwrap();
    assert_eq!(m.version, "535.104.05");
    assert_eq!(m.flavor, Some(ModuleFlavor::Proprietary));
    assert_eq!(m.arch.as_deref(), Some("x86_64"));
}

#[test]
fn proc_version_two_part_and_aarch64() {
    let m = parse_proc_version(
        "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  580.95.05  Release Build  (dvs-builder@U22-I3-B17-02-5)  Tue Sep 23 09:55:41 UTC 2025\n",
    )
    .unwrap();
    assert_eq!(
        (m.version.as_str(), m.arch.as_deref()),
        ("580.95.05", Some("aarch64"))
    );
    let m = parse_proc_version(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  515.76  Mon Sep 12 19:21:56 UTC 2022\n",
    )
    .unwrap();
    assert_eq!(m.version, "515.76");
    assert_eq!(m.flavor, Some(ModuleFlavor::Proprietary));
}

const MULTI_CSV: &str = "535.104.05, NVIDIA A100-SXM4-80GB, 8.0\n\
535.104.05, NVIDIA A100-SXM4-80GB, 8.0\n\
535.104.05, Tesla T4, 7.5\n\
535.104.05, NVIDIA A100-SXM4-80GB, 8.0\n";

#[test]
fn multi_gpu_csv() {
    let rows = parse_query_gpu(MULTI_CSV, QUERY_FIELDS).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2].name.as_deref(), Some("Tesla T4"));
    assert_eq!(rows[2].compute_cap.as_deref(), Some("7.5"));

    let facts = assemble(&Observations {
        query: out(MULTI_CSV, 0),
        query_no_cc: Observed::Skipped,
        smi: Observed::Failed("not run in this test".into()),
        proc_version: file(PROC_535),
    });
    assert_eq!(facts.gpus.len(), 4);
    assert_eq!(facts.driver.as_deref(), Some("535.104.05"));
    // Per-GPU kinds, deduplicated in first-seen order.
    assert_eq!(
        for_resolver(&facts).1,
        vec!["8.0".to_owned(), "7.5".to_owned()]
    );
}

#[test]
fn not_available_cells_are_none() {
    let rows = parse_query_gpu("550.54.15, NVIDIA GRID T4-16Q, [N/A]\n", QUERY_FIELDS).unwrap();
    assert_eq!(rows[0].compute_cap, None);
    assert_eq!(rows[0].name.as_deref(), Some("NVIDIA GRID T4-16Q"));
}

const R470_REJECT: &str = "Field \"compute_cap\" is not a valid field to query.\n\n";
const R470_NAMES: &str = "470.182.03, Tesla V100-SXM2-16GB\n470.182.03, Tesla V100-SXM2-16GB\n";
const R470_SMI: &str = "Mon Jun  5 10:00:00 2023\n\
+-----------------------------------------------------------------------------+\n\
| NVIDIA-SMI 470.182.03   Driver Version: 470.182.03   CUDA Version: 11.4     |\n\
|-------------------------------+----------------------+----------------------+\n";

#[test]
fn r470_rejects_compute_cap() {
    match parse_query_gpu(R470_REJECT, QUERY_FIELDS) {
        Err(e @ ProbeError::InvalidField { .. }) => {
            assert_eq!(e.input(), Input::QueryGpu);
            assert!(e.to_string().contains("\"compute_cap\""));
            assert!(e.hint().unwrap().contains("R470"));
        }
        other => panic!("{other:?}"),
    }
    assert!(needs_query_without_compute_cap(&out(R470_REJECT, 2)));
    assert!(!needs_query_without_compute_cap(&out(QUERY_CSV, 0)));
    assert!(!needs_query_without_compute_cap(&Observed::Absent(
        "x".into()
    )));
}

#[test]
fn r470_falls_back_to_names_and_says_so() {
    let facts = assemble(&Observations {
        query: out(R470_REJECT, 2),
        query_no_cc: out(R470_NAMES, 0),
        smi: out(R470_SMI, 0),
        proc_version: file(
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.182.03  Fri Feb 24 03:29:56 UTC 2023\n",
        ),
    });
    assert_eq!(facts.driver.as_deref(), Some("470.182.03"));
    assert_eq!(facts.cuda_driver_api.as_deref(), Some("11.4"));
    assert_eq!(facts.gpus.len(), 2);
    assert!(facts.gpus.iter().all(|g| g.compute_capability.is_none()));
    assert_eq!(
        facts.sources,
        [
            Source::QueryGpuNoComputeCap,
            Source::SmiHeader,
            Source::ProcVersion
        ]
    );
    assert_eq!(facts.notes.len(), 1, "{:?}", facts.notes);
    assert!(facts.notes[0].contains("compute capability is unknown"));
    assert_eq!(
        for_resolver(&facts),
        (
            Some("470.182.03".to_owned()),
            vec!["Tesla V100-SXM2-16GB".to_owned()]
        )
    );
}

#[test]
fn no_driver_is_a_normal_result() {
    let facts = assemble(&Observations {
        query: Observed::Absent("`nvidia-smi` is not on PATH".into()),
        query_no_cc: Observed::Skipped,
        smi: Observed::Absent("`nvidia-smi` is not on PATH".into()),
        proc_version: Observed::Absent("/proc/driver/nvidia/version does not exist".into()),
    });
    assert!(!facts.has_driver());
    assert!(facts.gpus.is_empty() && facts.sources.is_empty());
    assert_eq!(
        facts.notes,
        [
            "no NVIDIA driver found on this host: `nvidia-smi` is not on PATH, and \
          /proc/driver/nvidia/version does not exist"
        ]
    );
    assert_eq!(for_resolver(&facts), (None, vec![]));
}

#[test]
fn driver_not_loaded_is_noted_once_with_its_fix() {
    let msg = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. \
               Make sure that the latest NVIDIA driver is installed and running.\n\n";
    let facts = assemble(&Observations {
        query: out(msg, 9),
        query_no_cc: Observed::Skipped,
        smi: out(msg, 9),
        proc_version: Observed::Absent("/proc/driver/nvidia/version does not exist".into()),
    });
    assert_eq!(facts.driver, None);
    assert_eq!(facts.notes.len(), 1, "{:?}", facts.notes);
    assert!(facts.notes[0].contains("could not communicate"));
    assert!(facts.notes[0].contains("modprobe nvidia"));
}

#[test]
fn version_mismatch_after_upgrade() {
    let msg = "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.159\n";
    assert!(matches!(
        parse_smi_header(msg),
        Err(ProbeError::VersionMismatch { .. })
    ));
    let facts = assemble(&Observations {
        query: out(msg, 18),
        query_no_cc: Observed::Skipped,
        smi: out(msg, 18),
        proc_version: file(PROC_535),
    });
    // The loaded module still answers; the note says why nvidia-smi did not.
    assert_eq!(facts.driver.as_deref(), Some("535.104.05"));
    assert!(
        facts.notes.iter().any(|n| n.contains("reboot")),
        "{:?}",
        facts.notes
    );
}

#[test]
fn sources_that_disagree_are_noted() {
    let mut obs = h200();
    obs.proc_version = file(PROC_535);
    let facts = assemble(&obs);
    assert_eq!(facts.driver.as_deref(), Some("580.159.04"));
    assert_eq!(facts.notes.len(), 1);
    assert!(facts.notes[0].contains("535.104.05") && facts.notes[0].contains("580.159.04"));
}

#[test]
fn no_devices() {
    let facts = assemble(&Observations {
        query: out("No devices were found\n", 6),
        query_no_cc: Observed::Skipped,
        smi: out(SMI, 0),
        proc_version: file(PROC_VERSION),
    });
    assert_eq!(facts.driver.as_deref(), Some("580.159.04"));
    assert!(facts.gpus.is_empty());
    assert_eq!(facts.notes.len(), 1, "{:?}", facts.notes);
    assert!(facts.notes[0].contains("no NVIDIA devices"));
}

#[test]
fn driver_without_nvidia_smi() {
    // A container with the kernel module visible but no nvidia-smi.
    let facts = assemble(&Observations {
        query: Observed::Absent("`nvidia-smi` is not on PATH".into()),
        query_no_cc: Observed::Skipped,
        smi: Observed::Absent("`nvidia-smi` is not on PATH".into()),
        proc_version: file(PROC_VERSION),
    });
    assert_eq!(facts.driver.as_deref(), Some("580.159.04"));
    assert_eq!(facts.cuda_driver_api, None);
    assert_eq!(facts.sources, [Source::ProcVersion]);
    assert_eq!(
        facts.notes,
        ["the GPU list is unknown (`nvidia-smi` is not on PATH); only the driver version was found"]
    );
}

#[test]
fn a_silent_failing_command_is_noted() {
    let facts = assemble(&Observations {
        query: out("", 1),
        query_no_cc: Observed::Skipped,
        smi: out(SMI, 0),
        proc_version: Observed::Absent("/proc/driver/nvidia/version does not exist".into()),
    });
    assert!(
        facts.notes[0].contains("exited with status 1"),
        "{:?}",
        facts.notes
    );
}

// ---- garbage -----------------------------------------------------------------------------

#[test]
fn garbage_is_an_error_not_a_panic_or_a_fact() {
    let garbage = [
        "",
        "   \n\t\n",
        "hello world",
        "\u{0}\u{1}\u{ff}binary\u{7f}",
        "<html><body>502 Bad Gateway</body></html>",
        "Driver Version:",
        "Driver Version: banana CUDA Version: 12.4",
        "| Driver Version: 535.104.05  CUDA Version: twelve |",
        "NVRM version:",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  Sat Aug 19",
        "580.159.04, NVIDIA H200",
        "580.159.04, NVIDIA H200, 9.0, extra",
        "five, NVIDIA H200, 9.0",
        "580.159.04, NVIDIA H200, nine",
        "580.159.04, , 9.0",
        "a,b,c\n",
        "driver_version, name, compute_cap\n",
    ];
    for g in garbage {
        assert!(parse_smi_header(g).is_err(), "smi header accepted {g:?}");
        assert!(parse_proc_version(g).is_err(), "proc accepted {g:?}");
        assert!(
            parse_query_gpu(g, QUERY_FIELDS).is_err(),
            "csv accepted {g:?}"
        );
    }
    let facts = assemble(&Observations {
        query: out("hello world", 0),
        query_no_cc: Observed::Skipped,
        smi: out("hello world", 0),
        proc_version: file("hello world"),
    });
    assert_eq!(facts.driver, None);
    assert!(facts.gpus.is_empty());
    assert_eq!(facts.notes.len(), 3, "{:?}", facts.notes);
    for n in &facts.notes {
        assert!(n.contains(": line 1: "), "{n}");
    }
}

#[test]
fn every_error_names_its_input() {
    assert_eq!(
        parse_smi_header("x").unwrap_err().to_string(),
        "nvidia-smi: line 1: no `Driver Version:` banner in the output"
    );
    assert_eq!(
        parse_proc_version("").unwrap_err(),
        ProbeError::Empty {
            input: Input::ProcVersion
        }
    );
    let e = parse_query_gpu("1.2, x", QUERY_FIELDS).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("nvidia-smi --query-gpu: line 1: expected 3"));
    assert!(e.hint().unwrap().contains("--format=csv,noheader"));
}
