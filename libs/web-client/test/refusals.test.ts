import { describe, expect, it } from "vitest";

import { describeRefusal } from "../src/refusals";
import { ConnectionError, ServerError } from "../src/types";

describe("describeRefusal", () => {
  it("names the refused symbols and why", () => {
    expect(describeRefusal(new ServerError("FORBIDDEN", "not entitled to: NSE:TCS", ["NSE:TCS"]))).toBe(
      "NSE:TCS refused: not included in your plan (FORBIDDEN)",
    );
    expect(describeRefusal(new ServerError("INVALID_SYMBOL", "invalid", ["A B"]))).toContain("not a valid symbol");
    const many = ["A", "B", "C", "D", "E", "F", "G"];
    expect(describeRefusal(new ServerError("SUBSCRIPTION_LIMIT_EXCEEDED", "limit", many))).toBe(
      "A, B, C, D, E and 2 more refused: over your symbol limit (SUBSCRIPTION_LIMIT_EXCEEDED)",
    );
  });

  it("ignores errors that refuse no symbol", () => {
    expect(describeRefusal(new ServerError("UNAUTHORIZED", "token expired"))).toBeNull();
    expect(describeRefusal(new ServerError("DATA_STALE", "stale", ["AAPL"]))).toBeNull();
    expect(describeRefusal(new ConnectionError("socket closed"))).toBeNull();
  });
});
