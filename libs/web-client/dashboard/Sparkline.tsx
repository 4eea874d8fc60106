/** A tiny price trend: the recent prices as a line, green if up over the window, red if down. */

export function Sparkline({ points, width = 112, height = 30 }: { points: number[]; width?: number; height?: number }) {
  if (points.length < 2) return <svg width={width} height={height} aria-hidden className="sparkline" />;
  const min = Math.min(...points);
  const max = Math.max(...points);
  const span = max - min || 1;
  const step = width / (points.length - 1);
  const coords = points.map((p, i) => [i * step, height - 3 - ((p - min) / span) * (height - 6)] as const);
  const line = coords.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  const up = (points[points.length - 1] as number) >= (points[0] as number);
  const color = up ? "#22c55e" : "#ef4444";
  const [lastX, lastY] = coords[coords.length - 1] as readonly [number, number];
  return (
    <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} className="sparkline" aria-hidden>
      <polygon points={`0,${height} ${line} ${width},${height}`} fill={color} opacity={0.12} />
      <polyline points={line} fill="none" stroke={color} strokeWidth={1.5} strokeLinejoin="round" />
      <circle cx={lastX} cy={lastY} r={2.2} fill={color} />
    </svg>
  );
}
