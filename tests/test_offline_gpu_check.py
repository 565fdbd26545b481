"""The offline GPU check's install half: wheels.txt pins, the preflight of carried wheels, the script's refusals."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
BENCHMARKS = ROOT / "benchmarks"


def fake_distribution(folder: Path, name: str, version: str, requires=()) -> Path:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    return folder


def test_wheels_txt_pins_one_version_of_each_and_both_scripts_read_it():
    sys.path.insert(0, str(BENCHMARKS))
    import wheel_preflight

    pins = wheel_preflight.pinned(BENCHMARKS / "wheels.txt")
    assert set(pins) == {"datasets", "evaluate", "dill", "multiprocess"} and all(pins.values())
    for script in ("fetch_wheels.sh", "offline_gpu_check.sh"):
        assert "benchmarks/wheels.txt" in (BENCHMARKS / script).read_text()
    assert "--no-index --no-deps" in (BENCHMARKS / "offline_gpu_check.sh").read_text()


def test_preflight_reports_unmet_and_clashing_requirements(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCHMARKS))
    from importlib import metadata

    import wheel_preflight

    numpy = metadata.version("numpy")
    scratch = fake_distribution(tmp_path / "scratch", "carriedpkg", "1.0",
                                [f"numpy=={numpy}", "not-installed-anywhere>=1", "numpy<0.1",
                                 'other-extra-only>=1; extra == "test"'])
    monkeypatch.syspath_prepend(str(scratch))
    (tmp_path / "wheels.txt").write_text("# comment\ncarriedpkg==1.0\n")
    report = wheel_preflight.check(scratch, tmp_path / "wheels.txt", imports=["json"])
    problems = report["problems"]
    assert len(problems) == 2, problems  # numpy==installed is met, the extra's requirement is skipped
    assert any("not-installed-anywhere" in p and "add it to benchmarks/wheels.txt" in p for p in problems)
    assert any("numpy<0.1" in p and f"the node has numpy {numpy}" in p for p in problems)
    (tmp_path / "wheels.txt").write_text("carriedpkg==2.0\n")  # another version found than the one pinned
    assert any("is found first, not 2.0" in p for p in wheel_preflight.check(scratch, tmp_path / "wheels.txt",
                                                                           imports=[])["problems"])


def test_offline_script_refuses_without_the_carried_wheels(tmp_path):
    done = subprocess.run(["bash", str(BENCHMARKS / "offline_gpu_check.sh"), str(tmp_path / "out")],
                          env={"PATH": "/usr/bin:/bin", "WHEELS": str(tmp_path / "none")}, capture_output=True, text=True)
    assert done.returncode == 2 and "fetch_wheels.sh" in done.stderr
    done = subprocess.run(["bash", str(BENCHMARKS / "offline_gpu_check.sh")], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
