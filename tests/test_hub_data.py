"""Hub data errors and revisions as the real clients raise them (issue 25): errors classified by exception type
and HTTP status (never by digits in the text), the user's own revision worded as theirs, a revision per
zero-shot set, read errors while rows stream, rows stored per resolved commit, a missing task over a server that
answers 401. The error objects are built by huggingface_hub's own ``hf_raise_for_status`` from HTTP responses;
nothing here opens a socket."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import datasets
import pytest
from huggingface_hub.errors import HTTPError
from huggingface_hub.utils import hf_raise_for_status
from test_benchmarks import asked, data_args_for, fabricated, hub, hub_cache  # noqa: F401 - fixtures

from segp_hf.data.registry import load_benchmark
from segp_hf.data.spec import DataError

http = importlib.import_module(HTTPError.__module__.split(".")[0])  # the HTTP client huggingface_hub uses
ENDPOINT = "http://127.0.0.1:9"  # never contacted: the responses below are built, not fetched
REV_401 = "a401" + "0" * 32 + "b403"  # a commit whose hex holds 401 and 403


def client_error(status: int, path: str, error_code: str | None = None, endpoint: str = ENDPOINT):
    """The exception huggingface_hub raises for an HTTP answer ``status`` to GET ``path`` (over https it reads a
    401 on a repo URL as RepositoryNotFoundError, over http it leaves it an HfHubHTTPError)."""
    headers = {"X-Error-Code": error_code} if error_code else {}
    response = http.Response(status, headers=headers, request=http.Request("GET", f"{endpoint}{path}"))
    try:
        hf_raise_for_status(response)
    except Exception as error:  # noqa: BLE001 - returned to be raised by a stand-in loader
        return error
    raise AssertionError(f"status {status} raised nothing")


def raising(make_error):
    def load_dataset(path, *args, revision=None, **kwargs):
        raise make_error(path, revision)
    return load_dataset


def load_message(monkeypatch, benchmark, make_error, *overrides) -> str:
    monkeypatch.setattr(datasets, "load_dataset", raising(make_error))
    with pytest.raises(DataError) as caught:
        load_benchmark(data_args_for(benchmark, *overrides))
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---- defect 2: by type and status, not by digits ------------------------------------------------------


def test_a_revision_whose_hex_holds_401_or_403_is_not_read_as_gated(monkeypatch):
    def unreachable(path, revision):
        return ConnectionError(f"Couldn't reach '{path}' at revision '{revision}' on the Hub (ConnectError)")

    message = load_message(monkeypatch, "cifar100", unreachable, "--dataset_revision", REV_401)
    assert "gated" not in message and "could not load the dataset 'uoft-cs/cifar100'" in message


def test_gated_is_read_from_the_error_type_and_the_http_status(monkeypatch):
    from datasets.exceptions import DatasetNotFoundError

    def gated_as_datasets_raises(path, revision):  # datasets re-raises GatedRepoError as DatasetNotFoundError
        cause = client_error(403, f"/api/datasets/{path}/revision/main", "GatedRepo")
        error = DatasetNotFoundError(f"Dataset '{path}' is a gated dataset on the Hub.")
        error.__cause__ = cause
        return error

    assert "is gated and this account has no access" in load_message(monkeypatch, "imagenet_sub",
                                                                      gated_as_datasets_raises)
    assert "is gated and this account" in load_message(monkeypatch, "imagenet_sub", lambda p, r: client_error(
        403, f"/api/datasets/{p}/revision/main", "GatedRepo"))

    def refused(path, revision):  # a bare HTTP error of another client, status 403, on a gated dataset
        import requests

        return requests.HTTPError("Forbidden", response=SimpleNamespace(status_code=403))

    assert "is gated and this account" in load_message(monkeypatch, "imagenet_sub", refused)


def test_a_missing_revision_is_read_from_the_error_type(monkeypatch):
    message = load_message(monkeypatch, "cifar100", lambda p, r: client_error(
        404, f"/api/datasets/{p}/revision/{r}", "RevisionNotFound"))
    assert "pinned revision 'aadb3af" in message and "--dataset_revision" in message and "gated" not in message


# ---- defect 5: wording ------------------------------------------------------------------------------


def test_the_users_own_bad_revision_is_worded_as_theirs(monkeypatch):
    from datasets.exceptions import DatasetNotFoundError

    def no_revision(path, revision):  # what datasets raises for a revision that does not exist
        return DatasetNotFoundError(f"Revision '{revision}' doesn't exist for dataset '{path}' on the Hub.")

    message = load_message(monkeypatch, "cifar100", no_revision, "--dataset_revision", "v9.9")
    assert "--dataset_revision 'v9.9'" in message and "does not exist" in message and "pinned" not in message
    assert "pinned revision 'aadb3af" in load_message(monkeypatch, "cifar100", no_revision)


def test_a_misspelt_dataset_id_gets_no_offline_advice(monkeypatch):
    from datasets.exceptions import DatasetNotFoundError

    def missing(path, revision):  # datasets' message for a repo the Hub does not have (401 or 404 below it)
        error = DatasetNotFoundError(f"Dataset '{path}' doesn't exist on the Hub or cannot be accessed.")
        error.__cause__ = client_error(401, f"/api/datasets/{path}/revision/main")
        return error

    message = load_message(monkeypatch, "cifar100", missing, "--dataset_name", "uoft-cs/cifar1000")
    assert "'uoft-cs/cifar1000' was not found" in message and "--dataset_name" in message
    assert "offline" not in message.lower() and "save_to_disk" not in message
    bare = load_message(monkeypatch, "cifar100", lambda p, r: client_error(404, f"/api/datasets/{p}/revision/main",
                                                                            "RepoNotFound"),
                        "--dataset_name", "uoft-cs/cifar1000")
    assert "was not found" in bare and "offline" not in bare.lower()


def test_the_dry_run_prints_the_revision_actually_loaded():
    from segp_hf.commands.plan import transfer_lines

    mirror = transfer_lines(data_args_for("cifar100", "--dataset_name", "me/cifar100-copy"))[0]
    assert mirror.startswith("data: hub me/cifar100-copy@newest (not pinned") and "aadb3af" not in mirror
    assert "uoft-cs/cifar100@v2 " in transfer_lines(data_args_for("cifar100", "--dataset_revision", "v2"))[0] + " "
    assert "uoft-cs/cifar100@aadb3af" in transfer_lines(data_args_for("cifar100"))[0]


def test_the_dry_run_prints_the_revision_of_each_zero_shot_set():
    from segp_hf.commands.plan import zero_shot_lines

    args = data_args_for("cifar100", "--zero_shot_sets", "food101", "oxford_pets", "imagenet1k", "shapes_heldout",
                         "--zero_shot_revisions", "food101=abc123")
    assert zero_shot_lines(args) == [
        "  zero-shot food101: hub ethz/food101@abc123",  # the command line's, not the pin
        "  zero-shot oxford_pets: hub timm/oxford-iiit-pet@newest (not pinned: set --zero_shot_revisions)",
        "  zero-shot imagenet1k: hub ILSVRC/imagenet-1k@49e2ee26f3810fb5a7536bbf732a7b07389a47b5",
        "  zero-shot shapes_heldout: built locally"]


def test_a_recipes_list_setting_is_emptied_by_none_on_the_command_line():
    from test_benchmarks import RECIPES

    from segp_hf.recipe import load_recipe, parse_config

    recipe = load_recipe(str(RECIPES / "cifar100_10tasks.yaml"))
    assert recipe["zero_shot_sets"]
    _, data_args, _ = parse_config(recipe, ["--zero_shot_sets", "none", "--use_cpu", "true"])
    assert data_args.zero_shot_sets == []
    _, data_args, _ = parse_config(recipe, ["--zero_shot_sets", "food101", "--use_cpu", "true"])
    assert data_args.zero_shot_sets == ["food101"]


# ---- defect 6: a missing task over a server that answers 401 --------------------------------------------


class _Refs:
    """HfApi with only ``list_repo_refs``: the branches of ``me/run``; any other repo is missing (401)."""

    def __init__(self, *args, **kwargs):
        pass

    def list_repo_refs(self, repo_id, **kwargs):
        if repo_id != "me/run":
            raise client_error(401, f"/api/models/{repo_id}/refs")
        return SimpleNamespace(branches=[SimpleNamespace(name=n) for n in ("main", "task-0", "task-1")])


@pytest.mark.parametrize("endpoint", [ENDPOINT, "https://hub.mirror.invalid"])
def test_a_task_the_repo_lacks_lists_the_tasks_it_has_when_the_server_answers_401(monkeypatch, endpoint):
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError

    from segp_hf.errors import TaskNotFoundError
    from segp_hf.hub import tasks

    def snapshot_download(repo_id, revision=None, **kwargs):  # olah: 401 for a branch the repo lacks
        raise client_error(401, f"/api/models/{repo_id}/revision/{revision}", endpoint=endpoint)

    assert isinstance(client_error(401, "/api/models/me/run/revision/task-5", endpoint="https://hub.mirror.invalid"),
                      RepositoryNotFoundError)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(tasks, "HfApi", _Refs)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(TaskNotFoundError, match=r"no checkpoint for task-5 at 'me/run'.*available: task-0, task-1"):
        tasks.resolve_task_folder("me/run", 5)
    with pytest.raises(TaskNotFoundError, match="Hub repo 'me/nothing' not found"):
        tasks.resolve_task_folder("me/nothing", 5)


# ---- defect 1: a revision per zero-shot set ----------------------------------------------------------


def test_each_zero_shot_set_takes_its_own_revision_and_the_settings_record_it(hub, monkeypatch):  # noqa: F811
    from segp_hf.evaluation import zero_shot
    from segp_hf.recipe import config_to_dict, parse_config

    overrides = ["--zero_shot_sets", "food101", "imagenet1k", "--zero_shot_revisions", "food101=f00d,imagenet1k=1a2b",
                 "--use_cpu", "true"]
    model_args, data_args, config = parse_config({}, overrides)
    assert config_to_dict(model_args, data_args, config)["zero_shot_revisions"] == "food101=f00d,imagenet1k=1a2b"
    monkeypatch.setattr(zero_shot, "zero_shot_counts", lambda *args: (1, 2))
    held_out = zero_shot.HeldOutSets(data_args, None)
    assert held_out.measure(None, None, 8, "cpu") == {"food101": 50.0, "imagenet1k": 50.0}
    assert {(i, r) for i, r, _ in asked(hub)} == {("ethz/food101", "f00d"), ("ILSVRC/imagenet-1k", "1a2b")}


@pytest.mark.parametrize("value", ["mnist=abc", "food101", "food101=", "shapes_heldout=abc", "food101=a,food101=b"])
def test_a_bad_zero_shot_revision_is_refused_by_the_rule_table(value):
    from segp_hf.errors import RecipeError
    from segp_hf.recipe import parse_config

    with pytest.raises(RecipeError, match="zero_shot_revisions="):
        parse_config({}, ["--zero_shot_revisions", value, "--use_cpu", "true"])


def test_a_zero_shot_sets_missing_pin_names_its_own_setting(monkeypatch):
    from segp_hf.data.zero_shot_sets import load_zero_shot_set

    monkeypatch.setattr(datasets, "load_dataset", raising(lambda p, r: client_error(
        404, f"/api/datasets/{p}/revision/{r}", "RevisionNotFound")))
    with pytest.raises(DataError, match=r"pinned revision 'e06acf2.*--zero_shot_revisions food101=<commit"):
        load_zero_shot_set("food101")


# ---- defect 4: read errors while rows stream ---------------------------------------------------------


def failing_stream(served, after: int = 3):
    """``datasets.load_dataset`` whose streamed rows break after ``after`` rows, as a server error would."""
    def load_dataset(path, name=None, revision=None, split=None, streaming=False, columns=None, **kwargs):
        part = served[path][split]

        def rows():
            for i, row in enumerate(part):
                if i == after:
                    raise client_error(500, f"/datasets/{path}/resolve/{revision}/data/{split}-00000.parquet")
                yield row
        stream = datasets.IterableDataset.from_generator(rows, features=part.features)
        return stream.select_columns(list(columns)) if columns else stream
    return load_dataset


def test_a_read_error_while_rows_stream_is_one_line_exit_2_and_leaves_nothing(monkeypatch, tmp_path,
                                                                              fabricated, capsys):  # noqa: F811
    from test_benchmarks import RECIPES

    from segp_hf.cli import main
    from segp_hf.data.zero_shot_sets import load_zero_shot_set

    monkeypatch.setattr(datasets, "load_dataset", failing_stream(fabricated))
    monkeypatch.setenv("SEGP_HF_DATA_CACHE", str(tmp_path / "kept"))
    with pytest.raises(DataError, match=r"reading the rows of 'ethz/food101' split 'validation'.*500") as caught:
        load_zero_shot_set("food101")
    assert "\n" not in str(caught.value)
    assert main(["train", "--config", str(RECIPES / "cifar100_10tasks.yaml"), "--dry_run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "reading the rows of 'uoft-cs/cifar100'" in err and "Traceback" not in err
    left = [p.name for p in (tmp_path / "kept").rglob("*") if p.is_dir() and p.name.startswith(".")]
    assert left == [] and not list((tmp_path / "kept").rglob("dataset_info.json"))


# ---- defect 3: rows stored per resolved commit, the commit recorded -------------------------------------

SHA_OLD, SHA_NEW = "1" * 40, "2" * 40


def moving_main(monkeypatch, tmp_path, fabricated, offline=False):  # noqa: F811
    """A Hub whose ``main`` of ethz/food101 and uoft-cs/cifar100 is ``heads['main']``: dataset_info tells the commit
    (HfApi mocked), load_dataset serves each commit's rows (the newer one has fewer) and refuses a branch name."""
    from huggingface_hub import constants

    from segp_hf.data import hub_sources

    heads, loads = {"main": SHA_OLD}, []

    class Api:
        def __init__(self, *args, **kwargs):
            pass

        def dataset_info(self, repo_id, revision=None, **kwargs):
            return SimpleNamespace(id=repo_id, sha=heads.get(revision or "main", revision))

    def load_dataset(path, name=None, revision=None, split=None, streaming=False, columns=None, **kwargs):
        assert revision in (SHA_OLD, SHA_NEW), f"loaded at {revision!r}, not at the resolved commit"
        loads.append(revision)
        part = fabricated[path][split]
        part = part if revision == SHA_OLD else part.select(range(len(part) // 2))
        return part.to_iterable_dataset() if streaming else part

    monkeypatch.setattr(hub_sources, "HfApi", Api)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setenv("SEGP_HF_DATA_CACHE", str(tmp_path / "kept"))
    return heads, loads


def test_rows_are_stored_per_resolved_commit_after_main_moved(monkeypatch, tmp_path, fabricated):  # noqa: F811
    from segp_hf.data.zero_shot_sets import load_zero_shot_set

    heads, loads = moving_main(monkeypatch, tmp_path, fabricated)
    assert len(load_zero_shot_set("food101", revision="main").dataset) == 101
    heads["main"] = SHA_NEW  # main moved: its rows are fetched again, at the new commit
    assert len(load_zero_shot_set("food101", revision="main").dataset) == 50 and loads[-1] == SHA_NEW
    assert len(load_zero_shot_set("food101", revision=SHA_OLD).dataset) == 101  # the old commit's rows stay
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # offline: main is the commit it last was
    count = len(loads)
    assert len(load_zero_shot_set("food101", revision="main").dataset) == 50 and len(loads) == count


def test_the_commit_loaded_is_recorded_in_the_saved_settings(monkeypatch, tmp_path, fabricated,  # noqa: F811
                                                             tiny_clip_dir, tiny_benchmark):
    import dataclasses

    from conftest import tiny_settings

    from segp_hf.recipe import parse_config
    from segp_hf.run.continual import ContinualRunner

    moving_main(monkeypatch, tmp_path, fabricated)
    bench = load_benchmark(data_args_for("cifar100", "--dataset_revision", "main"))
    assert bench.info["commit"] == SHA_OLD and "uoft-cs/cifar100@main" in bench.info["source"]
    run = dataclasses.replace(tiny_benchmark, info={**bench.info})
    runner = ContinualRunner(*parse_config(tiny_settings(tiny_clip_dir, tmp_path / "run")), benchmark=run)
    assert runner.run_config["dataset_commit"] == SHA_OLD
