"""The README documents every setting and the two commands; .ci/run calls the README's test command."""

from __future__ import annotations

from pathlib import Path

from server.settings import describe

REPO = Path(__file__).resolve().parent.parent


def test_readme_documents_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [name for name, _, _ in describe() if f"`{name}`" not in readme]
    assert not missing, f"run scripts/readme_settings.py: {missing}"


def test_every_setting_has_a_description() -> None:
    assert [name for name, _, doc in describe() if not doc] == []


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert "make run" in first_block and "make test" in first_block
    assert "make test" in (REPO / ".ci" / "run").read_text()
