/**
 * The REST fallback: reads of the edge's cached quotes, revalidated with ETags, so a poll
 * that finds nothing new costs one 304 and no body.
 */

import { FallbackError, type StockQuote } from "./types";

const BATCH = 200; // symbols per request: under the edge's 500 and any URL length limit
const EXTRAS = new Set(["seq", "epoch", "stale", "ageMs"]);

export interface QuoteBody extends StockQuote {
  seq: number;
  epoch: string | null;
  stale?: boolean;
  ageMs?: number;
}

export function splitQuote(body: QuoteBody): { data: StockQuote; seq: number; epoch: string | null } {
  const data = Object.fromEntries(Object.entries(body).filter(([k]) => !EXTRAS.has(k))) as unknown as StockQuote;
  return { data, seq: Number(body.seq ?? 0), epoch: body.epoch ?? null };
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export class QuoteFetcher {
  private etags = new Map<string, string>();

  /** `auth` is asked on every request, so a refreshed token is used at once. */
  constructor(
    private readonly base: string,
    private readonly fetchImpl: FetchLike,
    private readonly auth: () => Record<string, string> = () => ({}),
  ) {}

  /** The cached quote of `symbol`, or null when the edge has none (404). */
  async one(symbol: string): Promise<QuoteBody | null> {
    const url = `${this.base}/api/quotes/${encodeURIComponent(symbol)}`;
    const response = await this.get(url, {});
    if (response.status === 404) return null;
    if (response.status !== 200) throw new FallbackError(`GET ${url}: HTTP ${response.status}`);
    return (await response.json()) as QuoteBody;
  }

  /** Quote bodies that changed since the previous call for the same symbols. */
  async many(symbols: string[]): Promise<QuoteBody[]> {
    const changed: QuoteBody[] = [];
    const live = new Set<string>();
    for (let start = 0; start < symbols.length; start += BATCH) {
      const key = symbols.slice(start, start + BATCH).join(",");
      live.add(key);
      changed.push(...(await this.batch(key)));
    }
    for (const key of [...this.etags.keys()]) if (!live.has(key)) this.etags.delete(key);
    return changed;
  }

  private async batch(key: string): Promise<QuoteBody[]> {
    const url = `${this.base}/api/quotes?symbols=${encodeURIComponent(key)}`;
    const etag = this.etags.get(key);
    const response = await this.get(url, etag ? { "If-None-Match": etag } : {});
    if (response.status === 304) return [];
    if (response.status !== 200) throw new FallbackError(`GET ${url}: HTTP ${response.status}`);
    const body = (await response.json()) as { quotes?: QuoteBody[] };
    const next = response.headers.get("ETag");
    if (next) this.etags.set(key, next);
    return body.quotes ?? [];
  }

  private async get(url: string, headers: Record<string, string>): Promise<Response> {
    try {
      // An explicit If-None-Match makes the browser pass the 304 through to us.
      return await this.fetchImpl(url, { headers: { ...this.auth(), ...headers }, cache: "no-store" });
    } catch (error) {
      throw new FallbackError(`GET ${url}: ${String(error)}`);
    }
  }
}
