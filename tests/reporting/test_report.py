"""``mia-report`` on runs created here: files, embedded figures, exact CSV, LaTeX, commands."""

from __future__ import annotations

import base64
import csv
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from mlflow.tracking import MlflowClient

from benchmark.cli.job import write_views
from benchmark.config.compose import to_container
from benchmark.errors import ConfigError
from benchmark.evaluation.audit import VIOLATION_TAG
from benchmark.evaluation.metrics import Interval
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from benchmark.experiment.results import ExperimentResult
from benchmark.reporting.cli import main
from benchmark.reporting.document import inline_html, latex_escape
from benchmark.reporting.figures import pareto_front
from benchmark.reporting.provenance import reproduce_command
from benchmark.reporting.queries import open_client, select_runs
from benchmark.reporting.report import build_report
from benchmark.reporting.runs import ConfigRun, defense_family, label_runs, merge_reruns
from benchmark.reporting.sections import comparability_warning
from benchmark.reporting.summary import format_summary, strongest_attack
from benchmark.tracking.params import config_hash, flatten
from benchmark.tracking.record import record, record_failure
from defenses.base import DEFENSES
from tests.conftest import FAST, compose_config, only_attacks, seed_store
from tests.evaluation.test_audit_run import OVERFIT

PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Store:
    uri: str
    runs: dict[str, str]  # configuration name -> run id
    failed: str
    sweep: str
    rerun: str  # an identical, later rerun of "topk" (same config hash)
    results: dict[str, ExperimentResult]


#: The attacks the recorded runs carry: the report's columns, not the whole suite's time.
REPORTED_ATTACKS = only_attacks("loss", "lira_online", "lira_offline", "rmia")


@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_mlflow_db) -> Store:
    """Three recorded configurations, a failed one, and a sweep parent over two of them.

    ``weight_decay`` and ``topk`` are recorded with an accountant epsilon (as DP-SGD runs are):
    50 for topk (above every bound), 0.001 for weight_decay (below: must be flagged)."""
    root = tmp_path_factory.mktemp("store") / "results"
    seed_store(root, empty_mlflow_db)
    configurations = {
        "none": (["protocol.canaries=10"], None),
        "weight_decay": ([*OVERFIT[len(FAST) :], "defense=weight_decay"], [1e-3] * 4),
        "topk": (["defense=topk", "defense.topk.k=2"], [50.0] * 4),
    }
    runs, results = {}, {}
    for name, (overrides, epsilons) in configurations.items():
        cfg = compose_config([*FAST, *REPORTED_ATTACKS, *overrides], root)
        result = execute(prepare(cfg, show_progress=False))
        result.epsilons = epsilons
        results[name] = result
        summary = format_summary(result)
        runs[name] = record(
            result, cfg.tracking, lambda folder, r=result, t=summary: write_views(r, t, folder)
        )
    rerun = record(result, cfg.tracking)  # "topk" again: same config, same hash, a new run
    failed_cfg = compose_config([*FAST, "training.lr=1e6"], root)
    failed = record_failure(
        failed_cfg.tracking, to_container(failed_cfg), "training diverged: loss became nan"
    )
    client = MlflowClient(failed_cfg.tracking.uri)
    experiment_id = client.get_run(failed).info.experiment_id
    sweep = client.create_run(
        experiment_id, tags={"command": "mia-bench -m defense=none,weight_decay"}
    ).info.run_id
    for name in ("none", "weight_decay"):
        client.set_tag(runs[name], "mlflow.parentRunId", sweep)
    return Store(failed_cfg.tracking.uri, runs, failed, sweep, rerun, results)


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(store.uri, experiment="mia-bench", out=out, progress=False)


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])
        self._in_title = tag == "title"

    def handle_data(self, data):
        if self._in_title:
            self.title += data


@pytest.mark.slow
def test_report_writes_every_file(report):
    for path in (report.markdown, report.html, report.csv, report.latex):
        assert path.exists() and path.stat().st_size > 0
    names = sorted(p.name for p in report.figures)
    assert names == [
        "canaries.png",
        "epsilons.png",
        "roc-00.png",
        "roc-01.png",
        "roc-02.png",
        "tradeoff.png",
    ]


@pytest.mark.slow
def test_html_parses_and_embeds_every_figure(report):
    parser = Images()
    parser.feed(report.html.read_text())
    parser.close()
    assert parser.title.startswith("mia-bench report")
    prefix = "data:image/png;base64,"
    assert len(parser.sources) == len(report.figures)
    assert all(src.startswith(prefix) for src in parser.sources)
    embedded = {base64.b64decode(src[len(prefix) :]) for src in parser.sources}
    assert embedded == {path.read_bytes() for path in report.figures}
    assert all(image.startswith(PNG) for image in embedded)


@pytest.mark.slow
def test_markdown_links_every_figure(report):
    text = report.markdown.read_text()
    for figure in report.figures:
        assert f"](figures/{figure.name})" in text
    assert "Regenerate this report: `mia-report --experiment mia-bench" in text
    assert "mia-bench -m defense=none,weight_decay" in text  # the sweep's command


@pytest.mark.slow
def test_csv_round_trips_mlflow_metrics_exactly(report, store):
    client = MlflowClient(store.uri)
    with report.csv.open() as handle:
        rows = list(csv.DictReader(handle))
    # topk's identical rerun stands for it (the latest run of its config hash).
    reported = {store.runs["none"], store.runs["weight_decay"], store.rerun, store.failed}
    assert {row["run_id"] for row in rows} == reported
    for row in rows:
        metrics = client.get_run(row["run_id"]).data.metrics
        cells = {k[len("metrics.") :]: v for k, v in row.items() if k.startswith("metrics.") and v}
        assert set(cells) == set(metrics)
        for key, value in metrics.items():
            assert float(cells[key]) == value, key  # exact, not approximately
        assert row["tags.config_hash"] == client.get_run(row["run_id"]).data.tags["config_hash"]
    by_id = {row["run_id"]: row for row in rows}
    assert by_id[store.rerun]["params.defense.topk.k"] == "2"
    assert by_id[store.rerun]["reruns"] == store.runs["topk"]
    assert by_id[store.failed]["status"] == "FAILED"
    assert by_id[store.rerun]["metrics.privacy/lira_online/eps_lb_ci_low"]
    assert by_id[store.rerun]["metrics.dp/epsilon"] == "50.0"


@pytest.mark.slow
def test_report_says_which_runs_a_sweep_made_and_merges_reruns(report, store):
    text = report.markdown.read_text()
    assert "2 of the 4 configuration runs were produced by `mia-bench -m" in text
    assert "the other 2 are single runs" in text
    assert "1 identical rerun(s) merged by config hash" in text
    assert f"also run as `{store.runs['topk']}`" in text
    assert "not directly comparable" not in text  # one n_models, dataset, model and suite


@pytest.mark.slow
def test_latex_table_is_booktabs_with_a_row_per_configuration(report):
    tex = report.latex.read_text()
    for command in ("\\begin{tabular}", "\\toprule", "\\midrule", "\\bottomrule", "\\end{table}"):
        assert command in tex
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    assert len(body) == 3  # finished configurations only
    assert any("& weight\\_decay" in line for line in body)
    assert "\\scriptsize $[" in tex  # intervals


@pytest.mark.slow
def test_runs_record_eps_lb_and_the_accountant_check(store):
    client = MlflowClient(store.uri)
    flagged = client.get_run(store.runs["weight_decay"]).data
    assert flagged.tags[VIOLATION_TAG] == "true"  # accountant says 0.001, the attacks prove more
    assert "privacy/" in flagged.tags[f"{VIOLATION_TAG}_by"]
    assert client.get_run(store.runs["topk"]).data.tags[VIOLATION_TAG] == "false"
    assert VIOLATION_TAG not in client.get_run(store.runs["none"]).data.tags  # no accountant
    for name in ("loss", "lira_online", "lira_offline"):
        key = f"privacy/{name}/eps_lb"
        assert {key, f"{key}_ci_low", f"{key}_ci_high"} <= set(flagged.metrics)
        assert f"privacy_canary/{name}/eps_lb" in client.get_run(store.runs["none"]).data.metrics
    experiment_id = client.get_run(store.runs["weight_decay"]).info.experiment_id
    targets = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{store.runs['weight_decay']}'"
    )
    assert len(targets) == 4
    assert all(t.data.metrics["dp/epsilon"] == 1e-3 for t in targets)
    assert all("privacy/lira_offline/eps_lb" in t.data.metrics for t in targets)
    assert max(t.data.metrics["privacy/lira_offline/eps_lb"] for t in targets) > 1e-3


@pytest.mark.slow
def test_report_flags_accountant_violation_and_lists_failures(report, store):
    text = report.markdown.read_text()
    assert "exceeds the DP accountant's epsilon" in text
    assert "weight_decay" in text.split("exceeds the DP accountant's epsilon")[1].split("\n")[0]
    assert "training diverged: loss became nan" in text
    assert "## Accountant vs empirical epsilon" in text
    assert "## Population vs canary leakage" in text


@pytest.mark.slow
def test_recorded_runs_are_reproduced_by_their_commands(store):
    client = MlflowClient(store.uri)
    for run_id in store.runs.values():
        run = client.get_run(run_id)
        command = reproduce_command(run.data.params, run.data.tags)
        assert command.verified, str(command)
        rebuilt = to_container(compose_config(list(command.overrides)))
        assert config_hash(rebuilt) == run.data.tags["config_hash"]


@pytest.mark.slow
def test_runs_are_selected_by_sweep_or_ids(store, tmp_path):
    client = open_client(store.uri)
    from_sweep = select_runs(client, sweep=store.sweep)
    assert {r.run_id for r in from_sweep} == {store.runs["none"], store.runs["weight_decay"]}
    assert {r.run_id for r in select_runs(client, run_ids=[store.sweep])} == {
        r.run_id for r in from_sweep
    }
    assert [r.run_id for r in select_runs(client, run_ids=[store.runs["topk"]])] == [
        store.runs["topk"]
    ]
    target = client.search_runs(
        [client.get_run(store.sweep).info.experiment_id],
        f"tags.mlflow.parentRunId = '{store.runs['topk']}'",
    )[0]
    with pytest.raises(ConfigError, match="per-target run"):
        select_runs(client, run_ids=[target.info.run_id])
    with pytest.raises(ConfigError, match="no MLflow experiment 'nope'"):
        select_runs(client, experiment="nope")
    missing = tmp_path / "none.db"
    with pytest.raises(ConfigError, match="no MLflow store"):
        open_client(f"sqlite:///{missing}")
    assert not missing.exists()


@pytest.mark.slow
def test_cli_reports_a_sweep_and_explains_itself(store, tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep-report"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "roc-99.png").write_bytes(PNG)  # from an earlier, larger report
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)  # the store without --tracking-uri
    assert main(["--sweep", store.sweep, "--out", str(out), "--no-progress"]) == 0
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == ["canaries.png", "epsilons.png", "roc-00.png", "roc-01.png", "tradeoff.png"]
    text = (out / "report.md").read_text()
    assert f"Regenerate this report: `mia-report --sweep {store.sweep}" in text
    with (out / "results.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2
    assert main(["--experiment", "nope", "--tracking-uri", store.uri, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("mia-report: error: no MLflow experiment")
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for word in ("--experiment", "--sweep", "--tracking-uri", "results.csv", "table.tex", "eps"):
        assert word in help_text
    assert "MLFLOW_TRACKING_URI when set" in help_text and "${" not in help_text


def test_pareto_front():
    # (leakage, accuracy): b dominates a; c trades accuracy for privacy; d is dominated by c.
    assert pareto_front([0.5, 0.4, 0.01, 0.02], [0.9, 0.95, 0.7, 0.6]) == [1, 2]


def test_families_come_from_each_defense_class(monkeypatch):
    # The values are the classes' own attribute: set here so the test holds whatever they are.
    for name, family in (
        ("none", "none"),
        ("weight_decay", "regularisation"),
        ("topk", "truncation"),
        ("dpsgd", "dp"),
        ("rounding", "truncation"),
    ):
        monkeypatch.setattr(DEFENSES.lookup(name), "family", family)
    assert defense_family("none") == "none"
    assert defense_family("weight_decay") == "regularisation"
    assert defense_family("dpsgd+topk") == "composed"
    assert defense_family("none+topk") == "truncation"
    assert defense_family("topk+rounding") == "truncation"
    assert defense_family("something_new") == "other"
    monkeypatch.setattr(DEFENSES.lookup("weight_decay"), "family", "brand_new")
    assert defense_family("weight_decay") == "brand_new"


def _run(
    run_id: str, start: int, config_hash: str, status: str = "FINISHED", **params
) -> ConfigRun:
    tags = {"config_hash": config_hash, "defense": "none"}
    return ConfigRun(run_id, status, start, dict(params), tags, {})


def test_reruns_with_one_config_hash_are_one_configuration():
    runs = [
        _run("a", 1, "h1"),
        _run("b", 2, "h2"),
        _run("c", 3, "h1"),
        _run("d", 4, "h1", "FAILED"),
    ]
    merged = merge_reruns(runs)
    assert [r.run_id for r in merged] == ["b", "c", "d"]  # the latest of each, failures apart
    assert merged[1].reruns == ["a"] and merged[0].reruns == [] and merged[2].reruns == []


def test_labels_name_what_differs_once_and_the_strongest_axis_is_no_attack():
    params = {"defense": "none", "defense_option": "none", "canaries": "0"}
    runs = [
        _run("a", 1, "h1", **params, **{"protocol.canaries": "0"}),
        _run("b", 2, "h2", **{**params, "canaries": "100"}, **{"protocol.canaries": "100"}),
    ]
    label_runs(runs)
    assert [r.label for r in runs] == ["none (protocol.canaries=0)", "none (protocol.canaries=100)"]
    runs[0].metrics = {
        "privacy/lira/tpr_at_fpr_0.001": 0.01,
        "privacy/strongest/tpr_at_fpr_0.001": 0.01,
    }
    assert runs[0].attacks() == ["lira"] and runs[0].strongest() == "lira"


def test_different_n_models_are_flagged_as_not_comparable():
    runs = [_run("a", 1, "h1", **{"protocol.n_models": "4"}), _run("b", 2, "h2")]
    runs[1].params["protocol.n_models"] = "16"
    runs[0].key, runs[1].key = "C1", "C2"
    (warning,) = comparability_warning(runs)
    assert "protocol.n_models" in warning.text and "4: C1" in warning.text
    assert "16: C2" in warning.text
    runs[1].params["protocol.n_models"] = "4"
    assert comparability_warning(runs) == []


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["defense=[weight_decay,topk]", "model.hidden=[64, 32]", "attacks.version='1.10'"],
        ["data=synthetic", "data.path='/tmp/a b'", "~attacks.suite.loss", "seed=3"],
    ],
)
def test_commands_rebuild_tricky_configurations(overrides):
    config = to_container(compose_config(overrides))
    command = reproduce_command(flatten(config), {"defense": "+".join(config["defense"])})
    assert command.verified, str(command)
    assert config_hash(to_container(compose_config(list(command.overrides)))) == config_hash(config)


def test_document_escaping():
    assert latex_escape("weight_decay & 5% {x}") == r"weight\_decay \& 5\% \{x\}"
    assert inline_html("`a<b` and **c**") == "<code>a&lt;b</code> and <strong>c</strong>"


@pytest.mark.slow
def test_summary_bottom_line_names_the_strongest_attack_and_the_next_step(store):
    result = store.results["none"]
    summary = result.summary()
    tprs = {
        a.name: summary[f"privacy/{a.name}/tpr_at_fpr_0.001"].mean
        for a in result.attacks
        if a.evaluations
    }
    best = max(tprs.values())
    text = format_summary(result, run_id=store.runs["none"])
    bottom = text.split("**Bottom line:**")[1].split("\n")[0]
    named = bottom.split("the strongest attack is ")[1].split(":")[0]
    assert tprs[named] == best
    if best > 0.001:
        assert f"{best / 0.001:.0f}x chance" in bottom
    signals = result.signals
    n_out = min(int((~signals.membership[k] & ~signals.canary).sum()) for k in signals.targets)
    assert n_out < 1000  # FAST's pool: a TPR at 0.1% FPR allows no false positive
    assert "not one false positive is allowed" in text
    assert f"mia-report {store.runs['none']}" in text and "mlflow ui --backend-store-uri" in text
    assert "**Next:**" not in format_summary(result)  # no run id, no next step


@dataclass
class _Attack:
    name: str
    evaluations: dict


@dataclass
class _Result:
    attacks: list


def test_strongest_attack_breaks_ties_by_auc():
    def one(tpr, auc):
        return {"tpr_at_fpr_0.001": Interval(tpr, tpr, tpr), "auc": Interval(auc, auc, auc)}

    summary = {}
    for name, tpr, auc in (("a", 0.01, 0.6), ("b", 0.01, 0.7), ("c", 0.005, 0.9)):
        summary.update({f"privacy/{name}/{k}": v for k, v in one(tpr, auc).items()})
    attacks = [_Attack("a", {"privacy": [1]}), _Attack("b", {"privacy": [1]})]
    attacks += [_Attack("c", {"privacy": [1]}), _Attack("n/a", {})]
    assert strongest_attack(_Result(attacks), summary) == "b"
    assert strongest_attack(_Result([_Attack("n/a", {})]), summary) is None


def test_the_report_shows_the_canary_audit_beside_the_accountant():
    from benchmark.reporting.sections import canary_audit_table

    metrics = {
        "dp/epsilon": 8.0,
        "audit/whitebox_gdp/eps_lb": 4.6,
        "audit/whitebox_gdp/mu_lb": 1.04,
        "audit/whitebox_runs/eps_lb": 1.9,
        "privacy/lira/eps_lb": 0.02,
    }
    run = ConfigRun("r1", "FINISHED", 0, {}, {}, metrics)
    (table,) = canary_audit_table(run)
    assert table.rows == [["whitebox_gdp", "4.6", "8"], ["whitebox_runs", "1.9", "8"]]
    assert canary_audit_table(ConfigRun("r2", "FINISHED", 0, {}, {}, {"dp/epsilon": 8.0})) == []


def test_reproduce_command_names_the_audit_group_and_old_runs_still_verify():
    from benchmark.config.compose import to_container
    from benchmark.reporting.provenance import reproduce_command
    from benchmark.tracking.params import run_params

    audited = to_container(compose_config(["defense=dpsgd", "audit=whitebox", "audit.canaries=50"]))
    command = reproduce_command(run_params(audited), {"defense": "dpsgd"})
    assert command.verified and "audit=whitebox" in command.overrides
    assert "audit.canaries=50" in command.overrides
    # A run recorded before audits existed has no audit.* params: still exactly reproduced.
    params = run_params(to_container(compose_config([])))
    old = {k: v for k, v in params.items() if not k.startswith("audit.")}
    assert reproduce_command(old, {"defense": "none"}).verified
