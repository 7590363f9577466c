from genlab.cli import SYSTEMS, build_parser
from tests.helpers import run_genlab


def test_every_system_registers_its_commands():
    parser = build_parser()
    help_text = parser.format_help()
    for name in SYSTEMS:
        assert name in help_text


def test_help_runs_as_a_module():
    result = run_genlab("--help")
    assert result.returncode == 0, result.stderr
    assert "t2i" in result.stdout


def test_unknown_system_is_one_clear_error():
    result = run_genlab("nonsense")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_help_imports_no_heavy_library():
    # `genlab --help` must stay instant: system CLIs keep heavy imports inside commands.
    import subprocess
    import sys

    code = (
        "import sys, genlab.cli; genlab.cli.build_parser(); "
        "print(sorted(m for m in ('numpy', 'torch', 'scipy', 'matplotlib', 'cv2', 'av') if m in sys.modules))"
    )
    from tests.helpers import ROOT

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT / "src")}, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_takes_quiet():
    import argparse

    def leaves(parser, prefix):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield " ".join(prefix), parser
        for name, child in (subs[0].choices.items() if subs else []):
            yield from leaves(child, [*prefix, name])

    missing = [name for name, p in leaves(build_parser(), ["genlab"]) if "--quiet" not in p._option_string_actions]
    assert missing == []


def test_quiet_silences_progress_bars_for_the_command_only(capsys, monkeypatch):
    import os

    from genlab import cli

    seen = {}
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(cli, "_demo", lambda args: seen.setdefault("env", os.environ.get("TQDM_DISABLE")) and 0)
    assert cli.main(["demo", "--quiet"]) == 0
    assert seen["env"] == "1" and "TQDM_DISABLE" not in os.environ
