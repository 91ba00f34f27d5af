"""The optional LLM judge on the five HMI dimensions: prompt, parsing, a run on a real
(tiny, random) local causal LM end to end, raw replies kept, clear errors."""
import json
import math

import pytest
import torch

from macm_core.eval.llm_judge import (HMI_DIMENSIONS, judge_captions, judge_prompt, load_judge,
                                      parse_judgement, summarise_judgements, write_judgements)


def test_prompt_names_every_dimension_and_both_texts():
    prompt = judge_prompt(" The person waves the left hand. ", "A person waves.")
    assert all(name in prompt for name in HMI_DIMENSIONS)
    assert "Reference: The person waves the left hand.\n" in prompt and prompt.endswith("Candidate: A person waves.")


def test_parse_reads_json_then_lines_and_refuses_out_of_range_or_missing_scores():
    scores = dict(zip(HMI_DIMENSIONS, [7, 3, 5, 0, 10]))
    reply = "Sure. " + json.dumps({k.upper(): v for k, v in scores.items()}) + " Done."
    assert parse_judgement(reply) == {k: float(v) for k, v in scores.items()}
    lines = "Details of Movements: 6\nCharacter Attributes = 4.5\nMotivation and Reason: 11"
    parsed = parse_judgement(lines)
    assert parsed["Details of Movements"] == 6.0 and parsed["Character Attributes"] == 4.5
    assert math.isnan(parsed["Motivation and Reason"]) and math.isnan(parsed["Interaction with Environment"])
    assert all(math.isnan(v) for v in parse_judgement("no idea {not json}").values())
    partial = parse_judgement('{"Details of Movements": "high", "Character Attributes": 2}')
    assert math.isnan(partial["Details of Movements"]) and partial["Character Attributes"] == 2.0


def test_a_missing_judge_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no Hugging Face model.*eval.judge_path.*nothing is downloaded"):
        load_judge(tmp_path / "Qwen2-7B-Instruct")


@pytest.fixture(scope="module")
def tiny_judge_folder(tmp_path_factory):
    from transformers import Qwen2ForCausalLM

    from macm_core.model.configuration_macm import small_qwen2_config
    from macm_core.runs import load_caption_tokenizer

    tokenizer = load_caption_tokenizer("smoke", progress=False)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(small_qwen2_config(len(tokenizer), hidden_size=32, intermediate_size=64,
                                                num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                                pad_token_id=tokenizer.pad_token_id,
                                                eos_token_id=tokenizer.eos_token_id))
    folder = tmp_path_factory.mktemp("judge")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_judge_runs_a_local_model_and_keeps_every_raw_reply(tiny_judge_folder, tmp_path):
    judge = load_judge(tiny_judge_folder)
    predictions = {"b": "A person kicks.", "a": "A person waves the right hand twice."}
    references = {"a": "The person waves the left hand twice.", "b": "The person kicks with the left foot.",
                  "c": "unused"}
    with pytest.warns(UserWarning, match="no chat template"):  # the caption tokenizer has none
        table = judge_captions(predictions, references, judge, batch_size=2, max_new_tokens=6)
    assert set(table["prompt_format"]) == {"plain USER/ASSISTANT"}
    assert list(table["clip_id"]) == ["a", "b"] and list(table["candidate"]) == [predictions["a"], predictions["b"]]
    assert table["raw"].map(lambda r: isinstance(r, str)).all()
    # a random model's replies hold no scores: NaN, counted as unparsed, and still saved
    summary = summarise_judgements(table)
    assert summary["judge unparsed"] == 2.0 and math.isnan(summary["judge Overall"])
    path = write_judgements(table, tmp_path / "judgements.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["raw"] for r in rows] == list(table["raw"]) and rows[0]["Details of Movements"] is None
    # greedy decoding: the same replies again, batched differently
    with pytest.warns(UserWarning, match="no chat template"):
        again = judge_captions(predictions, references, judge, batch_size=1, max_new_tokens=6)
    assert list(again["raw"]) == list(table["raw"])
    with pytest.raises(KeyError, match="no reference"):
        judge_captions({"zz": "x"}, references, judge)


def test_summary_means_each_dimension_over_replies_that_scored_it():
    import pandas as pd

    table = pd.DataFrame([dict(zip(HMI_DIMENSIONS, [4, 6, 8, 2, 10])), dict(zip(HMI_DIMENSIONS, [6, 6, 8, 2, 10])),
                          {name: math.nan for name in HMI_DIMENSIONS}])
    summary = summarise_judgements(table)
    assert summary["judge Details of Movements"] == 5.0 and summary["judge unparsed"] == 1.0
    assert summary["judge Overall"] == pytest.approx((5 + 6 + 8 + 2 + 10) / 5)


def test_eval_with_judge_needs_a_judge_path():
    from macm_core.results import evaluate_profile

    with pytest.raises(ValueError, match="names no LLM judge: set eval.judge_path"):
        evaluate_profile("smoke", judge=True)
