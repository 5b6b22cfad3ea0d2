"""The run directory, manifests and the stage runner: skip, resume, atomic parts, failures."""

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from pagecat.config import config_from_dict, load_config
from pagecat.errors import StageError, UsageError
from pagecat.runs import Manifest, RunDir
from pagecat.stage import Part, Stage, execute

SQUARES = pa.schema([("n", pa.int64()), ("square", pa.int64())])


class SquaresStage(Stage):
    """A small real stage: part k writes the squares of its numbers. Every execution leaves a
    file in ``<run>/executions/`` so the tests can count what actually ran; a part whose id is
    named in ``<run>/fail_on`` raises, standing in for a worker failing mid-stage."""

    name = "squares"
    sections = ("train",)
    outputs = ("squares",)
    unit = "numbers"

    def plan(self, cfg, run):
        return [Part(id=f"part-{k:05d}", args={"numbers": list(range(k * 10, k * 10 + 10))}) for k in range(5)]

    @staticmethod
    def run_part(part, cfg, run):
        run.write_bytes_atomic(run.path("executions", f"{part.id}-{uuid.uuid4().hex}"), b"")
        fail = run.path("fail_on")
        if run.fs.exists(fail) and part.id in run.fs.cat(fail).decode():
            raise RuntimeError("worker lost its disk")
        nums = part.args["numbers"]
        run.write_table(run.path("squares", f"{part.id}.parquet"),
                        pa.table({"n": nums, "square": [n * n for n in nums]}, schema=SQUARES))
        return {"in": len(nums), "out": len(nums), "rejected": 0, "dropped": 0}


def executions(run: RunDir) -> list[str]:
    return sorted(p.rsplit("/", 1)[-1].rsplit("-", 1)[0] for p in run.list_files("executions"))


def test_atomic_write_leaves_no_partial_file(tmp_path):
    run = RunDir(str(tmp_path))
    run.write_bytes_atomic(run.path("a", "b.bin"), b"x" * 10)
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"x" * 10
    assert os.listdir(tmp_path / "a") == ["b.bin"]
    # a temporary part left by a killed writer is never listed as a part
    (tmp_path / "a" / "c.parquet.tmp-1234").write_bytes(b"half")
    assert run.list_files("a") == [run.path("a", "b.bin")]


def test_part_names_are_unique_in_partitioned_datasets(tmp_path):
    run = RunDir(str(tmp_path))
    assert run.part_name("pages", run.path("pages", "bucket=07", "part-00001.parquet")) == "bucket=07__part-00001"
    assert run.part_name("pages", run.path("pages", "part-00001.parquet")) == "part-00001"


def test_manifest_round_trip(tmp_path):
    run = RunDir(str(tmp_path))
    m = Manifest(stage="parse", config_hash="abc", parts={"part-00000": {"in": 3}}, counts={"in": 3})
    m.save(run)
    again = Manifest.load(run, "parse")
    assert again == m
    assert Manifest.load(run, "crawl").status == "new"


def test_stage_runs_then_skips_when_unchanged(tmp_path, client, capsys):
    run, cfg = RunDir(str(tmp_path)), load_config()
    m = execute(SquaresStage(), cfg, run, client, progress=False)
    assert m.status == "complete" and m.counts == {"in": 50, "out": 50, "rejected": 0, "dropped": 0}
    assert len(run.read_dataset("squares")) == 50
    assert "[squares] in=50 out=50 rejected=0 dropped=0" in capsys.readouterr().out
    execute(SquaresStage(), cfg, run, client, progress=False)
    assert "skipped" in capsys.readouterr().out
    assert len(executions(run)) == 5
    # a changed setting in one of the stage's sections re-runs it from scratch
    execute(SquaresStage(), load_config(overrides={"train": {"seed": 1}}), run, client, progress=False)
    assert len(executions(run)) == 10
    assert len(run.read_dataset("squares")) == 50


def test_interrupted_stage_resumes_at_the_parts_not_done(tmp_path, client):
    run, cfg = RunDir(str(tmp_path)), load_config()
    (tmp_path / "fail_on").write_text("part-00003")
    with pytest.raises(StageError, match="stage squares failed: part part-00003: RuntimeError: worker lost.*4 of 5"):
        execute(SquaresStage(), cfg, run, client, progress=False)
    m = Manifest.load(run, "squares")
    assert m.status == "running" and sorted(m.parts) == ["part-00000", "part-00001", "part-00002", "part-00004"]
    first = executions(run)
    (tmp_path / "fail_on").unlink()
    m = execute(SquaresStage(), cfg, run, client, progress=False)
    assert m.status == "complete" and m.counts["out"] == 50
    # parts completed before the failure were not run again; the failed one ran again
    assert executions(run) == sorted(first + ["part-00003"])
    assert sorted(run.read_dataset("squares")["n"].to_pylist()) == list(range(50))  # nothing lost or twice


def test_finished_parts_are_recorded_in_timed_saves_and_when_the_runner_stops(tmp_path, client, monkeypatch):
    """Parts finishing faster than SAVE_EVERY share a manifest save; none is left unrecorded
    when the runner stops, after a failure as after success."""
    import pagecat.stage as runner

    saves = []
    real_save = Manifest.save
    monkeypatch.setattr(Manifest, "save", lambda self, run: (saves.append(len(self.parts)), real_save(self, run)))
    monkeypatch.setattr(runner, "SAVE_EVERY", 3600.0)
    run, cfg = RunDir(str(tmp_path)), load_config()
    (tmp_path / "fail_on").write_text("part-00001")
    with pytest.raises(StageError):
        execute(SquaresStage(), cfg, run, client, progress=False)
    assert saves == [0, 4]  # started; the four parts that succeeded, in one save when the runner stopped
    assert sorted(Manifest.load(run, "squares").parts) == ["part-00000", "part-00002", "part-00003", "part-00004"]
    saves.clear()
    monkeypatch.setattr(runner, "SAVE_EVERY", 0.0)
    (tmp_path / "fail_on").unlink()
    execute(SquaresStage(), cfg, run, client, progress=False)
    assert saves == [4, 5, 5]  # resumed; the last part as it finished; complete


def test_upstream_must_be_complete(tmp_path, client):
    class Downstream(SquaresStage):
        name = "downstream"
        upstream = ("squares",)

    with pytest.raises(UsageError, match="needs stage squares first"):
        execute(Downstream(), load_config(), RunDir(str(tmp_path)), client, progress=False)


def test_run_dir_through_fsspec_memory_filesystem():
    run = RunDir(f"memory://pagecat-{uuid.uuid4().hex}")
    run.write_table(run.path("t", "part-0.parquet"), pa.table({"n": [1, 2]}, schema=pa.schema([("n", pa.int64())])))
    assert run.read_dataset("t")["n"].to_pylist() == [1, 2]
    assert run.url("t").startswith("memory://")
    assert Path(run.path("t")).name == "t"


def test_local_cluster_workers_allocate_arrow_memory_from_jemalloc(monkeypatch):
    """``connect`` starts LocalCluster workers with Arrow's jemalloc pool (where pyarrow has it),
    and leaves a pool the user chose alone."""
    from pagecat.cluster import arrow_worker_pool, connect

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow is built without jemalloc")
    assert arrow_worker_pool() == "jemalloc"
    cfg = config_from_dict({"cluster": {"n_workers": 1, "dashboard_address": ":0"}})
    with connect(cfg, quiet=True) as client, client.cluster:
        pools = client.run(lambda: __import__("pyarrow").default_memory_pool().backend_name)
    assert list(pools.values()) == ["jemalloc"]
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
    assert arrow_worker_pool() is None


def test_light_diagnostics_turn_dask_profiler_off_and_full_gives_the_users_settings_back():
    """cluster.diagnostics=light (the default): LocalCluster workers run without Dask's profiler
    and with slow health ticks; full: the settings the user had, also in the same process."""
    import dask

    from pagecat.cluster import LIGHT_DIAGNOSTICS, connect

    def worker_settings():
        import dask
        return dask.config.get("distributed.worker.profile.enabled"), dask.config.get("distributed.admin.tick.interval")

    users = {"distributed.admin.tick.interval": "50ms", "distributed.worker.profile.enabled": True}
    with dask.config.set({**{k: dask.config.get(k) for k in LIGHT_DIAGNOSTICS}, **users}):
        for level, want in (("light", (False, "1s")), ("full", (True, "50ms"))):
            cfg = config_from_dict({"cluster": {"n_workers": 1, "dashboard_address": ":0", "diagnostics": level}})
            with connect(cfg, quiet=True) as client, client.cluster:
                assert list(client.run(worker_settings).values()) == [want]
    with pytest.raises(UsageError, match="cluster.diagnostics: 'some' is not one of light, full"):
        config_from_dict({"cluster": {"diagnostics": "some"}})


def test_atomic_sink_leaves_nothing_when_the_block_raises(tmp_path):
    run = RunDir(str(tmp_path))
    with pytest.raises(RuntimeError, match="cut"):
        with run.atomic_sink(run.path("t", "part-0.parquet")) as sink:
            sink.write(b"half a part")
            raise RuntimeError("cut")
    assert os.listdir(run.path("t")) == []
    with run.atomic_sink(run.path("t", "part-0.bin")) as sink:
        sink.write(b"whole")
    assert Path(run.path("t", "part-0.bin")).read_bytes() == b"whole"
