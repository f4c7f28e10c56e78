import subprocess
import sys
from pathlib import Path

import pytest

# Runs an entry point's --help and reports which heavy packages it imported on the way.
PROBE = """
import runpy, sys
sys.argv = [{script!r}] + {args!r}
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit:
    pass
print("IMPORTED", sorted(m for m in ("torch", "diffusers", "accelerate", "numpy", "wgunet") if m in sys.modules))
"""


@pytest.mark.parametrize("script, args", [("train.py", ["--help"]), ("sample.py", ["--help"]), ("eval.py", ["--help"]),
                                          ("eval.py", ["report", "--help"]), ("eval.py", ["stig", "train", "--help"])])
def test_help_parses_arguments_before_importing_torch(script, args):
    result = subprocess.run([sys.executable, "-c", PROBE.format(script=script, args=args)], capture_output=True, text=True)
    assert "usage:" in result.stdout, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "IMPORTED []"


@pytest.mark.parametrize("error", [OSError(28, "No space left on device", "runs/x/000001.png"),
                                   PermissionError(13, "Permission denied", "/data/out")])
def test_os_errors_become_one_line_naming_the_path(error, capsys):
    from wgunet.common.cli import run_cli

    def fail():
        raise error

    assert run_cli(fail) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and error.strerror in err and error.filename in err and "--resume" in err


@pytest.mark.parametrize("name, module", [("wgunet-train", "wgunet_cli.train"), ("wgunet-sample", "wgunet_cli.sample"),
                                          ("wgunet-eval", "wgunet_cli.eval")])
def test_console_scripts_are_installed_and_run_the_same_command_lines(name, module):
    from importlib.metadata import entry_points
    from pathlib import Path

    (entry,) = [e for e in entry_points(group="console_scripts") if e.name == name]
    assert entry.value == f"{module}:main"
    result = subprocess.run([str(Path(sys.executable).parent / name), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: {name} "), result.stderr[-2000:]


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every train.py / sample.py / eval.py command line in the README's and the docs' code blocks (continued
    lines joined, comments dropped), as (script, arguments)."""
    import re
    import shlex

    found = []
    for page in [Path("README.md"), *sorted(Path("docs").glob("*.md")), Path("bench/README.md")]:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line.split("  #")[0].split(" # ")[0])
                scripts = [i for i, w in enumerate(words) if w in ("train.py", "sample.py", "eval.py")]
                if scripts:
                    found.append((words[scripts[0]], words[scripts[0] + 1:]))
    return found


def test_every_documented_command_line_parses_with_the_entry_points_own_parsers():
    from wgunet_cli import eval as eval_cli
    from wgunet_cli import sample as sample_cli
    from wgunet_cli import train as train_cli

    commands = documented_commands()
    assert len(commands) >= 20
    parsers = {"train.py": lambda a: train_cli.build_parser().parse_intermixed_args(a),
               "sample.py": lambda a: sample_cli.build_parser().parse_args(a),
               "eval.py": lambda a: eval_cli.build_parser().parse_args(a)}
    for script, arguments in commands:
        parsers[script](arguments)  # argparse exits (SystemExit) on a flag that does not exist


def test_every_command_line_choice_list_is_the_packages_own():
    """The entry points spell their choices out (parsing them loads no torch); each list is the package's."""
    from wgunet.common.devices import DTYPE_CHOICES
    from wgunet.evaluation.features import EXTRACTORS
    from wgunet.sampling.samplers import SCHEDULERS
    from wgunet.training.config import CHOICES
    from wgunet_cli import eval as eval_cli
    from wgunet_cli import sample as sample_cli

    def choices(parser, flag, command=None):
        if command:
            parser = next(a for a in parser._actions if a.choices and command in a.choices).choices[command]
        return list(next(a for a in parser._actions if flag in a.option_strings).choices)

    evaluation = eval_cli.build_parser()
    assert choices(sample_cli.build_parser(), "--scheduler") == list(SCHEDULERS) == choices(evaluation, "--scheduler", "report")
    assert choices(sample_cli.build_parser(), "--dtype") == list(DTYPE_CHOICES)
    fid = choices(evaluation, "--features", "spectrum")
    assert set(fid) - {"auto", "none"} <= set(EXTRACTORS) and list(CHOICES["eval.features"]) == [f for f in fid if f != "none"]
    assert set(choices(evaluation, "--features", "finc")) == set(EXTRACTORS)


def test_an_old_flag_spelling_works_and_names_the_new_one(tmp_path):
    from wgunet_cli import sample as sample_cli

    args = sample_cli.build_parser().parse_args(["model", "--num", "5", "--out", str(tmp_path)])
    assert args.num == 5
    result = subprocess.run([sys.executable, "eval.py", "report", "x", "--num-samples", "1", "--out", str(tmp_path)],
                            capture_output=True, text=True)
    assert "note: --num-samples is now --num-images" in result.stderr and "--num-images must be at least 2" in result.stderr
