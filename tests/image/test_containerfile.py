"""The image's runtime stage has every shared library hoptrace links: each
NEEDED entry of the built binary belongs to a Debian package that the
Containerfile's runtime stage installs, or that one of those depends on, or
that debian:12-slim has already (Essential/required). A quick check without
building; tests/integration/test_image.py builds the image and runs it.

Run with Debian's /usr/bin/python3 -m pytest; HOPTRACE_BIN names the binary.
"""
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def runtime_packages():
    text = (ROOT / "Containerfile").read_text()
    # The runtime stage: the last FROM.
    runtime = text.rsplit("\nFROM ", 1)[1]
    install = re.search(r"apt-get install -y --no-install-recommends(.*?)&&", runtime, re.S)
    return install.group(1).replace("\\", " ").split()


def closure(packages):
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                          "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
                          "--no-enhances", "--no-pre-depends"] + packages,
                         capture_output=True, text=True, check=True).stdout
    names = set(packages)
    for line in out.splitlines():
        m = re.match(r"^\s*\|?(?:Depends|PreDepends): <?([^>\s:]+)", line)
        if m:
            names.add(m.group(1))
        elif line and not line.startswith(" "):
            names.add(line.strip().split(":")[0])
    return names


def in_slim(package):
    """Essential or required packages: debian:12-slim has them."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Essential} ${Priority}", package],
                         capture_output=True, text=True).stdout
    return out.startswith("yes") or "required" in out


def needed_libraries(binary):
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def package_of(soname):
    paths = [line.split(" => ")[1] for line in
             subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout.splitlines()
             if line.strip().startswith(soname + " ") and "x86-64" in line]
    assert paths, f"{soname} not found by ldconfig"
    real = os.path.realpath(paths[0])
    for path in (paths[0], real, real.replace("/usr/lib/", "/lib/"),
                 paths[0].replace("/lib/", "/usr/lib/", 1)):
        r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0]
    raise AssertionError(f"no package owns {soname} ({paths[0]})")


def test_runtime_stage_has_every_library_hoptrace_links():
    binary = os.environ.get("HOPTRACE_BIN", str(ROOT / "build" / "agent" / "hoptrace"))
    wanted = runtime_packages()
    assert "libbpf1" in wanted and "ca-certificates" in wanted
    have = closure(wanted)
    libs = needed_libraries(binary)
    assert "libbpf.so.1" in libs and "libcurl.so.4" in libs
    missing = {}
    for lib in libs:
        pkg = package_of(lib)
        if pkg not in have and not in_slim(pkg):
            missing[lib] = pkg
    assert not missing, f"the runtime stage lacks: {missing}"
