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


def positive(text: str) -> int:
    """A count: an integer >= 1."""
    value = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def count(text: str) -> int:
    """An integer >= 0 (0 switches something off)."""
    value = _number(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def seed(text: str) -> int:
    """A seed: an integer in [0, 2^32), the range numpy and every generator here accept."""
    value = _number(int, text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"a seed must be in [0, 2^32), got {value}")
    return value


def positive_number(text: str) -> float:
    """A finite number > 0."""
    value = _number(float, text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def weight(text: str) -> float:
    """A finite number >= 0 (a loss weight: 0 switches its term off)."""
    value = _number(float, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


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
