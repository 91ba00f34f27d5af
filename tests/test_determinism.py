"""Seeds and thread counts: what a spawned worker starts with."""
import os
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from macm_core.determinism import THREAD_ENV, spawned_with_threads


def test_spawned_children_start_with_capped_thread_pools_and_the_environment_is_restored(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with spawned_with_threads(1) as context, ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        assert [pool.submit(os.getenv, name).result() for name in THREAD_ENV] == ["1"] * len(THREAD_ENV)
        assert pool.submit(torch.get_num_threads).result() == 1
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ
    with pytest.raises(ValueError, match="threads must be >= 1"):
        with spawned_with_threads(0):
            pass
