"""``python -m lowbit``: a diagnostic of the installed build."""

from __future__ import annotations

import sys

from . import build_info


def main() -> int:
    info = build_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
