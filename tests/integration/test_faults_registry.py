"""The registry SIGKILLed and restarted: ticks of active symbols keep flowing while it is
away, and the subscription changes made meanwhile take effect once it is back (it resumes
from its committed Kafka offsets): a new symbol becomes active and is fetched, a deserted
one goes inactive and the ingestor stops fetching it."""

from __future__ import annotations

import asyncio
import time

from integration.faults import alive, client_pool, start, subscribed
from integration.wsclient import eventually, get_json

CONVERGE_WITHIN = 20.0


async def _active(url: str) -> set[str]:
    status, body, _ = await get_json(f"{url}/api/symbols")
    assert status == 200, body
    return {s["symbol"] for s in body["symbols"]}


async def _registry_has(url: str, present: set[str], absent: set[str] = frozenset()) -> bool:
    active = await _active(url)
    return present <= active and not absent & active


async def _polled(ingestor_url: str) -> set[str]:
    _, body, _ = await get_json(f"{ingestor_url}/api/providers")
    return set(body["symbols"])


async def _ingestor_polls(url: str, present: set[str], absent: set[str] = frozenset()) -> bool:
    polled = await _polled(url)
    return present <= polled and not absent & polled


async def test_registry_killed_and_restarted_applies_what_changed_meanwhile(stack):
    registry = stack.registry()
    ingestor = stack.ingestor()
    edge = stack.edge("edge-g1")
    async with client_pool() as clients:
        steady = await subscribed(edge.ws_url, ["GSTEADY"])
        leaving = await subscribed(edge.ws_url, ["GLEAVE"])
        clients += [steady, leaving]
        await eventually(lambda: _registry_has(registry.url, {"GSTEADY", "GLEAVE"}))
        await eventually(lambda: _ingestor_polls(ingestor.url, {"GSTEADY", "GLEAVE"}))
        await steady.updates("GSTEADY", 2)

        registry.process.kill()
        joining = await subscribed(edge.ws_url, ["GJOIN"])
        clients.append(joining)
        await leaving.close()
        # Nothing upstream of the registry depends on it: active symbols keep ticking.
        last = (await steady.updates("GSTEADY", 1))[-1]["seq"]
        assert (await steady.updates("GSTEADY", 3))[0]["seq"] > last
        await asyncio.sleep(2)

        restarted = await start(stack.registry, "registry-restarted")
        back = time.monotonic()
        await eventually(lambda: _registry_has(restarted.url, {"GSTEADY", "GJOIN"}, {"GLEAVE"}),
                         timeout=CONVERGE_WITHIN)
        await eventually(lambda: _ingestor_polls(ingestor.url, {"GSTEADY", "GJOIN"}, {"GLEAVE"}),
                         timeout=CONVERGE_WITHIN)
        await joining.updates("GJOIN", 1, timeout=CONVERGE_WITHIN)
        converged = time.monotonic() - back
        assert not steady.ws.closed
        assert alive(*(p for p in stack.started if p is not registry.process)) == []
        print(f"\nregistry back: changes made while it was dead applied in {converged:.1f}s")
