"""Summarise a py-spy collapsed-stack file (`bench.run --py-spy FILE`): where the server's
time goes, as a share of the samples in request handling.

    python -m bench.profile_summary var/bench/profile.txt [--top 40] [--match registry/]
"""

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^)]*?)(?::\d+)?\)$")


def frames(stack: str) -> list[str]:
    out = []
    for frame in stack.split(";"):
        match = FRAME.match(frame.strip())
        if match:
            path = match["file"].split("site-packages/")[-1].replace("/work/main/", "")
            out.append(f"{match['func']} ({path})")
        else:
            out.append(frame.strip())
    return out


def summarise(path: Path, top: int, match: str) -> str:
    inclusive: Counter = Counter()
    self_time: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _sep, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        names = frames(stack)
        if not any("get_response" in n for n in names):
            continue  # idle workers and the master
        total += int(count)
        for name in set(names):
            inclusive[name] += int(count)
        self_time[names[-1]] += int(count)
    lines = [f"{total} samples in request handling", "", "inclusive:"]
    lines += [
        f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common() if match in name
    ][:top]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in self_time.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="")
    args = parser.parse_args()
    print(summarise(args.file, args.top, args.match))


if __name__ == "__main__":
    main()
