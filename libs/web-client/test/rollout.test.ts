import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import {
  CLIENT_ID_KEY,
  chooseTransport,
  type ClientSettings,
  fetchClientSettings,
  persistentClientId,
  rolloutBucket,
  serviceConfigFromSettings,
  startService,
} from "../src/rollout";
import { WebSocketService, type WebSocketLike } from "../src/WebSocketService";

const SETTINGS: ClientSettings = {
  websocketEnabled: true,
  websocketRolloutPercent: 100,
  pollingIntervalMs: 5000,
  reconnectIntervalMs: 500,
  maxReconnectAttempts: 4,
  heartbeatIntervalMs: 30000,
};

class MemoryStorage {
  readonly items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
}

describe("rolloutBucket", () => {
  it("is FNV-1a over UTF-8 mod 100 (the Python SDK's vectors)", () => {
    expect(["", "a", "client-1", "ünï", "00000000-0000-0000-0000-000000000000"].map(rolloutBucket))
      .toEqual([61, 20, 44, 26, 57]);
  });

  it("spreads ids evenly enough that 10 % of clients is about a tenth", () => {
    const ids = Array.from({ length: 10000 }, (_, n) => `client-${n}`);
    const inside = ids.filter((id) => rolloutBucket(id) < 10).length;
    expect(inside).toBeGreaterThan(800);
    expect(inside).toBeLessThan(1200);
  });
});

describe("chooseTransport", () => {
  it("streams inside the percentage, polls outside it, and a raise only adds streamers", () => {
    const id = "client-1"; // bucket 44
    expect(chooseTransport({ ...SETTINGS, websocketRolloutPercent: 44 }, id))
      .toMatchObject({ mode: "polling", reason: "rollout", bucket: 44, label: "polling (rollout 44 %)" });
    expect(chooseTransport({ ...SETTINGS, websocketRolloutPercent: 45 }, id))
      .toMatchObject({ mode: "websocket", reason: "in-rollout", label: "websocket (rollout 45 %)" });
    const ids = Array.from({ length: 500 }, (_, n) => `u${n}`);
    const streaming = (percent: number) =>
      new Set(ids.filter((i) => chooseTransport({ ...SETTINGS, websocketRolloutPercent: percent }, i).mode === "websocket"));
    const ten = streaming(10);
    const fifty = streaming(50);
    expect([...ten].every((i) => fifty.has(i))).toBe(true);
    expect(streaming(0).size).toBe(0);
    expect(streaming(100).size).toBe(ids.length);
  });

  it("polls when the WebSocket is disabled, and streams when the edge gave no config", () => {
    expect(chooseTransport({ ...SETTINGS, websocketEnabled: false }, "a"))
      .toMatchObject({ mode: "polling", reason: "disabled", label: "polling (websocket disabled)" });
    expect(chooseTransport(null, "a")).toMatchObject({ mode: "websocket", reason: "no-config" });
  });
});

describe("persistentClientId", () => {
  it("is made once and kept in storage", () => {
    const storage = new MemoryStorage();
    const id = persistentClientId(storage);
    expect(id).toMatch(/\S{8,}/);
    expect(storage.items.get(CLIENT_ID_KEY)).toBe(id);
    expect(persistentClientId(storage)).toBe(id);
  });

  it("still gives an id when storage refuses", () => {
    const refusing = {
      getItem(): string | null {
        throw new Error("SecurityError");
      },
      setItem(): void {
        throw new Error("SecurityError");
      },
    };
    expect(persistentClientId(refusing)).toMatch(/\S{8,}/);
  });
});

describe("fetchClientSettings", () => {
  it("reads the edge's /api/config and maps it onto the service", async () => {
    const asked: string[] = [];
    const fetchImpl = async (url: string) => {
      asked.push(url);
      return new Response(JSON.stringify({ ...SETTINGS, websocketRolloutPercent: 250, extra: 1 }), { status: 200 });
    };
    const settings = await fetchClientSettings("http://edge.test/", fetchImpl);
    expect(asked).toEqual(["http://edge.test/api/config"]);
    expect(settings?.websocketRolloutPercent).toBe(100); // clamped
    expect(serviceConfigFromSettings(settings)).toEqual({
      pollingInterval: 5000, reconnectInterval: 500, maxReconnectAttempts: 4, heartbeatInterval: 30000,
    });
  });

  it("is null for an edge without it, junk, or no network", async () => {
    expect(await fetchClientSettings("http://e", async () => new Response("nope", { status: 404 }))).toBeNull();
    expect(await fetchClientSettings("http://e", async () => new Response("[1]", { status: 200 }))).toBeNull();
    expect(await fetchClientSettings("http://e", async () => {
      throw new TypeError("offline");
    })).toBeNull();
  });
});

describe("a service outside the rollout", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("never opens a socket and polls REST for what it watches", async () => {
    const sockets: string[] = [];
    const polled: string[] = [];
    const service = new WebSocketService(
      { url: "ws://edge.test/ws", pollingInterval: 1000 },
      {
        createWebSocket: (url) => {
          sockets.push(url);
          return {} as WebSocketLike;
        },
        fetch: async (url: string) => {
          polled.push(url);
          const quote = { symbol: "AAPL", price: 1, change: 0, changePercent: 0, volume: 1, high: 1, low: 1,
                          open: 1, previousClose: 1, timestamp: "t", source: "s", seq: polled.length, epoch: "e" };
          return new Response(JSON.stringify({ quotes: [quote], missing: [] }), { status: 200 });
        },
      },
    );
    service.subscribe(["AAPL"]);
    startService(service, chooseTransport({ ...SETTINGS, websocketRolloutPercent: 0 }, "anyone"));
    await vi.advanceTimersByTimeAsync(2500);
    expect(sockets).toEqual([]);
    expect(polled.length).toBe(3);
    expect(service.isPollingOnly()).toBe(true);
    expect(service.getStatus()).toBe("delayed");
    expect(service.getLatest("AAPL")?.realTime).toBe(false);
    for (let n = 0; n < 200; n++) service.subscribe([`S${n}`]); // no socket to queue for
    service.reconnect();
    expect(sockets).toEqual([]);
    service.disconnect();
    expect(service.getStatus()).toBe("offline");
  });
});
