#!/usr/bin/env python3
"""Write the Grafana dashboards (dashboards/*.json) from their Python definitions.

    python3 dashboards/generate.py          # (re)write the JSON files
    python3 dashboards/generate.py --check  # exit 1 if a committed file differs

Needs `grafana-foundation-sdk` (tests/python/requirements.txt).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tailmeter_dashboards import DASHBOARDS  # noqa: E402
from tailmeter_dashboards.common import render  # noqa: E402


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build())
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python3 dashboards/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
