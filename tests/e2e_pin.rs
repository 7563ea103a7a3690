//! `torchkit llb|plan --resolve-digest`: the base is pinned through the registry's
//! distribution API with no daemon involved. Needs the local registry of
//! `scripts/test-env.sh up` (with the stand-in); fails, never skips, without it.

use std::process::Command;

const REGISTRY: &str = "127.0.0.1:5000";

fn registry_digest(repo: &str, tag: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-fsSI",
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json",
            &format!("http://{REGISTRY}/v2/{repo}/manifests/{tag}"),
        ])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "the local registry does not serve {repo}:{tag}; run `scripts/test-env.sh up` (STANDIN=1)"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_string())
        })
        .expect("Docker-Content-Digest header")
}

#[test]
fn release_llb_is_pinned_through_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("torchkit.toml");
    std::fs::write(
        &spec,
        "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n[cache]\nprofile = \"release\"\n\
         [base]\nmirror = \"localhost:5000\"\n",
    )
    .unwrap();
    let want = registry_digest("pytorch/pytorch", "2.8.0-cuda12.8-cudnn9-runtime");

    let bin = env!("CARGO_BIN_EXE_torchkit");
    let o = Command::new(bin)
        .args([
            "llb",
            spec.to_str().unwrap(),
            "--format",
            "json",
            "--resolve-digest",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| {
            o["source"]["identifier"]
                .as_str()
                .filter(|i| i.starts_with("docker-image://"))
        })
        .unwrap()
        .to_string();
    assert_eq!(
        id,
        format!(
            "docker-image://localhost:5000/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime@{want}"
        )
    );
    // Without --resolve-digest the same release build is refused.
    let o = Command::new(bin)
        .args(["llb", spec.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resolve-digest"));
}
