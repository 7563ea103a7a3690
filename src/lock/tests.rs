use super::*;
use crate::resolve::resolve;
use crate::spec::parse;

const SPEC: &str = r#"[torch]
version = "2.8.0"
cuda = "12.8"
[system]
apt = ["jq"]
[python]
packages = ["packaging==24.1"]
requirements = "requirements.txt"
"#;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const H1: &str = "sha256:8956ab2fbf2f5e8d2fb1d22be9b5cd3d2f37bd8d1f7a0f31fa3d46c8ae3d10da";
const H2: &str = "sha256:5ef04b0f5a92c3ad3df4e6b8e9fb5f1c5e6f7e2b4a3e1b1c6f5a5f0e1e0c2e5a";

fn inputs(extra: &str, req: &[u8]) -> (Spec, SpecInputs) {
    let spec = parse(&format!("{SPEC}{extra}"), "torchkit.toml").unwrap();
    let res = resolve(&spec.request()).unwrap();
    let now = SpecInputs::new(&spec, &res, Some(req));
    (spec, now)
}

fn sample() -> Lock {
    let (_, now) = inputs("", b"six==1.16.0\n");
    Lock::new(
        LockedBase {
            reference: "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime".into(),
            digest: DIGEST.into(),
            platform: "linux/amd64".into(),
        },
        &now,
        vec![
            AptPackage {
                name: "libjq1".into(),
                version: "1.6-2.1".into(),
            },
            AptPackage {
                name: "jq".into(),
                version: "1.6-2.1".into(),
            },
        ],
        vec![
            PythonPackage {
                name: "six".into(),
                version: "1.16.0".into(),
                hashes: vec![H2.into()],
                url: Some("https://files.pythonhosted.org/six-1.16.0-py2.py3-none-any.whl".into()),
            },
            PythonPackage {
                name: "Packaging".into(),
                version: "24.1".into(),
                hashes: vec![H1.into()],
                url: None,
            },
        ],
    )
    .unwrap()
}

#[test]
fn round_trip_is_exact_and_sorted() {
    let lock = sample();
    let text = lock.to_toml();
    let back = Lock::parse(&text, "torchkit.lock").unwrap();
    assert_eq!(back, lock);
    assert_eq!(
        back.to_toml(),
        text,
        "serializing twice gives the same bytes"
    );
    // Sorted, names normalized.
    assert_eq!(lock.apt[0].name, "jq");
    assert_eq!(lock.python[0].name, "packaging");
    assert!(text.contains("[base]\n"), "{text}");
    assert!(text.contains(&format!("digest = \"{DIGEST}\"")), "{text}");
    assert!(
        text.contains("[[apt]]\nname = \"jq\"\nversion = \"1.6-2.1\""),
        "{text}"
    );
    assert!(text.contains("[[python]]\nname = \"packaging\""), "{text}");
    assert!(text.contains("[inputs.fingerprints]"), "{text}");
    assert!(
        text.contains("\"python.requirements\" = \"sha256:"),
        "{text}"
    );
    // Diff-friendly: one package per table, no inline arrays of tables.
    assert!(!text.contains("apt = ["), "{text}");
}

#[test]
fn unchanged_spec_has_no_changes() {
    let lock = sample();
    let (_, now) = inputs("", b"six==1.16.0\n");
    assert_eq!(diff(&now, &lock), vec![]);
}

#[test]
fn diff_names_what_changed() {
    let lock = sample();
    let (_, now) = inputs("", b"six==1.17.0\n");
    let d = diff(&now, &lock);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "python.requirements");
    assert_eq!(
        d[0].message,
        "python.requirements changed since the lock was made"
    );

    let spec = parse(
        &SPEC
            .replace("packaging==24.1", "packaging==24.2")
            .replace("[\"jq\"]", "[\"jq\", \"git\"]"),
        "torchkit.toml",
    )
    .unwrap();
    let res = resolve(&spec.request()).unwrap();
    let now = SpecInputs::new(&spec, &res, Some(b"six==1.16.0\n"));
    let keys: Vec<String> = diff(&now, &lock).into_iter().map(|c| c.key).collect();
    assert_eq!(keys, ["python.packages", "system.apt"]);

    // A resolution field: the message says old and new.
    let spec = parse(
        &SPEC.replace("cuda = \"12.8\"", "cuda = \"12.6\""),
        "torchkit.toml",
    )
    .unwrap();
    let res = resolve(&spec.request()).unwrap();
    let now = SpecInputs::new(&spec, &res, Some(b"six==1.16.0\n"));
    let d = diff(&now, &lock);
    assert_eq!(d[0].message, "cuda is 12.6 now, the lock has 12.8");
    assert!(d.iter().any(|c| c.key == "torch"), "{d:?}");

    // Added and removed inputs.
    let (_, now) = inputs("[base]\nmirror = \"127.0.0.1:5000\"\n", b"six==1.16.0\n");
    let d = diff(&now, &lock);
    assert_eq!(d[0].message, "base was added since the lock was made");
    let spec = parse(
        &SPEC.replace("requirements = \"requirements.txt\"\n", ""),
        "torchkit.toml",
    )
    .unwrap();
    let res = resolve(&spec.request()).unwrap();
    let now = SpecInputs::new(&spec, &res, None);
    assert_eq!(
        diff(&now, &lock)[0].message,
        "python.requirements was removed since the lock was made"
    );
}

#[test]
fn parse_errors_say_where_and_what() {
    let e = Lock::parse("version = 2\n", "torchkit.lock").unwrap_err();
    assert!(matches!(e, LockError::Version { found: 2, .. }), "{e}");
    let e = Lock::parse("[base]\n", "torchkit.lock").unwrap_err();
    assert!(e.to_string().contains("not a torchkit lock"), "{e}");
    let text = sample().to_toml().replace("platform = ", "platfrom = ");
    let e = Lock::parse(&text, "torchkit.lock").unwrap_err();
    assert!(e.to_string().contains("platfrom"), "{e}");
    assert!(e.to_string().starts_with("torchkit.lock: line "), "{e}");
}

#[test]
fn packages_without_sha256_are_refused() {
    let (_, now) = inputs("", b"");
    let base = sample().base;
    let e = Lock::new(
        base,
        &now,
        vec![],
        vec![PythonPackage {
            name: "x".into(),
            version: "1".into(),
            hashes: vec!["md5:00".into()],
            url: None,
        }],
    )
    .unwrap_err();
    assert!(matches!(e, LockError::NoHash { .. }), "{e}");
}

#[test]
fn locked_set_pins_everything_but_the_base_torch() {
    let mut lock = sample();
    lock.python.push(PythonPackage {
        name: "torch".into(),
        version: "2.8.0".into(),
        hashes: vec![H1.into()],
        url: None,
    });
    let set = lock.locked_set();
    assert_eq!(set.digest, DIGEST);
    assert_eq!(set.apt, ["jq=1.6-2.1", "libjq1=1.6-2.1"]);
    assert_eq!(
        set.python,
        format!("packaging==24.1 --hash={H1}\nsix==1.16.0 --hash={H2}\n")
    );
    assert_eq!(set.python_count, 2);
}

#[test]
fn pip_report_gives_names_versions_hashes() {
    // The shape pip 23 writes (`hash` and `hashes`), and a newer one with only `hashes`.
    let report = format!(
        r#"{{"version":"1","pip_version":"23.0.1","install":[
        {{"download_info":{{"url":"https://files.pythonhosted.org/p/six-1.16.0-py2.py3-none-any.whl",
           "archive_info":{{"hash":"{}","hashes":{{"sha256":"{}"}}}}}},
          "is_direct":false,"requested":true,"metadata":{{"name":"six","version":"1.16.0"}}}},
        {{"download_info":{{"url":"https://x/Packaging-24.1.whl","archive_info":{{"hashes":{{"sha256":"{}"}}}}}},
          "metadata":{{"name":"Packaging","version":"24.1"}}}}]}}"#,
        H2.replace("sha256:", "sha256="),
        &H2[7..],
        &H1[7..]
    );
    let p = pip_report(report.as_bytes()).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].name.as_str(), p[0].version.as_str()),
        ("packaging", "24.1")
    );
    assert_eq!(p[0].hashes, [H1]);
    assert_eq!(p[1].hashes, [H2]);
    assert_eq!(
        p[1].url.as_deref(),
        Some("https://files.pythonhosted.org/p/six-1.16.0-py2.py3-none-any.whl")
    );

    let dir = r#"{"install":[{"download_info":{"url":"file:///src","dir_info":{}},"metadata":{"name":"mine","version":"0.1"}}]}"#;
    let e = pip_report(dir.as_bytes()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mine 0.1 has no sha256 hash (pip report: a local directory)"
    );
    assert!(pip_report(b"{}").is_err());
}

#[test]
fn apt_simulation_lines() {
    let text = "NOTE: This is only a simulation!\n\
        Reading package lists...\n\
        Inst libonig5 (6.9.8-1 Debian:12.12/oldstable [amd64])\n\
        Inst libjq1 (1.6-2.1 Debian:12.12/oldstable [amd64])\n\
        Inst jq (1.6-2.1 Debian:12.12/oldstable [amd64])\n\
        Inst libc6 [2.36-9+deb12u7] (2.36-9+deb12u13 Debian-Security:12/oldstable-security [amd64])\n\
        Inst libgcc-s1:amd64 (12.2.0-14 Debian:12.12/oldstable [amd64])\n\
        Conf jq (1.6-2.1 Debian:12.12/oldstable [amd64])\n";
    let p = apt_simulated(text).unwrap();
    let got: Vec<String> = p
        .iter()
        .map(|a| format!("{}={}", a.name, a.version))
        .collect();
    assert_eq!(
        got,
        [
            "jq=1.6-2.1",
            "libc6=2.36-9+deb12u13",
            "libgcc-s1=12.2.0-14",
            "libjq1=1.6-2.1",
            "libonig5=6.9.8-1"
        ]
    );
    assert!(apt_simulated("Inst broken\n").is_err());
}
