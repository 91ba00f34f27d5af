import pytest

from macm_core.config import ConfigError, Profile, available_profiles, load_profile
from macm_core.cli import main


@pytest.mark.parametrize("name", ["smoke", "cpu", "cpu-pretrained", "gpu"])
def test_every_profile_loads_into_typed_objects(name):
    profile = load_profile(name)
    assert isinstance(profile, Profile) and profile.name == name
    assert isinstance(profile.data.fps, float) and isinstance(profile.data.num_train, int)


def test_profiles_are_listed():
    assert {"smoke", "cpu", "cpu-pretrained", "gpu"} <= set(available_profiles())


def _write(tmp_path, text):
    base = (load_profile("smoke").source)
    path = tmp_path / "p.yaml"
    path.write_text(open(base).read() + text)
    return path


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(open(load_profile("smoke").source).read().replace("num_train:", "num_trian:"))
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    message = str(err.value)
    assert str(path) in message and "'data.num_trian'" in message and "\n" not in message


def test_wrong_type_names_file_key_and_type(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(open(load_profile("smoke").source).read().replace("num_test: 12", "num_test: twelve"))
    with pytest.raises(ConfigError, match=r"p\.yaml: key 'data\.num_test' must be of type int, got str 'twelve'"):
        load_profile(path)


def test_bool_is_not_an_int(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(open(load_profile("smoke").source).read().replace("seed: 0", "seed: true"))
    with pytest.raises(ConfigError, match="'seed' must be of type int"):
        load_profile(path)


def test_missing_key_and_unknown_profile(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(open(load_profile("smoke").source).read().replace("threads: 1\n", ""))
    with pytest.raises(ConfigError, match="missing key 'threads'"):
        load_profile(path)
    with pytest.raises(ConfigError, match="unknown profile 'cpuu': choose one of"):
        load_profile("cpuu")


def test_cli_reports_a_bad_profile_in_one_line(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(open(load_profile("smoke").source).read().replace("fps: 8", "fsp: 8"))
    assert main(["reproduce", "--profile", str(path), "--no-book"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("macm: error: ") and "'data.fsp'" in err and "\n" not in err


@pytest.mark.parametrize("old, new, key", [
    ("    patch_size: 16\n", "    patch_size: 24\n", "pose.vitpose_tiny.patch_size"),   # 64 px is not a multiple
    ("    warmup_steps: 5\n", "    warmup_steps: 30\n", "pose.vitpose_tiny.warmup_steps"),
    ("    depth: 2\n", "    depth: 0\n", "pose.vitpose_tiny.depth"),
    ("    lr: 0.002\n", "    lr: 0.0\n", "pose.vitpose_tiny.lr"),
    ("    lr: 0.002\n", "    lr: 0.002\n    threads: 0\n", "pose.vitpose_tiny.threads"),
    ("    matmul_dtype: bfloat16  # as the cpu profile\nbody:", "    matmul_dtype: bf16\nbody:",
     "pose.vitpose_tiny.matmul_dtype"),
    ("  length_groups: 3 ", "  matmul_dtype: int8\n  length_groups: 3 ", "train.matmul_dtype"),
])
def test_vitpose_tiny_run_is_data_and_checked_at_load(tmp_path, old, new, key):
    from macm_core.pose.train_vitpose import VitPoseTrainConfig

    smoke = load_profile("smoke")
    run = VitPoseTrainConfig.for_profile(smoke)
    assert run.threads == smoke.pose.vitpose_tiny.threads
    assert run.matmul_dtype == smoke.pose.vitpose_tiny.matmul_dtype == "bfloat16"
    assert (run.steps, run.model.dim, run.model.image_size) == (smoke.pose.vitpose_tiny.steps,
                                                                smoke.pose.vitpose_tiny.dim, smoke.data.image_size)
    text = open(smoke.source).read()
    assert text.count(old) == 1
    path = tmp_path / "p.yaml"
    path.write_text(text.replace(old, new))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_profile(path)


def test_first_seed_only_variants_train_on_the_first_seed(tmp_path):
    from macm_core.results import caption_sets

    smoke = load_profile("smoke")
    assert "macm-uniform" in smoke.train.first_seed_only and len(smoke.train.seeds) > 1
    assert smoke.train.seeds_for("macm-uniform") == smoke.train.seeds[:1]
    assert smoke.train.seeds_for("macm") == smoke.train.seeds
    sets = caption_sets(smoke)
    assert {s for v, s, _ in sets if v == "macm-uniform"} == {smoke.train.seeds[0]}
    assert {s for v, s, _ in sets if v == "macm"} == set(smoke.train.seeds)
    text = open(smoke.source).read()
    path = tmp_path / "p.yaml"
    path.write_text(text.replace("first_seed_only: [macm-uniform", "first_seed_only: [macm-xl"))
    with pytest.raises(ConfigError, match=r"train\.first_seed_only.*'macm-xl', which is not in train\.variants"):
        load_profile(path)
