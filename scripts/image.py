"""Build the operator image from the Dockerfile without a Docker daemon (``make image``).

    python3 scripts/image.py build [--base standin|registry] [--tag NAME]
    python3 scripts/image.py buildah ARGS...     # buildah on the same storage: push, inspect, rmi

buildah builds it, with the ``vfs`` storage driver and ``chroot`` isolation, because the machines
this project is built on have no container daemon, no overlay mounts and no user namespaces.
Its storage is this script's own, in the user's cache folder, one per base (below), so nothing
here touches the machine's default container storage. An image built from the same inputs (the
files the build context holds, the Dockerfile, the base) is kept and not built again: vfs copies
a whole file system for each container, so even a build whose every layer is cached takes
minutes. Nothing else is kept (no layer cache; an image a rebuild replaces is removed).

The base. ``--base registry`` pulls the Dockerfile's real base (``FROM python:…``) wherever a
registry is reachable. ``--base standin`` (the default of ``make image``) is for machines that
reach no container registry: a Debian root file system with the same Python minor version,
bootstrapped with debootstrap from the machine's own Debian mirror and committed under the very
name the Dockerfile's ``FROM`` uses, in the stand-in's own storage so that it can never be
mistaken for the real image. It proves the Dockerfile's steps and the operator they build; the
published image is built on the real base. It is bootstrapped once per machine (slow), and kept.

The machine's needs stay out of the Dockerfile: where HTTPS passes a TLS-inspecting proxy that
only the host trusts, pip inside the build needs the host's CA bundle, so the build command mounts
it read-only (only into ``RUN`` steps; nothing of it is committed) and names it with ``PIP_CERT``
as a build argument that the Dockerfile never declares, i.e. only for this command's ``RUN``
steps. The image built elsewhere, without this script, is the same image.

Only the standard library: ``make image`` needs no virtualenv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
BASES = ("standin", "registry")
# The stand-in: Debian 12 (bookworm) has Python 3.11, the real base's minor version.
STANDIN_SUITE = "bookworm"
STANDIN_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
# Bumped when the recipe below changes, so that a kept stand-in is bootstrapped again.
STANDIN_RECIPE = 1
STANDIN_LABEL = "dev.stepflow.standin"
INPUTS_LABEL = "dev.stepflow.inputs"
# The build context (.dockerignore lets in only these), and what else decides the image.
CONTEXT = ("pyproject.toml", "README.md", "operator")


class ImageError(RuntimeError):
    """The image cannot be built; the message says why and what to do."""


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def default_tag() -> str:
    return f"localhost/stepflow-operator:{version()}"


def storage(base: str) -> Path:
    """This script's container storage for ``base``: kept per machine, like tests/kube's binaries."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stepflow" / "image"
    return Path(os.environ.get("STEPFLOW_IMAGE_STORAGE", cache)) / base


def buildah(base: str) -> list[str]:
    """The buildah command line on this script's storage (vfs: no overlay mounts here)."""
    if shutil.which("buildah") is None:
        raise ImageError("buildah is not installed: run scripts/ensure-buildah (make image does)")
    root = storage(base)
    return ["buildah", "--root", str(root / "root"), "--runroot", str(root / "run"),
            "--storage-driver", "vfs"]


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, **kwargs)


def base_images() -> list[str]:
    """The images the Dockerfile's stages start from (not its own stages)."""
    stages: set[str] = set()
    bases = []
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            image, stage = match.groups()
            if image.lower() not in stages and image not in bases:
                bases.append(image)
            if stage:
                stages.add(stage.lower())
    return bases


def image_labels(argv: list[str], name: str) -> dict[str, str] | None:
    """The labels of a local image, or None if the storage has no such image."""
    found = subprocess.run([*argv, "inspect", "--type", "image", name], capture_output=True, text=True)
    if found.returncode != 0:
        return None
    return json.loads(found.stdout).get("OCIv1", {}).get("config", {}).get("Labels") or {}


def debian_mirror() -> str:
    """The machine's own Debian mirror, from its apt sources (deb822 or one-line form)."""
    sources = Path("/etc/apt/sources.list.d")
    paths = [*sorted(sources.glob("*.sources")), *sorted(sources.glob("*.list")),
             Path("/etc/apt/sources.list")]
    for path in paths:
        if not path.is_file():
            continue
        text = path.read_text()
        uris = re.findall(r"(?m)^URIs:\s*(\S+)", text)
        uris += re.findall(r"(?m)^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text)
        for uri in uris:
            if not uri.rstrip("/").endswith("-security"):
                return uri
    raise ImageError("no Debian mirror in /etc/apt/sources*: the stand-in base needs one "
                     "(or use --base registry)")


def standin_key() -> str:
    recipe = json.dumps([STANDIN_RECIPE, STANDIN_SUITE, STANDIN_PACKAGES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def ensure_standin(argv: list[str], name: str) -> None:
    """Commit a Debian stand-in for the real base under ``name``, unless this recipe's is kept."""
    key = standin_key()
    labels = image_labels(argv, name)
    if labels is not None and labels.get(STANDIN_LABEL) == key:
        return
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed: run scripts/ensure-buildah (make image does)")
    print(f"bootstrapping a stand-in for {name} from Debian {STANDIN_SUITE} (once per machine) ...",
          flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="stepflow-standin-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(STANDIN_PACKAGES)}",
             STANDIN_SUITE, str(rootfs), debian_mirror()], stdout=subprocess.DEVNULL)
        # What the real base offers and Debian's Python lacks: `python`, and pip allowed to
        # install outside a virtualenv (PEP 668's marker).
        (rootfs / "usr/bin/python").symlink_to("python3")
        (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        container = run([*argv, "from", "scratch"], capture_output=True).stdout.strip()
        try:
            mount = run([*argv, "mount", container], capture_output=True).stdout.strip()
            run(["cp", "-a", f"{rootfs}/.", mount])
            run([*argv, "umount", container], stdout=subprocess.DEVNULL)
            run([*argv, "config", "--label", f"{STANDIN_LABEL}={key}",
                 "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "--env", "LANG=C.UTF-8", "--cmd", "python3", container])
            if labels is not None:
                run([*argv, "rmi", "--force", name], stdout=subprocess.DEVNULL)
            run([*argv, "commit", "--quiet", container, name], stdout=subprocess.DEVNULL)
        finally:
            subprocess.run([*argv, "rm", container], capture_output=True)
    print(f"stand-in base ready in {time.monotonic() - started:.0f} s", flush=True)


def inputs_digest(base: str) -> str:
    """A digest of everything the image is built from, so that an unchanged tree builds nothing."""
    digest = hashlib.sha256(f"{base} {standin_key() if base == 'standin' else ''}".encode())
    files = [DOCKERFILE, ROOT / ".dockerignore"]
    for name in CONTEXT:
        path = ROOT / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for path in files:
        relative = path.relative_to(ROOT)
        if "__pycache__" in relative.parts or path.suffix == ".pyc" or ".egg-info" in str(relative):
            continue
        digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ca_bundle() -> Path | None:
    """The host's CA bundle, the one its own pip trusts: PIP_CERT, else OpenSSL's default file."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                      ssl.get_default_verify_paths().cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def build(base: str, tag: str) -> str:
    """Build the image from the Dockerfile; returns its tag."""
    argv = buildah(base)
    digest = inputs_digest(base)
    if (image_labels(argv, tag) or {}).get(INPUTS_LABEL) == digest:
        print(f"{tag} is up to date (built from these inputs on the {base} base); storage: {storage(base)}")
        return tag
    if base == "standin":
        for name in base_images():
            ensure_standin(argv, name)
    command = [*argv, "bud", "--isolation", "chroot", "--file", str(DOCKERFILE), "--tag", tag,
               "--label", f"{INPUTS_LABEL}={digest}", "--pull=never" if base == "standin" else "--pull=true"]
    bundle = ca_bundle()
    if bundle is not None:
        command += ["--volume", f"{bundle}:{bundle}:ro", "--build-arg", f"PIP_CERT={bundle}"]
    started = time.monotonic()
    run([*command, str(ROOT)])
    # The image this one replaced, now untagged; the stand-in base stays (it is tagged).
    run([*argv, "rmi", "--prune"], stdout=subprocess.DEVNULL)
    size = run([*argv, "images", "--format", "{{.Size}}", tag], capture_output=True).stdout.strip()
    print(f"built {tag} on the {base} base in {time.monotonic() - started:.0f} s ({size}); "
          f"storage: {storage(base)}", flush=True)
    return tag


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", help="build the image")
    make.add_argument("--base", choices=BASES, default="standin")
    make.add_argument("--tag", default=default_tag())
    tool = sub.add_parser("buildah", help="run buildah on this script's storage")
    tool.add_argument("--base", choices=BASES, default="standin")
    tool.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(args)
    try:
        if options.command == "build":
            build(options.base, options.tag)
            return 0
        return subprocess.run([*buildah(options.base), *options.args]).returncode
    except ImageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"error: {' '.join(map(str, error.cmd[:8]))} ... exited {error.returncode}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
