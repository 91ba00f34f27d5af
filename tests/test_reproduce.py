"""macm reproduce on a throwaway project: execution, reuse, and the one-line errors."""
import nbformat
import pytest

from macm_core.cli import main
from macm_core.reproduce import NotebookFailed, machine, references_differ, run_notebooks

GOOD = '''# %% tags=["parameters"]
profile = "cpu"
seed = 0

# %%
print(f"profile={profile} seed={seed}")
'''

FAILING = GOOD + '''
# %%
values = [1, 2, 3]

# %%
print("before the failure")
raise ValueError(f"the answer is not {sum(values)}")
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00_good.py").write_text(GOOD)
    monkeypatch.setenv("MACM_ROOT", str(tmp_path))
    return tmp_path


def test_executes_with_parameters_then_reuses(project):
    out = project / "executed"
    (first,) = run_notebooks(profile="smoke", seed=3, output_dir=out)
    assert not first.reused
    notebook = nbformat.read(first.output, as_version=4)
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "profile=smoke seed=3" in printed
    assert notebook.metadata["macm"]["profile"] == "smoke"
    assert notebook.metadata["macm"]["machine"] == machine()  # where its numbers were made
    (second,) = run_notebooks(profile="smoke", seed=3, output_dir=out)
    assert second.reused
    (third,) = run_notebooks(profile="smoke", seed=4, output_dir=out)
    assert not third.reused
    (forced,) = run_notebooks(profile="smoke", seed=4, output_dir=out, force=True)
    assert not forced.reused


def test_failing_cell_names_notebook_and_cell_and_keeps_output(project):
    (project / "notebooks" / "01_fails.py").write_text(FAILING)
    with pytest.raises(NotebookFailed) as err:
        run_notebooks(profile="smoke", only=["01_fails"], output_dir=project / "executed")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("notebook 01_fails failed in cell ")
    assert "ValueError: the answer is not 6" in message
    partial = project / "executed" / "01_fails.failed.ipynb"
    assert str(partial) in message and partial.is_file()
    outputs = [o for c in nbformat.read(partial, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
    assert any("before the failure" in o.get("text", "") for o in outputs)
    assert not (project / "executed" / "01_fails.ipynb").exists()


def test_cli_unknown_notebook_is_one_line(project, capsys):
    assert main(["reproduce", "--profile", "smoke", "--only", "99_nope", "--no-book"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "macm: error: unknown notebook '99_nope': the notebooks are 00_good"


def test_cli_failing_cell_is_one_line(project, capsys):
    (project / "notebooks" / "01_fails.py").write_text(FAILING)
    code = main(["reproduce", "--profile", "smoke", "--only", "01_fails", "--no-book",
                 "--output", str(project / "executed")])
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("macm: error: notebook 01_fails failed in cell ")
    assert "ValueError: the answer is not 6" in last


def test_references_made_on_another_machine_are_told_apart(project):
    out = project / "executed"
    (result,) = run_notebooks(profile="smoke", output_dir=out)
    assert references_differ(out) is None
    here = machine()
    assert here["cpu_vendor"] and here["torch_cpu_capability"] and here["torch"].startswith("2.")
    notebook = nbformat.read(result.output, as_version=4)
    notebook.metadata["macm"]["machine"] = {**here, "cpu_vendor": "GenuineIntel", "cpu_model": "Intel Xeon"}
    nbformat.write(notebook, result.output)
    reason = references_differ(out)
    assert reason.startswith("00_good.ipynb was executed on {") and "GenuineIntel" in reason and "\n" not in reason
    del notebook.metadata["macm"]["machine"]  # references from before machines were recorded
    nbformat.write(notebook, result.output)
    assert "a machine it does not record" in references_differ(out)
