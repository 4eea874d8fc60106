import { type FormEvent, useEffect, useRef, useState } from "react";

import {
  ConnectionStatusIndicator,
  describeRefusal,
  formatAge,
  getWebSocketService,
  normaliseSymbols,
  type TransportChoice,
  useConnectionStatus,
  useRealTimeStock,
} from "../src";
import { Sparkline } from "./Sparkline";

const STORAGE_KEY = "tickwire.watchlist";
const DEFAULT_WATCHLIST = ["AAPL", "MSFT", "NVDA", "AMZN"];
const HISTORY = 60;

function loadWatchlist(initial?: string[]): string[] {
  if (initial?.length) return safeSymbols(initial);
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null") as unknown;
    if (Array.isArray(stored)) return safeSymbols(stored.map(String));
  } catch {
    /* a corrupt entry: start from the default list */
  }
  return DEFAULT_WATCHLIST;
}

function safeSymbols(raw: string[]): string[] {
  return raw.flatMap((s) => {
    try {
      return normaliseSymbols([s]);
    } catch {
      return [];
    }
  });
}

export function formatPrice(price: number): string {
  return price >= 1 ? price.toFixed(2) : price.toFixed(4);
}

function signed(value: number, digits = 2): string {
  return `${value > 0 ? "+" : ""}${value.toFixed(digits)}`;
}

const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

const STATUS_TEXT = {
  live: "Streaming over WebSocket",
  delayed: "WebSocket unavailable — polling every",
  reconnecting: "Connection lost — reconnecting",
  offline: "Offline — showing the last known prices",
} as const;
const POLLING_BY_CHOICE = "Polling (this client is outside the WebSocket rollout) every";

export function App({
  initialSymbols,
  pollingInterval,
  transport,
}: {
  initialSymbols?: string[];
  pollingInterval: number;
  transport: TransportChoice;
}) {
  const [symbols, setSymbols] = useState<string[]>(() => loadWatchlist(initialSymbols));
  const [draft, setDraft] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const connection = useConnectionStatus(1000);

  useEffect(() => {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(symbols));
  }, [symbols]);

  // The edge refuses symbols after the input accepted them (not entitled, over a limit):
  // say so next to the input, and drop them from the list.
  useEffect(
    () =>
      getWebSocketService().onError((error) => {
        const refusal = describeRefusal(error);
        if (!refusal) return;
        setProblem(refusal);
        const refused = new Set((error as { symbols?: string[] }).symbols ?? []);
        setSymbols((current) => current.filter((s) => !refused.has(s)));
      }),
    [],
  );

  const add = (event: FormEvent) => {
    event.preventDefault();
    let names: string[];
    try {
      names = normaliseSymbols(draft.split(/[\s,]+/).filter(Boolean));
    } catch (error) {
      setProblem((error as Error).message);
      return;
    }
    if (!names.length) return;
    setSymbols((current) => [...current, ...names.filter((s) => !current.includes(s))]);
    setDraft("");
    setProblem(null);
  };

  const remove = (symbol: string) => setSymbols((current) => current.filter((s) => s !== symbol));
  const { status, latency, lastUpdate, metrics, edgeId } = connection;

  return (
    <div className="page">
      <header className="topbar">
        <div className="brand">
          <span className="logo" aria-hidden>
            ◆
          </span>
          <span>tickwire</span>
          <span className="subtitle">live watchlist</span>
        </div>
        <div className="topbar-right">
          <dl className="figures">
            <div>
              <dt>Latency</dt>
              <dd data-testid="latency">{status === "live" && latency ? `${Math.round(latency)} ms` : "—"}</dd>
            </div>
            <div>
              <dt>Last update</dt>
              <dd data-testid="last-update">{formatAge(lastUpdate)}</dd>
            </div>
            <div>
              <dt>Mode</dt>
              <dd
                data-testid="transport-mode"
                data-mode={transport.mode}
                data-reason={transport.reason}
                title={`rollout bucket ${transport.bucket}`}
              >
                {transport.label}
              </dd>
            </div>
            <div>
              <dt>Edge</dt>
              <dd>{status === "live" && edgeId ? edgeId : "—"}</dd>
            </div>
          </dl>
          <ConnectionStatusIndicator
            status={status}
            isConnected={connection.isConnected}
            isRealTime={connection.isRealTime}
            isPolling={connection.isPolling}
            connectionState={connection.connectionState}
            lastUpdate={lastUpdate}
            latency={latency}
            showDetails
          />
        </div>
      </header>

      <main className="content">
        <div className={`banner banner-${status}`} role="note">
          {status === "delayed" && transport.mode === "polling" ? POLLING_BY_CHOICE : STATUS_TEXT[status]}
          {status === "delayed" ? ` ${Math.round(pollingInterval / 1000)} s` : ""}
          {status !== "live" && metrics.reconnectAttempts > 0 ? ` · attempt ${metrics.reconnectAttempts}` : ""}
        </div>

        <form className="add" onSubmit={add}>
          <input
            data-testid="symbol-input"
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            placeholder="Add symbols — AAPL, MSFT, NSE:TCS"
            aria-label="Symbol"
            autoComplete="off"
            spellCheck={false}
          />
          <button data-testid="add-symbol" type="submit">
            Add
          </button>
        </form>
        {problem && (
          <p className="problem" data-testid="symbol-problem" role="alert">
            {problem}
          </p>
        )}

        <section className="card">
          <table>
            <thead>
              <tr>
                <th className="left">Symbol</th>
                <th>Price</th>
                <th>Change</th>
                <th>Change %</th>
                <th className="center">Trend</th>
                <th>Day range</th>
                <th>Volume</th>
                <th>Updated</th>
                <th aria-label="Remove" />
              </tr>
            </thead>
            <tbody>
              {symbols.map((symbol) => (
                <QuoteRow key={symbol} symbol={symbol} pollingInterval={pollingInterval} onRemove={remove} />
              ))}
            </tbody>
          </table>
          {!symbols.length && <p className="empty">Your watchlist is empty. Add a symbol above.</p>}
        </section>

        <footer className="footer">
          <span>{metrics.activeSubscriptions} symbols</span>
          <span>{metrics.messageCount} messages</span>
          <span>avg latency {metrics.averageLatency ? `${metrics.averageLatency.toFixed(0)} ms` : "—"}</span>
          <span>{metrics.errorCount} errors</span>
        </footer>
      </main>
    </div>
  );
}

function QuoteRow({
  symbol,
  pollingInterval,
  onRemove,
}: {
  symbol: string;
  pollingInterval: number;
  onRemove: (symbol: string) => void;
}) {
  const { data, loading, error, lastUpdate, isRealTime } = useRealTimeStock({ symbol, pollingInterval });
  const [history, setHistory] = useState<number[]>([]);
  const [flash, setFlash] = useState<{ dir: "up" | "down"; n: number } | null>(null);
  const previous = useRef<number | null>(null);

  useEffect(() => {
    if (!data) return;
    const before = previous.current;
    previous.current = data.price;
    setHistory((h) => (h[h.length - 1] === data.price && h.length ? h : [...h, data.price].slice(-HISTORY)));
    if (before !== null && data.price !== before) {
      setFlash((f) => ({ dir: data.price > before ? "up" : "down", n: (f?.n ?? 0) + 1 }));
    }
  }, [data]);

  const direction = data ? (data.change > 0 ? "up" : data.change < 0 ? "down" : "flat") : "flat";
  return (
    <tr className={isRealTime ? "" : "polled"}>
      <td className="left symbol">{symbol}</td>
      <td className="price">
        <span
          key={flash?.n ?? 0}
          className={flash ? `flash-${flash.dir}` : ""}
          data-testid={`quote-${symbol}`}
          title={error ? error.message : undefined}
        >
          {data ? formatPrice(data.price) : loading ? "…" : "—"}
        </span>
      </td>
      <td className={direction}>{data ? signed(data.change) : ""}</td>
      <td>
        {data && <span className={`pill ${direction}`}>{`${signed(data.changePercent)}%`}</span>}
      </td>
      <td className="center">
        <Sparkline points={history} />
      </td>
      <td className="muted">{data ? `${formatPrice(data.low)} – ${formatPrice(data.high)}` : ""}</td>
      <td className="muted">{data ? compact.format(data.volume) : ""}</td>
      <td className="muted">{lastUpdate ? lastUpdate.toLocaleTimeString() : ""}</td>
      <td>
        <button
          className="remove"
          data-testid={`remove-${symbol}`}
          aria-label={`Remove ${symbol}`}
          onClick={() => onRemove(symbol)}
        >
          ×
        </button>
      </td>
    </tr>
  );
}
