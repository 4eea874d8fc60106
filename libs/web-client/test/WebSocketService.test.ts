import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { backoffStep } from "../src/backoff";
import { QueueFullError, type StockUpdate } from "../src/types";
import { WebSocketService, type WebSocketLike } from "../src/WebSocketService";

class FakeSocket implements WebSocketLike {
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: { code?: number; reason?: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  closedByClient = false;

  constructor(readonly url: string) {}

  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(): void {
    this.closedByClient = true;
    this.readyState = 3;
  }
  accept(): void {
    this.readyState = 1;
    this.onopen?.({});
    this.receive({ type: "connected", clientId: "c1", edgeId: "edge-1", timestamp: "t" });
  }
  refuse(): void {
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code: 1006 });
  }
  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  receive(message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  actions(): Record<string, unknown>[] {
    return this.sent.filter((m) => m.action !== "ping");
  }
}

function quote(symbol: string, price: number) {
  return {
    symbol, price, change: 1, changePercent: 0.5, volume: 10, high: price, low: price,
    open: price, previousClose: price - 1, timestamp: "2024-01-10T10:30:00Z", source: "simulated",
  };
}

function tick(symbol: string, seq: number, price = 100 + seq, snapshot = false) {
  return { type: "price_update", symbol, data: quote(symbol, price), seq, epoch: "e1", timestamp: "t",
           ...(snapshot ? { snapshot: true } : {}) };
}

function harness(config: Record<string, unknown> = {}) {
  const sockets: FakeSocket[] = [];
  const requests: { url: string; headers: Record<string, string> }[] = [];
  let restPrice = 200;
  let restSeq = 50;
  let restEtag = 0;
  let restDown = false;
  const fetchImpl = vi.fn(async (url: string, init?: RequestInit) => {
    const headers = (init?.headers ?? {}) as Record<string, string>;
    requests.push({ url, headers });
    if (restDown) throw new TypeError("network down");
    const etag = `"v${restEtag}"`;
    if (headers["If-None-Match"] === etag) return new Response(null, { status: 304, headers: { ETag: etag } });
    const symbols = url.includes("?symbols=")
      ? decodeURIComponent(url.split("?symbols=")[1] as string).split(",")
      : [decodeURIComponent(url.split("/api/quotes/")[1] as string)];
    const bodies = symbols.map((s) => ({ ...quote(s, restPrice), seq: restSeq, epoch: "e1", stale: false, ageMs: 5 }));
    const body = url.includes("?symbols=") ? { quotes: bodies, missing: [] } : bodies[0];
    return new Response(JSON.stringify(body), { status: 200, headers: { ETag: etag } });
  });
  const service = new WebSocketService(
    { url: "ws://edge.test/ws", reconnectInterval: 1000, maxReconnectAttempts: 3, heartbeatInterval: 30000,
      pollingInterval: 5000, messageQueueSize: 3, ...config },
    {
      createWebSocket: (url) => {
        const socket = new FakeSocket(url);
        sockets.push(socket);
        return socket;
      },
      fetch: fetchImpl as unknown as (input: string, init?: RequestInit) => Promise<Response>,
      random: () => 1, // the top of each jitter range: delays are exactly the steps
    },
  );
  const updates: StockUpdate[] = [];
  service.onUpdate((u) => updates.push(u));
  return {
    service, sockets, requests, updates, fetchImpl,
    last: () => sockets[sockets.length - 1] as FakeSocket,
    rest: {
      move(price: number) { restPrice = price; restSeq += 1; restEtag += 1; },
      down(value: boolean) { restDown = value; },
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("backoff", () => {
  it("waits 1, 2, 4, 8, 16, then 30 intervals between failed attempts", async () => {
    const h = harness({ maxReconnectAttempts: 100 });
    h.service.connect();
    h.last().refuse();
    const waits: number[] = [];
    for (let attempt = 2; attempt <= 8; attempt++) {
      const before = h.sockets.length;
      let waited = 0;
      while (h.sockets.length === before) {
        await vi.advanceTimersByTimeAsync(250);
        waited += 250;
      }
      waits.push(waited / 1000);
      h.last().refuse();
    }
    expect(waits).toEqual([1, 2, 4, 8, 16, 30, 30]);
    expect([1, 2, 3, 4, 5, 6, 9].map(backoffStep)).toEqual([1, 2, 4, 8, 16, 30, 30]);
    expect(h.service.getStatus()).toBe("reconnecting");
  });

  it("honours the server's retryAfterMs on a drain", async () => {
    const h = harness();
    h.service.connect();
    h.last().accept();
    h.last().receive({ type: "reconnect", reason: "draining", retryAfterMs: 7000 });
    h.last().drop(1001);
    await vi.advanceTimersByTimeAsync(6900);
    expect(h.sockets).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(h.sockets).toHaveLength(2);
  });
});

describe("reconnect", () => {
  it("resubscribes what the edge had, then replays offline actions in order", async () => {
    const h = harness();
    h.service.subscribe(["aapl", "MSFT"]); // before connect: queued
    h.service.connect();
    h.last().accept();
    expect(h.last().actions()).toEqual([{ action: "subscribe", symbols: ["AAPL", "MSFT"] }]);
    expect(h.service.getConnectionState()).toBe("OPEN");

    h.last().drop();
    expect(h.service.getConnectionState()).toBe("RECONNECTING");
    h.service.subscribe(["NVDA"]);
    h.service.unsubscribe(["MSFT"]);
    expect(h.service.getActiveSubscriptions()).toEqual(new Set(["AAPL", "NVDA"]));
    await vi.advanceTimersByTimeAsync(1000);
    h.last().accept();
    expect(h.last().actions()).toEqual([
      { action: "subscribe", symbols: ["AAPL", "MSFT"] },
      { action: "subscribe", symbols: ["NVDA"] },
      { action: "unsubscribe", symbols: ["MSFT"] },
    ]);
    expect(h.service.getMetrics().reconnectAttempts).toBe(0);
  });

  it("bounds offline actions by messageQueueSize and changes nothing on overflow", () => {
    const h = harness();
    h.service.subscribe(["A"]);
    h.service.subscribe(["B"]);
    h.service.subscribe(["C"]);
    expect(() => h.service.subscribe(["D"])).toThrow(QueueFullError);
    expect(h.service.getActiveSubscriptions()).toEqual(new Set(["A", "B", "C"]));
  });

  it("reference-counts watchers of one symbol", () => {
    const h = harness();
    h.service.connect();
    h.last().accept();
    h.service.subscribe(["AAPL"]);
    h.service.subscribe(["AAPL"]);
    h.service.unsubscribe(["AAPL"]);
    expect(h.last().actions()).toEqual([{ action: "subscribe", symbols: ["AAPL"] }]);
    h.service.unsubscribe(["AAPL"]);
    expect(h.last().actions()).toHaveLength(2);
    expect(h.service.getActiveSubscriptions().size).toBe(0);
  });

  it("treats a socket silent for two heartbeats as dead", async () => {
    const h = harness({ heartbeatInterval: 1000 });
    h.service.connect();
    h.last().accept();
    await vi.advanceTimersByTimeAsync(3100);
    expect(h.sockets[0]?.closedByClient).toBe(true);
    expect(h.service.getConnectionState()).toBe("RECONNECTING");
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.sockets.length).toBe(2);
  });
});

describe("ordering", () => {
  it("drops stale seqs and refetches a snapshot over REST on a gap", async () => {
    const h = harness();
    h.service.subscribe(["AAPL"]);
    h.service.connect();
    h.last().accept();
    h.last().receive(tick("AAPL", 5, 105, true));
    h.last().receive(tick("AAPL", 5));
    h.last().receive({ type: "batch_update", updates: [tick("AAPL", 4), tick("AAPL", 6)], timestamp: "t" });
    expect(h.updates.map((u) => u.seq)).toEqual([5, 6]);
    expect(h.updates[0]?.snapshot).toBe(true);

    h.last().receive(tick("AAPL", 9));
    await vi.advanceTimersByTimeAsync(0);
    expect(h.requests.map((r) => r.url)).toEqual(["http://edge.test/api/quotes/AAPL"]);
    expect(h.updates.map((u) => [u.seq, u.realTime])).toEqual([[5, true], [6, true], [9, true], [50, false]]);
  });

  it("measures latency from ping and pong", async () => {
    const h = harness();
    h.service.connect();
    h.last().accept();
    const ping = h.last().sent.find((m) => m.action === "ping");
    await vi.advanceTimersByTimeAsync(40);
    h.last().receive({ type: "pong", timestamp: ping?.timestamp, serverTime: "t" });
    expect(h.service.getLatency()).toBeGreaterThanOrEqual(40);
    expect(h.service.getMetrics().averageLatency).toBeGreaterThanOrEqual(40);
  });
});

describe("fallback and recovery", () => {
  it("polls REST after maxReconnectAttempts, ETag-aware, then returns to live", async () => {
    const h = harness();
    const states: string[] = [];
    h.service.onConnectionChange(() => states.push(h.service.getStatus()));
    h.service.subscribe(["AAPL"]);
    h.service.connect();
    h.last().accept();
    h.last().drop();
    expect(h.service.getStatus()).toBe("reconnecting");

    for (let failure = 1; failure <= 3; failure++) {
      await vi.advanceTimersByTimeAsync(backoffStep(failure) * 1000);
      h.last().refuse();
    }
    await vi.advanceTimersByTimeAsync(0);
    expect(h.service.getStatus()).toBe("delayed");
    expect(h.service.isRealTime()).toBe(false);
    expect(h.requests[0]?.url).toBe("http://edge.test/api/quotes?symbols=AAPL");
    expect(h.updates.at(-1)).toMatchObject({ symbol: "AAPL", seq: 50, realTime: false });

    await vi.advanceTimersByTimeAsync(5000); // nothing new: a 304
    expect(h.requests[1]?.headers["If-None-Match"]).toBe('"v0"');
    expect(h.updates).toHaveLength(1);
    h.rest.move(201);
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.updates.at(-1)).toMatchObject({ seq: 51, realTime: false });
    expect(h.updates.at(-1)?.data.price).toBe(201);

    h.rest.down(true);
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.service.getStatus()).toBe("offline");
    h.rest.down(false);
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.service.getStatus()).toBe("delayed");

    // The socket was retried in the background meanwhile (8 s after the third failure);
    // refused once more, the next try comes 16 s later, and when it works: live again.
    expect(h.sockets).toHaveLength(5);
    h.last().refuse();
    expect(h.service.getStatus()).toBe("delayed");
    await vi.advanceTimersByTimeAsync(16000);
    expect(h.sockets).toHaveLength(6);
    h.last().accept();
    expect(h.service.getStatus()).toBe("live");
    expect(h.last().actions()).toEqual([{ action: "subscribe", symbols: ["AAPL"] }]);
    const polls = h.requests.length;
    await vi.advanceTimersByTimeAsync(20000);
    expect(h.requests.length).toBe(polls);
    expect(states).toEqual(expect.arrayContaining(["reconnecting", "delayed", "offline", "live"]));
  });

  it("does not poll when fallbackToPolling is off", async () => {
    const h = harness({ fallbackToPolling: false, maxReconnectAttempts: 1 });
    h.service.subscribe(["AAPL"]);
    h.service.connect();
    h.last().refuse();
    await vi.advanceTimersByTimeAsync(10000);
    expect(h.requests).toHaveLength(0);
    expect(h.service.getStatus()).toBe("reconnecting");
  });

  it("stops everything on disconnect", async () => {
    const h = harness();
    h.service.connect();
    h.last().accept();
    h.service.disconnect();
    expect(h.service.getConnectionState()).toBe("CLOSED");
    expect(h.service.getStatus()).toBe("offline");
    await vi.advanceTimersByTimeAsync(60000);
    expect(h.sockets).toHaveLength(1);
  });
});

describe("tokens", () => {
  function provider(asynchronous: boolean) {
    let issued = 0;
    const next = () => `t${++issued}`;
    return vi.fn(() => (asynchronous ? Promise.resolve(next()) : next()));
  }

  for (const asynchronous of [false, true]) {
    it(`asks the ${asynchronous ? "async" : "sync"} provider before every connect and sends ?token=`, async () => {
      const tokenProvider = provider(asynchronous);
      const h = harness({ tokenProvider });
      h.service.connect();
      await vi.advanceTimersByTimeAsync(0);
      expect(h.last().url).toBe("ws://edge.test/ws?token=t1");
      h.last().accept();
      h.last().drop(1006);
      await vi.advanceTimersByTimeAsync(1000);
      expect(h.sockets.map((s) => s.url)).toEqual(["ws://edge.test/ws?token=t1", "ws://edge.test/ws?token=t2"]);
    });
  }

  it("answers token_expiring with a refresh and uses the new token on REST reads", async () => {
    const h = harness({ tokenProvider: provider(true) });
    h.service.subscribe(["AAPL"]);
    h.service.connect();
    await vi.advanceTimersByTimeAsync(0);
    h.last().accept();
    h.last().receive({ type: "token_expiring", expiresInMs: 60000 });
    await vi.advanceTimersByTimeAsync(0);
    expect(h.last().actions()).toContainEqual({ action: "refresh", token: "t2" });
    await h.service.refetch("AAPL");
    expect(h.requests[0]?.headers.Authorization).toBe("Bearer t2");
  });

  it("reconnects at once with a fresh token after a 4001 close", async () => {
    const h = harness({ tokenProvider: provider(false), reconnectInterval: 60000 });
    h.service.connect();
    await vi.advanceTimersByTimeAsync(0);
    h.last().accept();
    h.last().drop(4001);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.sockets.map((s) => s.url)).toEqual(["ws://edge.test/ws?token=t1", "ws://edge.test/ws?token=t2"]);
    // Any other close waits out the backoff (here the top of a 60 s range).
    h.last().accept();
    h.last().drop(1006);
    await vi.advanceTimersByTimeAsync(59000);
    expect(h.sockets).toHaveLength(2);
  });

  it("treats a failing provider as a failed attempt and keeps retrying", async () => {
    let calls = 0;
    const errors: Error[] = [];
    const h = harness({
      tokenProvider: () => {
        calls += 1;
        if (calls === 1) return Promise.reject(new Error("identity service down"));
        return "ok";
      },
    });
    h.service.onError((e) => errors.push(e));
    h.service.connect();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.sockets).toHaveLength(0);
    expect(errors[0]?.message).toContain("token provider failed");
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.last().url).toBe("ws://edge.test/ws?token=ok");
  });
});
