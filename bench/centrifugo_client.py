"""A load-generator client (bench/loadgen.py) that speaks Centrifugo's JSON protocol over
WebSocket at `/connection/websocket` instead of tickwire's, for the storm's comparison.

Guarantees: right after the handshake it sends ONE frame holding `{"id":1,"connect":{}}`
and a `subscribe` command per symbol (ids 2, 3, ..., newline-delimited, as the protocol
allows), the counterpart of tickwire's one `subscribe` message; it counts as subscribed
(the storm's ack) when the connect reply and every subscribe reply have arrived, and
fails at once, with the error's code as reason, when any of them is an error. A pushed
publication's data (the feed's tick, bench/centrifugo_feed.py) is an update, recorded
and checked exactly as tickwire's are. Server pings (an empty message) are answered with
a pong.

`CentrifugoClient` gets no snapshots. `CentrifugoSnapshotClient` subscribes with
`recover: true` to a Centrifugo in cache recovery mode (`centrifugo.start(snapshots=True)`):
each subscribe reply carries the channel's latest publication, counted as that symbol's
snapshot, as tickwire's snapshot on subscribe is.
"""

from __future__ import annotations

import orjson

from bench import centrifugo
from bench.loadgen import OP_TEXT, Client, client_frame


class CentrifugoClient(Client):
    PATH = "/connection/websocket"
    RECOVER = False  # ask for the latest publication on subscribe (cache recovery mode)

    def _subscribe(self) -> None:
        commands = [b'{"id":1,"connect":{}}']
        extra = {"recover": True} if self.RECOVER else {}
        commands.extend(orjson.dumps({"id": i, "subscribe": {"channel": centrifugo.channel(s),
                                                             **extra}})
                        for i, s in enumerate(self.symbols, start=2))
        self.replies_due = len(commands)
        self.transport.write(client_frame(OP_TEXT, b"\n".join(commands)))

    def _message(self, payload: bytes, now: int) -> None:
        for line in payload.split(b"\n"):
            message = orjson.loads(line)
            if "push" in message:
                publication = message["push"].get("pub")
                if publication is not None:
                    self._update(publication["data"], now)
            elif "id" in message:
                self._reply(message, now)
            elif not message:  # a ping
                self.transport.write(client_frame(OP_TEXT, b"{}"))

    def _reply(self, message: dict, now: int) -> None:
        if "error" in message:
            code = str(message["error"].get("code"))
            self.stats.errors[code] = self.stats.errors.get(code, 0) + 1
            self._fail(f"centrifugo error {code}: {message['error'].get('message')}")
            return
        for publication in message.get("subscribe", {}).get("publications", ()):
            self._update({**publication["data"], "snapshot": True}, now)
        self.replies_due -= 1
        if self.replies_due == 0 and not self.ready.done():
            self.ready.set_result(now)


class CentrifugoSnapshotClient(CentrifugoClient):
    RECOVER = True
