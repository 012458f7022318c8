#!/usr/bin/env python3
"""Checks the dependency rule of DESIGN.md (Layout) on #include lines.

Each part may include only the parts listed for it; `daemon/` alone wires
everything. A violation names the file, the line and the rule broken.
"""
import pathlib
import re
import sys

# part -> parts it may include (besides itself). The adapters see an alert
# only as its event JSON (adapters/alert_message.hpp), so they depend on
# common/ alone; the outbox (engine/) drives them through adapters/sender.hpp,
# and the REST API (webui/) checks integration settings with their
# validate_* functions and the SSRF guard.
ALLOWED = {
    "common": set(),
    "broker": {"common"},
    "storage": {"common"},
    "engine": {"common", "storage", "adapters"},
    "adapters": {"common"},
    "webui": {"common", "storage", "engine", "adapters"},
    "daemon": {"common", "broker", "storage", "engine", "adapters", "webui"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def main(root: pathlib.Path) -> int:
    errors = []
    checked = 0
    for part, allowed in ALLOWED.items():
        for path in sorted((root / part).rglob("*")):
            if path.suffix not in {".hpp", ".cpp", ".h", ".ipp"}:
                continue
            checked += 1
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1).split("/", 1)[0]
                if target in ALLOWED and target != part and target not in allowed:
                    errors.append(f"{path.relative_to(root)}:{n}: {part}/ may not include {target}/ "
                                  f"(\"{m.group(1)}\"); see DESIGN.md, Layout")
    for e in errors:
        print(e)
    print(f"layering: {checked} files checked, {len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
