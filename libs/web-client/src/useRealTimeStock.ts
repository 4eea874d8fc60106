/**
 * useRealTimeStock: one symbol's live quote, with the seed's options and return fields.
 *
 * Subscribes through the shared WebSocketService on mount and lets go on unmount
 * (reference-counted, so many components may watch one symbol). While the socket is
 * down the service polls the REST fallback; `fallbackToPolling: false` ignores those
 * polled quotes. `enableWebSocket: false` polls REST only, every `pollingInterval`.
 */

import { useCallback, useEffect, useRef, useState } from "react";

import { getWebSocketService } from "./WebSocketService";
import { QuoteFetcher, splitQuote } from "./fallback";
import { type ConnectionState, ServerError, type StockQuote, type StockUpdate } from "./types";

export interface UseRealTimeStockOptions {
  symbol: string;
  enableWebSocket?: boolean; // Default: true
  fallbackToPolling?: boolean; // Default: true
  pollingInterval?: number; // Default: 30000ms
  onUpdate?: (data: StockQuote) => void;
  onError?: (error: Error) => void;
}

export interface UseRealTimeStockReturn {
  data: StockQuote | null;
  loading: boolean;
  error: Error | null;
  isRealTime: boolean; // true if using WebSocket
  isConnected: boolean;
  connectionState: ConnectionState;
  lastUpdate: Date | null;
  latency: number; // WebSocket message latency
  refetch: () => Promise<void>;
}

export function useRealTimeStock(options: UseRealTimeStockOptions): UseRealTimeStockReturn {
  const {
    symbol: rawSymbol,
    enableWebSocket = true,
    fallbackToPolling = true,
    pollingInterval = 30000,
  } = options;
  const symbol = rawSymbol.trim().toUpperCase();
  const service = getWebSocketService();
  const callbacks = useRef(options);
  callbacks.current = options;

  const [data, setData] = useState<StockQuote | null>(() => service.getLatest(symbol)?.data ?? null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState<boolean>(() => !service.getLatest(symbol));
  const [lastUpdate, setLastUpdate] = useState<Date | null>(null);
  const [connection, setConnection] = useState(() => readConnection(service, enableWebSocket));

  const take = useCallback((update: StockUpdate | undefined) => {
    if (!update) return;
    setData(update.data);
    setLastUpdate(new Date());
    setLoading(false);
    setError(null);
    callbacks.current.onUpdate?.(update.data);
  }, []);

  const fail = useCallback((failure: Error) => {
    setError(failure);
    setLoading(false);
    callbacks.current.onError?.(failure);
  }, []);

  // Live: subscribe through the shared service.
  useEffect(() => {
    if (!enableWebSocket) return;
    const removers = [
      service.onUpdate((update) => {
        if (update.symbol === symbol && (update.realTime || fallbackToPolling)) take(update);
      }),
      service.onConnectionChange(() => setConnection(readConnection(service, true))),
      service.onError((failure) => {
        if (failure instanceof ServerError && failure.symbols.includes(symbol)) fail(failure);
      }),
      service.requestPollingInterval(pollingInterval),
    ];
    try {
      service.subscribe([symbol]);
      service.connect();
    } catch (failure) {
      fail(failure as Error);
    }
    setConnection(readConnection(service, true));
    const known = service.getLatest(symbol);
    if (known) take(known);
    return () => {
      for (const remove of removers) remove();
      try {
        service.unsubscribe([symbol]);
      } catch {
        /* an unsubscribe that cannot be queued is moot: the next reconnect resubscribes the rest */
      }
    };
  }, [service, symbol, enableWebSocket, fallbackToPolling, pollingInterval, take, fail]);

  // REST only: poll this symbol.
  useEffect(() => {
    if (enableWebSocket) return;
    const fetcher = new QuoteFetcher(service.restBase, (input, init) => fetch(input, init));
    let stopped = false;
    const tick = async () => {
      try {
        const [body] = await fetcher.many([symbol]);
        if (!stopped && body) {
          const { data: quote, seq, epoch } = splitQuote(body);
          take({ symbol, data: quote, seq, epoch, snapshot: true, realTime: false });
        }
      } catch (failure) {
        if (!stopped) fail(failure as Error);
      }
    };
    void tick();
    const timer = setInterval(() => void tick(), pollingInterval);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [service, symbol, enableWebSocket, pollingInterval, take, fail]);

  const refetch = useCallback(async () => {
    try {
      take(await service.refetch(symbol));
    } catch (failure) {
      fail(failure as Error);
    }
  }, [service, symbol, take, fail]);

  return { data, loading, error, ...connection, lastUpdate, refetch };
}

function readConnection(service: ReturnType<typeof getWebSocketService>, enabled: boolean) {
  return {
    isRealTime: enabled && service.isRealTime(),
    isConnected: enabled && service.isConnected(),
    connectionState: enabled ? service.getConnectionState() : ("CLOSED" as ConnectionState),
    latency: service.getLatency(),
  };
}
