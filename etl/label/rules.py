"""Label rules from config: `field op value` conditions joined by "and", parsed once, never eval'd.

    RuleLabeler([LabelRule(label="negative", when="stars <= 2"),
                 LabelRule(label="course", when="text contains syllabus and domain == cornell.edu")])

Operators: ``== != < <= > >=`` (numbers compared as numbers when both sides parse as one,
else as case-insensitive strings), ``in`` (a comma-separated list), ``contains`` (a
case-insensitive substring; for ``text`` and ``title`` a whole word or phrase). A field that
a doc lacks makes the condition false. The first rule that matches gives the doc its vote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pagecat.config import LabelRule
from pagecat.errors import UsageError

_CONDITION = re.compile(
    r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|<=|>=|<|>|\bnot in\b|\bin\b|\bcontains\b)\s*([^=<>!\s].*?)\s*$")
_SPLIT_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _unquote(v: str) -> str:
    v = v.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str | tuple[str, ...]

    def test(self, fields: dict) -> bool:
        have = fields.get(self.field)
        if have is None:
            return False
        if self.op == "contains":
            needle = str(self.value).lower()
            hay = str(have).lower()
            if self.field in ("text", "title"):
                return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", hay) is not None
            return needle in hay
        if self.op in ("in", "not in"):
            options = self.value
            hit = any(_equal(have, o) for o in options)
            return hit if self.op == "in" else not hit
        if self.op in ("==", "!="):
            return _equal(have, self.value) == (self.op == "==")
        a, b = _number(have), _number(self.value)
        if a is None or b is None:
            a, b = str(have).lower(), str(self.value).lower()
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[self.op]


def _equal(have, want: str) -> bool:
    a, b = _number(have), _number(want)
    if a is not None and b is not None:
        return a == b
    return str(have).strip().lower() == str(want).strip().lower()


def parse_condition(text: str, where: str) -> list[Condition]:
    """``"stars <= 2 and text contains refund"`` -> Conditions; UsageError naming ``where``."""
    if not text or not text.strip():
        raise UsageError(f"config field {where}: empty condition; write e.g. \"stars <= 2\"")
    out = []
    for part in _SPLIT_AND.split(text.strip()):
        m = _CONDITION.match(part)
        if not m:
            raise UsageError(f"config field {where}: cannot read {part!r}; write `field op value` with op one of "
                             "==, !=, <, <=, >, >=, in, not in, contains")
        field, op, value = m.group(1), m.group(2), m.group(3)
        if op in ("in", "not in"):
            out.append(Condition(field, op, tuple(_unquote(v) for v in value.split(",") if v.strip())))
        else:
            out.append(Condition(field, op, _unquote(value)))
    return out


class RuleLabeler:
    """Votes the label of the first rule whose conditions all hold (source ``rules``)."""

    source = "rules"

    def __init__(self, rules: list[LabelRule]):
        self.rules = rules
        self.parsed = []
        for i, r in enumerate(rules):
            if not r.label:
                raise UsageError(f"config field label.rules[{i}].label: empty; name the label the rule gives")
            self.parsed.append((r.label, parse_condition(r.when, f"label.rules[{i}].when")))

    def vote(self, fields: dict) -> str | None:
        """The label of the first matching rule for one doc's fields, or None."""
        for label, conditions in self.parsed:
            if all(c.test(fields) for c in conditions):
                return label
        return None

    @property
    def labels(self) -> set[str]:
        return {label for label, _ in self.parsed}
