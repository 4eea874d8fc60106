export { backoffDelay, backoffStep } from "./backoff";
export { ConnectionStatusIndicator, deriveStatus, formatAge, STATUS_LOOK } from "./ConnectionStatusIndicator";
export type { ConnectionStatusIndicatorProps } from "./ConnectionStatusIndicator";
export { QuoteFetcher } from "./fallback";
export { describeRefusal } from "./refusals";
export { SequenceTracker } from "./sequence";
export * from "./types";
export { readSnapshot, useConnectionStatus } from "./useConnectionStatus";
export type { ConnectionSnapshot } from "./useConnectionStatus";
export { useRealTimeStock } from "./useRealTimeStock";
export type { UseRealTimeStockOptions, UseRealTimeStockReturn } from "./useRealTimeStock";
export {
  configureWebSocketService,
  DEFAULT_CONFIG,
  getWebSocketService,
  normaliseSymbols,
  WebSocketService,
  withToken,
} from "./WebSocketService";
export type { ServiceOptions, WebSocketFactory, WebSocketLike } from "./WebSocketService";
export {
  CLIENT_ID_KEY,
  chooseTransport,
  fetchClientSettings,
  persistentClientId,
  rolloutBucket,
  serviceConfigFromSettings,
  startService,
} from "./rollout";
export type {
  ClientSettings,
  StorageLike,
  TransportChoice,
  TransportMode,
  TransportReason,
} from "./rollout";
export { clientOptionsFromViteEnv } from "./viteConfig";
export type { ViteClientOptions, ViteEnv } from "./viteConfig";
