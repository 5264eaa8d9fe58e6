"""The dask executor on a LocalCluster bound to 127.0.0.1, including a task that kills its
own worker process (the spot-instance reclaim case): the item must still be done once."""

import json

import pytest

from synth.work_store import DONE, FAILED, WorkStore
from tests.test_generate import registry, run, setup

pytestmark = pytest.mark.slow  # a Dask cluster: left out of make test-fast

distributed = pytest.importorskip("distributed")


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    # Workers inherit the environment at start: the first task to call the backend writes
    # this marker and kills its worker; the nanny restarts it and the scheduler reruns the task.
    monkeypatch.setenv("FAKE_KILL_MARKER", str(tmp_path / "killed-once"))
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=None, silence_logs=50
    )
    yield cluster
    cluster.close()


def test_dask_executor_survives_a_worker_that_dies(tmp_path, cluster):
    params = setup(
        tmp_path,
        registry("alpha", "beta"),
        n_windows=10,
        executor="dask",
        scheduler_address=cluster.scheduler_address,
        backend="tests.generate_fakes:kill_once",
        concurrency=8,
    )
    code, records = run(tmp_path, params)
    assert code == 0
    assert (tmp_path / "killed-once").exists(), "a worker must have died during the run"
    assert len(records) == 20 and len({r["id"] for r in records}) == 20
    store = WorkStore(str(tmp_path / "store"))
    assert len(store.keys(DONE)) == 20 and not store.keys(FAILED)
    assert json.loads((tmp_path / "generate.json").read_text())["pending"] == 0


def test_dask_needs_a_scheduler_address(tmp_path, caplog):
    params = setup(tmp_path, registry("alpha"), executor="dask", scheduler_address="")
    assert run(tmp_path, params)[0] == 2
    assert "generate.scheduler_address: executor dask needs tcp://host:port" in caplog.text
