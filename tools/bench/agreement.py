"""Comparing generated id sequences: is a peer right, and how far a precision
variant drifts from float32.

A difference at a step where the reference's best and second-best scores are
closer than TIE is a numerical tie (float32 summation order decides it), as the
project's parity tests define it; any other difference is a real disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TIE = 1e-4


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


@dataclass
class Check:
    """Ids of a system against a reference system, case by case."""
    label: str
    cases: int = 0
    identical: int = 0
    ties: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def add(self, case: str, got: list[int], want: list[int], margins: list | None) -> None:
        self.cases += 1
        i = first_difference(got, want)
        if i is None:
            self.identical += 1
            return
        # ids[0] is the start token: position i was produced by step i - 1.
        m = margins[i - 1] if margins and 0 < i <= len(margins) else None
        note = f"{case}: first difference at position {i} (got {got[i:i + 3]}, want {want[i:i + 3]}, margin {m})"
        (self.ties if m is not None and m < TIE else self.mismatches).append(note)

    @property
    def ok(self) -> bool:
        return self.cases > 0 and not self.mismatches

    def summary(self) -> str:
        s = f"{self.label}: {self.identical}/{self.cases} identical"
        if self.ties:
            s += f", {len(self.ties)} differing only after a numerical tie (margin < {TIE:g})"
        if self.mismatches:
            s += f", {len(self.mismatches)} MISMATCHED (first: {self.mismatches[0]})"
        return s


@dataclass
class Agreement:
    """Token agreement of a variant's sequences with float32's."""
    sequences: int = 0
    identical: int = 0
    same_tokens: int = 0
    positions: int = 0

    def add(self, got: list[int], want: list[int]) -> None:
        self.sequences += 1
        self.identical += got == want
        # Generated tokens only (the start token is given); a longer sequence's
        # extra tokens count as disagreements.
        self.same_tokens += sum(x == y for x, y in zip(got[1:], want[1:]))
        self.positions += max(len(got), len(want)) - 1

    def summary(self) -> str:
        if not self.sequences:
            return "n/a"
        pct = 100.0 * self.same_tokens / max(self.positions, 1)
        return f"{self.identical}/{self.sequences} identical, {pct:.1f} % of tokens"
