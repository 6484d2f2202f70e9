"""MLflow runs of the smoke pipeline, queried back with the MLflow client."""

import pytest
from mlflow.tracking import MlflowClient

from dcm import tracking
from dcm.config import load_config
from tests.helpers import SMOKE


@pytest.fixture(scope="module")
def client(smoke_run):
    return MlflowClient(f"sqlite:///{smoke_run.parent / 'mlflow.db'}")


def _runs(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, experiment
    return client.search_runs([exp.experiment_id], max_results=500)


def test_every_stage_run_is_tracked_with_tags_params_and_parent(client):
    # later no-op `snakemake` runs of the workflow tests are parent runs of their own, without children
    workflow = _runs(client, "smoke/workflow")
    first = min(workflow, key=lambda r: r.info.start_time)
    assert first.info.run_name == "snakemake" and first.info.status == "FINISHED"
    runs = _runs(client, "smoke/table1") + _runs(client, "smoke/table3-ablations") + _runs(client, "smoke/setup")
    children = [r for r in runs if r.data.tags["mlflow.parentRunId"] == first.info.run_id]
    assert {"dataset", "teacher", "trajectories", "seme", "dete", "vcm", "lcm", "pcm", "sample"} <= {
        r.data.tags["stage"] for r in children}
    # its phase count, and its training seed where it is not the run's own (extra_train_seeds: [1])
    assert sorted(r.info.run_name for r in children if r.data.tags["stage"] == "pcm") == ["pcm-4", "pcm-4-seed1"]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} <= {r.info.run_id for r in workflow}
    trained_again = [r for r in runs if r.data.tags.get("train_seed") == "1"]
    assert {r.data.tags["stage"] for r in trained_again} == {"seme", "dete", "vcm", "lcm", "pcm", "sample", "evaluate"}
    for run in runs:
        again = run.data.tags.get("train_seed") == "1"
        assert run.data.tags["git_commit"] and run.data.tags["seed"] == ("1" if again else "0")
        assert run.data.params["schedule.kappa"] == "6"
        assert run.info.status == "FINISHED"


def test_training_metrics_and_sample_artifacts(client):
    runs = _runs(client, "smoke/table1")
    dete = next(r for r in runs if r.data.tags["stage"] == "dete" and r.data.tags["variant"] == "dcm")
    history = client.get_metric_history(dete.info.run_id, "consistency")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert {"g_adv", "fm", "d_loss", "grad_norm"} <= set(dete.data.metrics)
    sample = next(r for r in runs if r.data.tags["stage"] == "sample" and r.data.tags["method"] == "dcm")
    assert sample.data.tags["steps"] == "4"
    names = {a.path for a in client.list_artifacts(sample.info.run_id)}
    assert {"samples.gif", "meta.json"} <= names


def test_ablation_variants_go_to_the_table3_experiment(client):
    runs = _runs(client, "smoke/table3-ablations")
    assert {r.data.tags.get("variant") or r.data.tags["stage"] for r in runs} >= {"od", "vcm"}


def test_run_names_say_which_labels_are_a_kappa_or_a_training_seed():
    assert tracking.run_name("dete", {"variant": "dcm", "kappa": 4}) == "dete-dcm-kappa4"
    assert tracking.run_name("pcm", {"phases": 4, "train_seed": 2}) == "pcm-4-seed2"


def test_each_pcm_network_has_its_own_run_named_by_its_phase_count(tmp_path):
    cfg = load_config(SMOKE, [f"results_dir={tmp_path}"])
    for phases in (4, 8):  # as `python -m dcm pcm --phases P` opens it
        with tracking.stage_run(cfg, "pcm", phases=phases, kappa=None):
            pass
    runs = _runs(MlflowClient(tracking.tracking_uri(cfg)), "smoke/table1")
    assert sorted((r.info.run_name, r.data.tags["phases"]) for r in runs) == [("pcm-4", "4"), ("pcm-8", "8")]


def test_unreachable_store_is_given_up_within_seconds_and_the_stage_still_runs(tmp_path, monkeypatch):
    import time

    for key in tracking.HTTP_LIMITS:
        monkeypatch.delenv(key, raising=False)  # the stage's own bounds, not the environment's
    cfg = load_config(SMOKE, [f"results_dir={tmp_path}", "tracking.uri=http://127.0.0.1:9"])
    ran = []
    start = time.perf_counter()
    with pytest.warns(UserWarning, match="unavailable") as caught:
        with tracking.stage_run(cfg, "dataset"):
            ran.append(True)
            tracking.current().log_metrics({"loss": 1.0}, 1)
    assert time.perf_counter() - start < 30  # MLflow's default 7 retries with backoff took 4 minutes
    assert ran == [True]
    assert len(caught) == 1 and "\n" not in str(caught[0].message)


def test_a_stage_with_a_dead_tracking_server_warns_once_and_writes_its_outputs(tmp_path):
    import os

    from tests.helpers import dcm

    env = {k: v for k, v in os.environ.items() if k not in tracking.HTTP_LIMITS}
    proc = dcm("dataset", "--set", "tracking.uri=http://127.0.0.1:9", results=tmp_path, env=env)
    assert (tmp_path / "smoke" / "dataset" / "prompts.json").is_file()
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line or "Warning" in line]
    assert len(warnings) == 1 and "http://127.0.0.1:9 is unavailable" in warnings[0], proc.stderr


def test_stage_runs_with_tracking_off(tmp_path):
    from tests.helpers import dcm

    dcm("dataset", "--set", "tracking.enabled=false", results=tmp_path)
    assert (tmp_path / "smoke" / "dataset" / "prompts.json").is_file()
    assert not (tmp_path / "mlflow.db").exists()


def test_artifacts_stay_under_the_results_directory(client, smoke_run):
    for name in ("smoke/table1", "smoke/setup"):
        location = client.get_experiment_by_name(name).artifact_location
        assert location.startswith((smoke_run.parent / "mlartifacts").as_uri()), location
    assert any((smoke_run.parent / "mlartifacts").rglob("meta.json"))


def test_evaluation_scores_are_run_metrics(client):
    runs = _runs(client, "smoke/table1")
    evaluation = next(r for r in runs if r.data.tags["stage"] == "evaluate" and r.data.tags["method"] == "dcm")
    assert {"total", "quality", "semantic", "dim/temporal_flickering"} <= set(evaluation.data.metrics)
    assert 0 <= evaluation.data.metrics["total"] <= 1
    tables = _runs(client, "smoke/table3-ablations")
    assert any(r.data.tags["stage"] == "tables" for r in tables)
