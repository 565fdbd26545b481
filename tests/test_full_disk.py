"""A full disk while saving task 1 (a write that fails part-way, after the adapter is written): the error names the
folder and the free space (exit 5 from the command line), task-0 and task 1's last in-task checkpoint stay
intact and loadable, nothing half-written is left, and rerunning after the space is freed ends with the results
of a run that never failed."""

from __future__ import annotations

import errno
import logging

import pytest
from conftest import tiny_settings

from segp_hf import cli
from segp_hf.errors import OutputWriteError
from segp_hf.recipe import parse_config
from segp_hf.run import checkpoints as ckpt
from segp_hf.run import continual, lock


def _settings(tiny_clip_dir, output_dir):
    return tiny_settings(tiny_clip_dir, output_dir, num_tasks=2)


def test_a_full_disk_while_saving_task_1_loses_nothing_and_the_rerun_continues(
        tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch, caplog):
    output_dir = tmp_path / "run"
    write_json = ckpt.write_json_atomic

    def disk_full_at_task_1(path, payload):
        if path.parent.name.startswith(".task-1.tmp") and path.name == ckpt.METRICS_FILE:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write_json(path, payload)

    with monkeypatch.context() as patch:
        patch.setattr(ckpt, "write_json_atomic", disk_full_at_task_1)
        with pytest.raises(OutputWriteError) as failed:
            continual.run_continual(*parse_config(_settings(tiny_clip_dir, output_dir)), benchmark=tiny_benchmark)
    message = str(failed.value)
    assert f"could not write task-1 to {output_dir}: No space left on device;" in message
    assert " free there" in message and "\n" not in message

    assert ckpt.completed_tasks(output_dir) == 1 and not (output_dir / "task-1").exists()
    ckpt.verify_task(ckpt.task_dir(output_dir, 0), 0)
    assert ckpt.last_trainer_checkpoint(ckpt.trainer_dir(output_dir, 1)) is not None  # task 1's training is kept
    assert not list(output_dir.glob(".task-*")), "no half-written task folder is left"
    assert not (output_dir / lock.LOCK_FILE).exists()

    with caplog.at_level(logging.INFO, logger="segp_hf.run.continual"):
        resumed = continual.run_continual(*parse_config(_settings(tiny_clip_dir, output_dir)), benchmark=tiny_benchmark)
    assert "Resuming task 1 from the Trainer checkpoint" in caplog.text
    reference = continual.run_continual(*parse_config(_settings(tiny_clip_dir, tmp_path / "whole")),
                                        benchmark=tiny_benchmark)
    assert resumed["acc_matrix"] == reference["acc_matrix"]
    assert resumed["avg"] == reference["avg"] and resumed["last"] == reference["last"]


def test_a_failed_write_is_one_line_and_exit_5(tmp_path, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise ckpt.write_failure(tmp_path, OSError(errno.ENOSPC, "No space left on device"), "task-3")

    monkeypatch.setattr(continual, "run_continual", full)
    assert cli.main(["train", "--output_dir", str(tmp_path)]) == 5
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"segp-hf: error: could not write task-3 to {tmp_path}: No space left on device; ")
    assert len(err.splitlines()) == 1
