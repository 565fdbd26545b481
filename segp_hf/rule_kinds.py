"""The kinds of validation rule (range, choice, path, combination) and the builders the rule table is written
with (``validation.RULES``): each rule knows what it allows, in words, and checks a value against it."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Range:
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself not allowed
    high_open: bool = False
    optional: bool = False  # None allowed (the setting's "unset")
    also: tuple = ()  # single values allowed outside the interval (e.g. max_steps -1)

    def ok(self, value) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        if value in self.also:
            return True
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {_num(self.low)}"
        else:
            text = f"{'<' if self.high_open else '<='} {_num(self.high)}"
        extra = [_num(v) for v in self.also] + (["unset (None)"] if self.optional else [])
        return text + "".join(f" or {e}" for e in extra)

    def outside(self) -> float:
        """A value this range refuses (for the test that walks every numeric setting)."""
        if self.low is not None:
            candidate = self.low - 1 if not self.low_open else self.low
            while candidate in self.also:
                candidate -= 1
            return candidate
        return self.high + 1 if not self.high_open else self.high


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Rule:
    setting: str  # a setting name, a command-line argument ("--seeds"), or "a + b" for a combination
    kind: str  # "range" | "choice" | "path" | "combination"
    allowed: str  # what is allowed, in words (README and messages)
    fix: str  # what to do
    check: Callable[..., str | None]  # returns None when fine, else what is wrong
    command: str | None = None  # command-line argument of this command only (None: a setting of every command)
    range: Range | None = None
    deferred: bool = False  # checked by the code that first needs it (still before any data or model)

    def message(self, problem: str) -> str:
        return f"{problem}; {self.fix}" if self.fix else problem


def range_rule(setting, range_: Range, fix: str = "", command: str | None = None) -> Rule:
    def check(value):
        if range_.ok(value):
            return None
        return f"{setting}={value!r} is out of range: it must be {range_.describe()}"

    return Rule(setting, "range", range_.describe(), fix, check, command, range_)


def positive(setting, fix="", optional=False):
    return range_rule(setting, Range(0, low_open=True, optional=optional), fix)


def at_least(setting, low, fix="", optional=False, command=None):
    return range_rule(setting, Range(low, optional=optional), fix, command)


def fraction(setting, fix="", high_open=False):
    return range_rule(setting, Range(0, 1, high_open=high_open), fix)


def choice(setting, allowed: Callable[[], tuple] | tuple, fix="", many=False) -> Rule:
    def options():
        return tuple(allowed() if callable(allowed) else allowed)

    def check(value):
        values = value if many and isinstance(value, (list, tuple)) else [value]
        wrong = [v for v in values if str(getattr(v, "value", v)) not in options()]
        if not wrong:
            return None
        shown = wrong[0] if not many else wrong
        close = difflib.get_close_matches(str(getattr(wrong[0], "value", wrong[0])), options(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{setting}={shown!r} is not valid{hint}; choose {'from' if many else 'one of'}: {', '.join(options())}"

    words = "one of the registered benchmarks" if callable(allowed) and setting == "benchmark" else (
        ("each one of " if many else "one of ") + ", ".join(f"`{o}`" for o in options()) if len(options()) <= 8
        else f"one of the {len(options())} names transformers knows")
    return Rule(setting, "choice", words, fix, check)


def path_rule(setting, allowed, check, fix="", command=None) -> Rule:
    return Rule(setting, "path", allowed, fix, check, command)


def combination(setting, allowed, check, fix) -> Rule:
    return Rule(setting, "combination", allowed, fix, check)


def enum_values(name: str) -> Callable[[], tuple]:
    def values():
        from transformers import trainer_utils, training_args

        enum = getattr(training_args, name, None) or getattr(trainer_utils, name)
        return tuple(e.value for e in enum)
    return values
