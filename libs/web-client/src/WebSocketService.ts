/**
 * WebSocketService: the seed's service over tickwire's protocol (DESIGN.md §3, §6).
 *
 * Guarantees:
 * - Per symbol and epoch, update handlers see strictly increasing `seq`s: duplicates and
 *   older updates (a snapshot racing a tick, a poll returning what a tick already gave)
 *   are dropped; a new epoch is always taken.
 * - After every reconnect it resubscribes everything the edge had, then replays the
 *   actions made while the socket was down, in order, so the edge ends up with exactly
 *   `getActiveSubscriptions()`. Each resubscription brings a fresh snapshot.
 * - After `maxReconnectAttempts` consecutive failures it polls the REST fallback every
 *   `pollingInterval` while retrying the socket in the background (at most every
 *   30 × `reconnectInterval`); when the socket is back, polling stops.
 * - Subscriptions are reference-counted: several components may watch one symbol, and
 *   it is unsubscribed when the last one lets go.
 * - Bounded: offline actions up to `messageQueueSize` (QueueFullError beyond).
 * - `connectPolling()` (a client outside the WebSocket rollout, see rollout.ts) never opens
 *   a socket: it polls the REST fallback every `pollingInterval` until `disconnect()`.
 * - With a `tokenProvider`, every (re)connect carries a token fetched just before it; a
 *   `token_expiring` is answered with a `refresh`; a 4001 close (token expired) reconnects
 *   at once with a fresh token; REST reads carry the latest token.
 */

import { backoffDelay } from "./backoff";
import { type FetchLike, type QuoteBody, QuoteFetcher, splitQuote } from "./fallback";
import { SequenceTracker } from "./sequence";
import {
  ConnectionError,
  type ConnectionHandler,
  type ConnectionMetrics,
  type ConnectionState,
  type ConnectionStatus,
  type ErrorHandler,
  FallbackError,
  type MessageHandler,
  QueueFullError,
  ServerError,
  type ServerMessage,
  type StockQuote,
  type StockUpdate,
  TickwireError,
  type UnsubscribeFn,
  type UpdateHandler,
  type WebSocketConfig,
} from "./types";

const SYMBOL_PATTERN = /^[A-Z0-9][A-Z0-9.\-:_]{0,19}$/;
const TOKEN_EXPIRED = 4001; // the edge's close code for a socket whose token lapsed
const GAP_REFETCH_MS = 5000; // conflation skips seqs by design: refetch a symbol at most this often
const LATENCY_SAMPLES = 20;

/** The subset of the DOM WebSocket the service uses (a fake in tests). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code?: number; reason?: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketFactory = (url: string) => WebSocketLike;

export interface ServiceOptions {
  createWebSocket?: WebSocketFactory;
  fetch?: FetchLike;
  random?: () => number;
}

export const DEFAULT_CONFIG: Omit<WebSocketConfig, "url"> = {
  reconnectInterval: 1000,
  maxReconnectAttempts: 10,
  heartbeatInterval: 30000,
  messageQueueSize: 100,
  enableCompression: true,
  enableAutoReconnect: true,
  pollingInterval: 30000,
  fallbackToPolling: true,
};

type Action = { action: "subscribe" | "unsubscribe"; symbols: string[] };

export function normaliseSymbols(symbols: string[]): string[] {
  const result = [...new Set(symbols.map((s) => s.trim().toUpperCase()))];
  const invalid = result.filter((s) => !SYMBOL_PATTERN.test(s));
  if (invalid.length) throw new RangeError(`invalid symbols: ${invalid.slice(0, 20).join(", ")}`);
  return result;
}

export function restBaseFromSocketUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol === "wss:" ? "https:" : "http:"}//${parsed.host}`;
}

export class WebSocketService {
  readonly config: WebSocketConfig;
  /** HTTP base of the REST fallback. */
  readonly restBase: string;
  private readonly createWebSocket: WebSocketFactory;
  private readonly fetcher: QuoteFetcher;
  private readonly random: () => number;

  private state: ConnectionState = "CLOSED";
  private ws: WebSocketLike | null = null;
  private started = false;
  private pollingOnly = false;
  private everOpen = false;
  private failures = 0; // consecutive failed attempts: the trigger for polling
  private retries = 0; // retries scheduled since the last open: the backoff step
  private retryAfter: number | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private token: string | null = null;
  private attempt = 0; // numbers each open, so a token that arrives late opens nothing stale

  private readonly refs = new Map<string, number>(); // symbol → watchers, insertion-ordered
  private held: string[] = []; // what the edge had when the socket was lost
  private readonly outbox: Action[] = [];
  private readonly sequences = new SequenceTracker();
  private readonly latest = new Map<string, StockUpdate>();
  private readonly lastRefetch = new Map<string, number>();

  private polling = false;
  private pollOk = false;
  private pollTimer: ReturnType<typeof setTimeout> | null = null;
  private pollInFlight = false;
  private readonly pollingRequests = new Map<symbol, number>();

  private readonly messageHandlers = new Set<MessageHandler>();
  private readonly errorHandlers = new Set<ErrorHandler>();
  private readonly connectionHandlers = new Set<ConnectionHandler>();
  private readonly updateHandlers = new Set<UpdateHandler>();

  clientId: string | null = null;
  edgeId: string | null = null;
  private connectedAt: Date | null = null;
  private lastMessageAt: Date | null = null;
  private messageCount = 0;
  private errorCount = 0;
  private readonly latencies: number[] = [];
  private readonly pings = new Map<string, number>();

  constructor(config: Partial<WebSocketConfig> & { url: string }, options: ServiceOptions = {}) {
    this.config = { ...DEFAULT_CONFIG, ...config };
    this.createWebSocket =
      options.createWebSocket ?? ((url) => new WebSocket(url) as unknown as WebSocketLike);
    const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.restBase = (this.config.fallbackUrl ?? restBaseFromSocketUrl(this.config.url)).replace(/\/$/, "");
    this.fetcher = new QuoteFetcher(
      this.restBase,
      fetchImpl,
      (): Record<string, string> => (this.token ? { Authorization: `Bearer ${this.token}` } : {}),
    );
    this.random = options.random ?? Math.random;
  }

  // -- connection management ---------------------------------------------------------

  connect(): void {
    if (this.started) return;
    this.started = true;
    this.failures = this.retries = 0;
    this.open();
  }

  /** Poll the REST fallback only, without a socket (outside the WebSocket rollout). */
  connectPolling(): void {
    if (this.started) return;
    this.started = this.pollingOnly = true;
    this.startPolling();
  }

  /** True after `connectPolling()`: this service never opens a socket. */
  isPollingOnly(): boolean {
    return this.pollingOnly;
  }

  /** Close the socket and stop polling and retries; subscriptions are kept for `connect()`. */
  disconnect(): void {
    if (!this.started) return;
    this.started = this.pollingOnly = false;
    this.setState("CLOSING");
    this.clearRetry();
    this.stopPolling();
    const ws = this.ws;
    if (ws) {
      this.release(ws);
      ws.close(1000, "client disconnect");
    }
    this.setState("CLOSED");
  }

  /** Drop the current socket (if any) and try again now, skipping any backoff wait. */
  reconnect(): void {
    if (!this.started) {
      this.connect();
      return;
    }
    if (this.pollingOnly) {
      this.pollSoon();
      return;
    }
    this.retryAfter = null;
    this.failures = this.retries = 0;
    this.clearRetry();
    const ws = this.ws;
    if (ws) {
      this.release(ws);
      ws.close(1000, "client reconnect");
    }
    this.open();
  }

  isConnected(): boolean {
    return this.state === "OPEN";
  }

  /** True while updates arrive over the socket; false while polling or offline. */
  isRealTime(): boolean {
    return this.state === "OPEN";
  }

  /** True while the REST fallback is in use and its last poll succeeded. */
  isPolling(): boolean {
    return this.polling && this.pollOk;
  }

  getConnectionState(): ConnectionState {
    return this.state;
  }

  getStatus(): ConnectionStatus {
    if (this.state === "OPEN") return "live";
    if (this.isPolling()) return "delayed";
    if ((this.state === "CONNECTING" || this.state === "RECONNECTING") && !this.polling) return "reconnecting";
    return "offline";
  }

  // -- subscriptions -----------------------------------------------------------------

  /** Watch `symbols` (reference-counted); the edge hears of each symbol's first watcher. */
  subscribe(symbols: string[]): void {
    const names = normaliseSymbols(symbols);
    const fresh = names.filter((s) => !this.refs.has(s));
    if (fresh.length) this.act({ action: "subscribe", symbols: fresh });
    for (const symbol of names) this.refs.set(symbol, (this.refs.get(symbol) ?? 0) + 1);
    if (fresh.length && this.polling) this.pollSoon();
  }

  /** Let go of `symbols`; the edge hears of each symbol's last watcher leaving. */
  unsubscribe(symbols: string[]): void {
    const names = normaliseSymbols(symbols).filter((s) => this.refs.has(s));
    const gone = names.filter((s) => this.refs.get(s) === 1);
    if (gone.length) this.act({ action: "unsubscribe", symbols: gone });
    for (const symbol of names) {
      const count = (this.refs.get(symbol) ?? 1) - 1;
      if (count > 0) {
        this.refs.set(symbol, count);
      } else {
        this.refs.delete(symbol);
        this.sequences.forget(symbol);
        this.latest.delete(symbol);
      }
    }
  }

  getActiveSubscriptions(): Set<string> {
    return new Set(this.refs.keys());
  }

  /** The newest update of `symbol` this service holds, if any. */
  getLatest(symbol: string): StockUpdate | undefined {
    return this.latest.get(symbol.toUpperCase());
  }

  /** Read `symbol` over REST now and deliver it like any other update. */
  async refetch(symbol: string): Promise<StockUpdate | undefined> {
    const name = normaliseSymbols([symbol])[0] as string;
    const body = await this.fetcher.one(name);
    if (body) this.acceptBody(body);
    return this.latest.get(name);
  }

  /** Ask for REST polling at least every `ms` while polling; returns the withdrawal. */
  requestPollingInterval(ms: number): UnsubscribeFn {
    const key = Symbol("polling-request");
    this.pollingRequests.set(key, ms);
    return () => {
      this.pollingRequests.delete(key);
    };
  }

  private act(action: Action): void {
    if (this.pollingOnly) return; // polls read `refs`; no socket will replay actions
    const ws = this.ws;
    if (this.state === "OPEN" && ws && ws.readyState === 1) {
      ws.send(JSON.stringify(action));
      return;
    }
    if (this.outbox.length >= this.config.messageQueueSize) {
      throw new QueueFullError(`${this.outbox.length} actions already wait for the socket`);
    }
    this.outbox.push(action);
  }

  // -- handlers ----------------------------------------------------------------------

  onMessage(handler: MessageHandler): UnsubscribeFn {
    return this.add(this.messageHandlers, handler);
  }

  onError(handler: ErrorHandler): UnsubscribeFn {
    return this.add(this.errorHandlers, handler);
  }

  /** Called on state changes and when polling starts, stops, fails or recovers. */
  onConnectionChange(handler: ConnectionHandler): UnsubscribeFn {
    return this.add(this.connectionHandlers, handler);
  }

  /** Every accepted update, live or polled, in order per symbol. */
  onUpdate(handler: UpdateHandler): UnsubscribeFn {
    return this.add(this.updateHandlers, handler);
  }

  private add<H>(handlers: Set<H>, handler: H): UnsubscribeFn {
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
    };
  }

  // -- health and monitoring ---------------------------------------------------------

  /** The last ping → pong round trip (ms); 0 before the first. */
  getLatency(): number {
    return this.latencies[this.latencies.length - 1] ?? 0;
  }

  getLastMessageTime(): Date | null {
    return this.lastMessageAt;
  }

  getMetrics(): ConnectionMetrics {
    const sum = this.latencies.reduce((a, b) => a + b, 0);
    return {
      connectionState: this.state,
      connectedAt: this.connectedAt,
      lastMessageAt: this.lastMessageAt,
      messageCount: this.messageCount,
      errorCount: this.errorCount,
      reconnectAttempts: this.retries,
      averageLatency: this.latencies.length ? sum / this.latencies.length : 0,
      activeSubscriptions: this.refs.size,
    };
  }

  // -- the socket --------------------------------------------------------------------

  private open(): void {
    this.setState(this.everOpen || this.failures ? "RECONNECTING" : "CONNECTING");
    const attempt = ++this.attempt;
    if (!this.config.tokenProvider) {
      this.openSocket(this.config.url);
      return;
    }
    this.fetchToken().then(
      () => {
        if (this.started && attempt === this.attempt) this.openSocket(withToken(this.config.url, this.token));
      },
      (error: unknown) => {
        if (this.started && attempt === this.attempt) this.onLost(null, false, `token provider failed: ${String(error)}`);
      },
    );
  }

  private async fetchToken(): Promise<void> {
    const token = await (this.config.tokenProvider as () => unknown)();
    if (token != null && typeof token !== "string") throw new TypeError(`token provider returned ${typeof token}`);
    this.token = (token as string | null | undefined) ?? null;
  }

  /** The edge warned that the token lapses soon: hand it a fresh one on this socket. */
  private refreshToken(ws: WebSocketLike): void {
    this.fetchToken().then(
      () => {
        if (this.token && this.ws === ws && ws.readyState === 1) ws.send(JSON.stringify({ action: "refresh", token: this.token }));
      },
      // The socket lives until the lapse; the reconnect after it asks the provider again.
      (error: unknown) => this.report(new TickwireError(`token provider failed: ${String(error)}`)),
    );
  }

  private openSocket(url: string): void {
    let ws: WebSocketLike;
    try {
      ws = this.createWebSocket(url);
    } catch (error) {
      this.onLost(null, false, `cannot open ${this.config.url}: ${String(error)}`);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.onOpen(ws);
    };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") this.onFrame(event.data);
    };
    ws.onerror = () => {
      /* the close event that follows carries the outcome */
    };
    ws.onclose = (event) => {
      this.release(ws);
      // Nothing is wrong with the edge: come straight back with a fresh token.
      if (event.code === TOKEN_EXPIRED && this.config.tokenProvider) this.retryAfter = 0;
      this.onLost(ws, opened, `socket closed (${event.code ?? "?"}${event.reason ? ` ${event.reason}` : ""})`);
    };
  }

  private onOpen(ws: WebSocketLike): void {
    this.failures = this.retries = 0;
    this.connectedAt = new Date();
    this.lastFrameAt = Date.now();
    this.restore(ws);
    this.everOpen = true;
    this.stopPolling();
    this.setState("OPEN");
    this.ping(ws);
    this.heartbeatTimer = setInterval(() => this.heartbeat(ws), this.config.heartbeatInterval);
  }

  /** Resubscribe what the edge had, then replay the offline actions in order. */
  private restore(ws: WebSocketLike): void {
    if (this.held.length) ws.send(JSON.stringify({ action: "subscribe", symbols: this.held }));
    for (const action of this.outbox.splice(0)) ws.send(JSON.stringify(action));
  }

  private heartbeat(ws: WebSocketLike): void {
    if (Date.now() - this.lastFrameAt > 2 * this.config.heartbeatInterval) {
      // The network went quiet without a close (a sleeping laptop, a dead NAT entry):
      // give up on this socket rather than wait for the browser to notice.
      this.release(ws);
      ws.close(4000, "heartbeat timeout");
      this.onLost(ws, true, "no message for two heartbeat intervals");
      return;
    }
    this.ping(ws);
  }

  private ping(ws: WebSocketLike): void {
    const stamp = new Date().toISOString();
    this.pings.set(stamp, performanceNow());
    if (this.pings.size > 4) this.pings.delete(this.pings.keys().next().value as string);
    ws.send(JSON.stringify({ action: "ping", timestamp: stamp }));
  }

  /** Detach `ws`: its late events no longer reach the service. */
  private release(ws: WebSocketLike): void {
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    if (this.ws === ws) {
      this.ws = null;
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = null;
    }
  }

  private onLost(ws: WebSocketLike | null, wasOpen: boolean, reason: string): void {
    if (ws && this.ws === ws) this.ws = null;
    if (wasOpen) this.held = [...this.refs.keys()];
    if (!this.started) return;
    if (!wasOpen) this.failures += 1;
    this.retries += 1;
    this.report(new ConnectionError(reason));
    if (!this.config.enableAutoReconnect) {
      this.started = false;
      this.setState("CLOSED");
      return;
    }
    this.setState("RECONNECTING");
    if (this.failures >= this.config.maxReconnectAttempts && this.config.fallbackToPolling) this.startPolling();
    const delay = this.retryAfter ?? backoffDelay(this.retries, this.config.reconnectInterval, this.random);
    this.retryAfter = null;
    this.clearRetry();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.started) this.open();
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  // -- incoming ----------------------------------------------------------------------

  private onFrame(frame: string): void {
    this.lastFrameAt = Date.now();
    let message: ServerMessage;
    try {
      message = JSON.parse(frame) as ServerMessage;
      if (typeof message !== "object" || message === null) return;
    } catch (error) {
      this.report(new TickwireError(`unreadable message from the edge: ${String(error)}`));
      return;
    }
    this.messageCount += 1;
    this.lastMessageAt = new Date();
    switch (message.type) {
      case "price_update":
        this.accept(message as unknown as WireUpdate, true);
        break;
      case "batch_update":
        for (const entry of (message.updates as WireUpdate[] | undefined) ?? []) this.accept(entry, true);
        break;
      case "pong": {
        const sent = this.pings.get(String(message.timestamp));
        if (sent !== undefined) {
          this.pings.delete(String(message.timestamp));
          this.latencies.push(performanceNow() - sent);
          if (this.latencies.length > LATENCY_SAMPLES) this.latencies.shift();
          this.notify();
        }
        break;
      }
      case "error":
        this.report(
          new ServerError(String(message.code), String(message.message), (message.symbols as string[]) ?? []),
        );
        break;
      case "reconnect":
        this.retryAfter = Math.max(0, Number(message.retryAfterMs ?? 0));
        break;
      case "token_expiring":
        if (this.config.tokenProvider && this.ws) this.refreshToken(this.ws);
        break;
      case "connected":
        this.clientId = (message.clientId as string) ?? null;
        this.edgeId = (message.edgeId as string) ?? null;
        this.notify();
        break;
    }
    for (const handler of [...this.messageHandlers]) this.call(handler, message);
  }

  private accept(wire: WireUpdate, realTime: boolean): void {
    const { symbol } = wire;
    if (!this.refs.has(symbol)) return; // racing an unsubscribe
    const verdict = this.sequences.accept(symbol, Number(wire.seq), wire.epoch ?? null);
    if (verdict === "stale") return;
    const snapshot = Boolean(wire.snapshot) || !realTime;
    if (verdict === "gap" && realTime && !snapshot) this.refetchSoon(symbol);
    const update: StockUpdate = {
      symbol,
      data: wire.data,
      seq: Number(wire.seq),
      epoch: wire.epoch ?? null,
      snapshot,
      realTime,
    };
    this.latest.set(symbol, update);
    for (const handler of [...this.updateHandlers]) this.call(handler, update);
  }

  private acceptBody(body: QuoteBody): void {
    const { data, seq, epoch } = splitQuote(body);
    this.accept({ symbol: data.symbol, data, seq, epoch, snapshot: true }, false);
  }

  private refetchSoon(symbol: string): void {
    const now = Date.now();
    if (now - (this.lastRefetch.get(symbol) ?? -Infinity) < GAP_REFETCH_MS) return;
    this.lastRefetch.set(symbol, now);
    this.refetch(symbol).catch((error: unknown) => this.report(asError(error)));
  }

  // -- the REST fallback -------------------------------------------------------------

  private startPolling(): void {
    if (this.polling) return;
    this.polling = true;
    this.pollOk = false;
    this.notify();
    this.pollSoon();
  }

  private stopPolling(): void {
    if (!this.polling) return;
    this.polling = false;
    this.pollOk = false;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    this.notify();
  }

  private pollingInterval(): number {
    return Math.min(this.config.pollingInterval, ...this.pollingRequests.values());
  }

  private pollSoon(): void {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => void this.poll(), 0);
  }

  private async poll(): Promise<void> {
    this.pollTimer = null;
    if (!this.polling) return;
    if (this.pollInFlight) {
      this.pollTimer = setTimeout(() => void this.poll(), this.pollingInterval());
      return;
    }
    this.pollInFlight = true;
    try {
      const symbols = [...this.refs.keys()];
      const bodies = symbols.length ? await this.fetcher.many(symbols) : [];
      if (!this.polling) return;
      if (bodies.length) this.lastMessageAt = new Date();
      for (const body of bodies) this.acceptBody(body);
      this.setPollOk(true);
    } catch (error) {
      this.report(asError(error));
      this.setPollOk(false);
    } finally {
      this.pollInFlight = false;
      if (this.polling && !this.pollTimer) {
        this.pollTimer = setTimeout(() => void this.poll(), this.pollingInterval());
      }
    }
  }

  private setPollOk(ok: boolean): void {
    if (this.pollOk !== ok) {
      this.pollOk = ok;
      this.notify();
    }
  }

  // -- plumbing ----------------------------------------------------------------------

  private setState(state: ConnectionState): void {
    if (state !== this.state) {
      this.state = state;
      this.notify();
    }
  }

  private notify(): void {
    for (const handler of [...this.connectionHandlers]) this.call(handler, this.state);
  }

  private report(error: Error): void {
    this.errorCount += 1;
    for (const handler of [...this.errorHandlers]) this.call(handler, error);
  }

  private call<T>(handler: (value: T) => void, value: T): void {
    try {
      handler(value);
    } catch (error) {
      console.error("tickwire: a handler failed", error);
    }
  }
}

interface WireUpdate {
  symbol: string;
  data: StockQuote;
  seq: number;
  epoch?: string | null;
  snapshot?: boolean;
}

/** `url` with its `token` query parameter set to `token` (or removed when null). */
export function withToken(url: string, token: string | null): string {
  const parsed = new URL(url);
  if (token) parsed.searchParams.set("token", token);
  else parsed.searchParams.delete("token");
  return parsed.toString();
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new FallbackError(String(error));
}

function performanceNow(): number {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

// -- the shared instance (the seed's singleton) --------------------------------------

let shared: WebSocketService | null = null;

/** Create (or replace) the shared service; call once before components use it. */
export function configureWebSocketService(
  config: Partial<WebSocketConfig> & { url: string },
  options: ServiceOptions = {},
): WebSocketService {
  shared?.disconnect();
  shared = new WebSocketService(config, options);
  return shared;
}

/** The shared service; by default it talks to `/ws` of the page's own origin. */
export function getWebSocketService(): WebSocketService {
  if (!shared) {
    if (typeof location === "undefined") throw new TickwireError("configureWebSocketService() first");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    shared = new WebSocketService({ url: `${scheme}//${location.host}/ws`, fallbackUrl: location.origin });
  }
  return shared;
}
