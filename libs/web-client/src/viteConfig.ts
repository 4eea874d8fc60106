/**
 * The seed's Vite configuration mapped onto the client: one place that reads
 * `import.meta.env`-style values and says what each one sets.
 *
 *   VITE_WS_URL                 → service `url` (ws:// or wss://; required)
 *   VITE_WS_RECONNECT_INTERVAL  → service `reconnectInterval` (ms, base of the backoff)
 *   VITE_FALLBACK_TO_POLLING    → service and hook `fallbackToPolling` ("false" turns it off)
 *   VITE_ENABLE_WEBSOCKET       → hook `enableWebSocket` ("false": useRealTimeStock polls only)
 *
 *   const { service, hook } = clientOptionsFromViteEnv(import.meta.env);
 *   configureWebSocketService(service).connect();
 *   useRealTimeStock({ symbol: "AAPL", ...hook });
 *
 * A value that is present but unreadable throws, naming the variable: a typo in `.env`
 * should stop the app at start, not leave it silently polling.
 */

import type { WebSocketConfig } from "./types";
import type { UseRealTimeStockOptions } from "./useRealTimeStock";

export type ViteEnv = Record<string, string | boolean | undefined>;

export interface ViteClientOptions {
  /** For `configureWebSocketService` / `new WebSocketService`. */
  service: Partial<WebSocketConfig> & { url: string };
  /** Spread into `useRealTimeStock({ symbol, ...hook })`. */
  hook: Pick<UseRealTimeStockOptions, "enableWebSocket" | "fallbackToPolling">;
}

export function clientOptionsFromViteEnv(env: ViteEnv): ViteClientOptions {
  const url = text(env, "VITE_WS_URL");
  if (!url || !/^wss?:\/\//.test(url)) {
    throw new Error(`VITE_WS_URL must be a ws:// or wss:// URL, got ${JSON.stringify(url ?? "")}`);
  }
  const service: ViteClientOptions["service"] = { url };
  const hook: ViteClientOptions["hook"] = {};
  const reconnect = text(env, "VITE_WS_RECONNECT_INTERVAL");
  if (reconnect !== undefined) {
    const ms = Number(reconnect);
    if (!Number.isFinite(ms) || ms <= 0) {
      throw new Error(`VITE_WS_RECONNECT_INTERVAL must be a number of ms > 0, got ${JSON.stringify(reconnect)}`);
    }
    service.reconnectInterval = ms;
  }
  const fallback = flag(env, "VITE_FALLBACK_TO_POLLING");
  if (fallback !== undefined) service.fallbackToPolling = hook.fallbackToPolling = fallback;
  const websocket = flag(env, "VITE_ENABLE_WEBSOCKET");
  if (websocket !== undefined) hook.enableWebSocket = websocket;
  return { service, hook };
}

function text(env: ViteEnv, name: string): string | undefined {
  const value = env[name];
  if (value === undefined || value === "") return undefined;
  return String(value).trim();
}

function flag(env: ViteEnv, name: string): boolean | undefined {
  const value = text(env, name);
  if (value === undefined) return undefined;
  if (/^(true|1|yes|on)$/i.test(value)) return true;
  if (/^(false|0|no|off)$/i.test(value)) return false;
  throw new Error(`${name} must be true or false, got ${JSON.stringify(value)}`);
}
