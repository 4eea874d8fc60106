/** Why the edge refused symbols, in words a watchlist can show next to its input. */

import { ServerError } from "./types";

const REASONS: Record<string, string> = {
  FORBIDDEN: "not included in your plan",
  INVALID_SYMBOL: "not a valid symbol",
  SUBSCRIPTION_LIMIT_EXCEEDED: "over your symbol limit",
  RATE_LIMIT_EXCEEDED: "too many changes at once; try again in a moment",
};

/** A line such as "NSE:TCS refused: not included in your plan (FORBIDDEN)", or null
 * when `error` does not refuse symbols. */
export function describeRefusal(error: Error): string | null {
  if (!(error instanceof ServerError) || !error.symbols.length) return null;
  const reason = REASONS[error.code];
  if (!reason) return null;
  const shown = error.symbols.slice(0, 5).join(", ");
  const more = error.symbols.length > 5 ? ` and ${error.symbols.length - 5} more` : "";
  return `${shown}${more} refused: ${reason} (${error.code})`;
}
