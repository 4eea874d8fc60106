/** The demo dashboard served at `/` by every edge: a watchlist on the tickwire web client. */

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import {
  chooseTransport,
  configureWebSocketService,
  fetchClientSettings,
  persistentClientId,
  serviceConfigFromSettings,
  startService,
} from "../src";
import { App } from "./App";
import "./styles.css";

const params = new URLSearchParams(location.search);

function millis(name: string): number | undefined {
  const value = Number(params.get(name));
  return params.has(name) && Number.isFinite(value) && value > 0 ? value : undefined;
}

const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const overrides = {
  reconnectInterval: millis("reconnectInterval"),
  maxReconnectAttempts: millis("maxReconnectAttempts"),
  pollingInterval: millis("pollingInterval"),
};
async function start(): Promise<void> {
  // The edge's client settings first (the rollout, intervals); the query string overrides them.
  const settings = await fetchClientSettings(location.origin);
  const service = configureWebSocketService({
    url: `${scheme}//${location.host}/ws`,
    fallbackUrl: location.origin,
    ...serviceConfigFromSettings(settings),
    ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)),
  });
  const transport = chooseTransport(settings, persistentClientId());
  startService(service, transport);

  const initial = params.get("symbols")?.split(",").filter(Boolean);
  createRoot(document.getElementById("root") as HTMLElement).render(
    <StrictMode>
      <App initialSymbols={initial} pollingInterval={service.config.pollingInterval} transport={transport} />
    </StrictMode>,
  );
}

void start();
