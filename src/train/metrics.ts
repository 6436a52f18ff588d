// <run>/metrics.ndjson: one JSON object a line (train loss and speed at log steps, test loss at evals and
// checkpoints, events such as a resume from an older checkpoint), appended as training goes.
import fs from 'node:fs';

export class MetricsLog {
  constructor(readonly file: string) {}

  append(entry: Record<string, unknown>): void {
    fs.appendFileSync(this.file, JSON.stringify(entry) + '\n');
  }

  /** The last value of key logged at `step`, or null (a finished run's figures when its checkpoint lacks them). */
  lastLogged(key: string, step: number): number | null {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch {
      return null;
    }
    let found: number | null = null;
    for (const line of text.split('\n')) {
      try {
        const o = JSON.parse(line) as Record<string, unknown>;
        if (o.step === step && typeof o[key] === 'number' && Number.isFinite(o[key])) found = o[key] as number;
      } catch {
        /* a torn line */
      }
    }
    return found;
  }
}
