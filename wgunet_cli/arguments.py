"""Command-line values checked as they are parsed (argparse types): a bad one is argparse's one-line usage error."""

import argparse
import math
import sys


def _number(kind: type, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _ranged(kind: type, allowed, requirement: str):
    """An argparse type: a ``kind`` number for which ``allowed(value)`` holds, else "REQUIREMENT, got TEXT"."""

    def parse(text: str):
        value = _number(kind, text)
        if not allowed(value):
            raise argparse.ArgumentTypeError(f"{requirement}, got {text}")
        return value

    return parse


positive = _ranged(int, lambda v: v >= 1, "must be at least 1")  # a count
count = _ranged(int, lambda v: v >= 0, "must be >= 0")  # 0 switches something off
seed = _ranged(int, lambda v: 0 <= v < 2**32, "a seed must be in [0, 2^32)")  # what numpy and every generator accept
positive_number = _ranged(float, lambda v: v > 0, "must be > 0")  # finite (``_number``)
weight = _ranged(float, lambda v: v >= 0, "must be >= 0")  # a loss weight: 0 switches its term off


def path(text: str) -> str:
    """A file or folder path: not empty (an empty one would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def renamed(new: str):
    """An argparse action for a flag's old spelling: it still works, and says once which flag replaces it."""

    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"note: {option_string} is now {new} (the old spelling goes in the next release)", file=sys.stderr)
            setattr(namespace, self.dest, values)

    return Renamed
