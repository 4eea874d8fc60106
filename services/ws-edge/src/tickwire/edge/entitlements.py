"""Which symbols a token may watch: patterns from its `symbols` claim.

A pattern is a symbol (`AAPL`), an exchange wildcard (`NASDAQ:*`), or `*` for everything.
A symbol written with its exchange (`NSE:TCS`) matches `NSE:*`; an unprefixed symbol
(`AAPL`) matches `X:*` only when the edge is told that unprefixed symbols belong to `X`
(`TICKWIRE_EDGE_UNPREFIXED_EXCHANGE`), so a deployment decides what a bare ticker means.

Pure logic: no I/O.
"""

from __future__ import annotations

import re

from tickwire.core.models import SYMBOL_PATTERN

_EXCHANGE_WILDCARD = re.compile(r"^[A-Z0-9][A-Z0-9.\-_]{0,19}:\*$")


class InvalidEntitlements(ValueError):
    """A `symbols` claim or setting that is not a list of patterns."""


class Entitlements:
    """An immutable set of symbol patterns; `allows(symbol)` is O(1)."""

    __slots__ = ("_everything", "_symbols", "_exchanges", "_unprefixed", "patterns")

    def __init__(self, patterns: list[str] | tuple[str, ...], unprefixed_exchange: str = ""):
        self.patterns = tuple(patterns)
        self._everything = "*" in self.patterns
        self._symbols = frozenset(p for p in self.patterns if not p.endswith("*"))
        self._exchanges = frozenset(p[:-2] for p in self.patterns if p.endswith(":*"))
        self._unprefixed = unprefixed_exchange

    @classmethod
    def parse(cls, claim: object, unprefixed_exchange: str = "") -> Entitlements:
        """From a claim value: a list of patterns, or one comma-separated string."""
        if isinstance(claim, str):
            items = [p.strip() for p in claim.split(",")]
        elif isinstance(claim, list) and all(isinstance(p, str) for p in claim):
            items = [p.strip() for p in claim]
        else:
            raise InvalidEntitlements("symbols must be a list of patterns or a comma-separated string")
        patterns = [p.upper() for p in items if p]
        if len(patterns) > 1000:
            raise InvalidEntitlements("at most 1000 symbol patterns")
        for pattern in patterns:
            if pattern != "*" and not _EXCHANGE_WILDCARD.match(pattern) \
                    and not SYMBOL_PATTERN.match(pattern):
                raise InvalidEntitlements(f"{pattern[:40]!r} is not a symbol, EXCHANGE:* or *")
        return cls(patterns, unprefixed_exchange)

    def allows(self, symbol: str) -> bool:
        if self._everything or symbol in self._symbols:
            return True
        exchange, sep, _ = symbol.partition(":")
        if sep:
            return exchange in self._exchanges
        # A bare ticker is the unprefixed exchange's: `NASDAQ:AAPL` and `NASDAQ:*` cover it.
        unprefixed = self._unprefixed
        return bool(unprefixed) and (unprefixed in self._exchanges
                                     or f"{unprefixed}:{symbol}" in self._symbols)

    def split(self, symbols: list[str]) -> tuple[list[str], list[str]]:
        """(allowed, forbidden), each in the given order."""
        if self._everything:
            return list(symbols), []
        allowed: list[str] = []
        forbidden: list[str] = []
        for symbol in symbols:
            (allowed if self.allows(symbol) else forbidden).append(symbol)
        return allowed, forbidden

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entitlements) and set(self.patterns) == set(other.patterns) \
            and self._unprefixed == other._unprefixed

    def __hash__(self) -> int:
        return hash((frozenset(self.patterns), self._unprefixed))

    def __repr__(self) -> str:
        return f"Entitlements({list(self.patterns)!r})"
