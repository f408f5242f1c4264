"""Regenerate the settings table in README.md from the settings classes (`python scripts/readme_settings.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from server.settings import describe  # noqa: E402


def table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | `{default}` | {doc} |" for name, default, doc in describe()]
    return "\n".join(lines)


def main() -> None:
    readme = REPO / "README.md"
    text = readme.read_text()
    start, end = "<!-- settings:begin -->", "<!-- settings:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{table()}\n{end}{tail}")


if __name__ == "__main__":
    main()
