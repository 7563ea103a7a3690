# torchkit: the verify stage (checks a built image against what torchkit resolved).
#
# Run as `python verify.py --expect EXPECT [--report REPORT.json] [--exit-zero]` inside the
# built image, after its last step. EXPECT is a JSON file, or inline JSON when the argument
# starts with "{":
#
#   {"torch": "2.8.0", "cuda": "12.8" | null, "cudnn": "9" | null, "python": "3.11" | null,
#    "torchvision": "0.23.0" | null, "torchaudio": "2.8.0" | null,
#    "gpus": [{"gpu": "H100", "compute_capability": "9.0", "verdict": "native"}],
#    "gpu": false, "pip_check": true}
#
# (null: not checked; only "torch" is required; an unknown key is an error; "python" may name
# alternatives, "3.10 or 3.11"; a verdict may also be spelled "ptx-jit".) Each check prints
# one line as it finishes, `ok   NAME: FOUND` or `FAIL NAME: expected E, found F; fix: X`,
# and becomes one record of the report: {"torchkit_verify": 1, "ok": bool, "checks": [{"name",
# "ok", "expected", "found", "fix"}]}. Check names are stable: torch.import, torch.version,
# torch.cuda, torch.cudnn, arch.<cc> (one per GPU with a native or ptx-jit verdict),
# torchvision, torchaudio, python, pip.check, and with "gpu": true cuda.available, device.<i>
# and matmul.<i>.
#
# Exit status: 0 all ok; 1 a check failed (0 with --exit-zero: torchkit then reads the
# report); 2 bad usage or a bad EXPECT. `python verify.py --check REPORT.json` prints the
# failed checks of a report and exits 1 if there are any, 0 if none, 2 if it is unreadable.
#
# The arch list is read from torch._C._cuda_getArchFlags(): torch.cuda.get_arch_list()
# returns [] when no GPU is visible, as in a build. It works outside a container too, against
# whatever torch `python` imports. Python 3.6+, standard library only: it runs on whatever
# interpreter the image has.
import json
import os
import re
import subprocess
import sys
import tempfile

KEYS = ("torch", "cuda", "cudnn", "python", "torchvision", "torchaudio", "gpus", "gpu", "pip_check")
GPU_KEYS = ("gpu", "compute_capability", "verdict")
VERDICTS = {"native": "native", "ptx_jit": "ptx_jit", "ptx-jit": "ptx_jit", "unsupported": "unsupported"}
NOT_IMPORTABLE = "torch not importable"


def usage_error(message):
    sys.stderr.write("torchkit verify: " + message + "\n")
    sys.exit(2)


# ----------------------------------------------------------------------------------------
# EXPECT


def load_expect(arg):
    if arg.lstrip().startswith("{"):
        text, where = arg, "inline EXPECT"
    else:
        where = arg
        try:
            with open(arg) as f:
                text = f.read()
        except (IOError, OSError) as e:
            usage_error("cannot read EXPECT %s: %s" % (arg, e))
    try:
        expect = json.loads(text)
    except ValueError as e:
        usage_error("%s is not JSON: %s" % (where, e))
    if not isinstance(expect, dict):
        usage_error("%s: EXPECT must be a JSON object" % where)
    for key in expect:
        if key not in KEYS:
            usage_error("%s: unknown key %r (known: %s)" % (where, key, ", ".join(KEYS)))

    def string(key, pattern, what):
        value = expect.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and key == "cudnn":
            value = str(value)
        if not isinstance(value, str) or not re.match(pattern + r"\Z", value):
            usage_error("%s: %r must be %s or null, not %s" % (where, key, what, json.dumps(value)))
        return value

    release = expect.get("torch")
    if not isinstance(release, str) or not re.match(r"\d+(\.\d+)*\Z", release):
        usage_error("%s: 'torch' (the resolved release, e.g. \"2.8.0\") is required, not %s"
                    % (where, json.dumps(release)))
    e = {
        "torch": release,
        "cuda": string("cuda", r"\d+\.\d+", 'a CUDA version such as "12.8"'),
        "cudnn": string("cudnn", r"\d+", 'a cuDNN major such as "9"'),
        "python": string("python", r"\d+\.\d+( or \d+\.\d+)*", 'MAJOR.MINOR such as "3.11" (or "3.10 or 3.11")'),
        "torchvision": string("torchvision", r"\d+(\.\d+)*", 'a release such as "0.23.0"'),
        "torchaudio": string("torchaudio", r"\d+(\.\d+)*", 'a release such as "2.8.0"'),
        "gpus": [],
    }
    gpus = expect.get("gpus")
    if gpus is None:
        gpus = []
    if not isinstance(gpus, list):
        usage_error("%s: 'gpus' must be a list, not %s" % (where, json.dumps(gpus)))
    for i, g in enumerate(gpus):
        if not isinstance(g, dict):
            usage_error("%s: gpus[%d] must be an object, not %s" % (where, i, json.dumps(g)))
        for key in g:
            if key not in GPU_KEYS:
                usage_error("%s: gpus[%d]: unknown key %r (known: %s)" % (where, i, key, ", ".join(GPU_KEYS)))
        cc = g.get("compute_capability")
        if not isinstance(cc, str) or not re.match(r"\d+\.\d+\Z", cc):
            usage_error("%s: gpus[%d].compute_capability must be like \"9.0\", not %s" % (where, i, json.dumps(cc)))
        verdict = g.get("verdict")
        if verdict not in VERDICTS:
            usage_error("%s: gpus[%d].verdict must be native, ptx_jit or unsupported, not %s"
                        % (where, i, json.dumps(verdict)))
        name = g.get("gpu")
        if name is None:
            name = cc
        if not isinstance(name, str):
            usage_error("%s: gpus[%d].gpu must be a string, not %s" % (where, i, json.dumps(name)))
        e["gpus"].append({"gpu": name, "cc": cc_tuple(cc), "verdict": VERDICTS[verdict]})
    for key, default in (("gpu", False), ("pip_check", True)):
        value = expect.get(key, default)
        if value is None:
            value = default
        if not isinstance(value, bool):
            usage_error("%s: %r must be true or false, not %s" % (where, key, json.dumps(value)))
        e[key] = value
    return e


def cc_tuple(text):
    major, minor = text.split(".")
    return int(major), int(minor)


def cc_text(cc):
    return "%d.%d" % cc


# ----------------------------------------------------------------------------------------
# checks


class Checks(object):
    def __init__(self):
        self.records = []

    def add(self, name, ok, expected, found, fix=None):
        record = {"name": name, "ok": bool(ok), "expected": expected, "found": found,
                  "fix": None if ok else (fix or "")}
        self.records.append(record)
        sys.stdout.write(line(record) + "\n")
        sys.stdout.flush()

    def run(self, name, expected, fix, fn):
        """Runs fn() -> (ok, found[, fix]); an exception fails the check with its text."""
        try:
            result = fn()
        except Exception as e:  # noqa: a check that crashes is a failed check
            result = (False, "error: %s: %s" % (type(e).__name__, e))
        ok, found = result[0], result[1]
        if len(result) > 2 and result[2]:
            fix = result[2]
        if len(result) > 3:
            expected = result[3]
        self.add(name, ok, expected, found, fix)


def line(record):
    if record["ok"]:
        return "ok   %s: %s" % (record["name"], record["found"])
    return "FAIL %s: expected %s, found %s; fix: %s" % (
        record["name"], record["expected"], record["found"], record["fix"])


def replaced_fix(release):
    return (
        "a dependency replaced torch: pin torch==%s in [python] packages or find the package "
        "that requires another torch (`pip show -v` / `pipdeptree -r -p torch`); the constraints "
        "torchkit passes keep pip from doing this, so check for a --force-reinstall/--no-deps "
        "install" % release
    )


def cuda_tag(cuda):
    return "cu" + cuda.replace(".", "")


def check_torch_version(torch, e):
    version = str(torch.__version__)
    public, _, local = version.partition("+")
    if e["cuda"] is None:
        return public == e["torch"], version
    if public != e["torch"]:
        return False, version
    if local:
        return local == cuda_tag(e["cuda"]), version
    # PyPI's wheel of a release's default CUDA variant has no local part: then the CUDA the
    # build reports decides
    built = getattr(torch.version, "cuda", None)
    return built == e["cuda"], "%s (no local version; CUDA %s)" % (version, built)


def check_cudnn(torch, e):
    v = torch.backends.cudnn.version()
    if v is None:
        return (False, "None (this torch has no cuDNN)",
                "this torch has no cuDNN (a CPU-only build?): " + replaced_fix(e["torch"]))
    v = int(v)
    major = v // 10000 if v >= 90000 else v // 1000
    found = "%d (%d)" % (major, v)
    fix = ("cuDNN %d is loaded, not %s: a dependency replaced torch or its nvidia-cudnn wheel "
           "(`pip show -v nvidia-cudnn-cu%s`); pin torch==%s in [python] packages and keep the "
           "image's cuDNN" % (major, e["cudnn"], (e["cuda"] or "12").split(".")[0], e["torch"]))
    return str(major) == e["cudnn"], found, fix


ARCH = re.compile(r"(sm|compute)_(\d+)(\d)[a-z]*\Z")


def arch_list(torch):
    """What this torch was compiled for, with or without a GPU; None for a CPU-only torch."""
    flags_fn = getattr(getattr(torch, "_C", None), "_cuda_getArchFlags", None)
    if flags_fn is not None:
        flags = flags_fn()
        return (flags or "").split()
    if getattr(torch.version, "cuda", None) is None:
        return None
    return list(torch.cuda.get_arch_list())


def parse_arch(entry):
    m = ARCH.match(entry)
    if not m:
        return None
    return m.group(1), (int(m.group(2)), int(m.group(3)))


def arch_expected(group):
    major, minor = group["cc"]
    about = "%s, cc %s" % (group["gpu"], cc_text(group["cc"]))
    if group["verdict"] == "native":
        if minor == 0:
            return "sm_%d0 (native kernels for %s)" % (major, about)
        return "one of sm_%d0 to sm_%d%d (native kernels for %s)" % (major, major, minor, about)
    return "compute_XY with X.Y <= %s (PTX to JIT for %s)" % (cc_text(group["cc"]), about)


def check_arch(torch, group):
    archs = arch_list(torch)
    if archs is None:
        found = "no CUDA archs (a CPU-only torch)"
    else:
        found = " ".join(archs) or "an empty arch list"
    cc = group["cc"]
    native = ptx = False
    for a in archs or []:
        parsed = parse_arch(a)
        if parsed is None:
            continue
        kind, acc = parsed
        if kind == "sm" and acc[0] == cc[0] and acc[1] <= cc[1]:
            native = True
        if kind == "compute" and acc <= cc:
            ptx = True
    if group["verdict"] == "native":
        fix = (
            "this torch build has no kernels for %s (\"no kernel image is available\" at run "
            "time): use a CUDA variant whose arch list has sm_%d%d (`torchkit resolve` explains) "
            "or keep the image's torch" % (group["gpu"], cc[0], cc[1])
        )
        return native, found, fix
    fix = (
        "this torch build has neither kernels nor PTX for %s (\"no kernel image is available\" at "
        "run time): use a CUDA variant whose arch list covers cc %s (`torchkit resolve` "
        "explains) or keep the image's torch" % (group["gpu"], cc_text(cc))
    )
    return native or ptx, found, fix


def dist_version(name):
    """The installed distribution's version, or None."""
    try:
        try:
            from importlib import metadata
        except ImportError:
            metadata = None
        if metadata is not None:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                return None
    except Exception:
        pass
    try:
        import pkg_resources

        try:
            return pkg_resources.get_distribution(name).version
        except pkg_resources.DistributionNotFound:
            return None
    except ImportError:
        pass
    try:
        module = __import__(name)
        return str(module.__version__)
    except Exception:
        return None


def check_companion(name, want, release):
    def fn():
        version = dist_version(name)
        if version is None:
            return (False, "not installed",
                    "%s is missing: keep the base image's %s or add %s==%s to [python] packages"
                    % (name, name, name, want))
        return version.split("+")[0] == want, version
    fix = (
        "a dependency replaced %s: pin %s==%s (the release paired with torch %s) in [python] "
        "packages or find the package that requires another one (`pipdeptree -r -p %s`)"
        % (name, name, want, release, name)
    )
    return fn, fix


def check_pip():
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pip", "check"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
    )
    out, err = proc.communicate()
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    if not lines:
        lines = [l.strip() for l in err.splitlines() if l.strip()]
    found = "; ".join(lines) or "exit status %d, no output" % proc.returncode
    return proc.returncode == 0, found


def gpu_checks(checks, torch, e):
    def available():
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            return False, "no CUDA device (torch.cuda.is_available() is %s)" % torch.cuda.is_available()
        return True, "%d device%s" % (n, "" if n == 1 else "s")

    checks.run(
        "cuda.available",
        "torch.cuda.is_available() and at least one device",
        "no GPU is usable from this torch: run the container with the GPUs attached "
        "(`docker run --gpus all`, the NVIDIA container toolkit) on a host whose driver supports "
        "CUDA %s (`torchkit probe`)" % (e["cuda"] or "of this torch"),
        available,
    )
    if not checks.records[-1]["ok"]:
        return
    ccs = []
    for g in e["gpus"]:
        if g["cc"] not in ccs:
            ccs.append(g["cc"])
    names = ", ".join("%s (cc %s)" % (g["gpu"], cc_text(g["cc"])) for g in e["gpus"])
    for i in range(torch.cuda.device_count()):
        def device(i=i):
            name = torch.cuda.get_device_name(i)
            cc = tuple(int(x) for x in torch.cuda.get_device_capability(i))
            found = "%s cc %s" % (name, cc_text(cc))
            return not ccs or cc in ccs, found

        checks.run(
            "device.%d" % i,
            "a GPU torchkit resolved for: %s" % (names or "any"),
            "this GPU was not among the [target] gpus torchkit resolved for: add it to [target] "
            "gpus (or build with --detect on this host) so that torchkit picks a CUDA variant "
            "with kernels for it",
            device,
        )

        def matmul(i=i):
            x = torch.ones((64, 64), device="cuda:%d" % i)
            value = (x @ x).sum().item()
            return value == 64 * 64 * 64, "(ones(64,64) @ ones(64,64)).sum() = %s" % value

        checks.run(
            "matmul.%d" % i,
            "(ones(64,64) @ ones(64,64)).sum() = %d" % (64 * 64 * 64),
            "a matmul on this GPU fails: read the error; \"no kernel image is available\" means the "
            "arch list lacks this GPU (see the arch.* checks), a driver or CUDA error means the "
            "host's driver is too old for CUDA %s (`torchkit probe`)" % (e["cuda"] or "of this torch"),
            matmul,
        )


def verify(e):
    checks = Checks()
    release = e["torch"]
    torch = None
    try:
        import torch  # noqa: F811
    except (Exception, SystemExit) as err:  # a broken install can raise anything
        checks.add(
            "torch.import", False, "import torch works",
            "%s: %s" % (type(err).__name__, err),
            "the image's python (%s) cannot import torch: keep the base image's torch (do not "
            "uninstall it) or add torch==%s to [python] packages" % (sys.executable, release),
        )
        torch = None
    else:
        checks.add("torch.import", True, "import torch works",
                   "torch %s (%s)" % (getattr(torch, "__version__", "?"),
                                      os.path.dirname(getattr(torch, "__file__", "") or "?")))

    def torch_check(name, expected, fix, fn):
        if torch is None:
            checks.add(name, False, expected, NOT_IMPORTABLE, "fix torch.import first")
        else:
            checks.run(name, expected, fix, fn)

    expected_version = release if e["cuda"] is None else release + "+" + cuda_tag(e["cuda"])
    torch_check("torch.version", expected_version, replaced_fix(release),
                lambda: check_torch_version(torch, e))
    if e["cuda"] is not None:
        torch_check(
            "torch.cuda", e["cuda"],
            "a torch for another CUDA replaced the image's one: pin torch==%s in [python] packages "
            "or find the package that requires another torch (`pip show -v` / `pipdeptree -r -p "
            "torch`); the constraints torchkit passes keep pip from doing this, so check for a "
            "--force-reinstall/--no-deps install or an --index-url of another CUDA variant" % release,
            lambda: (getattr(torch.version, "cuda", None) == e["cuda"],
                     str(getattr(torch.version, "cuda", None))),
        )
    if e["cudnn"] is not None:
        torch_check("torch.cudnn", e["cudnn"], replaced_fix(release), lambda: check_cudnn(torch, e))
    groups = []
    for g in e["gpus"]:
        if g["verdict"] == "unsupported":
            continue
        same = [x for x in groups if x["cc"] == g["cc"] and x["verdict"] == g["verdict"]]
        if same:
            if g["gpu"] not in same[0]["gpu"].split(", "):
                same[0]["gpu"] += ", " + g["gpu"]
        else:
            groups.append(dict(g))
    for group in groups:
        torch_check("arch." + cc_text(group["cc"]), arch_expected(group), None,
                    lambda group=group: check_arch(torch, group))
    for name in ("torchvision", "torchaudio"):
        if e[name] is not None:
            fn, fix = check_companion(name, e[name], release)
            checks.run(name, e[name], fix, fn)
    if e["python"] is not None:
        have = "%d.%d" % sys.version_info[:2]
        checks.run(
            "python", e["python"],
            "the image's python is %s, not the %s torchkit resolved for this base image: "
            "check [python] and the base image (`torchkit resolve` names its Python), and that "
            "`python` on PATH is the image's interpreter" % (have, e["python"]),
            lambda: (have in e["python"].split(" or "), "%s (%s)" % (sys.version.split()[0], sys.executable)),
        )
    if e["pip_check"]:
        checks.run(
            "pip.check", "no broken requirements",
            "pin the conflicting packages in [python] packages (or `torchkit lock`) so that pip "
            "check is clean",
            check_pip,
        )
    if e["gpu"]:
        if torch is None:
            checks.add("cuda.available", False, "torch.cuda.is_available() and at least one device",
                       NOT_IMPORTABLE, "fix torch.import first")
        else:
            gpu_checks(checks, torch, e)
    return checks.records


def write_report(path, records):
    """Write the report whole: to a temporary file renamed over PATH, or, where the
    directory is not writable (torchkit's mount: a file owned by the image's user in a
    directory BuildKit creates for root), over the existing file in one write."""
    report = {"torchkit_verify": 1, "ok": all(r["ok"] for r in records), "checks": records}
    text = json.dumps(report, indent=1) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".verify-", suffix=".json", dir=directory)
    except (IOError, OSError):
        with open(path, "w") as f:
            f.write(text)
        return
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_report(path):
    try:
        with open(path) as f:
            report = json.load(f)
        if not isinstance(report, dict) or report.get("torchkit_verify") != 1:
            raise ValueError("not a torchkit verify report (no \"torchkit_verify\": 1)")
        records = report["checks"]
        failed = []
        for r in records:
            if not r["ok"]:
                failed.append(line(r))
    except (IOError, OSError, ValueError, KeyError, TypeError) as e:
        usage_error("cannot read report %s: %s" % (path, e))
    for text in failed:
        sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return 1 if failed else 0


USAGE = (
    "usage: python verify.py --expect EXPECT [--report REPORT.json] [--exit-zero]\n"
    "       python verify.py --check REPORT.json\n"
)


def main(argv):
    expect = report = check = None
    exit_zero = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if arg == "--exit-zero":
            exit_zero = True
            i += 1
            continue
        if arg in ("--expect", "--report", "--check"):
            if i + 1 >= len(argv):
                usage_error("%s needs a value\n%s" % (arg, USAGE.rstrip()))
            value = argv[i + 1]
            i += 2
        elif arg.split("=", 1)[0] in ("--expect", "--report", "--check"):
            arg, value = arg.split("=", 1)
            i += 1
        else:
            usage_error("unexpected argument %r\n%s" % (arg, USAGE.rstrip()))
        if arg == "--expect":
            expect = value
        elif arg == "--report":
            report = value
        else:
            check = value
    if check is not None:
        if expect is not None or report is not None or exit_zero:
            usage_error("--check takes no other option\n" + USAGE.rstrip())
        return check_report(check)
    if expect is None:
        usage_error("--expect is required\n" + USAGE.rstrip())
    records = verify(load_expect(expect))
    if report is not None:
        try:
            write_report(report, records)
        except (IOError, OSError) as err:
            usage_error("cannot write report %s: %s" % (report, err))
    if exit_zero or all(r["ok"] for r in records):
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
