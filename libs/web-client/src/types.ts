/** The wire types of DESIGN.md §3 and the client-side shapes of the seed. */

export type ConnectionState = "CONNECTING" | "OPEN" | "CLOSING" | "CLOSED" | "RECONNECTING";

/** What a status indicator shows: Live, Delayed (polling), Reconnecting, Offline. */
export type ConnectionStatus = "live" | "delayed" | "reconnecting" | "offline";

export interface StockQuote {
  symbol: string;
  price: number;
  change: number;
  changePercent: number;
  volume: number;
  high: number;
  low: number;
  open: number;
  previousClose: number;
  timestamp: string;
  source: string;
}

/** One quote of one symbol as the service delivers it. */
export interface StockUpdate {
  symbol: string;
  data: StockQuote;
  seq: number;
  epoch: string | null;
  /** A state read (snapshot after subscribe, gap refetch, poll), not a pushed tick. */
  snapshot: boolean;
  /** True when it came over the WebSocket, false when read over REST. */
  realTime: boolean;
}

export interface WebSocketConfig {
  url: string;
  /** Base interval for exponential backoff (ms): 1, 2, 4, 8, 16, 30 (max) × this. */
  reconnectInterval: number;
  /** Consecutive failures before polling the REST fallback (the socket keeps retrying). */
  maxReconnectAttempts: number;
  /** Ping cadence (ms); a socket silent for two intervals is treated as dead. */
  heartbeatInterval: number;
  /** Max actions (subscribe / unsubscribe) buffered while offline. */
  messageQueueSize: number;
  /** Browsers negotiate permessage-deflate themselves; kept for parity with the seed. */
  enableCompression: boolean;
  enableAutoReconnect: boolean;
  /** HTTP base of the REST fallback; derived from `url` when absent. */
  fallbackUrl?: string;
  /** Polling interval of the REST fallback (ms). */
  pollingInterval: number;
  fallbackToPolling: boolean;
  /**
   * Returns a current JWT (sync or async). Asked before every (re)connect (the token goes
   * in `?token=`: browsers cannot set headers on a WebSocket), when the edge sends
   * `token_expiring` (answered with a `refresh`), and after a 4001 close (token expired),
   * which reconnects at once. REST fallback reads send its last answer as a Bearer token.
   */
  tokenProvider?: TokenProvider;
}

export type TokenProvider = () => string | null | undefined | Promise<string | null | undefined>;

export interface ConnectionMetrics {
  connectionState: ConnectionState;
  connectedAt: Date | null;
  lastMessageAt: Date | null;
  messageCount: number;
  errorCount: number;
  reconnectAttempts: number;
  averageLatency: number;
  activeSubscriptions: number;
}

export type ServerMessage = { type: string; [key: string]: unknown };
export type MessageHandler = (message: ServerMessage) => void;
export type ErrorHandler = (error: Error) => void;
export type ConnectionHandler = (state: ConnectionState) => void;
export type UpdateHandler = (update: StockUpdate) => void;
export type UnsubscribeFn = () => void;

export class TickwireError extends Error {
  override name = "TickwireError";
}

/** An attempt to open the socket failed, or an open socket was lost. */
export class ConnectionError extends TickwireError {
  override name = "ConnectionError";
}

/** An `error` message from the edge; the connection stays open. */
export class ServerError extends TickwireError {
  override name = "ServerError";
  constructor(
    readonly code: string,
    message: string,
    readonly symbols: string[] = [],
  ) {
    super(`${code}: ${message}`);
  }
}

/** A request to the REST fallback failed. */
export class FallbackError extends TickwireError {
  override name = "FallbackError";
}

/** An action made while offline did not fit in `messageQueueSize`; nothing changed. */
export class QueueFullError extends TickwireError {
  override name = "QueueFullError";
}
