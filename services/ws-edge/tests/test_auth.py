"""Token verification, claims → principal, entitlement patterns and per-subject limits."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tickwire.edge.auth import MAX_TOKEN_BYTES, Authenticator, Unauthorized
from tickwire.edge.entitlements import Entitlements, InvalidEntitlements
from tickwire.edge.limits import SubjectLimits
from tickwire.edge.settings import EdgeSettings

SECRET = "a-test-secret-of-at-least-32-bytes!"


def rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def hs(claims: dict) -> str:
    return jwt.encode(claims, SECRET, "HS256")


def test_entitlement_patterns():
    ents = Entitlements.parse(["aapl", "NASDAQ:*", "NSE:TCS"])
    assert ents.allows("AAPL") and ents.allows("NASDAQ:MSFT") and ents.allows("NSE:TCS")
    assert not ents.allows("MSFT") and not ents.allows("NSE:INFY")
    assert ents.split(["AAPL", "MSFT", "NSE:INFY", "NASDAQ:X"]) == (["AAPL", "NASDAQ:X"],
                                                                     ["MSFT", "NSE:INFY"])
    assert Entitlements.parse("*").allows("ANYTHING")
    assert Entitlements.parse("").split(["AAPL"]) == ([], ["AAPL"])


def test_unprefixed_symbols_belong_to_the_configured_exchange():
    ents = Entitlements.parse(["NASDAQ:*"], unprefixed_exchange="NASDAQ")
    assert ents.allows("AAPL") and ents.allows("NASDAQ:AAPL") and not ents.allows("NSE:TCS")
    assert not Entitlements.parse(["NSE:*"], unprefixed_exchange="NASDAQ").allows("AAPL")


@pytest.mark.parametrize("claim", [42, ["AAPL", 7], ["AA PL"], ["NAS*"], [{"a": 1}], ["X" * 30]])
def test_malformed_entitlements_are_refused(claim):
    with pytest.raises(InvalidEntitlements):
        Entitlements.parse(claim)


def test_claims_shape_the_principal():
    auth = Authenticator(EdgeSettings(jwt_secret=SECRET, tier_symbol_limits="pro=2000",
                                      tier_connection_limits="pro=20", tier_message_rates="pro=500",
                                      default_entitlements="NASDAQ:*"))
    exp = int(time.time()) + 60
    pro = auth.verify(hs({"sub": "u1", "tier": "pro", "exp": exp, "symbols": ["AAPL"]}))
    assert (pro.subject, pro.tier, pro.max_symbols, pro.max_connections,
            pro.messages_per_second) == ("u1", "pro", 2000, 20, 500)
    assert pro.expires_at == exp and 0 < pro.expires_in() <= 60
    assert pro.entitlements.allows("AAPL") and not pro.entitlements.allows("MSFT")
    plain = auth.verify(hs({"sub": "u2"}))
    assert (plain.max_symbols, plain.max_connections, plain.expires_at) == (500, 50, None)
    assert plain.entitlements.allows("NASDAQ:MSFT") and not plain.entitlements.allows("AAPL")


def test_hostile_tokens_are_refused():
    private, public = rsa_pair()
    auth = Authenticator(EdgeSettings(jwt_public_key=public, jwt_audience="quotes"))
    good = jwt.encode({"sub": "u", "aud": "quotes"}, private, "RS256")
    assert auth.verify(good).subject == "u"
    unsigned = jwt.encode({"sub": "u", "aud": "quotes"}, None, "none")
    header, payload, _ = good.split(".")
    hostile = [
        unsigned,
        jwt.encode({"sub": "u", "aud": "other"}, private, "RS256"),
        jwt.encode({"sub": "u", "aud": "quotes", "exp": time.time() - 5}, private, "RS256"),
        f"{header}.{payload}.AAAA",
        "garbage", "a.b.c", "", "x" * (MAX_TOKEN_BYTES + 1), None, 17,
    ]
    for token in hostile:
        with pytest.raises(Unauthorized):
            auth.verify(token)
    # HS/RS confusion: an HS256 token "signed" with the public key is not accepted.
    with pytest.raises(Unauthorized):
        auth.verify(_hs256_with_key(public, {"sub": "u", "aud": "quotes"}))


def _hs256_with_key(key: str, claims: dict) -> str:
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}." \
              f"{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(signature)}"


def test_exp_can_be_required_and_expired_tokens_say_so():
    auth = Authenticator(EdgeSettings(jwt_secret=SECRET, jwt_require_exp=True))
    with pytest.raises(Unauthorized):
        auth.verify(hs({"sub": "u"}))
    with pytest.raises(Unauthorized, match="expired"):
        auth.verify(hs({"sub": "u", "exp": time.time() - 1}))
    assert auth.verify(hs({"sub": "u", "exp": time.time() + 30})).subject == "u"


def test_refresh_keeps_the_subject():
    auth = Authenticator(EdgeSettings(jwt_secret=SECRET))
    current = auth.verify(hs({"sub": "u1", "exp": time.time() + 5}))
    fresh = auth.refreshed(current, hs({"sub": "u1", "exp": time.time() + 600, "symbols": "AAPL"}))
    assert fresh.expires_at > current.expires_at and not fresh.entitlements.allows("MSFT")
    with pytest.raises(Unauthorized):
        auth.refreshed(current, hs({"sub": "someone-else", "exp": time.time() + 600}))


def test_anonymous_principal_when_auth_is_off():
    auth = Authenticator(EdgeSettings())
    principal = auth.verify("anything")
    assert principal.subject is None and principal.entitlements.allows("AAPL")


def test_subject_limits_count_connections_and_share_one_bucket():
    limits = SubjectLimits()
    assert all(limits.admit("u", 3) for _ in range(3))
    assert not limits.admit("u", 3) and limits.admit("v", 3)
    assert limits.admit(None, 1) and limits.admit(None, 1)  # anonymous: not counted here
    bucket = limits.bucket("u", 10)
    assert limits.bucket("u", 10) is bucket and limits.bucket(None, 10) is None
    assert sum(bucket.take(0.0) for _ in range(25)) == 20  # burst = 2 × rate
    limits.release("u")
    assert limits.admit("u", 3)
    for _ in range(3):
        limits.release("u")
    assert limits.open_connections("u") == 0 and limits.bucket("u", 10) is not bucket


@pytest.mark.parametrize("env", [{"TICKWIRE_EDGE_DEFAULT_ENTITLEMENTS": "AA PL"},
                                 {"TICKWIRE_EDGE_TIER_MESSAGE_RATES": "free=-1"},
                                 {"TICKWIRE_EDGE_TIER_CONNECTION_LIMITS": "free"}])
def test_bad_auth_settings_are_refused(env, monkeypatch, capsys):
    from tickwire.core.settings import load_settings
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        load_settings(EdgeSettings, "tickwire-edge")
    assert list(env)[0] in capsys.readouterr().err


def test_a_token_without_a_subject_is_refused():
    auth = Authenticator(EdgeSettings(jwt_secret=SECRET))
    for claims in ({"exp": time.time() + 60}, {"sub": "", "exp": time.time() + 60}):
        with pytest.raises(Unauthorized):
            auth.verify(hs(claims))


def test_a_bare_ticker_matches_its_exchange_prefixed_pattern():
    ents = Entitlements.parse(["NASDAQ:AAPL"], unprefixed_exchange="NASDAQ")
    assert ents.allows("AAPL") and ents.allows("NASDAQ:AAPL") and not ents.allows("MSFT")
    assert not Entitlements.parse(["NASDAQ:AAPL"]).allows("AAPL")


def test_a_subject_bucket_re_rated_by_another_tier_keeps_its_level():
    limits = SubjectLimits()
    bucket = limits.bucket("u", 10)
    assert sum(bucket.take(0.0) for _ in range(25)) == 20
    # Alternating tokens of two tiers must not refill the shared bucket.
    assert limits.bucket("u", 50) is bucket and not bucket.take(0.0)
    assert limits.bucket("u", 10) is bucket and not bucket.take(0.0)


def test_aud_is_checked_only_when_an_audience_is_configured():
    claims = {"sub": "u", "aud": "some-app", "exp": time.time() + 60}
    assert Authenticator(EdgeSettings(jwt_secret=SECRET)).verify(hs(claims)).subject == "u"
    with pytest.raises(Unauthorized):
        Authenticator(EdgeSettings(jwt_secret=SECRET, jwt_audience="tickwire")).verify(hs(claims))


def test_a_short_hs256_secret_stops_the_edge_at_start():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 32 bytes"):
        EdgeSettings(jwt_secret="too-short")
