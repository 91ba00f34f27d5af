import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty artifact cache root for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("MACM_CACHE", str(root))
    return root
