"""Data over real HTTP: olah serves a fabricated git repo in the Hub's layout (tests/hub_server.py) and our real
loader, in a fresh process pointed at it with ``HF_ENDPOINT`` as a user would, streams it with the real ``datasets``
and ``huggingface_hub`` clients. Skipped where olah is not installed (``pip install -e ".[test]"`` installs it)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from hub_fakes import fake_food101

ROOT = Path(__file__).resolve().parents[1]


def parquet_repo_files(split: str, dataset) -> dict[str, bytes]:
    """One split in the layout ``datasets``' parquet conversion gives a Hub repo (e.g. ethz/food101 after its
    "Convert dataset to Parquet" commit): README front matter with ``configs`` (data_files per split) and
    ``dataset_info`` (features, splits), the rows in ``data/<split>-00000-of-00001.parquet``. Committed as plain
    files, not LFS pointers (olah serves a local repo's blobs as they are)."""
    shard = io.BytesIO()
    dataset.to_parquet(shard)
    card = {"configs": [{"config_name": "default", "data_files": [{"split": split, "path": f"data/{split}-*"}]}],
            "dataset_info": {"features": dataset.features._to_yaml_list(),
                             "splits": [{"name": split, "num_examples": len(dataset)}]}}
    readme = f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n# fabricated for the tests\n"
    return {"README.md": readme.encode(), f"data/{split}-00000-of-00001.parquet": shard.getvalue()}


LOAD_AT_THE_COMMAND_LINES_REVISION = """
import json, sys
from segp_hf.data.zero_shot_sets import parse_set_revisions
from segp_hf.evaluation.zero_shot import load_retention_set
from segp_hf.recipe import parse_config
for revisions in sys.argv[1:]:
    _, data_args, _ = parse_config({}, ["--zero_shot_sets", "food101", "--zero_shot_revisions", revisions,
                                        "--use_cpu", "true"])
    food = load_retention_set("food101", revision=parse_set_revisions(data_args.zero_shot_revisions).get("food101"))
    print(json.dumps({"rows": len(food.dataset), "names": food.class_names[:2], "labels": food.dataset["label"][:3]}))
"""


def load_over_http(server, tmp_path, *revisions: str) -> list[dict]:
    """``load_retention_set`` of Food-101 at each ``--zero_shot_revisions`` value, in one fresh process."""
    env = {**os.environ, "HF_ENDPOINT": server.endpoint, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
           "HF_HOME": str(tmp_path / "hf"), "SEGP_HF_DATA_CACHE": str(tmp_path / "kept"), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    done = subprocess.run([sys.executable, "-c", LOAD_AT_THE_COMMAND_LINES_REVISION, *revisions], check=False,
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.strip().splitlines()[-len(revisions):]]


def test_food101_streams_over_http_at_the_revision_given_on_the_command_line(hub_server, tmp_path):
    validation = fake_food101()["validation"]
    first = hub_server.dataset_repo("ethz/food101", parquet_repo_files("validation", validation), "101 rows")
    hub_server.dataset_repo("ethz/food101", parquet_repo_files("validation", validation.select(range(50))), "50 rows")
    at_first, at_main = load_over_http(hub_server, tmp_path, f"food101={first}", "food101=main")
    assert at_first == {"rows": 101, "names": ["apple_pie", "baby_back_ribs"], "labels": [0, 1, 2]}
    assert at_main["rows"] == 50  # main: the newer commit
    stored = sorted(p.parent.parent.name for p in (tmp_path / "kept").rglob("dataset_info.json"))
    assert len(stored) == 2 and first in stored  # one folder per commit, never one named 'main'


def _get(url: str, **headers) -> tuple[int, dict, bytes]:
    import urllib.error
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
    try:
        with direct.open(urllib.request.Request(url, headers=headers), timeout=60) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_correcting_layer_answers_where_olah_differs_from_the_hub(hub_server):
    files = {"README.md": b"---\nlicense: mit\n---\n", "data/x.parquet": b"PAR1" + bytes(range(200)) + b"PAR1"}
    sha = hub_server.dataset_repo("test/layer", files)
    olah, hub = f"http://127.0.0.1:{hub_server.olah_port}", hub_server.endpoint
    resolve = "/datasets/test/layer/resolve/main/data/x.parquet"
    assert _get(olah + resolve, Range="bytes=-8")[0] == 200  # olah: Range ignored ...
    status, headers, body = _get(hub + resolve, Range="bytes=-8")  # ... the layer: the footer only
    assert (status, body, headers["Content-Range"]) == (206, bytes(range(196, 200)) + b"PAR1", "bytes 200-207/208")
    assert _get(hub + resolve, Range="bytes=0-3")[2] == b"PAR1"
    missing_file = _get(hub + "/datasets/test/layer/resolve/main/nothing.txt")
    assert (missing_file[0], missing_file[1]["X-Error-Code"]) == (404, "EntryNotFound")
    assert _get(olah + "/api/datasets/test/layer/revision/task-9")[0] == 401  # olah: 401 for a missing branch
    missing_branch = _get(hub + "/api/datasets/test/layer/revision/task-9")
    assert (missing_branch[0], missing_branch[1]["X-Error-Code"]) == (404, "RevisionNotFound")
    assert _get(hub + "/api/datasets/test/nothing/revision/main")[1]["X-Error-Code"] == "RepoNotFound"
    assert json.loads(_get(hub + "/api/datasets/test/layer")[2])["sha"] == sha  # info without a revision: main's


MISSING_TASK = """
from segp_hf.errors import TaskNotFoundError
from segp_hf.hub.tasks import resolve_task_folder
try:
    resolve_task_folder("me/run", 5)
except TaskNotFoundError as error:
    print(error)
"""


def test_a_missing_task_over_olahs_own_401_lists_the_tasks_the_repo_has(hub_server, tmp_path):
    """Straight to olah, past the layer: it answers 401 for the branch the repo lacks (the Hub: 404)."""
    for task in range(2):
        hub_server.model_repo("me/run", {"README.md": f"task {task}".encode()}, branch=f"task-{task}")
    assert _get(f"http://127.0.0.1:{hub_server.olah_port}/api/models/me/run/revision/task-5")[0] == 401
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{hub_server.olah_port}", "HF_HUB_OFFLINE": "0",
           "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    done = subprocess.run([sys.executable, "-c", MISSING_TASK], check=False, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip() == "no checkpoint for task-5 at 'me/run'; available: task-0, task-1", done.stderr[-2000:]
