#!/usr/bin/env python3
"""fake-torch.py - writes a FAKE `torch` (plus torchvision, torchaudio) for tests. NOT PyTorch.

This is a test fake for torchkit's verify stage (src/plan/verify.py), its tests
(tests/verify_script.rs) and the stand-in images of scripts/test-env.sh. It writes a
site-packages tree (importable with PYTHONPATH=OUTDIR, or copied into an interpreter's
site-packages) with:

  torch/        __version__, version.cuda, backends.cudnn.version(), _C._cuda_getArchFlags()
                (absent with --cuda none, as in a CPU-only build), cuda.get_arch_list() ([] when
                no device, as the real one), cuda.is_available(), device_count(),
                get_device_name(i), get_device_capability(i), and just enough tensor to run
                (ones((n, n), device="cuda:i") @ same).sum().item()
  torchvision/, torchaudio/   __version__ only
  *.dist-info/  METADATA (Metadata-Version, Name, Version, Requires-Dist), INSTALLER, WHEEL,
                RECORD: what `pip check`, `pip list` and importlib.metadata read

Usage:
  python3 scripts/fake-torch.py OUTDIR --torch 2.8.0+cu128 --cuda 12.8 --cudnn 91002 \\
      --arch "sm_70 sm_75 sm_80 sm_86 sm_90 sm_100 sm_120" \\
      --torchvision 0.23.0 --torchaudio 2.8.0 [--torchvision-requires "torch==2.7.0"] \\
      [--devices "NVIDIA H100 80GB HBM3:9.0,NVIDIA GeForce RTX 5090:12.0"] [--fail-matmul 1] \\
      [--import-error "libcudnn.so.9: cannot open shared object file"]

--cuda none: version.cuda is None and no arch flags (a CPU build); --cudnn none:
backends.cudnn.version() is None; --torchvision/--torchaudio none (the default): not written.
--devices: NAME:MAJOR.MINOR, comma-separated (default: none, so is_available() is False,
unless TORCHKIT_FAKE_GPUS in the environment lists devices the same way: the test
environment's CDI device sets it, see scripts/test-env.sh CDI=1).
--fail-matmul: device indexes whose matmul raises "no kernel image is available".
--import-error: `import torch` raises ImportError with that text.
torchvision and torchaudio require torch==<torch's public version> (--torchvision-requires
replaces torchvision's requirement). The fake torch itself requires nothing.
Existing torch/torchvision/torchaudio packages and dist-info directories in OUTDIR are replaced.
Python 3, standard library only.
"""
import argparse
import base64
import hashlib
import os
import re
import shutil
import sys

MARK = "TEST FAKE written by torchkit scripts/fake-torch.py; this is not PyTorch."

TORCH_INIT = '''"""%(mark)s"""
%(import_error)simport re as _re

__version__ = %(version)r
FAKE = True

from torch import _C, version, backends, cuda  # noqa: E402


def _device(device):
    device = str(device)
    if device == "cpu":
        return None
    m = _re.match(r"cuda(?::(\\d+))?\\Z", device)
    if not m:
        raise RuntimeError("Expected one of cpu, cuda device type at start of device string: " + device)
    if not cuda.is_available():
        raise RuntimeError(
            "Found no NVIDIA driver on your system. (torchkit fake torch: no --devices)")
    index = int(m.group(1) or 0)
    if index >= cuda.device_count():
        raise RuntimeError("CUDA error: invalid device ordinal")
    return index


class Tensor(object):
    def __init__(self, rows, device):
        self._rows = rows
        self.device = device

    @property
    def shape(self):
        return (len(self._rows), len(self._rows[0]) if self._rows else 0)

    def __matmul__(self, other):
        if self.device != other.device:
            raise RuntimeError("Expected all tensors to be on the same device")
        if self.device is not None and self.device in cuda._FAIL_MATMUL:
            raise RuntimeError(
                "CUDA error: no kernel image is available for execution on the device")
        cols = list(zip(*other._rows))
        return Tensor([[float(sum(a * b for a, b in zip(row, col))) for col in cols]
                       for row in self._rows], self.device)

    def sum(self):
        return Tensor([[float(sum(sum(row) for row in self._rows))]], self.device)

    def item(self):
        return self._rows[0][0]


def ones(shape, device="cpu", dtype=None):
    index = _device(device)
    rows, cols = shape
    return Tensor([[1.0] * cols for _ in range(rows)], index)
'''

TORCH_VERSION = '''"""%(mark)s"""
__version__ = %(version)r
cuda = %(cuda)r
git_version = "0000000000000000000000000000000000000000"
hip = None
debug = False
'''

TORCH_C = '''"""%(mark)s The compiled extension of real torch; here only what verify.py reads."""
%(arch_fn)s'''

ARCH_FN = '''

def _cuda_getArchFlags():
    return %(flags)r


def _cuda_getDeviceCount():
    from torch import cuda
    return cuda.device_count()
'''

TORCH_CUDA = '''"""%(mark)s"""
from torch import _C

import os as _os


def _env_devices():
    # The test environment's CDI device sets this, as a real GPU device makes the driver
    # visible: "NAME:MAJOR.MINOR,..." (scripts/test-env.sh CDI=1).
    out = []
    for item in _os.environ.get("TORCHKIT_FAKE_GPUS", "").split(","):
        if ":" in item:
            name, cc = item.rsplit(":", 1)
            out.append((name, [int(x) for x in cc.split(".")]))
    return out


_DEVICES = %(devices)r or _env_devices()
_FAIL_MATMUL = %(fail)r


def _is_compiled():
    return hasattr(_C, "_cuda_getArchFlags")


def is_available():
    return _is_compiled() and len(_DEVICES) > 0


def device_count():
    return len(_DEVICES) if _is_compiled() else 0


def get_arch_list():
    # as the real one: empty when no GPU is visible, whatever the build has
    if not is_available():
        return []
    return (_C._cuda_getArchFlags() or "").split()


def _get(device):
    if not is_available():
        raise RuntimeError("Found no NVIDIA driver on your system. (torchkit fake torch)")
    index = 0 if device is None else int(str(device).split(":")[-1])
    if index >= len(_DEVICES):
        raise AssertionError("Invalid device id")
    return _DEVICES[index]


def get_device_name(device=None):
    return _get(device)[0]


def get_device_capability(device=None):
    return tuple(_get(device)[1])
'''

BACKENDS = '''"""%(mark)s"""
from torch.backends import cudnn  # noqa: F401
'''

CUDNN = '''"""%(mark)s"""
_VERSION = %(cudnn)r
enabled = True


def is_available():
    return _VERSION is not None


def version():
    return _VERSION
'''

COMPANION = '''"""%(mark)s"""
__version__ = %(version)r
'''


def public(version):
    return version.split("+")[0]


def none_or(value):
    return None if value is None or value.lower() in ("none", "") else value


def parse_devices(text):
    devices = []
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        name, sep, cc = item.rpartition(":")
        if not sep or not re.match(r"\d+\.\d+\Z", cc) or not name:
            sys.exit("fake-torch.py: --devices wants NAME:MAJOR.MINOR, comma-separated, not %r" % item)
        devices.append((name, [int(x) for x in cc.split(".")]))
    return devices


def write(root, rel, text, files):
    path = os.path.join(root, rel)
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        os.makedirs(d)
    data = text.encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)
    files.append((rel, data))


def dist_info(root, name, version, requires, files):
    """A dist-info directory as pip writes one, RECORD listing `files` and itself."""
    info = "%s-%s.dist-info" % (name, version)
    meta = ["Metadata-Version: 2.1", "Name: " + name, "Version: " + version,
            "Summary: TEST FAKE of %s written by torchkit scripts/fake-torch.py" % name]
    meta += ["Requires-Dist: " + r for r in requires]
    write(root, info + "/METADATA", "\n".join(meta) + "\n", files)
    write(root, info + "/INSTALLER", "torchkit-fake-torch\n", files)
    write(root, info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: torchkit fake-torch.py\n"
          "Root-Is-Purelib: true\nTag: py3-none-any\n", files)
    write(root, info + "/top_level.txt", name + "\n", files)
    lines = []
    for rel, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append("%s,sha256=%s,%d" % (rel, digest, len(data)))
    lines.append(info + "/RECORD,,")
    with open(os.path.join(root, info, "RECORD"), "w") as f:
        f.write("\n".join(lines) + "\n")


def clean(root, name):
    if os.path.isdir(os.path.join(root, name)):
        shutil.rmtree(os.path.join(root, name))
    for entry in os.listdir(root):
        if re.match(re.escape(name) + r"-[^-]+\.dist-info\Z", entry):
            shutil.rmtree(os.path.join(root, entry))


def main():
    p = argparse.ArgumentParser(description="Write a FAKE torch site-packages tree for tests (not PyTorch).")
    p.add_argument("outdir")
    p.add_argument("--torch", required=True, help="torch.__version__, e.g. 2.8.0+cu128")
    p.add_argument("--cuda", required=True, help="torch.version.cuda, e.g. 12.8, or none")
    p.add_argument("--cudnn", default="none", help="backends.cudnn.version(), e.g. 91002, or none")
    p.add_argument("--arch", default="", help="space-separated arch flags, e.g. 'sm_90 sm_120'")
    p.add_argument("--torchvision", default="none")
    p.add_argument("--torchaudio", default="none")
    p.add_argument("--torchvision-requires", default=None, help="default: torch==<torch public version>")
    p.add_argument("--devices", default="", help="NAME:MAJOR.MINOR,...")
    p.add_argument("--fail-matmul", default="", help="device indexes whose matmul fails, e.g. 0,2")
    p.add_argument("--import-error", default=None, help="`import torch` raises ImportError(TEXT)")
    a = p.parse_args()

    cuda = none_or(a.cuda)
    if cuda is not None and not re.match(r"\d+\.\d+\Z", cuda):
        sys.exit("fake-torch.py: --cuda wants X.Y or none, not %r" % a.cuda)
    cudnn = none_or(a.cudnn)
    if cudnn is not None and not cudnn.isdigit():
        sys.exit("fake-torch.py: --cudnn wants an integer such as 91002, or none, not %r" % a.cudnn)
    archs = a.arch.split()
    for arch in archs:
        if not re.match(r"(sm|compute)_\d+[a-z]*\Z", arch):
            sys.exit("fake-torch.py: --arch entries are sm_XY or compute_XY, not %r" % arch)
    devices = parse_devices(a.devices)
    fail = [int(x) for x in a.fail_matmul.split(",") if x.strip()]

    root = a.outdir
    if not os.path.isdir(root):
        os.makedirs(root)
    for name in ("torch", "torchvision", "torchaudio"):
        clean(root, name)

    m = {"mark": MARK}
    files = []
    import_error = ""
    if a.import_error is not None:
        import_error = "raise ImportError(%r)\n" % a.import_error
    write(root, "torch/__init__.py", TORCH_INIT % dict(m, version=a.torch, import_error=import_error), files)
    write(root, "torch/version.py", TORCH_VERSION % dict(m, version=a.torch, cuda=cuda), files)
    arch_fn = ARCH_FN % {"flags": " ".join(archs)} if cuda is not None else ""
    write(root, "torch/_C.py", TORCH_C % dict(m, arch_fn=arch_fn), files)
    write(root, "torch/cuda/__init__.py", TORCH_CUDA % dict(m, devices=devices, fail=fail), files)
    write(root, "torch/backends/__init__.py", BACKENDS % m, files)
    write(root, "torch/backends/cudnn/__init__.py",
          CUDNN % dict(m, cudnn=None if cudnn is None else int(cudnn)), files)
    dist_info(root, "torch", a.torch, [], files)

    torch_req = "torch==" + public(a.torch)
    for name, version, req in (
        ("torchvision", none_or(a.torchvision), a.torchvision_requires or torch_req),
        ("torchaudio", none_or(a.torchaudio), torch_req),
    ):
        if version is None:
            continue
        files = []
        write(root, name + "/__init__.py", COMPANION % dict(m, version=version), files)
        dist_info(root, name, version, [req], files)


if __name__ == "__main__":
    main()
