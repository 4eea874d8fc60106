/**
 * Per-symbol ordering. Per symbol and epoch only strictly increasing `seq`s pass; a new
 * epoch (the sequence restarted upstream) is always taken and becomes current.
 */

export type Verdict = "stale" | "next" | "gap";

export class SequenceTracker {
  private positions = new Map<string, { epoch: string | null; seq: number }>();

  accept(symbol: string, seq: number, epoch: string | null): Verdict {
    const last = this.positions.get(symbol);
    let verdict: Verdict = "next";
    if (last && last.epoch === epoch) {
      if (seq <= last.seq) return "stale";
      if (seq > last.seq + 1) verdict = "gap";
    }
    this.positions.set(symbol, { epoch, seq });
    return verdict;
  }

  forget(symbol: string): void {
    this.positions.delete(symbol);
  }
}
