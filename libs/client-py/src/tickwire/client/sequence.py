"""Per-symbol ordering: drops what is not newer, notices gaps.

Guarantee: per symbol and epoch, `accept` lets through strictly increasing `seq`s only;
a different epoch (the sequence restarted upstream) is always accepted and becomes current.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    STALE = "stale"      # not newer than what the client already has: drop
    NEXT = "next"        # the expected next one, or the first of a symbol / epoch
    GAP = "gap"          # newer, but some seqs in between were not seen


@dataclass(slots=True)
class _Position:
    epoch: str | None
    seq: int


class SequenceTracker:
    def __init__(self) -> None:
        self._positions: dict[str, _Position] = {}

    def accept(self, symbol: str, seq: int, epoch: str | None) -> Verdict:
        last = self._positions.get(symbol)
        if last is not None and last.epoch == epoch:
            if seq <= last.seq:
                return Verdict.STALE
            verdict = Verdict.GAP if seq > last.seq + 1 else Verdict.NEXT
        else:
            verdict = Verdict.NEXT
        self._positions[symbol] = _Position(epoch, seq)
        return verdict

    def forget(self, symbol: str) -> None:
        self._positions.pop(symbol, None)
