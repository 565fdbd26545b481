"""A task file that is there but does not read back is named (file and task) by load_task, segp-hf eval,
push, train --resume_from and the resume of a run (exit 2, nothing deleted); earlier tasks still load; a
damaged in-task Trainer checkpoint is skipped for the newest intact one."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import tiny_settings
from safetensors.torch import save_file

from segp_hf import cli
from segp_hf.hub import inference
from segp_hf.recipe import parse_config
from segp_hf.run import checkpoints as ckpt
from segp_hf.run.continual import run_continual

BENCH = "tiny-colours"
TASK_FILES = ["adapter_model.safetensors", "adapter_config.json", "prototypes.safetensors", "classes.json",
              "segp_config.json", "metrics.json"]


def _settings(tiny_clip_dir, output_dir, **overrides):
    return tiny_settings(tiny_clip_dir, output_dir, benchmark=BENCH, **overrides)


@pytest.fixture
def tiny_registry(monkeypatch, tiny_benchmark):
    from segp_hf.data import registry

    monkeypatch.setitem(registry.BENCHMARKS, BENCH, registry.BenchmarkSpec(BENCH, "test colours", lambda _: tiny_benchmark))


@pytest.fixture(scope="module")
def finished_run(tiny_clip_dir, tiny_benchmark, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("finished")
    run_continual(*parse_config(_settings(tiny_clip_dir, output_dir)), benchmark=tiny_benchmark)
    return output_dir


def flip_tensor_byte(path):
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + 5] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(params=TASK_FILES)
def damaged_run(request, finished_run, tmp_path):
    """A copy of the finished run with one file of task-2 cut in half."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    truncate(run / "task-2" / request.param)
    return run, request.param


def test_load_task_names_the_file_and_task_and_earlier_tasks_still_load(damaged_run):
    run, name = damaged_run
    with pytest.raises(ckpt.DamagedCheckpointError, match=rf"task-2: .*task-2/{name} is damaged"):
        inference.load_task(str(run), 2)
    assert inference.load_task(str(run), 1).task == 1


def test_resume_of_the_run_refuses_and_deletes_nothing(damaged_run, tiny_clip_dir, tiny_benchmark):
    run, name = damaged_run
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with pytest.raises(ckpt.DamagedCheckpointError, match=rf"task-2: .*{name} is damaged.*move .*task-2"):
        run_continual(*parse_config(_settings(tiny_clip_dir, run)), benchmark=tiny_benchmark)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


@pytest.mark.parametrize("command", ["eval", "resume_from", "push"])
def test_commands_name_the_damaged_file(command, damaged_run, tiny_registry, tmp_path, capsys):
    run, name = damaged_run
    argv = {
        "eval": ["eval", "--checkpoint", f"{run}@task-2"],
        # num_tasks 4: task-2 is then not the last one, so the branch goes as far as fetching the tasks
        "resume_from": ["train", "--resume_from", f"{run}@task-2", "--output_dir", str(tmp_path / "branch"),
                        "--num_tasks", "4"],
        "push": ["push", str(run), "someone/repo"],
    }[command]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{name} is damaged" in err and "task-2" in err
    if command == "resume_from":
        assert not (tmp_path / "branch" / "task-0").exists()  # nothing copied before the check


def test_earlier_damaged_metrics_are_named_on_resume(finished_run, tmp_path, tiny_clip_dir, tiny_benchmark):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    truncate(run / "task-0" / "metrics.json")
    with pytest.raises(ckpt.DamagedCheckpointError, match=r"task-0: .*task-0/metrics.json is damaged"):
        run_continual(*parse_config(_settings(tiny_clip_dir, run)), benchmark=tiny_benchmark)


# ------------------------------------------------------------------------------- in-task checkpoints
def _fake_trainer_checkpoint(folder, step):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"w": torch.ones(4)}, path / "adapter_model.safetensors")
    ckpt.write_json_atomic(path / "adapter_config.json", {"r": 4})
    torch.save({"state": {0: torch.ones(64)}}, path / "optimizer.pt")
    torch.save({"last_epoch": step}, path / "scheduler.pt")
    torch.save({"python": 1}, path / "rng_state.pth")
    ckpt.write_json_atomic(path / "trainer_state.json", {"global_step": step})
    return path


@pytest.mark.parametrize("name, damage", [
    ("adapter_model.safetensors", "truncate"), ("optimizer.pt", "truncate"), ("optimizer.pt", "flip"),
    ("scheduler.pt", "truncate"),
    ("rng_state.pth", "truncate"), ("trainer_state.json", "truncate"), ("adapter_config.json", "truncate"),
])
def test_in_task_resume_falls_back_to_the_newest_intact_checkpoint(name, damage, tmp_path, caplog):
    folder = tmp_path / ".trainer" / "task-1"
    ckpt.write_json_atomic(folder / ckpt.CONFIG_FILE, {"lr": 1})
    _fake_trainer_checkpoint(folder, 3)
    newest = _fake_trainer_checkpoint(folder, 6)
    assert ckpt.last_trainer_checkpoint(folder) == newest
    target = newest / name
    if damage == "truncate":
        truncate(target)
    else:  # one flipped byte inside the tensor data of a zip member: its CRC fails
        flip_tensor_byte(target)
    with caplog.at_level("WARNING"):
        assert ckpt.last_trainer_checkpoint(folder).name == "checkpoint-3"
    assert name in caplog.text and "checkpoint-6" in caplog.text


def test_in_task_settings_damaged_restarts_the_task(tmp_path, caplog):
    folder = tmp_path / ".trainer" / "task-1"
    ckpt.write_json_atomic(folder / ckpt.CONFIG_FILE, {"lr": 1})
    _fake_trainer_checkpoint(folder, 3)
    truncate(folder / ckpt.CONFIG_FILE)
    with caplog.at_level("WARNING"):
        assert ckpt.last_trainer_checkpoint(folder) is None
    assert ckpt.CONFIG_FILE in caplog.text


def test_a_real_kill_then_damage_resumes_from_the_older_checkpoint(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    """End to end: a task killed after two epoch checkpoints, the newest one's optimizer cut in half: the rerun
    resumes from the older one and finishes."""
    from segp_hf.trainer import SeGPTrainer

    settings = _settings(tiny_clip_dir, tmp_path, num_tasks=2, num_train_epochs=3, per_device_train_batch_size=2,
                         gradient_accumulation_steps=2, save_total_limit=3)  # 5 steps per epoch (18 images)
    original_step = SeGPTrainer.training_step

    def killed(self, *args, **kwargs):
        if self.state.global_step == 12:
            raise KeyboardInterrupt("simulated kill")
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(SeGPTrainer, "training_step", killed)
    with pytest.raises(KeyboardInterrupt):
        run_continual(*parse_config(settings), benchmark=tiny_benchmark)
    monkeypatch.setattr(SeGPTrainer, "training_step", original_step)
    folder = ckpt.trainer_dir(tmp_path, 0)
    assert ckpt.last_trainer_checkpoint(folder).name == "checkpoint-10"
    truncate(folder / "checkpoint-10" / "optimizer.pt")
    resumed_from = []
    original_train = SeGPTrainer.train

    def recording_train(self, resume_from_checkpoint=None, **kwargs):
        resumed_from.append(resume_from_checkpoint)
        return original_train(self, resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    monkeypatch.setattr(SeGPTrainer, "train", recording_train)
    results = run_continual(*parse_config(settings), benchmark=tiny_benchmark)
    assert resumed_from[0].endswith("task-0/checkpoint-5") and results["tasks_completed"] == 2
