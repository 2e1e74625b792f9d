"""Build the real control plane of the test tier from Go modules, once per machine.

No Docker engine, cluster or binary download exists on the machines this project is tested on,
but the Go module proxy does. So the binaries of one pinned Kubernetes release, etcd and kwok
are compiled here and kept in a cache folder in envtest's ``KUBEBUILDER_ASSETS`` layout (one
flat folder of executables). Later runs find them there and build nothing.

    python tests/kube/build.py            # build what is missing, print the assets folder
    python tests/kube/build.py generate   # regenerate the wrapper go.mod files (then commit)

The wrapper modules under ``gomod/`` exist because ``k8s.io/kubernetes`` requires its staging
modules at ``v0.0.0`` and replaces them with local folders, which only works inside its own
repository; ``generate`` rewrites those replaces to the published ``v0.X.Y`` versions, taken
from the release's own go.mod rather than typed by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOMOD = HERE / "gomod"
VERSIONS_FILE = HERE / "versions.env"

KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
BINARIES = (*KUBERNETES_BINARIES, "etcd", "kwok", "kstatus")
# Kueue (R3's tests) is built and cached apart, so that adding it never rebuilt the control plane:
# its version is here, not in versions.env, whose digest keys the control plane's cache.
KUEUE_VERSION = "v0.17.0"
KUEUE_CRDS = "config/components/crd/bases"
# Helm (the chart's tests, deploy/helm/) likewise: its own wrapper module (gomod/helm, outside the
# control plane's digest) and its own cache folder.
HELM_VERSION = "v4.3.2"
HELM_WRAPPER = "helm"
# The peers' controllers (Argo Workflows, Tekton Pipelines: tests/kube/peers.py, for
# benchmarks/peers.py) likewise: wrappers of their own, outside the control plane's digest.
OWN_CACHE_WRAPPERS = (HELM_WRAPPER, "argo", "tekton")
KWOK_CRDS = "kustomize/crd/bases"


class BuildError(RuntimeError):
    """The tier cannot be built; the message names what is missing."""


def versions() -> dict[str, str]:
    pairs = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _inputs_digest() -> str:
    """A digest of everything the control plane's build reads, so that an edit to a wrapper
    rebuilds; Helm's and the peers' wrappers are left out, so that a new Helm, Argo or Tekton
    never rebuilds the control plane."""
    digest = hashlib.sha256(VERSIONS_FILE.read_bytes())
    for path in sorted(GOMOD.rglob("*")):
        if path.is_file() and path.relative_to(GOMOD).parts[0] not in OWN_CACHE_WRAPPERS:
            digest.update(str(path.relative_to(GOMOD)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stepflow" / "kube"
    return Path(os.environ.get("STEPFLOW_KUBE_CACHE", default))


def assets_dir() -> Path:
    """The cache folder of this exact set of versions and wrappers."""
    v = versions()
    key = (
        f"k8s-{v['KUBERNETES_VERSION']}-etcd-{v['ETCD_VERSION']}-kwok-{v['KWOK_VERSION']}-{_inputs_digest()}"
    )
    return cache_root() / key


def _log(message: str) -> None:
    print(f"[kube-build] {message}", file=sys.stderr, flush=True)


def _go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    if shutil.which("go") is None:
        raise BuildError("the real control plane tier needs Go (go 1.26 or newer) on PATH; none was found")
    run_env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "CGO_ENABLED": "0", **(env or {})}
    result = subprocess.run(["go", *args], cwd=cwd, env=run_env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"`go {' '.join(args)}` in {cwd} failed:\n{result.stderr.strip()[-4000:]}")
    return result.stdout


def _timed(what: str, action) -> None:
    _log(f"{what} ...")
    start = time.monotonic()
    action()
    _log(f"{what}: done in {time.monotonic() - start:.0f} s")


def kubernetes_ldflags(version: str) -> str:
    """Version stamps, so that `--version` and discovery report the release, not v0.0.0-master."""
    major, minor = re.match(r"v(\d+)\.(\d+)", version).groups()
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target``, moved into its place in one rename if the block ends
    well, so that an interrupted build never leaves a half-filled cache folder behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def build(target: Path) -> None:
    """Compile every binary into a fresh folder, then move it into place in one rename."""
    v = versions()
    total = time.monotonic()
    _log(f"cold build of the control plane into {target} (one time per machine; this takes a while)")
    with _staged(target) as staging:
        _timed(
            f"kube-apiserver, kube-controller-manager, kube-scheduler, kubectl {v['KUBERNETES_VERSION']}",
            lambda: _go(
                [
                    "build",
                    "-trimpath",
                    "-ldflags",
                    kubernetes_ldflags(v["KUBERNETES_VERSION"]),
                    "-o",
                    str(staging) + "/",
                    *[f"./cmd/{name}" for name in KUBERNETES_BINARIES],
                ],
                GOMOD / "kubernetes",
            ),
        )
        _timed(
            f"etcd {v['ETCD_VERSION']}",
            lambda: _go(
                ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging / "etcd"), "."], GOMOD / "etcd"
            ),
        )
        _timed(
            f"kstatus (sigs.k8s.io/cli-utils {v['CLI_UTILS_VERSION']})",
            lambda: _go(
                ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging / "kstatus"), "."],
                GOMOD / "kstatus",
            ),
        )
        # kwok has no replace directives, so a plain `go install` works; on its own, so that its
        # requirements never move the wrappers' pins.
        _timed(
            f"kwok {v['KWOK_VERSION']}",
            lambda: _go(
                [
                    "install",
                    "-trimpath",
                    "-ldflags",
                    "-s -w",
                    f"sigs.k8s.io/kwok/cmd/kwok@{v['KWOK_VERSION']}",
                ],
                HERE,
                env={"GOBIN": str(staging), "GOFLAGS": ""},
            ),
        )
        missing = [name for name in BINARIES if not (staging / name).is_file()]
        if missing:
            raise BuildError(f"the build produced no {', '.join(missing)}")
    _log(f"cold build finished in {time.monotonic() - total:.0f} s")


def ensure_assets() -> Path:
    """The folder holding every binary: KUBEBUILDER_ASSETS if it is complete, else the cache."""
    given = os.environ.get("KUBEBUILDER_ASSETS")
    if given and all((Path(given) / name).is_file() for name in BINARIES):
        return Path(given)
    target = assets_dir()
    if not all((target / name).is_file() for name in BINARIES):
        build(target)
    return target


def generate() -> None:
    """Rewrite gomod/kubernetes/go.mod from the release's go.mod, then tidy every wrapper."""
    v = versions()
    release = v["KUBERNETES_VERSION"]
    info = json.loads(
        _go(["mod", "download", "-json", f"k8s.io/kubernetes@{release}"], HERE, {"GOFLAGS": ""})
    )
    release_gomod = Path(info["GoMod"]).read_text()
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", release_gomod, re.MULTILINE)
    required = set(re.findall(r"^\s*(k8s\.io/[\w.-]+) v0\.0\.0$", release_gomod, re.MULTILINE))
    published = "v0." + release.split(".", 1)[1]
    replaces = "\n".join(f"\t{m} => {m} {published}" for m in staging if m in required)
    go_directive = re.search(r"^go (\S+)$", release_gomod, re.MULTILINE).group(1)
    (GOMOD / "kubernetes" / "go.mod").write_text(
        "// Generated by tests/kube/build.py generate from the go.mod of k8s.io/kubernetes "
        f"{release}: do not edit.\n"
        "module stepflow.dev/tests/kube/kubernetes\n\n"
        f"go {go_directive}\n\nrequire k8s.io/kubernetes {release}\n\n"
        f"// Every staging module the release requires, at its published version.\nreplace (\n{replaces}\n)\n"
    )
    (GOMOD / "etcd" / "go.mod").write_text(
        "module stepflow.dev/tests/kube/etcd\n\n"
        f"go {go_directive}\n\nrequire go.etcd.io/etcd/server/v3 {v['ETCD_VERSION']}\n"
    )
    (GOMOD / "kstatus" / "go.mod").write_text(
        "module stepflow.dev/tests/kube/kstatus\n\n"
        f"go {go_directive}\n\nrequire sigs.k8s.io/cli-utils {v['CLI_UTILS_VERSION']}\n"
    )
    for module in ("kubernetes", "etcd", "kstatus"):
        _timed(
            f"go mod tidy in gomod/{module}",
            lambda m=module: _go(["mod", "tidy"], GOMOD / m, {"GOFLAGS": ""}),
        )


def kueue_dir() -> Path:
    return cache_root() / f"kueue-{KUEUE_VERSION}"


def ensure_kueue() -> Path:
    """The folder holding Kueue's controller (``kueue``) and its CRDs (``crds/``), built from
    the Go module proxy once per machine. Kueue has no replace directives, so `go install`
    works, and the CRDs come from the same module's source."""
    target = kueue_dir()
    if (target / "kueue").is_file() and (target / "crds").is_dir():
        return target
    with _staged(target) as staging:
        _timed(
            f"Kueue {KUEUE_VERSION} (one time per machine, about 5 minutes on 2 cores)",
            lambda: _go(
                ["install", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kueue/cmd/kueue@{KUEUE_VERSION}"],
                HERE,
                env={"GOBIN": str(staging), "GOFLAGS": ""},
            ),
        )
        info = json.loads(
            _go(["mod", "download", "-json", f"sigs.k8s.io/kueue@{KUEUE_VERSION}"], HERE, {"GOFLAGS": ""})
        )
        shutil.copytree(Path(info["Dir"]) / KUEUE_CRDS, staging / "crds")
        for path in (staging / "crds").rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # the module cache is read-only
    return target


def _wrapper_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def helm_dir() -> Path:
    return cache_root() / f"helm-{HELM_VERSION}-{_wrapper_digest(GOMOD / HELM_WRAPPER)}"


def ensure_helm() -> Path:
    """The path of a ``helm`` binary built from the Go module proxy once per machine, from the
    wrapper module gomod/helm (a ``tool`` directive pins helm.sh/helm/v4 and go.sum its
    dependencies). The version stamp is the one Helm's own Makefile sets, so that
    ``helm version`` names the release."""
    target = helm_dir()
    if (target / "helm").is_file():
        return target / "helm"
    with _staged(target) as staging:
        _timed(
            f"Helm {HELM_VERSION} (one time per machine)",
            lambda: _go(
                [
                    "build",
                    "-trimpath",
                    "-ldflags",
                    f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
                    "-o",
                    str(staging / "helm"),
                    "helm.sh/helm/v4/cmd/helm",
                ],
                GOMOD / HELM_WRAPPER,
            ),
        )
    return target / "helm"


def kwok_logs_crd() -> Path:
    """kwok's ``Logs`` CRD, from the source of the module its binary is built from, copied into
    the cache once: with it, a test gives one pod's containers a log of their own."""
    version = versions()["KWOK_VERSION"]
    target = cache_root() / f"kwok-{version}-crds" / "kwok.x-k8s.io_logs.yaml"
    if not target.is_file():
        info = json.loads(
            _go(["mod", "download", "-json", f"sigs.k8s.io/kwok@{version}"], HERE, {"GOFLAGS": ""})
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_suffix(".partial")
        shutil.copyfile(Path(info["Dir"]) / KWOK_CRDS / target.name, staged)  # not read-only
        staged.replace(target)
    return target


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["generate"]:
            generate()
        else:
            print(ensure_assets())
            print(ensure_kueue())
            print(ensure_helm())
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
