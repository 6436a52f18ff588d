// Where training progress goes: a cli-progress bar on a TTY, one NDJSON object per line
// otherwise (or with --log-format json), nothing but errors with --quiet. Human notes go to stderr
// so stdout stays machine-readable.
import cliProgress from 'cli-progress';

export interface Progress {
  step: number;
  maxSteps: number;
  /** Training objective (bits/dim for images, nats/dim for vectors). */
  loss: number;
  lr: number;
  imgPerSec: number;
  elapsedSec: number;
  etaSec: number | null;
}

export interface TrainLogger {
  info(line: string): void;
  progress(p: Progress): void;
  event(e: Record<string, unknown>): void;
  close(): void;
}

export type LogFormat = 'auto' | 'json' | 'text';

export function makeLogger(format: LogFormat, quiet: boolean, lossName: string): TrainLogger {
  if (quiet) return { info() {}, progress() {}, event() {}, close() {} };
  const json = format === 'json' || (format === 'auto' && !process.stdout.isTTY);
  if (json) return new NdjsonLogger(lossName);
  return format === 'text' && !process.stdout.isTTY ? new TextLogger(lossName) : new BarLogger(lossName);
}

class NdjsonLogger implements TrainLogger {
  constructor(private readonly lossName: string) {}
  info(line: string): void {
    process.stderr.write(line + '\n');
  }
  progress(p: Progress): void {
    const { loss, ...rest } = p;
    this.event({ event: 'progress', ...rest, [this.lossName]: round(loss, 5) });
  }
  event(e: Record<string, unknown>): void {
    process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...e }) + '\n');
  }
  close(): void {}
}

/** Plain lines for a non-TTY that asked for text. */
class TextLogger implements TrainLogger {
  constructor(private readonly lossName: string) {}
  info(line: string): void {
    process.stderr.write(line + '\n');
  }
  progress(p: Progress): void {
    process.stdout.write(`step ${p.step}/${p.maxSteps || '∞'} ${this.lossName} ${p.loss.toFixed(4)} lr ${p.lr.toExponential(2)} ${p.imgPerSec.toFixed(1)} img/s\n`);
  }
  event(e: Record<string, unknown>): void {
    if (e.event === 'progress') return;
    if (e.event === 'checkpoint') process.stdout.write(`${checkpointLine(e, this.lossName)}\n`);
    else process.stdout.write(`${textEvent(e)}\n`);
  }
  close(): void {}
}

function checkpointLine(e: Record<string, unknown>, lossName: string): string {
  return `checkpoint step ${e.step}${e.test ? `, test ${lossName} ${Number(e.test).toFixed(4)}` : ''}: ${e.path}`;
}

/** `name: key value, key value` for humans (the JSON form is --log-format json). */
export function textEvent(e: Record<string, unknown>): string {
  const fields = Object.entries(e)
    .filter(([k, v]) => k !== 'event' && k !== 'time' && v !== undefined)
    .map(([k, v]) => `${k.replace(/_/g, ' ')} ${typeof v === 'number' ? fmtNumber(v) : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`);
  return `${String(e.event).replace(/_/g, ' ')}${fields.length ? ': ' + fields.join(', ') : ''}`;
}

function fmtNumber(x: number): string {
  return Number.isInteger(x) ? String(x) : Math.abs(x) >= 1e-3 && Math.abs(x) < 1e6 ? String(round(x, 4)) : x.toExponential(3);
}

class BarLogger implements TrainLogger {
  private bar: cliProgress.SingleBar | null = null;
  constructor(private readonly lossName: string) {}
  info(line: string): void {
    if (this.bar) this.bar.stop(), (this.bar = null);
    process.stderr.write(line + '\n');
  }
  progress(p: Progress): void {
    const payload = {
      loss: p.loss.toFixed(4),
      ips: p.imgPerSec.toFixed(1),
      etaText: p.etaSec === null ? '?' : formatSeconds(p.etaSec),
    };
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar(
        { format: `step {value}/{total} | ${this.lossName} {loss} | {ips} img/s | ETA {etaText} {bar}`, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(p.maxSteps || p.step, p.step, payload);
    }
    if (!p.maxSteps) this.bar.setTotal(p.step);
    this.bar.update(p.step, payload);
  }
  event(e: Record<string, unknown>): void {
    if (e.event === 'checkpoint') this.info(checkpointLine(e, this.lossName));
    else if (e.event !== 'progress') this.info(textEvent(e));
  }
  close(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

function round(x: number, digits: number): number {
  const k = 10 ** digits;
  return Math.round(x * k) / k;
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}
