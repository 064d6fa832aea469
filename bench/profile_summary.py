"""Summarise py-spy's collapsed stacks: the functions with the most samples, inclusive and own.

`python bench/profile_summary.py FILE [N]` (FILE from BENCH_PYSPY=FILE python bench/x.py).
"""

from __future__ import annotations

import sys
from collections import Counter


def main() -> None:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(sys.argv[1]) as stacks:
        for line in stacks:
            frames, _, count = line.rstrip().rpartition(" ")
            samples = int(count)
            total += samples
            names = frames.split(";")
            for name in set(names):
                inclusive[name] += samples
            own[names[-1]] += samples
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    print(f"{total} samples\n-- inclusive")
    for name, samples in inclusive.most_common(limit):
        print(f"{samples / total:6.1%}  {name}")
    print("-- own")
    for name, samples in own.most_common(limit):
        print(f"{samples / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
