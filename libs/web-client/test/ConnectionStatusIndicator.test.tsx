import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";

import { ConnectionStatusIndicator, deriveStatus, formatAge } from "../src/ConnectionStatusIndicator";

describe("ConnectionStatusIndicator", () => {
  it("derives the seed's four states", () => {
    expect(deriveStatus({ isConnected: true, isRealTime: true })).toBe("live");
    expect(deriveStatus({ isConnected: false, isRealTime: false, isPolling: true })).toBe("delayed");
    expect(deriveStatus({ isConnected: false, isRealTime: false, connectionState: "RECONNECTING" })).toBe(
      "reconnecting",
    );
    expect(deriveStatus({ isConnected: false, isRealTime: false, connectionState: "CLOSED" })).toBe("offline");
  });

  it.each([
    ["live", "Live", "#22c55e"],
    ["delayed", "Delayed", "#eab308"],
    ["offline", "Offline", "#ef4444"],
    ["reconnecting", "Reconnecting…", "#3b82f6"],
  ] as const)("renders %s with its label, colour and test hooks", (status, label, color) => {
    const html = renderToStaticMarkup(
      <ConnectionStatusIndicator status={status} isConnected={false} isRealTime={false} lastUpdate={null} />,
    );
    expect(html).toContain('data-testid="connection-status"');
    expect(html).toContain(`data-state="${status}"`);
    expect(html).toContain(label);
    expect(html).toContain(color);
  });

  it("pins itself to a corner when given a position", () => {
    const html = renderToStaticMarkup(
      <ConnectionStatusIndicator isConnected isRealTime lastUpdate={null} position="bottom-left" />,
    );
    expect(html).toMatch(/position:fixed/);
    expect(html).toMatch(/bottom:16px/);
    expect(html).toMatch(/left:16px/);
  });

  it("formats the age of the last update", () => {
    const now = Date.parse("2024-01-10T10:30:00Z");
    expect(formatAge(null, now)).toBe("never");
    expect(formatAge(new Date(now - 200), now)).toBe("just now");
    expect(formatAge(new Date(now - 12_000), now)).toBe("12s ago");
    expect(formatAge(new Date(now - 180_000), now)).toBe("3m ago");
  });
});
