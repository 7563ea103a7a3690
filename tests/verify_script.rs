//! `src/plan/verify.py`, the script of the verify stage, run against fake torch trees written
//! by `scripts/fake-torch.py`: exit codes, the exact lines, the report.
//!
//! Hermetic: every run uses one venv made from the `python3` on PATH with `python3 -m venv`
//! (pip from the interpreter's bundled wheel, no network), with the fake tree on PYTHONPATH
//! and a cleared environment, so `pip check` sees the venv's pip and the fake distributions
//! only, never the machine's site-packages. The venv is made once per `python3` and kept in
//! Cargo's test tmpdir. Needs `python3` and `python3-venv` (Debian packages; scripts/test-env.sh
//! installs them).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tempfile::TempDir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The arch list of torch 2.8.0 cu128.
const ARCH_CU128: &str = "sm_70 sm_75 sm_80 sm_86 sm_90 sm_100 sm_120";
/// The arch list of torch 2.8.0 cu126.
const ARCH_CU126: &str = "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90";

const REPLACED_FIX: &str = "a dependency replaced torch: pin torch==2.8.0 in [python] packages \
    or find the package that requires another torch (`pip show -v` / `pipdeptree -r -p torch`); \
    the constraints torchkit passes keep pip from doing this, so check for a \
    --force-reinstall/--no-deps install";
const CUDA_FIX: &str = "a torch for another CUDA replaced the image's one: pin torch==2.8.0 in \
    [python] packages or find the package that requires another torch (`pip show -v` / \
    `pipdeptree -r -p torch`); the constraints torchkit passes keep pip from doing this, so \
    check for a --force-reinstall/--no-deps install or an --index-url of another CUDA variant";
const PIP_FIX: &str =
    "pin the conflicting packages in [python] packages (or `torchkit lock`) so that pip check is clean";

struct Venv {
    /// `<venv>/bin/python`: what the script sees as sys.executable.
    python: PathBuf,
    /// `3.11`
    major_minor: String,
    /// `3.11.2`
    version: String,
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (python3 and python3-venv are needed)"));
    assert!(
        out.status.success(),
        "{what} failed ({}); python3 and python3-venv (Debian packages) are needed:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command with nothing of the caller's environment but PATH.
fn clean(program: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PYTHONNOUSERSITE", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INDEX", "1");
    c
}

fn venv() -> &'static Venv {
    static VENV: OnceLock<Venv> = OnceLock::new();
    VENV.get_or_init(|| {
        let id = run_ok(
            clean(Path::new("python3"))
                .args(["-c", "import sys; print(sys.version, sys.executable)"]),
            "python3",
        );
        // one venv per interpreter, kept between runs; made aside and renamed into place, so
        // that concurrent test processes (nextest) never see half of one
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut h);
            h.finish()
        };
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.join(format!("verify-venv-{key:016x}"));
        let python = dir.join("bin/python");
        let works = |python: &Path| {
            clean(python)
                .args(["-c", "import pip"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !works(&python) {
            let _ = std::fs::remove_dir_all(&dir);
            let staging = tempfile::Builder::new()
                .prefix("verify-venv-staging")
                .tempdir_in(&tmp)
                .unwrap();
            let made = staging.path().join("v");
            run_ok(
                clean(Path::new("python3")).arg("-m").arg("venv").arg(&made),
                "python3 -m venv",
            );
            // another process may have won the race: then its venv is used
            let _ = std::fs::rename(&made, &dir);
            assert!(works(&python), "{} has no working pip", python.display());
        }
        let info = run_ok(
            clean(&python).args([
                "-c",
                "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.version.split()[0])",
            ]),
            "venv python",
        );
        let mut lines = info.lines();
        Venv {
            python,
            major_minor: lines.next().unwrap().to_string(),
            version: lines.next().unwrap().to_string(),
        }
    })
}

/// A fake site-packages tree: `scripts/fake-torch.py <tmp>/site ARGS`.
struct Tree {
    dir: TempDir,
}

impl Tree {
    fn site(&self) -> PathBuf {
        self.dir.path().join("site")
    }
}

fn fake(args: &[&str]) -> Tree {
    let dir = TempDir::new().unwrap();
    run_ok(
        clean(&venv().python)
            .arg(Path::new(ROOT).join("scripts/fake-torch.py"))
            .arg(dir.path().join("site"))
            .args(args),
        "scripts/fake-torch.py",
    );
    Tree { dir }
}

/// torch 2.8.0 cu128 as the official image has it; `extra` is appended (later flags win).
fn right(extra: &[&str]) -> Tree {
    let mut args = vec![
        "--torch",
        "2.8.0+cu128",
        "--cuda",
        "12.8",
        "--cudnn",
        "91002",
        "--arch",
        ARCH_CU128,
        "--torchvision",
        "0.23.0",
        "--torchaudio",
        "2.8.0",
    ];
    args.extend_from_slice(extra);
    fake(&args)
}

/// What torchkit resolves for torch 2.8.0 on an H100 with CUDA 12.8.
fn expect() -> Value {
    json!({
        "torch": "2.8.0",
        "cuda": "12.8",
        "cudnn": "9",
        "python": venv().major_minor,
        "torchvision": "0.23.0",
        "torchaudio": "2.8.0",
        "gpus": [{"gpu": "H100", "compute_capability": "9.0", "verdict": "native"}],
        "gpu": false,
        "pip_check": true
    })
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    fn line(&self, name: &str) -> &str {
        let ok = format!("ok   {name}: ");
        let fail = format!("FAIL {name}: ");
        let found: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.starts_with(&ok) || l.starts_with(&fail))
            .collect();
        assert_eq!(found.len(), 1, "one line for {name} in:\n{}", self.stdout);
        found[0]
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// `python verify.py ARGS` with the tree on PYTHONPATH (no tree: nothing importable).
fn verify(tree: Option<&Tree>, args: &[&str]) -> Out {
    let home = TempDir::new().unwrap();
    let mut c = clean(&venv().python);
    c.arg(Path::new(ROOT).join("src/plan/verify.py"))
        .args(args)
        .env("HOME", home.path())
        .current_dir(home.path());
    if let Some(t) = tree {
        c.env("PYTHONPATH", t.site());
    }
    let out = c.output().unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn verify_expect(tree: Option<&Tree>, expect: &Value, extra: &[&str]) -> Out {
    let e = expect.to_string();
    let mut args = vec!["--expect", e.as_str()];
    args.extend_from_slice(extra);
    verify(tree, &args)
}

/// Runs with `--report` and returns the output and the parsed report.
fn verify_report(tree: Option<&Tree>, expect: &Value, extra: &[&str]) -> (Out, Value, TempDir) {
    let dir = TempDir::new().unwrap();
    let report = dir.path().join("report.json");
    let r = report.to_str().unwrap().to_string();
    let mut args = vec!["--report", r.as_str()];
    args.extend_from_slice(extra);
    let out = verify_expect(tree, expect, &args);
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}); stderr:\n{}", out.stderr));
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        entries,
        ["report.json"],
        "no temporary file left beside the report"
    );
    (out, serde_json::from_str(&text).unwrap(), dir)
}

fn failed_names(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn record<'a>(report: &'a Value, name: &str) -> &'a Value {
    let all: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect();
    assert_eq!(all.len(), 1, "one record {name} in {report:#}");
    all[0]
}

#[test]
fn the_right_torch_passes_every_check() {
    let tree = right(&[]);
    let dir = TempDir::new().unwrap();
    // EXPECT as a file this time
    let path = dir.path().join("expect.json");
    std::fs::write(&path, expect().to_string()).unwrap();
    let report = dir.path().join("report.json");
    let out = verify(
        Some(&tree),
        &[
            "--expect",
            path.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    out.assert_code(0);
    let v = venv();
    assert_eq!(
        out.lines(),
        [
            format!(
                "ok   torch.import: torch 2.8.0+cu128 ({})",
                tree.site().join("torch").display()
            ),
            "ok   torch.version: 2.8.0+cu128".to_string(),
            "ok   torch.cuda: 12.8".to_string(),
            "ok   torch.cudnn: 9 (91002)".to_string(),
            format!("ok   arch.9.0: {ARCH_CU128}"),
            "ok   torchvision: 0.23.0".to_string(),
            "ok   torchaudio: 2.8.0".to_string(),
            format!("ok   python: {} ({})", v.version, v.python.display()),
            "ok   pip.check: No broken requirements found.".to_string(),
        ]
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["torchkit_verify"], 1);
    assert_eq!(r["ok"], true);
    let names: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "torch.import",
            "torch.version",
            "torch.cuda",
            "torch.cudnn",
            "arch.9.0",
            "torchvision",
            "torchaudio",
            "python",
            "pip.check"
        ]
    );
    for c in r["checks"].as_array().unwrap() {
        assert_eq!(c["ok"], true, "{c}");
        assert_eq!(c["fix"], Value::Null, "{c}");
        assert!(c["expected"].is_string() && c["found"].is_string(), "{c}");
    }
    assert_eq!(record(&r, "torch.version")["expected"], "2.8.0+cu128");
    assert_eq!(
        record(&r, "arch.9.0")["expected"],
        "sm_90 (native kernels for H100, cc 9.0)"
    );
    // the same report passes --check, silently
    let check = verify(None, &["--check", report.to_str().unwrap()]);
    check.assert_code(0);
    assert_eq!(check.stdout, "");
}

#[test]
fn a_torch_for_another_cuda_fails_version_and_cuda() {
    let tree = fake(&[
        "--torch",
        "2.8.0+cu126",
        "--cuda",
        "12.6",
        "--cudnn",
        "91002",
        "--arch",
        ARCH_CU126,
        "--torchvision",
        "0.23.0",
        "--torchaudio",
        "2.8.0",
    ]);
    let (out, report, _dir) = verify_report(Some(&tree), &expect(), &[]);
    out.assert_code(1);
    assert_eq!(
        out.line("torch.version"),
        format!("FAIL torch.version: expected 2.8.0+cu128, found 2.8.0+cu126; fix: {REPLACED_FIX}")
    );
    assert_eq!(
        out.line("torch.cuda"),
        format!("FAIL torch.cuda: expected 12.8, found 12.6; fix: {CUDA_FIX}")
    );
    assert_eq!(out.line("arch.9.0"), format!("ok   arch.9.0: {ARCH_CU126}"));
    assert_eq!(report["ok"], false);
    assert_eq!(failed_names(&report), ["torch.version", "torch.cuda"]);
    let c = record(&report, "torch.cuda");
    assert_eq!(c["expected"], "12.8");
    assert_eq!(c["found"], "12.6");
    assert_eq!(c["fix"], CUDA_FIX);
    // every line printed is in the report, in order
    assert_eq!(
        out.lines().len(),
        report["checks"].as_array().unwrap().len()
    );
}

#[test]
fn a_cpu_torch_that_replaced_the_image_one_fails() {
    let tree = fake(&[
        "--torch",
        "2.8.0+cpu",
        "--cuda",
        "none",
        "--cudnn",
        "none",
        "--arch",
        "",
        "--torchvision",
        "0.23.0",
        "--torchaudio",
        "2.8.0",
    ]);
    let (out, report, _dir) = verify_report(Some(&tree), &expect(), &[]);
    out.assert_code(1);
    assert_eq!(
        out.line("torch.version"),
        format!("FAIL torch.version: expected 2.8.0+cu128, found 2.8.0+cpu; fix: {REPLACED_FIX}")
    );
    assert_eq!(
        out.line("torch.cuda"),
        format!("FAIL torch.cuda: expected 12.8, found None; fix: {CUDA_FIX}")
    );
    assert!(
        out.line("torch.cudnn").starts_with(
            "FAIL torch.cudnn: expected 9, found None (this torch has no cuDNN); fix: "
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.line("arch.9.0").starts_with(
            "FAIL arch.9.0: expected sm_90 (native kernels for H100, cc 9.0), found no CUDA archs (a CPU-only torch); fix: "
        ),
        "{}",
        out.stdout
    );
    assert_eq!(
        failed_names(&report),
        ["torch.version", "torch.cuda", "torch.cudnn", "arch.9.0"]
    );
    assert_eq!(record(&report, "torch.version")["fix"], REPLACED_FIX);

    // with cuda null (a `cuda = "cpu"` request) the CPU torch is right
    let mut e = expect();
    e["cuda"] = Value::Null;
    e["cudnn"] = Value::Null;
    e["gpus"] = json!([]);
    let out = verify_expect(Some(&tree), &e, &[]);
    out.assert_code(0);
    assert_eq!(out.line("torch.version"), "ok   torch.version: 2.8.0+cpu");
    assert!(!out.stdout.contains("torch.cuda"), "{}", out.stdout);
    assert!(!out.stdout.contains("torch.cudnn"), "{}", out.stdout);
}

#[test]
fn a_torch_without_a_local_version_is_judged_by_its_cuda() {
    // PyPI's wheel of the default CUDA variant says "2.8.0", not "2.8.0+cu128"
    let tree = right(&["--torch", "2.8.0"]);
    let out = verify_expect(Some(&tree), &expect(), &[]);
    out.assert_code(0);
    assert_eq!(
        out.line("torch.version"),
        "ok   torch.version: 2.8.0 (no local version; CUDA 12.8)"
    );
    let tree = fake(&[
        "--torch", "2.8.0", "--cuda", "12.6", "--cudnn", "91002", "--arch", ARCH_CU126,
    ]);
    let mut e = expect();
    e["torchvision"] = Value::Null;
    e["torchaudio"] = Value::Null;
    let (out, report, _dir) = verify_report(Some(&tree), &e, &[]);
    out.assert_code(1);
    assert_eq!(
        out.line("torch.version"),
        format!(
            "FAIL torch.version: expected 2.8.0+cu128, found 2.8.0 (no local version; CUDA 12.6); fix: {REPLACED_FIX}"
        )
    );
    assert_eq!(failed_names(&report), ["torch.version", "torch.cuda"]);
    // another release fails whatever its local part
    let tree = right(&["--torch", "2.7.1+cu128"]);
    let out = verify_expect(Some(&tree), &e, &[]);
    out.assert_code(1);
    assert_eq!(
        out.line("torch.version"),
        format!("FAIL torch.version: expected 2.8.0+cu128, found 2.7.1+cu128; fix: {REPLACED_FIX}")
    );
}

#[test]
fn a_torch_without_sm_120_fails_for_an_rtx_5090() {
    let tree = right(&["--arch", "sm_70 sm_75 sm_80 sm_86 sm_90 sm_100"]);
    let mut e = expect();
    e["gpus"] = json!([
        {"gpu": "H100", "compute_capability": "9.0", "verdict": "native"},
        {"gpu": "RTX 5090", "compute_capability": "12.0", "verdict": "native"}
    ]);
    let (out, report, _dir) = verify_report(Some(&tree), &e, &[]);
    out.assert_code(1);
    assert_eq!(
        out.line("arch.9.0"),
        "ok   arch.9.0: sm_70 sm_75 sm_80 sm_86 sm_90 sm_100"
    );
    assert_eq!(
        out.line("arch.12.0"),
        "FAIL arch.12.0: expected sm_120 (native kernels for RTX 5090, cc 12.0), \
         found sm_70 sm_75 sm_80 sm_86 sm_90 sm_100; fix: this torch build has no kernels for \
         RTX 5090 (\"no kernel image is available\" at run time): use a CUDA variant whose arch \
         list has sm_120 (`torchkit resolve` explains) or keep the image's torch"
    );
    assert_eq!(failed_names(&report), ["arch.12.0"]);
    // the right list passes
    let out = verify_expect(Some(&right(&[])), &e, &[]);
    out.assert_code(0);
    assert_eq!(
        out.line("arch.12.0"),
        format!("ok   arch.12.0: {ARCH_CU128}")
    );
}

#[test]
fn native_kernels_need_the_same_major_and_a_minor_at_most_the_gpus() {
    let mut e = expect();
    e["gpus"] = json!([
        {"gpu": "L40S", "compute_capability": "8.9", "verdict": "native"},
        {"gpu": "B200", "compute_capability": "10.0", "verdict": "native"},
        {"gpu": "GB10", "compute_capability": "12.1", "verdict": "native"},
        {"gpu": "H200", "compute_capability": "9.0", "verdict": "native"},
        {"gpu": "H100", "compute_capability": "9.0", "verdict": "native"},
        {"gpu": "K80", "compute_capability": "3.7", "verdict": "unsupported"}
    ]);
    // sm_86 runs on 8.9, sm_120 on 12.1, sm_90a counts as sm_90; sm_100 is missing and no
    // 9.x cubin serves a 10.0 GPU
    let tree = right(&["--arch", "sm_86 sm_90a sm_120 compute_120"]);
    let (out, report, _dir) = verify_report(Some(&tree), &e, &[]);
    out.assert_code(1);
    let arch: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| l.contains(" arch."))
        .collect();
    assert_eq!(
        arch,
        [
            "ok   arch.8.9: sm_86 sm_90a sm_120 compute_120",
            "FAIL arch.10.0: expected sm_100 (native kernels for B200, cc 10.0), found sm_86 sm_90a \
             sm_120 compute_120; fix: this torch build has no kernels for B200 (\"no kernel image \
             is available\" at run time): use a CUDA variant whose arch list has sm_100 \
             (`torchkit resolve` explains) or keep the image's torch",
            "ok   arch.12.1: sm_86 sm_90a sm_120 compute_120",
            // H200 and H100 share one check; an unsupported verdict gets none
            "ok   arch.9.0: sm_86 sm_90a sm_120 compute_120",
        ]
    );
    assert_eq!(
        record(&report, "arch.9.0")["expected"],
        "sm_90 (native kernels for H200, H100, cc 9.0)"
    );
    assert_eq!(
        record(&report, "arch.8.9")["expected"],
        "one of sm_80 to sm_89 (native kernels for L40S, cc 8.9)"
    );
    assert_eq!(failed_names(&report), ["arch.10.0"]);
    // a lower major never serves natively
    let tree = right(&["--arch", "sm_80 sm_86"]);
    let mut e = expect();
    e["gpus"] = json!([{"gpu": "9.0", "compute_capability": "9.0", "verdict": "native"}]);
    let out = verify_expect(Some(&tree), &e, &[]);
    out.assert_code(1);
    assert!(
        out.line("arch.9.0").starts_with(
            "FAIL arch.9.0: expected sm_90 (native kernels for 9.0, cc 9.0), found sm_80 sm_86; fix: "
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn a_ptx_jit_verdict_needs_ptx_at_or_below_the_gpu() {
    let mut e = expect();
    e["gpus"] = json!([{"gpu": "RTX 5090", "compute_capability": "12.0", "verdict": "ptx_jit"}]);
    let tree = right(&["--arch", "sm_80 sm_90 compute_90"]);
    let out = verify_expect(Some(&tree), &e, &[]);
    out.assert_code(0);
    assert_eq!(
        out.line("arch.12.0"),
        "ok   arch.12.0: sm_80 sm_90 compute_90"
    );
    // the serde spelling of torchkit's Verdict is accepted too
    e["gpus"][0]["verdict"] = json!("ptx-jit");
    verify_expect(Some(&tree), &e, &[]).assert_code(0);

    // cubins of another major are no PTX
    let tree = right(&["--arch", "sm_80 sm_90"]);
    let (out, report, _dir) = verify_report(Some(&tree), &e, &[]);
    out.assert_code(1);
    assert_eq!(
        out.line("arch.12.0"),
        "FAIL arch.12.0: expected compute_XY with X.Y <= 12.0 (PTX to JIT for RTX 5090, cc 12.0), \
         found sm_80 sm_90; fix: this torch build has neither kernels nor PTX for RTX 5090 \
         (\"no kernel image is available\" at run time): use a CUDA variant whose arch list \
         covers cc 12.0 (`torchkit resolve` explains) or keep the image's torch"
    );
    assert_eq!(failed_names(&report), ["arch.12.0"]);
    // PTX newer than the GPU cannot JIT down to it
    e["gpus"] = json!([{"gpu": "B200", "compute_capability": "10.0", "verdict": "ptx_jit"}]);
    let tree = right(&["--arch", "sm_90 sm_120 compute_120"]);
    let out = verify_expect(Some(&tree), &e, &[]);
    out.assert_code(1);
    assert!(
        out.line("arch.10.0").starts_with("FAIL arch.10.0: "),
        "{}",
        out.stdout
    );
}

#[test]
fn broken_requirements_fail_pip_check_naming_the_package() {
    let tree = right(&["--torchvision-requires", "torch==2.7.0"]);
    let (out, report, _dir) = verify_report(Some(&tree), &expect(), &[]);
    out.assert_code(1);
    let line = out.line("pip.check");
    assert!(
        line.starts_with("FAIL pip.check: expected no broken requirements, found torchvision 0.23.0 has requirement torch==2.7.0, but you have torch 2.8.0+cu128"),
        "{line}"
    );
    assert!(line.ends_with(&format!("; fix: {PIP_FIX}")), "{line}");
    assert_eq!(failed_names(&report), ["pip.check"]);
    assert!(record(&report, "pip.check")["found"]
        .as_str()
        .unwrap()
        .contains("torchvision"));
    // pip_check false: not run
    let mut e = expect();
    e["pip_check"] = json!(false);
    let out = verify_expect(Some(&tree), &e, &[]);
    out.assert_code(0);
    assert!(!out.stdout.contains("pip.check"), "{}", out.stdout);
}

#[test]
fn companions_and_python_are_compared() {
    // torchvision missing, torchaudio with a local part (stripped), another python expected
    let tree = right(&["--torchvision", "none", "--torchaudio", "2.8.0+cu128"]);
    let mut e = expect();
    e["python"] = json!("2.7");
    e["pip_check"] = json!(false);
    let (out, report, _dir) = verify_report(Some(&tree), &e, &[]);
    out.assert_code(1);
    assert_eq!(
        out.line("torchvision"),
        "FAIL torchvision: expected 0.23.0, found not installed; fix: torchvision is missing: \
         keep the base image's torchvision or add torchvision==0.23.0 to [python] packages"
    );
    assert_eq!(out.line("torchaudio"), "ok   torchaudio: 2.8.0+cu128");
    let v = venv();
    assert!(
        out.line("python").starts_with(&format!(
            "FAIL python: expected 2.7, found {} ({}); fix: the image's python is {},",
            v.version,
            v.python.display(),
            v.major_minor
        )),
        "{}",
        out.stdout
    );
    assert_eq!(failed_names(&report), ["torchvision", "python"]);
    // alternatives, as the matrix has them for old images ("3.10 or 3.11")
    e["python"] = json!(format!("2.7 or {}", v.major_minor));
    let out = verify_expect(Some(&tree), &e, &[]);
    assert!(
        out.line("python")
            .starts_with(&format!("ok   python: {} (", v.version)),
        "{}",
        out.stdout
    );
    // a wrong companion release
    let tree = right(&["--torchaudio", "2.7.0"]);
    let out = verify_expect(Some(&tree), &expect(), &[]);
    out.assert_code(1);
    assert!(
        out.line("torchaudio").starts_with(
            "FAIL torchaudio: expected 2.8.0, found 2.7.0; fix: a dependency replaced torchaudio: pin torchaudio==2.8.0"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn with_a_gpu_each_device_is_named_and_runs_a_matmul() {
    let mut e = expect();
    e["gpu"] = json!(true);
    let tree = right(&["--devices", "NVIDIA H100 80GB HBM3:9.0"]);
    let (out, report, _dir) = verify_report(Some(&tree), &e, &[]);
    out.assert_code(0);
    assert_eq!(
        &out.lines()[9..],
        [
            "ok   cuda.available: 1 device",
            "ok   device.0: NVIDIA H100 80GB HBM3 cc 9.0",
            "ok   matmul.0: (ones(64,64) @ ones(64,64)).sum() = 262144.0",
        ]
    );
    assert_eq!(report["ok"], true);

    // a second GPU that torchkit did not resolve for
    let tree = right(&["--devices", "NVIDIA H100 80GB HBM3:9.0,NVIDIA L40S:8.9"]);
    let (out, report, _dir) = verify_report(Some(&tree), &e, &[]);
    out.assert_code(1);
    assert_eq!(
        &out.lines()[9..],
        [
            "ok   cuda.available: 2 devices",
            "ok   device.0: NVIDIA H100 80GB HBM3 cc 9.0",
            "ok   matmul.0: (ones(64,64) @ ones(64,64)).sum() = 262144.0",
            "FAIL device.1: expected a GPU torchkit resolved for: H100 (cc 9.0), found NVIDIA L40S \
             cc 8.9; fix: this GPU was not among the [target] gpus torchkit resolved for: add it to \
             [target] gpus (or build with --detect on this host) so that torchkit picks a CUDA \
             variant with kernels for it",
            "ok   matmul.1: (ones(64,64) @ ones(64,64)).sum() = 262144.0",
        ]
    );
    assert_eq!(failed_names(&report), ["device.1"]);
    // no gpus in EXPECT: any device is fine
    let mut any = e.clone();
    any["gpus"] = json!([]);
    verify_expect(Some(&tree), &any, &[]).assert_code(0);

    // a matmul that fails reports the exception
    let tree = right(&[
        "--devices",
        "NVIDIA H100 80GB HBM3:9.0",
        "--fail-matmul",
        "0",
    ]);
    let out = verify_expect(Some(&tree), &e, &[]);
    out.assert_code(1);
    assert!(
        out.line("matmul.0").starts_with(
            "FAIL matmul.0: expected (ones(64,64) @ ones(64,64)).sum() = 262144, found error: \
             RuntimeError: CUDA error: no kernel image is available for execution on the device; fix: "
        ),
        "{}",
        out.stdout
    );

    // gpu = true and no device
    let tree = right(&[]);
    let (out, report, _dir) = verify_report(Some(&tree), &e, &[]);
    out.assert_code(1);
    assert_eq!(
        &out.lines()[9..],
        [
            "FAIL cuda.available: expected torch.cuda.is_available() and at least one device, \
          found no CUDA device (torch.cuda.is_available() is False); fix: no GPU is usable from \
          this torch: run the container with the GPUs attached (`docker run --gpus all`, the \
          NVIDIA container toolkit) on a host whose driver supports CUDA 12.8 (`torchkit probe`)"
        ]
    );
    assert_eq!(failed_names(&report), ["cuda.available"]);
    // and gpu = false runs no device check even with devices
    let tree = right(&["--devices", "NVIDIA L40S:8.9"]);
    let out = verify_expect(Some(&tree), &expect(), &[]);
    out.assert_code(0);
    assert_eq!(out.lines().len(), 9, "{}", out.stdout);
}

#[test]
fn a_torch_that_does_not_import_fails_every_torch_check() {
    let mut e = expect();
    e["gpu"] = json!(true);
    // no torch at all (and no companions)
    let empty = fake(&["--torch", "2.8.0+cu128", "--cuda", "12.8"]);
    std::fs::remove_dir_all(empty.site().join("torch")).unwrap();
    let (out, report, _dir) = verify_report(Some(&empty), &e, &[]);
    out.assert_code(1);
    let v = venv();
    let lines = out.lines();
    assert_eq!(
        lines[0],
        format!(
            "FAIL torch.import: expected import torch works, found ModuleNotFoundError: No module \
             named 'torch'; fix: the image's python ({}) cannot import torch: keep the base \
             image's torch (do not uninstall it) or add torch==2.8.0 to [python] packages",
            v.python.display()
        )
    );
    for name in [
        "torch.version",
        "torch.cuda",
        "torch.cudnn",
        "arch.9.0",
        "cuda.available",
    ] {
        let line = out.line(name);
        assert!(
            line.starts_with(&format!("FAIL {name}: expected ")),
            "{line}"
        );
        assert!(
            line.ends_with(", found torch not importable; fix: fix torch.import first"),
            "{line}"
        );
        assert_eq!(record(&report, name)["found"], "torch not importable");
    }
    assert_eq!(
        failed_names(&report),
        [
            "torch.import",
            "torch.version",
            "torch.cuda",
            "torch.cudnn",
            "arch.9.0",
            "torchvision",
            "torchaudio",
            "cuda.available"
        ]
    );
    // a torch whose import raises (a missing shared library)
    let tree = right(&[
        "--import-error",
        "libcudnn.so.9: cannot open shared object file: No such file or directory",
    ]);
    let (out, report, _dir) = verify_report(Some(&tree), &expect(), &[]);
    out.assert_code(1);
    assert!(
        out.line("torch.import").starts_with(
            "FAIL torch.import: expected import torch works, found ImportError: libcudnn.so.9: \
             cannot open shared object file: No such file or directory; fix: "
        ),
        "{}",
        out.stdout
    );
    // what does not need torch still runs and passes
    assert_eq!(
        failed_names(&report),
        [
            "torch.import",
            "torch.version",
            "torch.cuda",
            "torch.cudnn",
            "arch.9.0"
        ]
    );
    assert_eq!(out.line("torchvision"), "ok   torchvision: 0.23.0");
}

#[test]
fn exit_zero_still_reports_the_failures() {
    let tree = right(&["--torch", "2.8.0+cu126", "--cuda", "12.6"]);
    let (out, report, _dir) = verify_report(Some(&tree), &expect(), &["--exit-zero"]);
    out.assert_code(0);
    assert!(out
        .line("torch.cuda")
        .starts_with("FAIL torch.cuda: expected 12.8, found 12.6; "));
    assert_eq!(report["ok"], false);
    assert_eq!(failed_names(&report), ["torch.version", "torch.cuda"]);
    // without it the same run exits 1
    verify_expect(Some(&tree), &expect(), &[]).assert_code(1);
}

#[test]
fn check_prints_the_failed_checks_of_a_report() {
    let tree = right(&["--torch", "2.8.0+cu126", "--cuda", "12.6"]);
    let (out, _report, dir) = verify_report(Some(&tree), &expect(), &["--exit-zero"]);
    let path = dir.path().join("report.json");
    let check = verify(None, &["--check", path.to_str().unwrap()]);
    check.assert_code(1);
    let fails: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("FAIL "))
        .collect();
    assert_eq!(fails.len(), 2);
    assert_eq!(check.lines(), fails);

    // a passing report: nothing, 0
    let (_, _, dir) = verify_report(Some(&right(&[])), &expect(), &[]);
    let check = verify(
        None,
        &["--check", dir.path().join("report.json").to_str().unwrap()],
    );
    check.assert_code(0);
    assert_eq!(check.stdout, "");

    // unreadable: 2
    let missing = dir.path().join("missing.json");
    let check = verify(None, &["--check", missing.to_str().unwrap()]);
    check.assert_code(2);
    assert!(
        check.stderr.contains("cannot read report"),
        "{}",
        check.stderr
    );
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"checks\": []}").unwrap();
    let check = verify(None, &["--check", junk.to_str().unwrap()]);
    check.assert_code(2);
    assert!(check.stderr.contains("torchkit_verify"), "{}", check.stderr);
}

#[test]
fn a_bad_expect_is_a_usage_error() {
    let tree = right(&[]);
    // (change to a right EXPECT, words the message must have)
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &str); 5] = [
        (
            |e| e["cudnn_version"] = json!("9"),
            "unknown key 'cudnn_version'",
        ),
        (
            |e| e["gpus"][0]["arch"] = json!("sm_90"),
            "gpus[0]: unknown key 'arch'",
        ),
        (
            |e| e["gpus"][0]["verdict"] = json!("maybe"),
            "gpus[0].verdict",
        ),
        (
            |e| {
                e.as_object_mut().unwrap().remove("torch");
            },
            "'torch'",
        ),
        (|e| e["cuda"] = json!("cu128"), ""),
    ];
    for (edit, words) in cases {
        let mut e = expect();
        edit(&mut e);
        let out = verify_expect(Some(&tree), &e, &[]);
        out.assert_code(2);
        assert_eq!(out.stdout, "", "no check runs: {e}");
        assert!(out.stderr.contains(words), "{}", out.stderr);
    }

    for args in [
        &["--expect", "{not json"][..],
        &["--expect", "/nonexistent/expect.json"],
        &[],
        &["--expect"],
        &["--bogus"],
    ] {
        let out = verify(Some(&tree), args);
        out.assert_code(2);
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(
            out.stderr.starts_with("torchkit verify: "),
            "{args:?}: {}",
            out.stderr
        );
    }
    // only torch is required: the rest defaults to unchecked (pip check on)
    let out = verify_expect(Some(&tree), &json!({"torch": "2.8.0"}), &[]);
    out.assert_code(0);
    assert_eq!(
        out.lines()[1..],
        [
            "ok   torch.version: 2.8.0+cu128",
            "ok   pip.check: No broken requirements found."
        ]
    );
}
