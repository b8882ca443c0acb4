"""Where a profiled process spends its time: `python -m bench.hotspots FILE [N]` reads py-spy's
collapsed stacks (`bench --profile` writes them to bench/out/profiles/) and prints the N
functions with the largest share of samples, inclusive (anywhere on the stack) and exclusive
(on top of it), plus the share spent in each top-level package."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:]+)(?::\d+)?\)$")


def _frame(raw: str) -> tuple[str, str]:
    m = _FRAME.match(raw.strip())
    if not m:
        return raw.strip(), ""
    return m.group("func"), m.group("file")


def _where(path: str) -> str:
    parts = Path(path).parts
    for marker in ("site-packages", "lib"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1:]
            if rest and marker == "site-packages":
                return rest[0]
            if rest and rest[0].startswith("python3"):
                return "stdlib:" + (rest[1] if len(rest) > 1 else "")
    for ours in ("inbox", "connectors", "replies", "teams", "web", "measures"):
        if ours in parts:
            return ours
    return parts[0] if parts else "?"


def summarise(text: str, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        seen = set()
        for func, path in frames:
            key = f"{func} ({Path(path).name})"
            if key not in seen:
                inclusive[key] += n
                seen.add(key)
        func, path = frames[-1]
        exclusive[f"{func} ({Path(path).name})"] += n
        packages[_where(path)] += n
    if not total:
        return "no samples"
    out = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("exclusive", exclusive),
                           ("exclusive by package", packages)):
        out.append(f"\n{title}:")
        out += [f"  {n / total:6.1%}  {key}" for key, n in counter.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1]).read_text(), int(sys.argv[2]) if len(sys.argv) > 2 else 25))
