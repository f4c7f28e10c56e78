import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_STUDENT

from wgunet import WGUNet

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def open_in_chromium(page: Path, screenshot: Path) -> tuple[list[str], list[dict]]:
    """Load a page in headless Chromium: (sources of images that did not decode, console errors)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # headless and with no network of its own: a self-contained page must not need one
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,2000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(page.resolve().as_uri())
        broken = driver.execute_script(
            "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    return broken, errors


@pytest.fixture
def tiny_student(tmp_path):
    folder = tmp_path / "student"
    WGUNet(sample_size=16, **TINY_STUDENT).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_eval_report_reuses_samples_and_renders_in_a_real_browser(tiny_student, tiny_teacher, tmp_path):
    out = tmp_path / "report"
    command = [sys.executable, "eval.py", "report", str(tiny_student), "--teacher", str(tiny_teacher),
               "--steps", "2", "--timesteps", "10,90", "--bootstrap", "20", "--features", "teacher",
               "--finc-features", "pixels", "--stig-steps", "2", "--out", str(out)]
    result = subprocess.run(command + ["--num-images", "16"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    first = {p.name: p.stat().st_mtime_ns for p in (out / "samples" / "student").glob("[0-9]*.png")}
    # asking for more draws only the missing images; the first 16 are kept as they are
    started = time.perf_counter()
    result = subprocess.run(command + ["--num-images", "20"], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    # where the time went: every stage, in order, within the command's own wall time
    assert list(metrics["seconds"]) == ["sample teacher", "sample student", "STIG", "features", "spectra and FID/KID",
                                        "probe", "FINC", "report.html"]
    assert all(s >= 0 for s in metrics["seconds"].values()) and sum(metrics["seconds"].values()) <= elapsed
    assert "time per stage: sample teacher " in result.stdout
    assert metrics["sampling"]["student"]["sampled_now"] == 4 and metrics["sampling"]["teacher"]["sampled_now"] == 4
    assert all((out / "samples" / "student" / name).stat().st_mtime_ns == t for name, t in first.items())
    scored = metrics["spectrum"]["sets"]
    assert set(scored) == {"student", "teacher", "student + STIG"} and all(s["num"] == 20 for s in scored.values())
    assert all("NOT comparable" in s["fid_kid"]["features"] for s in scored.values()) and set(metrics["probe"]["cutoff"]) >= {"student", "teacher"}
    assert {"test_modes", "reference_modes", "noise_floor"} <= set(metrics["finc"])
    assert set(metrics["finc"]["noise_floor"]) == {"test", "reference"}
    assert f"report: {out}/report.html" in result.stdout

    page = (out / "report.html").read_text()
    assert page.count("<img ") == 8 and page.count('src="data:image/png;base64,') == 8  # embedded, not linked
    # one order everywhere: real, teacher, student, STIG (grids, then the score table's columns)
    grids = [page.index(f'alt="{caption}') for caption in ("real (held out)", "teacher: first", "student: first")]
    assert grids == sorted(grids)
    header = page[page.index('id="scores"'):].split("</thead>")[0]
    assert header.index(">teacher<") < header.index(">student<") < header.index(">student + STIG<")
    assert "parameters (M)" in page and "GMACs per image" in page
    assert 'score table</a> above' in page
    assert "http" not in page.split("<body>")[1]  # nothing to fetch: opens offline
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    pytest.importorskip("selenium", reason="selenium is in the [dev] extra")
    broken, errors = open_in_chromium(out / "report.html", tmp_path / "report.png")
    assert broken == [] and errors == []
    assert (tmp_path / "report.png").stat().st_size > 20_000  # the page painted


def test_report_loads_each_checkpoint_and_image_set_once(tiny_student, tiny_teacher, tmp_path, monkeypatch):
    """Every load of a model goes through ModelMixin.from_pretrained, every set through one of the readers of
    wgunet.evaluation.image_sets; the report must hand what it opened on instead of opening it again (the STIG set is opened once,
    from the folder the refiner wrote)."""
    import runpy
    from collections import Counter

    from diffusers import ModelMixin

    import wgunet.evaluation.image_sets as images

    loads = Counter()
    real_from_pretrained = ModelMixin.from_pretrained.__func__

    def counted_from_pretrained(cls, path, *args, **kwargs):
        loads[f"model {Path(path).parent.name if Path(path).name == 'unet' else Path(path).name}"] += 1
        return real_from_pretrained(cls, path, *args, **kwargs)

    def counting(name, reader):
        def read(*args, **kwargs):
            loads[f"set {name(*args)}"] += 1
            return reader(*args, **kwargs)
        return read

    monkeypatch.setattr(ModelMixin, "from_pretrained", classmethod(counted_from_pretrained))
    monkeypatch.setattr(images, "_npz_reader", counting(lambda path: Path(path).parent.name, images._npz_reader))
    monkeypatch.setattr(images, "photograph_patches", counting(lambda size, split: split, images.photograph_patches))
    monkeypatch.setattr(sys, "argv", ["eval.py", "report", str(tiny_student), "--teacher", str(tiny_teacher),
                                      "--num-images", "6", "--steps", "2", "--timesteps", "10", "--bootstrap", "5",
                                      "--features", "teacher", "--stig-steps", "2", "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit) as done:
        runpy.run_path("eval.py", run_name="__main__")
    assert done.value.code == 0
    assert loads == {"model student": 1, "model pipeline": 1, "set heldout": 1, "set student": 1, "set teacher": 1,
                     "set student_stig": 1}


def test_report_refuses_two_stig_sources(tmp_path):
    from wgunet.evaluation.report import ReportError, build_report

    with pytest.raises(ReportError, match="either --stig-refiner .* or --stig-steps"):
        build_report("a", "b", "patches:heldout", 4, tmp_path, stig_refiner="r", stig_steps=3)


def test_report_names_a_missing_checkpoint(tmp_path, monkeypatch, capsys):
    from wgunet_cli.eval import main

    def report(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["eval.py", "report", *args, "--out", str(tmp_path / "r")])
        return main(), capsys.readouterr().err

    code, err = report(str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    for flags, message in ((["--reference", str(empty)], "no images in"), (["--stig-refiner", str(empty)], "not a STIG refiner")):
        code, err = report("assets/teacher", *flags)
        assert code == 2 and message in err and err.count("\n") == 1
        assert not (tmp_path / "r").exists()  # refused before any sampling


@pytest.mark.slow
def test_a_report_on_two_processes_equals_the_one_process_report(tiny_student, tiny_teacher, tmp_path):
    from launch import launch

    settings = [str(tiny_student), "--teacher", str(tiny_teacher), "--num-images", "9", "--steps", "2",
                "--timesteps", "10", "--probe-images", "8", "--bootstrap", "5", "--features", "teacher",
                "--finc-features", "pixels", "--stig-steps", "2"]
    one = subprocess.run([sys.executable, "eval.py", "report", *settings, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # as launched
    assert one.returncode == 0, one.stderr[-3000:]
    two = launch("eval.py", 2, "report", *settings, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("report: ") == 1  # the main process reports; the other sampled its share
    a, b = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two"))
    assert set(b["spectrum"]["sets"]) == {"student", "teacher", "student + STIG"}
    for name in b["spectrum"]["sets"]:  # the same numbers (features split between the processes); only paths differ
        assert a["spectrum"]["sets"][name]["scores"] == b["spectrum"]["sets"][name]["scores"]
        assert a["spectrum"]["sets"][name]["fid_kid"] == b["spectrum"]["sets"][name]["fid_kid"]
    assert a["finc"]["test_modes"] == b["finc"]["test_modes"] and a["probe"] == b["probe"]
    for name in ("student", "teacher"):
        folder = Path("samples") / name
        assert all((tmp_path / "one" / folder / p.name).read_bytes() == p.read_bytes()
                   for p in (tmp_path / "two" / folder).glob("*.png"))
