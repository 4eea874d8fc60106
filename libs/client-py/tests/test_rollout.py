"""The WebSocket rollout's pure logic: bucketing, the choice, the persistent id, the body."""

from __future__ import annotations

from tickwire.client import ClientConfig
from tickwire.client.rollout import (ClientSettings, choose_transport, persistent_client_id,
                                     rollout_bucket)

SETTINGS = ClientSettings(websocket_enabled=True, websocket_rollout_percent=100,
                          polling_interval_ms=5000, reconnect_interval_ms=500,
                          max_reconnect_attempts=4)


def at(percent: int, enabled: bool = True) -> ClientSettings:
    return ClientSettings(enabled, percent, 5000, 500, 4)


def test_the_bucket_is_fnv1a_over_utf8_mod_100_as_in_the_typescript_client():
    ids = ["", "a", "client-1", "ünï", "00000000-0000-0000-0000-000000000000"]
    assert [rollout_bucket(i) for i in ids] == [61, 20, 44, 26, 57]


def test_ten_percent_is_about_a_tenth_of_clients():
    inside = sum(rollout_bucket(f"client-{n}") < 10 for n in range(10_000))
    assert 800 < inside < 1200


def test_inside_the_percentage_streams_outside_polls_and_a_raise_only_adds_streamers():
    assert choose_transport(at(44), lambda: "client-1").mode == "polling"  # bucket 44
    choice = choose_transport(at(45), lambda: "client-1")
    assert (choice.mode, choice.reason, choice.bucket) == ("websocket", "in-rollout", 44)
    assert choice.label == "websocket (rollout 45 %)"
    assert choose_transport(at(0), lambda: "x").label == "polling (rollout 0 %)"

    def streaming(percent: int) -> set[str]:
        return {i for i in (f"u{n}" for n in range(500))
                if choose_transport(at(percent), lambda i=i: i).mode == "websocket"}

    assert streaming(10) <= streaming(50) and streaming(0) == set()
    assert len(streaming(100)) == 500


def test_no_id_is_read_when_the_bucket_cannot_matter():
    def no_id() -> str:
        raise AssertionError("the id was not needed")

    off = choose_transport(at(100, enabled=False), no_id)
    assert (off.mode, off.reason, off.label) == ("polling", "disabled",
                                                 "polling (websocket disabled)")
    assert choose_transport(at(0), no_id).label == "polling (rollout 0 %)"
    assert choose_transport(at(100), no_id).label == "websocket (rollout 100 %)"
    none = choose_transport(None, no_id)
    assert (none.mode, none.reason, none.bucket) == ("websocket", "no-config", None)


def test_the_id_is_made_once_and_kept_in_its_file(tmp_path):
    path = tmp_path / "deeper" / "client-id"
    made = persistent_client_id(path)
    assert path.read_text().strip() == made and len(made) >= 8
    assert persistent_client_id(path) == made
    config = ClientConfig(url="ws://h/ws", client_id_file=str(path))
    assert config.rollout_id() == made
    assert ClientConfig(url="ws://h/ws", client_id="explicit").rollout_id() == "explicit"


def test_an_id_file_that_cannot_be_made_still_gives_an_id_for_the_process(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the id's folder would go")
    assert len(persistent_client_id(blocker / "client-id")) >= 8


def test_only_the_edge_s_answer_is_read_as_settings():
    body = {"websocketEnabled": True, "websocketRolloutPercent": 250, "pollingIntervalMs": 5000,
            "reconnectIntervalMs": 500, "maxReconnectAttempts": 4, "extra": 1}
    assert ClientSettings.from_body(body) == SETTINGS  # 250 clamped to 100
    for junk in (None, [1], {"websocketEnabled": "yes"}, {**body, "pollingIntervalMs": "5"},
                 {**body, "maxReconnectAttempts": True}):
        assert ClientSettings.from_body(junk) is None


def test_the_cli_says_why_it_polls():
    from tickwire.client import TickwireClient
    from tickwire.client.cli.watch import connection_line

    client = TickwireClient(ClientConfig(url="ws://h:1/ws", polling_interval=5))
    client.transport = choose_transport(at(0), lambda: "x")
    client._polling = client._poll_ok = True  # as after a successful poll
    assert connection_line(client).plain == \
        "DELAYED  polling http://h:1 every 5 s (rollout 0 %)  edge –  latency –"
