/**
 * The WebSocket rollout: which transport this client uses, decided by the edge's
 * `GET /api/config` and a stable bucket of the client's id.
 *
 * Guarantees:
 * - A client id always lands in the same bucket 0..99 (FNV-1a, 32 bits, over its UTF-8
 *   bytes, mod 100; the Python SDK computes the same), so a user keeps one transport
 *   across reloads while the rollout percentage stays put, and raising the percentage only
 *   moves clients from polling to streaming.
 * - The browser's id persists in localStorage; without storage (private mode, a worker)
 *   the id lives as long as the page.
 * - An edge that cannot answer `/api/config` leaves the client streaming (its reconnect
 *   and polling fallback still apply), and the choice says so.
 *
 *   const settings = await fetchClientSettings(location.origin);
 *   const service = configureWebSocketService({ url, ...serviceConfigFromSettings(settings) });
 *   const choice = chooseTransport(settings, persistentClientId());
 *   startService(service, choice);          // connect() or connectPolling()
 */

import type { FetchLike } from "./fallback";
import type { WebSocketConfig } from "./types";
import type { WebSocketService } from "./WebSocketService";

/** The body of `GET /api/config`. */
export interface ClientSettings {
  websocketEnabled: boolean;
  websocketRolloutPercent: number;
  pollingIntervalMs: number;
  reconnectIntervalMs: number;
  maxReconnectAttempts: number;
  heartbeatIntervalMs?: number;
}

export type TransportMode = "websocket" | "polling";

/** Why: `disabled` (websocketEnabled false), `rollout` (bucket outside the percentage),
 * `in-rollout`, or `no-config` (the edge did not say). */
export type TransportReason = "disabled" | "rollout" | "in-rollout" | "no-config";

export interface TransportChoice {
  mode: TransportMode;
  reason: TransportReason;
  bucket: number;
  percent: number | null;
  /** For people: "polling (rollout 0 %)", "websocket (rollout 100 %)", … */
  label: string;
}

export const CLIENT_ID_KEY = "tickwire.clientId";

/** FNV-1a (32 bits) of the UTF-8 bytes of `clientId`, mod 100. */
export function rolloutBucket(clientId: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(clientId)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % 100;
}

export function chooseTransport(settings: ClientSettings | null, clientId: string): TransportChoice {
  const bucket = rolloutBucket(clientId);
  if (!settings) {
    return { mode: "websocket", reason: "no-config", bucket, percent: null, label: "websocket (no rollout config)" };
  }
  const percent = settings.websocketRolloutPercent;
  if (!settings.websocketEnabled) {
    return { mode: "polling", reason: "disabled", bucket, percent, label: "polling (websocket disabled)" };
  }
  const inside = bucket < percent;
  return {
    mode: inside ? "websocket" : "polling",
    reason: inside ? "in-rollout" : "rollout",
    bucket,
    percent,
    label: `${inside ? "websocket" : "polling"} (rollout ${percent} %)`,
  };
}

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** This browser's client id: kept in `storage` (localStorage by default), made once. */
export function persistentClientId(storage: StorageLike | null = defaultStorage()): string {
  try {
    const known = storage?.getItem(CLIENT_ID_KEY);
    if (known) return known;
  } catch {
    /* storage refused (privacy settings): an id for this page only */
  }
  const made = newId();
  try {
    storage?.setItem(CLIENT_ID_KEY, made);
  } catch {
    /* as above */
  }
  return made;
}

/** `GET {base}/api/config`; null when the edge does not answer it (an older edge, a
 * network failure). */
export async function fetchClientSettings(
  base: string,
  fetchImpl: FetchLike = (input, init) => fetch(input, init),
): Promise<ClientSettings | null> {
  try {
    const response = await fetchImpl(`${base.replace(/\/$/, "")}/api/config`, { cache: "no-cache" });
    if (response.status !== 200) return null;
    return readSettings(await response.json());
  } catch {
    return null;
  }
}

/** The service options the edge's settings stand for. */
export function serviceConfigFromSettings(settings: ClientSettings | null): Partial<WebSocketConfig> {
  if (!settings) return {};
  return {
    pollingInterval: settings.pollingIntervalMs,
    reconnectInterval: settings.reconnectIntervalMs,
    maxReconnectAttempts: settings.maxReconnectAttempts,
    ...(settings.heartbeatIntervalMs ? { heartbeatInterval: settings.heartbeatIntervalMs } : {}),
  };
}

/** Start `service` the way `choice` says. */
export function startService(service: WebSocketService, choice: TransportChoice): void {
  if (choice.mode === "websocket") service.connect();
  else service.connectPolling();
}

function readSettings(body: unknown): ClientSettings | null {
  if (typeof body !== "object" || body === null) return null;
  const b = body as Record<string, unknown>;
  const numbers = ["websocketRolloutPercent", "pollingIntervalMs", "reconnectIntervalMs", "maxReconnectAttempts"];
  if (typeof b.websocketEnabled !== "boolean" || numbers.some((k) => typeof b[k] !== "number")) return null;
  return {
    websocketEnabled: b.websocketEnabled,
    websocketRolloutPercent: Math.min(100, Math.max(0, b.websocketRolloutPercent as number)),
    pollingIntervalMs: b.pollingIntervalMs as number,
    reconnectIntervalMs: b.reconnectIntervalMs as number,
    maxReconnectAttempts: b.maxReconnectAttempts as number,
    ...(typeof b.heartbeatIntervalMs === "number" ? { heartbeatIntervalMs: b.heartbeatIntervalMs } : {}),
  };
}

function defaultStorage(): StorageLike | null {
  try {
    return typeof localStorage !== "undefined" ? localStorage : null;
  } catch {
    return null;
  }
}

function newId(): string {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
