/** The shared service's connection as a status indicator needs it, kept current. */

import { useEffect, useState } from "react";

import { getWebSocketService, type WebSocketService } from "./WebSocketService";
import type { ConnectionMetrics, ConnectionState, ConnectionStatus } from "./types";

export interface ConnectionSnapshot {
  status: ConnectionStatus;
  connectionState: ConnectionState;
  isConnected: boolean;
  isRealTime: boolean;
  isPolling: boolean;
  latency: number;
  lastUpdate: Date | null;
  edgeId: string | null;
  metrics: ConnectionMetrics;
}

export function readSnapshot(service: WebSocketService): ConnectionSnapshot {
  return {
    status: service.getStatus(),
    connectionState: service.getConnectionState(),
    isConnected: service.isConnected(),
    isRealTime: service.isRealTime(),
    isPolling: service.isPolling(),
    latency: service.getLatency(),
    lastUpdate: service.getLastMessageTime(),
    edgeId: service.edgeId,
    metrics: service.getMetrics(),
  };
}

/** Re-renders on connection changes, and at most every `refreshMs` for the figures. */
export function useConnectionStatus(refreshMs = 1000): ConnectionSnapshot {
  const service = getWebSocketService();
  const [snapshot, setSnapshot] = useState(() => readSnapshot(service));
  useEffect(() => {
    const refresh = () => setSnapshot(readSnapshot(service));
    const remove = service.onConnectionChange(refresh);
    const timer = setInterval(refresh, refreshMs);
    refresh();
    return () => {
      remove();
      clearInterval(timer);
    };
  }, [service, refreshMs]);
  return snapshot;
}
