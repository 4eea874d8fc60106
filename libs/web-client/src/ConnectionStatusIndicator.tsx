/**
 * ConnectionStatusIndicator: the seed's badge. Green "Live" (socket, real time), yellow
 * "Delayed" (polling the REST fallback), red "Offline" (no connection, stale data), blue
 * "Reconnecting…". Carries `data-testid="connection-status"` and `data-state`.
 */

import { type CSSProperties, useEffect, useState } from "react";

import type { ConnectionState, ConnectionStatus } from "./types";

export interface ConnectionStatusIndicatorProps {
  isConnected: boolean;
  isRealTime: boolean;
  lastUpdate: Date | null;
  latency?: number;
  showDetails?: boolean; // Show tooltip with details
  position?: "top-right" | "top-left" | "bottom-right" | "bottom-left";
  /** Tells Reconnecting from Offline when the status is not given. */
  connectionState?: ConnectionState;
  /** True while the REST fallback is being polled successfully. */
  isPolling?: boolean;
  /** The status itself (e.g. `service.getStatus()`); derived from the props above if absent. */
  status?: ConnectionStatus;
  className?: string;
}

export const STATUS_LOOK: Record<ConnectionStatus, { label: string; color: string }> = {
  live: { label: "Live", color: "#22c55e" },
  delayed: { label: "Delayed", color: "#eab308" },
  offline: { label: "Offline", color: "#ef4444" },
  reconnecting: { label: "Reconnecting…", color: "#3b82f6" },
};

export function deriveStatus(props: {
  isConnected: boolean;
  isRealTime: boolean;
  connectionState?: ConnectionState;
  isPolling?: boolean;
}): ConnectionStatus {
  if (props.isConnected && props.isRealTime) return "live";
  if (props.isPolling) return "delayed";
  if (props.connectionState === "CONNECTING" || props.connectionState === "RECONNECTING") return "reconnecting";
  return "offline";
}

export function formatAge(lastUpdate: Date | null, now: number = Date.now()): string {
  if (!lastUpdate) return "never";
  const seconds = Math.max(0, Math.round((now - lastUpdate.getTime()) / 1000));
  if (seconds < 1) return "just now";
  if (seconds < 60) return `${seconds}s ago`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes}m ago` : `${Math.floor(minutes / 60)}h ago`;
}

const CORNERS: Record<NonNullable<ConnectionStatusIndicatorProps["position"]>, CSSProperties> = {
  "top-right": { top: 16, right: 16 },
  "top-left": { top: 16, left: 16 },
  "bottom-right": { bottom: 16, right: 16 },
  "bottom-left": { bottom: 16, left: 16 },
};

export function ConnectionStatusIndicator(props: ConnectionStatusIndicatorProps) {
  const { lastUpdate, latency, showDetails = false, position, className } = props;
  const status = props.status ?? deriveStatus(props);
  const look = STATUS_LOOK[status];
  const [open, setOpen] = useState(false);
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!showDetails || !open) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [showDetails, open]);

  const placement: CSSProperties = position ? { position: "fixed", zIndex: 50, ...CORNERS[position] } : { position: "relative" };
  const below = !position || position.startsWith("top");
  const rightAligned = !position || position.endsWith("right");
  const details = [
    `Latency: ${status === "live" && latency ? `${Math.round(latency)} ms` : "—"}`,
    `Last update: ${formatAge(lastUpdate, now)}${lastUpdate ? ` (${lastUpdate.toLocaleTimeString()})` : ""}`,
  ];

  return (
    <div
      className={className}
      data-testid="connection-status"
      data-state={status}
      role="status"
      aria-live="polite"
      aria-label={`Connection: ${look.label}`}
      tabIndex={showDetails ? 0 : undefined}
      onMouseEnter={() => setOpen(true)}
      onMouseLeave={() => setOpen(false)}
      onFocus={() => setOpen(true)}
      onBlur={() => setOpen(false)}
      style={{
        ...placement,
        display: "inline-flex",
        alignItems: "center",
        gap: 8,
        padding: "5px 12px",
        borderRadius: 999,
        fontSize: 13,
        fontWeight: 600,
        color: look.color,
        background: `${look.color}1f`,
        border: `1px solid ${look.color}59`,
        cursor: showDetails ? "default" : undefined,
        whiteSpace: "nowrap",
      }}
    >
      <span
        aria-hidden
        style={{
          width: 8,
          height: 8,
          borderRadius: "50%",
          background: look.color,
          boxShadow: status === "live" ? `0 0 0 3px ${look.color}33` : undefined,
        }}
      />
      <span>{look.label}</span>
      {showDetails && open && (
        <div
          role="tooltip"
          data-testid="connection-details"
          style={{
            position: "absolute",
            [below ? "top" : "bottom"]: "calc(100% + 8px)",
            [rightAligned ? "right" : "left"]: 0,
            padding: "8px 12px",
            borderRadius: 8,
            background: "#0b1220",
            color: "#e5e7eb",
            border: "1px solid #1f2937",
            boxShadow: "0 8px 24px rgba(0,0,0,.35)",
            fontWeight: 400,
            fontSize: 12,
            lineHeight: 1.6,
            zIndex: 60,
          }}
        >
          {details.map((line) => (
            <div key={line}>{line}</div>
          ))}
        </div>
      )}
    </div>
  );
}
