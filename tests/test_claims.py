import pytest

from macm_core import claims


def test_table1_holds_the_published_numbers():
    table = claims.paper_table1()
    assert table.shape == (9, 9)
    assert table.loc["M-ACM Qwen2-7B", "CIDEr"] == pytest.approx(0.80662)
    assert table.loc["LLaVA-OV-Qwen2-7B", "BLEU-1"] == pytest.approx(0.32558)
    # raw fractions, as the paper reports them
    assert ((table >= 0) & (table <= 1)).all().all()
    # the claim C1 as stated: M-ACM Qwen2-7B leads every column
    assert (table.idxmax() == "M-ACM Qwen2-7B").all()


def test_overall_consistency_flags_the_published_inconsistency():
    check = claims.overall_consistency(claims.paper_table2())
    assert check.loc["M-ACM Qwen2-7B", "equals_mean"]
    assert check.loc["VideoLLaVA", "equals_mean"]
    assert not check.loc["QwenVL2.5-7B", "equals_mean"]
    assert check.loc["QwenVL2.5-7B", "equals_movements"]
    assert check.loc["QwenVL2.5-7B", "mean_of_dimensions"] == pytest.approx(4.28)
    odd = set(check.index[~check["equals_mean"]])
    assert odd == {"MotionLLM", "LLaVA-OV-Llama3-8B", "LLaVA-OV-Qwen2-7B", "QwenVL2-7B", "QwenVL2.5-7B"}
    assert claims.overall_consistency(claims.paper_ablation())["equals_mean"].all()


def test_claims_map_names_a_notebook_and_a_state_for_every_claim(tmp_path):
    table = claims.claims_map()
    assert table.index.is_unique and len(table) >= 10
    assert table.loc["C1", "notebook"] == "10_main_results"
    empty = tmp_path / "notebooks"
    empty.mkdir()
    (empty / "11_ablation.py").write_text("# %%\n")
    states = claims.claims_map(notebook_dir=empty)["status"]
    assert states["C3"] == "notebook written"
    assert states["C1"] == "notebook not yet written (issue 7)"


def test_a_broken_data_file_is_a_clear_error(tmp_path):
    (tmp_path / "paper_table1.csv").write_text("model,BLEU-1\nX,0.1\n")
    with pytest.raises(ValueError, match="paper_table1.csv: missing columns"):
        claims.paper_table1(tmp_path)
    with pytest.raises(FileNotFoundError, match="paper_table2.csv is missing"):
        claims.paper_table2(tmp_path)
