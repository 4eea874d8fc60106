"""Token lapses on one heap: each warning and lapse once, for the session's current token."""

import time

import jwt
import pytest

from tickwire.edge.auth import Authenticator, Unauthorized
from tickwire.edge.expiry import LAPSE, WARN, TokenExpiry
from tickwire.edge.limits import SubjectLimits
from tickwire.edge.session import Session
from tickwire.edge.settings import EdgeSettings
from tickwire.edge.tokens import SessionTokens

from edge_fakes import RecordingSink

SECRET = "a-test-secret-of-at-least-32-bytes!"


def events(expiry: TokenExpiry, now: float) -> list[tuple[str, str]]:
    return [(session, event) for session, event, _ in expiry.due(now)]


def test_a_warning_then_a_lapse_each_once():
    expiry = TokenExpiry(warning=60)
    expiry.schedule("a", 1000.0, refreshable=True)
    expiry.schedule("sse", 1000.0, refreshable=False)
    assert events(expiry, 939.0) == []
    assert events(expiry, 940.0) == [("a", WARN)]
    assert events(expiry, 999.0) == []
    assert sorted(events(expiry, 1000.0)) == [("a", LAPSE), ("sse", LAPSE)]
    assert events(expiry, 5000.0) == [] and len(expiry) == 0


def test_a_short_token_is_warned_at_once():
    expiry = TokenExpiry(warning=60)
    expiry.schedule("a", 1003.0, refreshable=True)
    [(session, event, expires_at)] = expiry.due(1000.0)
    assert (session, event, expires_at) == ("a", WARN, 1003.0)


def test_a_refresh_forgets_the_earlier_tokens_events():
    expiry = TokenExpiry(warning=10)
    expiry.schedule("a", 100.0, refreshable=True)
    expiry.schedule("a", 500.0, refreshable=True)
    assert events(expiry, 200.0) == []
    assert events(expiry, 500.0) == [("a", WARN), ("a", LAPSE)]
    expiry.schedule("b", 100.0, refreshable=True)
    expiry.schedule("b", None, refreshable=True)  # a token without exp never lapses
    assert events(expiry, 10_000.0) == []


def test_forgotten_sessions_do_not_pile_up_in_the_heap():
    expiry = TokenExpiry(warning=10)
    for n in range(10_000):
        expiry.schedule(n, 1e9, refreshable=True)
        expiry.forget(n)
    assert len(expiry._heap) <= 4 * 64 + 2 and len(expiry) == 0


def hs(claims: dict) -> str:
    return jwt.encode(claims, SECRET, "HS256")


@pytest.fixture
def tokens() -> SessionTokens:
    settings = EdgeSettings(jwt_secret=SECRET, tier_symbol_limits="pro=900",
                            tier_message_rates="pro=400")
    return SessionTokens(Authenticator(settings), SubjectLimits(), warning_seconds=60)


async def test_a_refresh_replaces_the_whole_identity_or_nothing(tokens):
    auth = tokens._auth
    session = Session("c1", RecordingSink())
    tokens.attach(session, auth.verify(hs({"sub": "u", "exp": time.time() + 5})),
                  refreshable=True)
    for symbol in ("AAPL", "MSFT", "NSE:TCS"):
        session.watch(symbol)
    before = (session.principal, session.max_symbols, session.user_inbound)
    for bad in ["garbage", hs({"sub": "other", "exp": time.time() + 600}),
                hs({"sub": "u", "exp": time.time() - 1})]:
        with pytest.raises(Unauthorized):
            tokens.refresh(session, bad)
        assert (session.principal, session.max_symbols, session.user_inbound) == before
    narrowed = tokens.refresh(session, hs({"sub": "u", "tier": "pro", "symbols": ["AAPL"],
                                           "exp": time.time() + 600}))
    assert narrowed == ["MSFT", "NSE:TCS"]
    assert session.max_symbols == 900 and session.user_inbound.rate == 400
    # The first token's lapse no longer applies; the new one's does.
    assert tokens.due(time.time() + 10) == []
    assert [e for _, e, _ in tokens.due(time.time() + 601)] == [WARN, LAPSE]
    await session.stop()


async def test_the_sockets_of_one_subject_share_one_message_allowance():
    settings = EdgeSettings(jwt_secret=SECRET, messages_per_second=1000, message_burst=1000,
                            tier_message_rates="free=5")
    tokens = SessionTokens(Authenticator(settings), SubjectLimits(), warning_seconds=60)
    principal = tokens._auth.verify(hs({"sub": "u", "tier": "free"}))
    tabs = [Session(f"tab{n}", RecordingSink(), rate=1000, burst=1000) for n in range(10)]
    for tab in tabs:
        tokens.attach(tab, principal, refreshable=True)
    allowed = sum(tab.over_rate(0.0) is None for _ in range(5) for tab in tabs)
    assert allowed == 10  # one user's burst (2 × 5), not ten
    other = Session("other", RecordingSink(), rate=1000, burst=1000)
    tokens.attach(other, tokens._auth.verify(hs({"sub": "v", "tier": "free"})), refreshable=True)
    assert other.over_rate(0.0) is None
    for session in (*tabs, other):
        await session.stop()
