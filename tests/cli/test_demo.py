import json

from vqturb.cli import main
from vqturb.cli.demo import stages


def test_demo_plan_uses_registered_commands_only(tmp_path):
    """Every stage of the demo is a command `vqturb` knows, with flags it accepts."""
    from vqturb.cli import build_parser

    parser = build_parser()
    for name, argv in stages(tmp_path, quick=False):
        args = parser.parse_args(argv)  # argparse exits (SystemExit) on an unknown flag
        assert callable(args.func), name


# The whole pipeline at tiny sizes: 66 s on a quiet 2-core machine, worth it in `make test`.
def test_quick_demo_runs_every_stage_and_writes_the_report(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    timings = json.loads((out / "timings.json").read_text())
    assert [k for k in timings if k != "total"] == [name for name, _ in stages(out, quick=True)]
    html = (out / "report.html").read_text()
    for section in ("VQ-VAE", "Compression", "Next-scale prediction rollouts", "Timings"):
        assert section in html
    assert (out / "eval" / "report.html").is_file() and (out / "rd" / "rd.json").is_file()
