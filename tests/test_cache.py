import dataclasses

import pytest

from macm_core import cache


@dataclasses.dataclass(frozen=True)
class Cfg:
    size: int
    name: str


def test_cache_root_follows_the_environment(tmp_cache):
    assert cache.cache_root() == tmp_cache


def test_config_hash_is_stable_and_sensitive():
    assert cache.config_hash(Cfg(1, "a")) == cache.config_hash({"name": "a", "size": 1})
    assert cache.config_hash(Cfg(1, "a")) != cache.config_hash(Cfg(2, "a"))
    assert cache.stage_dir("data", Cfg(1, "a")).name == cache.config_hash(Cfg(1, "a"))


def test_unhashable_value_is_a_clear_error():
    with pytest.raises(TypeError, match="cannot hash a config value of type object"):
        cache.config_hash({"x": object()})


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.json"
    cache.write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with cache.atomic_path(target) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
