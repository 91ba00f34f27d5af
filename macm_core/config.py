"""Profiles: YAML files read into typed, frozen config objects.

A profile (``smoke``, ``cpu``, ``cpu-pretrained``, ``gpu``) is one YAML file in
``macm_core/profiles/``; a path to any other YAML file works the same way.  Reading is
strict: an unknown key, a missing section or a value of the wrong type is a
``ConfigError`` whose one-line message names the file and the key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILE_DIR = Path(__file__).parent / "profiles"


class ConfigError(ValueError):
    """A profile file that cannot be read into the config objects."""


@dataclass(frozen=True)
class DataConfig:
    """Sizes and rendering settings of the synthetic benchmark (HMI-Synth)."""

    num_train: int
    num_val: int
    num_test: int
    num_heldout: int
    num_frames: int
    fps: float
    image_size: int
    # (part, action) pairs kept out of training, for the held-out-composition test split
    held_out_pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PoseConfig:
    """The pose backend of the motion pathway and the files it needs (local paths only)."""

    backend: str
    mmpose_config: str | None = None
    mmpose_checkpoint: str | None = None
    det_config: str | None = None
    det_checkpoint: str | None = None


@dataclass(frozen=True)
class BodyConfig:
    """The body model: None = the procedural SMPL-format body; else a folder or .pkl of SMPL."""

    smpl_model_path: str | None = None


@dataclass(frozen=True)
class BookConfig:
    """Where executed notebooks' figures go (static PNG/SVG copies)."""

    figures_dir: str


@dataclass(frozen=True)
class Profile:
    """One complete profile; every entry point takes one of these."""

    name: str
    description: str
    seed: int
    threads: int
    data: DataConfig
    pose: PoseConfig
    body: BodyConfig
    book: BookConfig
    source: str = field(default="", compare=False)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def profile_path(profile: str | Path) -> Path:
    """The YAML file of a profile name (``cpu``) or of a path to a YAML file."""
    path = Path(profile)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"profile file {path} does not exist")
        return path
    path = PROFILE_DIR / f"{profile}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown profile {str(profile)!r}: choose one of {', '.join(available_profiles())} "
            "or give the path of a .yaml file"
        )
    return path


def load_profile(profile: str | Path = "cpu") -> Profile:
    """Read a profile by name or path into a ``Profile``; strict about keys and types."""
    path = profile_path(profile)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    data = {**data, "source": str(path)}
    return _build(Profile, data, where=str(path), prefix="")


def _build(cls: type, data: dict[str, Any], *, where: str, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {prefix + unknown[0]!r} "
            f"(known keys here: {', '.join(sorted(fields))})"
        )
    values = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing key {key!r}")
            continue
        values[name] = _convert(hints[name], data[name], where=where, key=key)
    return cls(**values)


def _convert(hint: Any, value: Any, *, where: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(o for o in options if o is not type(None))
        origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key {key!r} must be a mapping, got {value!r}")
        return _build(hint, value, where=where, prefix=key + ".")
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: key {key!r} must be a list, got {value!r}")
        return tuple(_convert(item, v, where=where, key=f"{key}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(
            f"{where}: key {key!r} must be of type {hint.__name__}, "
            f"got {type(value).__name__} {value!r}"
        )
    return value
