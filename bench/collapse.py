"""Summarise a py-spy ``--format raw`` profile: inclusive share of samples per function.

    python bench/collapse.py PROFILE.txt [--top 30] [--match SUBSTRING]
"""
from __future__ import annotations

import argparse
import collections
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="")
    args = parser.parse_args()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            n = int(count)
            total += n
            frames = stack.split(";")
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    print(f"{total} samples")
    print("inclusive:")
    for frame, n in inclusive.most_common():
        if args.match in frame:
            print(f"  {100 * n / total:5.1f}%  {frame}")
            args.top -= 1
            if args.top <= 0:
                break
    print("self:")
    for frame, n in own.most_common(15):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
