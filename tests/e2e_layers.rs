//! No pip or apt cache is ever baked into a layer (docs/caching.md, "Never in a layer"),
//! checked on the layers themselves: every directory under `examples/` (found when the test
//! runs, so a new example is covered without touching this file) is built by the real
//! `torchkit build` against the test daemon at every cache profile (dev, test, release: the
//! profile is a build option, `--profile`, so every spec has all three), exported as an
//! archive, and every layer torchkit added on top of the base is read entry by entry. Any
//! apt, pip or uv cache file fails the test, named with its example, profile, layer and path.
//!
//! The base image's layers are left out: they are the stand-in's, not torchkit's. They are
//! the leading layers whose diff ids equal those of the pinned base
//! (`torchkit.base.digest`) as the registry serves it.
//!
//! The checker ([`cache_files`]) is a pure function over an uncompressed tar stream; the
//! unit tests at the end feed it hand-made tars, with and without cache files. The
//! end-to-end test fails, never skips, when the daemon is missing: run
//! `scripts/test-env.sh up` (as root, with STANDIN=1) first.
//!
//! Cost, measured on the default engine (dockerd 26.1.5, containerd store, 2 cores shared
//! with other builds), dev/test caches warm: 121-167 s for the nine builds, most of it the
//! three release builds (they re-run every step). Too slow to repeat on every engine, so it
//! is not in scripts/test.sh's `ENGINE_TESTS`; `cargo test` runs it on the default one.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod support;
use support::{docker, docker_socket, http_get, require_daemon, serial, TestCommand, START_HINT};

/// The registry of the test environment, also the daemon's docker.io mirror.
const REGISTRY: &str = "127.0.0.1:5000";
/// The host bundle with the CA of the HTTPS proxy in front of PyPI.
const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Every cache profile (docs/caching.md).
const PROFILES: [&str; 3] = ["dev", "test", "release"];

// ---------------------------------------------------------------------------------------
// The checker: pure functions over paths and tar streams

/// What kind of cache `path` (absolute, as in the image) is, or `None` when it is not one.
/// Directories are never findings (an empty mount point holds no cache); whiteouts are
/// deletions, not files, and are skipped before this is asked.
fn cache_kind(path: &str, is_dir: bool) -> Option<&'static str> {
    let p = path.trim_start_matches('/');
    let parts: Vec<&str> = p.split('/').collect();
    // A pip temporary directory (`pip-build-env-…`, `pip-req-build-…`) is junk even empty.
    if parts.len() >= 2 && parts[0] == "tmp" && parts[1].starts_with("pip-") {
        return Some("pip temporary directory");
    }
    if is_dir {
        return None;
    }
    if let Some(rest) = p.strip_prefix("var/cache/apt/") {
        if !rest.contains('/') && rest.ends_with(".bin") {
            return Some("apt binary package cache");
        }
        if rest.starts_with("archives/") && rest.ends_with(".deb") {
            return Some("apt downloaded package");
        }
    }
    if let Some(rest) = p.strip_prefix("var/lib/apt/lists/") {
        if rest != "lock" {
            return Some("apt package list");
        }
    }
    if p.starts_with("var/cache/torchkit/") {
        return Some("torchkit download cache");
    }
    // `*/.cache/pip/**` and `*/.cache/uv/**`: /root and every home directory alike.
    for w in parts.windows(3) {
        if w[0] == ".cache" && w[1] == "pip" {
            return Some("pip cache");
        }
        if w[0] == ".cache" && w[1] == "uv" {
            return Some("uv cache");
        }
    }
    None
}

/// One cache file found in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    /// The path in the image, absolute.
    path: String,
    /// What [`cache_kind`] called it.
    kind: &'static str,
}

/// Reads `n` bytes of `r` into a vector (the data of an extended header).
fn read_exact_vec(r: &mut impl Read, n: u64) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(n).read_to_end(&mut v)?;
    if (v.len() as u64) < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "tar entry data cut short",
        ));
    }
    Ok(v)
}

/// Skips `n` bytes of `r`.
fn skip(r: &mut impl Read, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "tar entry data cut short",
        ));
    }
    Ok(())
}

/// A numeric header field: octal text, or GNU base-256 when the high bit is set.
fn tar_number(field: &[u8]) -> io::Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            n = (n << 8) | u64::from(*b);
        }
        return Ok(n);
    }
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("tar header number {text:?}: {e}"),
        )
    })
}

/// A NUL-terminated header string.
fn tar_str(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The `path` record of a PAX extended header, if any (`<len> path=<value>\n` records).
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        if len <= sp || len > rest.len() {
            return None;
        }
        let record = &rest[sp + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"path=") {
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        rest = &rest[len..];
    }
    None
}

/// Every entry of an uncompressed tar stream: its absolute path and whether it is a
/// directory. Reads ustar, GNU (long names) and PAX (path records) headers, checks each
/// header's checksum, and stops at the end-of-archive block.
fn tar_entries(mut r: impl Read) -> io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    let mut long_name: Option<String> = None;
    let mut block = [0u8; 512];
    loop {
        match r.read_exact(&mut block) {
            Ok(()) => {}
            // A stream that ends without the end-of-archive blocks (some writers omit them).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && out.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a tar stream",
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(out),
            Err(e) => return Err(e),
        }
        if block.iter().all(|b| *b == 0) {
            return Ok(out);
        }
        let stored = tar_number(&block[148..156])?;
        let sum: u64 = block
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if stored != sum {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "tar header checksum {stored} != {sum} after {} entries",
                    out.len()
                ),
            ));
        }
        let size = tar_number(&block[124..136])?;
        let padded = size.div_ceil(512) * 512;
        let kind = block[156];
        match kind {
            // PAX extended header for the next entry; GNU long name for the next entry.
            b'x' | b'L' => {
                let data = read_exact_vec(&mut r, size)?;
                skip(&mut r, padded - size)?;
                let name = if kind == b'x' {
                    pax_path(&data)
                } else {
                    Some(tar_str(&data))
                };
                if name.is_some() {
                    long_name = name;
                }
                continue;
            }
            // PAX global header, GNU long link name: nothing this checker needs.
            b'g' | b'K' => {
                skip(&mut r, padded)?;
                continue;
            }
            _ => {}
        }
        let name = long_name.take().unwrap_or_else(|| {
            let name = tar_str(&block[0..100]);
            let prefix = tar_str(&block[345..500]);
            // Only POSIX ustar has a prefix field there (GNU keeps times in it).
            if &block[257..263] == b"ustar\0" && !prefix.is_empty() {
                format!("{prefix}/{name}")
            } else {
                name
            }
        });
        let is_dir = kind == b'5' || name.ends_with('/');
        let path = format!("/{}", name.trim_start_matches("./").trim_matches('/'));
        out.push((path, is_dir));
        // Hard links, symlinks, devices, directories and FIFOs carry no data whatever
        // `size` says; every other entry does.
        skip(
            &mut r,
            if (b'1'..=b'6').contains(&kind) {
                0
            } else {
                padded
            },
        )?;
    }
}

/// The cache files among a layer's entries ([`tar_entries`]), in archive order. Whiteouts
/// (`.wh.<name>`, `.wh..wh..opq`) delete what lower layers have and are not files of this
/// layer.
fn cache_files_in(entries: &[(String, bool)]) -> Vec<Finding> {
    entries
        .iter()
        .filter(|(path, _)| !path.rsplit('/').next().unwrap_or("").starts_with(".wh."))
        .filter_map(|(path, is_dir)| {
            cache_kind(path, *is_dir).map(|kind| Finding {
                path: path.clone(),
                kind,
            })
        })
        .collect()
}

/// The cache files of one layer, an uncompressed tar stream.
fn cache_files(layer: impl Read) -> io::Result<Vec<Finding>> {
    Ok(cache_files_in(&tar_entries(layer)?))
}

/// How many of `image`'s layers (diff ids, bottom first) are the base's: all of `base`,
/// which must be their prefix.
fn base_layer_count(image: &[String], base: &[String]) -> Result<usize, String> {
    if base.len() > image.len() || image[..base.len()] != *base {
        return Err(format!(
            "the image's layers do not start with the base's:\nimage {image:#?}\nbase {base:#?}"
        ));
    }
    Ok(base.len())
}

// ---------------------------------------------------------------------------------------
// The end-to-end test: every example at every profile

/// Every directory under `examples/` with a `torchkit.toml`, sorted.
fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("torchkit.toml").is_file())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no example in {}", root.display());
    v
}

/// A JSON document of the registry at `path` (a manifest or a blob).
fn registry_json(path: &str) -> serde_json::Value {
    let resp = http_get(REGISTRY, path, support::MANIFEST_TYPES);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GET {REGISTRY}{path}:\n{head}\n{START_HINT}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {REGISTRY}{path}: {e}\n{body}"))
}

/// The diff ids of the base `name@digest` (the labels `torchkit.base` and
/// `torchkit.base.digest`) as the test registry serves it: docker.io names through its
/// mirror path; an index is read for its linux/amd64 manifest.
fn base_diff_ids(name: &str, digest: &str) -> Vec<String> {
    let (host, path) = match name.split_once('/') {
        Some((h, rest)) if h.contains('.') || h.contains(':') || h == "localhost" => (h, rest),
        _ => ("docker.io", name),
    };
    assert!(
        ["docker.io", "localhost:5000", REGISTRY].contains(&host),
        "the base {name} is in no registry the test environment serves"
    );
    let repo = path.split(['@', ':']).next().unwrap();
    let repo = if host == "docker.io" && !repo.contains('/') {
        format!("library/{repo}")
    } else {
        repo.to_string()
    };
    let mut manifest = registry_json(&format!("/v2/{repo}/manifests/{digest}"));
    if let Some(list) = manifest["manifests"].as_array() {
        let amd64 = list
            .iter()
            .find(|m| m["platform"]["architecture"] == "amd64" && m["platform"]["os"] == "linux")
            .unwrap_or_else(|| panic!("no linux/amd64 manifest in {repo}@{digest}"))["digest"]
            .as_str()
            .unwrap()
            .to_string();
        manifest = registry_json(&format!("/v2/{repo}/manifests/{amd64}"));
    }
    let config = manifest["config"]["digest"].as_str().unwrap();
    let config = registry_json(&format!("/v2/{repo}/blobs/{config}"));
    diff_ids(&config)
}

/// `rootfs.diff_ids` of an image config.
fn diff_ids(config: &serde_json::Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no rootfs.diff_ids in {config}"))
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// Builds `example` at `profile` into dockerd's image store under a throw-away tag and
/// writes it as an archive (manifest.json, the config and the layer blobs) to `dest` with
/// `docker save`, then drops the tag. The same on both image stores: the classic store's
/// BuildKit has no archive exporters (`-o type=docker|oci` is refused there), and
/// `docker save` writes manifest.json on both.
fn build_archive(example: &Path, profile: &str, dest: &Path) {
    let addr = format!("docker://{}", docker_socket().display());
    let tag = support::unique("torchkit-e2e-layers/image").to_lowercase();
    // A release build (`ignore_cache` on every op) disturbs the tests that assert what came
    // from the cache: it holds the cache lock alone, the others share it.
    let cache = if profile == "release" {
        serial::exclusive()
    } else {
        serial::shared()
    };
    let r = TestCommand::new()
        .args(["build", example.to_str().unwrap(), "--addr", &addr])
        .args(["--ca-bundle", HOST_CA, "--profile", profile])
        .args(["--progress", "plain", "-t", &tag])
        .run();
    drop(cache);
    assert!(
        r.success(),
        "{} at {profile} did not build:\n{}",
        example.display(),
        r.describe()
    );
    let saved = Command::new("docker")
        .args(["save", "-o"])
        .arg(dest)
        .arg(&tag)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("docker save: {e}\n{START_HINT}"));
    docker(&["image", "rm", &tag]);
    assert!(
        saved.status.success(),
        "docker save {tag}: {}",
        String::from_utf8_lossy(&saved.stderr)
    );
}

/// A layer blob of an unpacked archive as an uncompressed tar stream: gzip (the containerd
/// store keeps compressed blobs) is decompressed by `gzip -dc`, a plain tar (the classic
/// store's `docker save`) is read as it is. Returns the stream and, for gzip, the child to wait for.
fn open_layer(path: &Path) -> (Box<dyn Read>, Option<std::process::Child>) {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match magic {
        [0x1f, 0x8b, ..] => {
            let mut child = Command::new("gzip")
                .arg("-dc")
                .arg(path)
                .stdout(Stdio::piped())
                .spawn()
                .expect("gzip");
            let out = child.stdout.take().unwrap();
            (Box::new(out), Some(child))
        }
        [0x28, 0xb5, 0x2f, 0xfd] => panic!(
            "{}: a zstd layer; this test reads gzip and plain tar layers",
            path.display()
        ),
        _ => (
            Box::new(io::BufReader::new(std::fs::File::open(path).unwrap())),
            None,
        ),
    }
}

/// The cache files in the layers torchkit added to the image in the `docker save` archive
/// `archive`, one line each: `layer N/M <diff id>: <path> (<kind>)`.
fn check_archive(archive: &Path, what: &str) -> Vec<String> {
    let dir = archive.with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success(), "tar -xf {}", archive.display());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let config_path = manifest[0]["Config"].as_str().expect("Config");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(config_path)).unwrap()).unwrap();
    let layers: Vec<&str> = manifest[0]["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let image = diff_ids(&config);
    assert_eq!(layers.len(), image.len(), "{what}: layers vs diff ids");
    let labels = &config["config"]["Labels"];
    let (Some(base), Some(base_digest)) = (
        labels["torchkit.base"].as_str(),
        labels["torchkit.base.digest"].as_str(),
    ) else {
        panic!("{what}: no torchkit.base / torchkit.base.digest label: {labels}");
    };
    let base = base_diff_ids(base, base_digest);
    let first = base_layer_count(&image, &base).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        first < image.len(),
        "{what}: torchkit added no layer to the base, so nothing was checked"
    );
    let mut found = Vec::new();
    let mut read = 0;
    for (i, layer) in layers.iter().enumerate().skip(first) {
        let (mut stream, child) = open_layer(&dir.join(layer));
        let entries = tar_entries(&mut stream)
            .unwrap_or_else(|e| panic!("{what}: layer {layer} is not a readable tar: {e}"));
        read += entries.len();
        let files = cache_files_in(&entries);
        // Read to the end so the decompressor finishes, then check that it did.
        io::copy(&mut stream, &mut io::sink()).unwrap();
        if let Some(mut c) = child {
            assert!(c.wait().unwrap().success(), "{what}: gzip -dc {layer}");
        }
        for f in files {
            found.push(format!(
                "layer {}/{} {}: {} ({})",
                i + 1,
                layers.len(),
                image[i],
                f.path,
                f.kind
            ));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // torchkit's layers install packages: a reader that saw nothing read nothing.
    assert!(read > 0, "{what}: no entry in torchkit's layers was read");
    found
}

#[test]
fn no_example_at_any_profile_has_a_cache_file_in_its_layers() {
    require_daemon();
    let work = std::env::temp_dir().join(format!("torchkit-e2e-{}/layers", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let mut report = Vec::new();
    let mut checked = Vec::new();
    for example in examples() {
        let name = example.file_name().unwrap().to_string_lossy().into_owned();
        for profile in PROFILES {
            let what = format!("examples/{name} --profile {profile}");
            let archive = work.join(format!("{name}-{profile}.tar"));
            build_archive(&example, profile, &archive);
            let found = check_archive(&archive, &what);
            std::fs::remove_file(&archive).unwrap();
            report.extend(found.into_iter().map(|f| format!("{what}: {f}")));
            checked.push(what);
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        report.is_empty(),
        "cache files in torchkit's layers (docs/caching.md promises none):\n{}\n(checked: {})",
        report.join("\n"),
        checked.join(", ")
    );
}

// ---------------------------------------------------------------------------------------
// The checker on hand-made tars

/// One ustar header block for `name` (≤ 100 bytes) of type `kind` and `size` bytes.
fn header(name: &str, kind: u8, size: usize) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

/// An uncompressed tar of `(name, type, data)` entries, with the end-of-archive blocks.
fn tar(entries: &[(&str, u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data) in entries {
        out.extend_from_slice(&header(name, *kind, data.len()));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A PAX extended header's data naming `path`.
fn pax(path: &str) -> Vec<u8> {
    let body = format!(" path={path}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

fn paths(found: &[Finding]) -> Vec<&str> {
    found.iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn the_checker_finds_the_apt_binary_caches_of_the_old_bug() {
    // What the apt step left before `Dir::Cache::pkgcache=`: 78 MB in /var/cache/apt.
    let layer = tar(&[
        ("var/", b'5', b""),
        ("var/cache/", b'5', b""),
        ("var/cache/apt/", b'5', b""),
        ("var/cache/apt/pkgcache.bin", b'0', &[1u8; 700]),
        ("var/cache/apt/srcpkgcache.bin", b'0', &[2u8; 10]),
        ("usr/bin/jq", b'0', b"\x7fELF"),
    ]);
    let found = cache_files(layer.as_slice()).unwrap();
    assert_eq!(
        paths(&found),
        [
            "/var/cache/apt/pkgcache.bin",
            "/var/cache/apt/srcpkgcache.bin"
        ]
    );
    assert_eq!(found[0].kind, "apt binary package cache");
}

#[test]
fn the_checker_finds_every_kind_of_cache() {
    let long_home = format!("home/{}/.cache/pip/http-v2/a/b/c", "d".repeat(120));
    let pax_data = pax(&long_home);
    let layer = tar(&[
        (
            "./var/cache/apt/archives/jq_1.6-2.1_amd64.deb",
            b'0',
            b"deb",
        ),
        ("var/cache/apt/archives/partial/x.deb", b'0', b""),
        (
            "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease",
            b'0',
            b"x",
        ),
        ("var/lib/apt/lists/auxfiles/y", b'0', b""),
        ("var/cache/torchkit/apt/archives/jq.deb", b'0', b""),
        (
            "root/.cache/pip/wheels/ab/cd/numpy-1.26.4-cp311.whl",
            b'0',
            b"PK",
        ),
        ("root/.cache/pip/selfcheck.json", b'2', b""),
        // A long name in a PAX header (Go's archive/tar writes these), then its entry.
        ("PaxHeaders/0", b'x', &pax_data),
        ("placeholder", b'0', b"z"),
        ("root/.cache/uv/wheels-v1/x", b'0', b""),
        ("tmp/pip-build-env-1234/", b'5', b""),
    ]);
    let found = cache_files(layer.as_slice()).unwrap();
    let long_home = format!("/{long_home}");
    assert_eq!(
        paths(&found),
        [
            "/var/cache/apt/archives/jq_1.6-2.1_amd64.deb",
            "/var/cache/apt/archives/partial/x.deb",
            "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease",
            "/var/lib/apt/lists/auxfiles/y",
            "/var/cache/torchkit/apt/archives/jq.deb",
            "/root/.cache/pip/wheels/ab/cd/numpy-1.26.4-cp311.whl",
            "/root/.cache/pip/selfcheck.json",
            long_home.as_str(),
            "/root/.cache/uv/wheels-v1/x",
            "/tmp/pip-build-env-1234",
        ]
    );
}

#[test]
fn the_checker_passes_what_an_image_may_hold() {
    let layer = tar(&[
        // Mount points a step may leave as empty directories.
        ("root/.cache/pip/", b'5', b""),
        ("var/cache/torchkit/apt/", b'5', b""),
        ("var/lib/apt/lists/", b'5', b""),
        ("var/lib/apt/lists/partial/", b'5', b""),
        ("var/lib/apt/lists/lock", b'0', b""),
        ("var/cache/apt/archives/lock", b'0', b""),
        ("var/cache/apt/archives/partial/", b'5', b""),
        // Deleting the base's lists and caches is what the step should do.
        ("var/lib/apt/lists/.wh..wh..opq", b'0', b""),
        ("var/cache/apt/.wh.pkgcache.bin", b'0', b""),
        // pip's own bytecode, installed packages, the dpkg database.
        (
            "usr/local/lib/python3.11/dist-packages/pip/__pycache__/__init__.cpython-311.pyc",
            b'0',
            b"pyc",
        ),
        (
            "usr/local/lib/python3.11/dist-packages/numpy/__init__.py",
            b'0',
            b"",
        ),
        ("var/lib/dpkg/status", b'0', b"Package: jq"),
        ("var/cache/debconf/config.dat", b'0', b""),
        ("tmp/", b'5', b""),
    ]);
    assert_eq!(cache_files(layer.as_slice()).unwrap(), []);
}

#[test]
fn the_checker_refuses_what_is_not_a_tar() {
    // A gzip stream handed over undecompressed must not pass as an empty layer.
    let mut gz = vec![0x1f, 0x8b, 8, 0];
    gz.resize(1024, 7);
    assert!(cache_files(gz.as_slice()).is_err());
    assert!(cache_files(&b"short"[..]).is_err());
    // A damaged header.
    let mut layer = tar(&[("var/cache/apt/pkgcache.bin", b'0', b"x")]);
    layer[3] ^= 1;
    assert!(cache_files(layer.as_slice()).is_err());
}

#[test]
fn the_base_layers_are_the_leading_layers_equal_to_the_base() {
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        base_layer_count(&ids(&["a", "b", "c", "d"]), &ids(&["a", "b"])),
        Ok(2)
    );
    assert!(base_layer_count(&ids(&["a", "x", "c"]), &ids(&["a", "b"])).is_err());
    assert!(base_layer_count(&ids(&["a"]), &ids(&["a", "b"])).is_err());
}
