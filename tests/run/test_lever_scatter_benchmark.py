"""`benchmarks/lever_scatter.py`: one row and point per run from its summary.json, runs without
a graph as lines, clear errors for directories that are not finished runs."""
import json
import shutil

from run_helpers import benchmark, run_benchmark

lever_scatter = benchmark("lever_scatter")


def test_rows_follow_the_summaries_and_the_figure_is_written(embedding_run, tmp_path):
    no_graph = tmp_path / "kd-mlp"
    no_graph.mkdir()
    summary = json.loads((embedding_run / "summary.json").read_text())
    summary.pop("graph_consistency")
    summary["distill"]["test"]["last"] = {"bank": 0.5, "batch": 0.5}
    (no_graph / "summary.json").write_text(json.dumps(summary))
    fig = tmp_path / "figs" / "levers.png"
    out = run_benchmark(lever_scatter, [embedding_run, no_graph, "--out", fig])
    want = json.loads((embedding_run / "summary.json").read_text())
    rows = {l.split("|")[1].strip(): [c.strip() for c in l.split("|")[2:-1]] for l in out.splitlines()
            if l.startswith("| ") and not l.startswith("| run | test acc")}
    assert rows[embedding_run.name][:3] == [f"{100 * want['distill']['test']['last']['bank']:.2f} %", "bank",
                                            f"{100 * want['graph_consistency']['learned']:.2f} %"]
    assert rows["kd-mlp"][:3] == ["50.00 %", "bank", "– (no graph)"]
    assert fig.is_file() and fig.stat().st_size > 1000 and not list(fig.parent.glob(".*tmp*"))
    best = run_benchmark(lever_scatter, [embedding_run, "--which", "best"])
    assert f"{100 * want['distill']['test']['best_val']['bank']:.2f} %" in best


def test_directories_that_are_not_runs_are_refused(embedding_run, tmp_path, capsys):
    assert lever_scatter.main([str(tmp_path)]) == 2
    assert f"run={str(tmp_path)!r}: no summary.json there" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text(json.dumps({"distill": {}}))
    assert lever_scatter.main([str(bad)]) == 2
    assert "has no distill.test accuracies" in capsys.readouterr().err
    twins = [tmp_path / "a" / "run", tmp_path / "b" / "run"]      # same name: labelled by their parents
    for t in twins:
        shutil.copytree(embedding_run, t)
    out = run_benchmark(lever_scatter, twins)
    assert "| a/run |" in out and "| b/run |" in out
