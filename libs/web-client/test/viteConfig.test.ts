import { describe, expect, it } from "vitest";

import { clientOptionsFromViteEnv } from "../src/viteConfig";

describe("clientOptionsFromViteEnv", () => {
  it("maps the seed's four variables onto service and hook options", () => {
    expect(clientOptionsFromViteEnv({
      VITE_WS_URL: "wss://quotes.example.com/ws",
      VITE_ENABLE_WEBSOCKET: "false",
      VITE_FALLBACK_TO_POLLING: "true",
      VITE_WS_RECONNECT_INTERVAL: "2500",
    })).toEqual({
      service: { url: "wss://quotes.example.com/ws", reconnectInterval: 2500, fallbackToPolling: true },
      hook: { enableWebSocket: false, fallbackToPolling: true },
    });
  });

  it("leaves unset variables to the client's defaults", () => {
    expect(clientOptionsFromViteEnv({ VITE_WS_URL: "ws://127.0.0.1:8080/ws", MODE: "production" }))
      .toEqual({ service: { url: "ws://127.0.0.1:8080/ws" }, hook: {} });
  });

  it("names the variable whose value it cannot read", () => {
    expect(() => clientOptionsFromViteEnv({})).toThrow(/VITE_WS_URL/);
    expect(() => clientOptionsFromViteEnv({ VITE_WS_URL: "http://x/ws" })).toThrow(/VITE_WS_URL/);
    expect(() => clientOptionsFromViteEnv({ VITE_WS_URL: "ws://x/ws", VITE_WS_RECONNECT_INTERVAL: "soon" }))
      .toThrow(/VITE_WS_RECONNECT_INTERVAL/);
    expect(() => clientOptionsFromViteEnv({ VITE_WS_URL: "ws://x/ws", VITE_ENABLE_WEBSOCKET: "maybe" }))
      .toThrow(/VITE_ENABLE_WEBSOCKET/);
  });
});
