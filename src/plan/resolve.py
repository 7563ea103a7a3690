# torchkit: the resolve half of a dependency step (see docs/caching.md).
#
# Run as `python resolve.py OUT PIP_ARGS...` in the layer the install will run on. It asks
# pip what `pip install PIP_ARGS` would install (`--dry-run --report`, pip >= 22.2) and
# writes that set to OUT as an exact requirements file: `name==version --hash=sha256:...`
# per line, sorted. The install step mounts OUT read-only and runs
# `pip install --no-deps -r OUT`, so BuildKit keys the installed layer on the resolved set:
# a re-resolution that finds nothing new leaves the layer cached.
#
# Direct URLs stay direct (`name @ url`); a VCS checkout or a local directory has no archive
# hash, and then no line carries one (pip's hash-checking mode is all or nothing).
# Python 3.6+, standard library only: it runs on whatever interpreter the base image has.
# torchkit mounts it read-only at /run/torchkit/resolve.py (src/plan/lower.rs).
import json
import os
import subprocess
import sys
import tempfile


def fail(message):
    sys.stderr.write("torchkit: " + message + "\n")
    sys.exit(1)


def main():
    out, pip_args = sys.argv[1], sys.argv[2:]
    try:
        import pip

        version = tuple(int(p) for p in pip.__version__.split(".")[:2] if p.isdigit())
    except ImportError:
        fail("no pip in the base image's python (%s)" % sys.executable)
    if version < (22, 2):
        fail(
            "pip %s in the base image cannot resolve without installing: "
            "`pip install --dry-run --report` needs pip >= 22.2; "
            "use a newer base image (every pytorch/pytorch tag since 1.13 has it)" % pip.__version__
        )

    report = os.path.join(tempfile.mkdtemp(prefix="torchkit-"), "report.json")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--report", report]
    rc = subprocess.call(cmd + pip_args)
    if rc != 0:
        sys.exit(rc)
    with open(report) as f:
        items = json.load(f).get("install", [])

    lines = []
    hashed = True
    for item in items:
        meta = item["metadata"]
        name, version = meta["name"], meta["version"]
        info = item.get("download_info") or {}
        url = info.get("url", "")
        sub = info.get("subdirectory")
        suffix = "#subdirectory=" + sub if sub else ""
        sha = None
        if "vcs_info" in info:
            vcs = info["vcs_info"]
            req = "%s @ %s+%s@%s%s" % (name, vcs["vcs"], url, vcs["commit_id"], suffix)
        elif "dir_info" in info:
            req = "%s @ %s%s" % (name, url, suffix)
        else:
            archive = info.get("archive_info") or {}
            sha = (archive.get("hashes") or {}).get("sha256")
            legacy = archive.get("hash") or ""
            if not sha and legacy.startswith("sha256="):
                sha = legacy[len("sha256="):]
            if item.get("is_direct"):
                req = "%s @ %s%s" % (name, url, suffix)
            else:
                req = "%s==%s" % (name, version)
        hashed = hashed and sha is not None
        lines.append((req, sha))

    text = "".join(
        sorted(
            (req + (" --hash=sha256:" + sha if hashed else "") + "\n" for req, sha in lines),
            key=str.lower,
        )
    )
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    count = len(lines)
    sys.stdout.write(
        "torchkit: resolved %d distribution%s to install%s\n"
        % (count, "" if count == 1 else "s", "" if hashed or not count else " (not all hashed)")
    )
    sys.stdout.write(text)


main()
