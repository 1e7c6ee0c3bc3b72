"""`lambdarec evaluate` / `train` fail with a clear message on bad input, before any training."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lambdarec.cli import app


def _text(output: str) -> str:
    return " ".join(output.split())  # rich wraps long lines


def test_evaluate_rejects_missing_tiny_and_unknown_datasets(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["evaluate", "--dataset", f"rees46:{tmp_path / 'nope.csv'}"])
    assert missing.exit_code == 1 and "does not exist" in _text(missing.output)
    tiny = tmp_path / "tiny.csv"
    tiny.write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,1,2,,b,1.0,3,s1\n"
    )
    small = runner.invoke(app, ["evaluate", "--dataset", f"rees46:{tiny}"])
    assert small.exit_code == 1 and "at least 200" in _text(small.output)
    unknown = runner.invoke(app, ["evaluate", "--dataset", "nosuch:x"])
    assert unknown.exit_code == 1 and "unknown adapter" in _text(unknown.output)


def test_help_lists_the_model_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "evaluate", "index"):
        assert command in result.output
