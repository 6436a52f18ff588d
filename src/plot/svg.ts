// Low-level pieces shared by the charts: text escaping, number labels, "nice" axis ticks, scales,
// colours, a tiny synchronous PNG encoder (for raster layers embedded in an SVG) and the axes frame.
import { deflateSync } from 'node:zlib';

export const FONT = 'DejaVu Sans, sans-serif';

/** matplotlib's tab10: distinct, colour-blind-friendlier than pure hues. */
export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export function seriesColor(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Pixel coordinates with 2 decimals: plenty for rendering, keeps the SVG small. */
export function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** Rough text width for layout; DejaVu Sans averages ~0.6 em per character. */
export function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.6;
}

export function text(x: number, y: number, s: string, o: { size?: number; anchor?: 'start' | 'middle' | 'end'; rotate?: boolean; weight?: string; fill?: string } = {}): string {
  const size = o.size ?? 12;
  const rot = o.rotate ? ` transform="rotate(-90 ${px(x)} ${px(y)})"` : '';
  const weight = o.weight ? ` font-weight="${o.weight}"` : '';
  return `<text x="${px(x)}" y="${px(y)}" font-family="${FONT}" font-size="${size}" text-anchor="${o.anchor ?? 'start'}" fill="${o.fill ?? '#222'}"${weight}${rot}>${esc(s)}</text>`;
}

// ---------------------------------------------------------------------------------------------
// Ticks and scales

/** 1, 2, 5 or 10 times a power of ten, whichever is closest to `raw` on a log scale. */
function niceStep(raw: number): number {
  const base = 10 ** Math.floor(Math.log10(raw));
  const f = raw / base;
  return base * (f >= Math.sqrt(50) ? 10 : f >= Math.sqrt(10) ? 5 : f >= Math.SQRT2 ? 2 : 1);
}

/** Removes float noise such as 0.30000000000000004. */
function clean(v: number): number {
  return v === 0 ? 0 : Number(v.toPrecision(12));
}

export interface Ticks {
  lo: number;
  hi: number;
  ticks: number[];
  step: number;
}

/**
 * Tick values at a round step covering [lo, hi] with about `target` ticks. With expand (the default) the
 * returned range grows to whole steps; without it the range is kept and only ticks inside it are listed.
 */
export function niceTicks(lo: number, hi: number, target = 6, expand = true): Ticks {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) lo = 0, hi = 1;
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === hi) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  const step = niceStep((hi - lo) / Math.max(1, target - 1));
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(clean(k * step));
  if (expand) return { lo: ticks[0]!, hi: ticks[ticks.length - 1]!, ticks, step };
  const eps = step * 1e-9;
  return { lo, hi, ticks: ticks.filter((t) => t >= lo - eps && t <= hi + eps), step };
}

/** Decades (and 2x, 5x within them when the range spans few decades) for a log axis. lo, hi > 0. */
export function logTicks(lo: number, hi: number, expand = true): Ticks {
  if (!(lo > 0) || !(hi > 0) || !Number.isFinite(lo) || !Number.isFinite(hi)) lo = 1, hi = 10;
  if (lo > hi) [lo, hi] = [hi, lo];
  let a = Math.floor(Math.log10(lo) + 1e-9);
  let b = Math.ceil(Math.log10(hi) - 1e-9);
  if (a === b) b = a + 1;
  const decades = b - a;
  const mults = decades <= 2 ? [1, 2, 5] : [1];
  // Many decades: label every k-th one so labels do not collide.
  const every = Math.max(1, Math.ceil(decades / 8));
  if (every > 1) {
    a = Math.floor(a / every) * every;
    b = Math.ceil(b / every) * every;
  }
  const ticks: number[] = [];
  for (let e = a; e <= b; e += every) for (const m of mults) if (e < b || m === 1) ticks.push(clean(m * 10 ** e));
  const range = expand ? { lo: 10 ** a, hi: 10 ** b } : { lo, hi };
  return { ...range, ticks: ticks.filter((t) => t >= range.lo * (1 - 1e-9) && t <= range.hi * (1 + 1e-9)), step: NaN };
}

/**
 * Labels for one axis's ticks, formatted alike: fixed decimals enough for the step, or exponent notation
 * when the magnitudes are extreme (log axes decide per tick, since they span decades).
 */
export function tickLabels(ticks: number[], step: number): string[] {
  const exp = (v: number) => (v === 0 ? '0' : v.toExponential(significantDecimals(v)).replace('e+', 'e'));
  if (!Number.isFinite(step)) return ticks.map((v) => (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3 ? exp(v) : String(clean(v))));
  const maxAbs = Math.max(...ticks.map(Math.abs));
  if (maxAbs >= 1e6 || maxAbs < 1e-3) return ticks.map(exp);
  const d = fixedDecimals(step);
  return ticks.map((v) => (Math.abs(v) < step * 1e-6 ? '0' : v.toFixed(d)));
}

/** Decimals needed to write a tick step exactly (0.25 -> 2, 2.5 -> 1, 20 -> 0). */
function fixedDecimals(step: number): number {
  let d = 0;
  while (d < 10 && Math.abs(step * 10 ** d - Math.round(step * 10 ** d)) > 1e-6 * step * 10 ** d) d++;
  return d;
}

function significantDecimals(v: number): number {
  const m = Number(v.toExponential(6).split('e')[0]);
  let d = 0;
  while (d < 6 && Math.abs(m * 10 ** d - Math.round(m * 10 ** d)) > 1e-6) d++;
  return d;
}

/** A linear or log mapping from data to pixels. */
export interface Scale {
  lo: number;
  hi: number;
  log: boolean;
  ticks: number[];
  labels: string[];
  /** Data value to pixel, given the pixel positions of lo and hi. */
  map(v: number, p0: number, p1: number): number;
}

export function makeScale(dataLo: number, dataHi: number, o: { log?: boolean; nice?: boolean; target?: number } = {}): Scale {
  const log = o.log ?? false;
  const t = log ? logTicks(dataLo, dataHi, o.nice ?? true) : niceTicks(dataLo, dataHi, o.target ?? 6, o.nice ?? true);
  const f = log ? Math.log10 : (v: number) => v;
  const flo = f(t.lo);
  const fhi = f(t.hi);
  return {
    lo: t.lo,
    hi: t.hi,
    log,
    ticks: t.ticks,
    labels: tickLabels(t.ticks, t.step),
    map: (v, p0, p1) => p0 + ((f(v) - flo) / (fhi - flo || 1)) * (p1 - p0),
  };
}

/** Finite min and max of some numbers (log: positive ones only); null when there are none. */
export function extent(values: Iterable<number>, positiveOnly = false): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v) || (positiveOnly && v <= 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : null;
}

// ---------------------------------------------------------------------------------------------
// Colour map

/** Ten evenly spaced stops of matplotlib's viridis (perceptually uniform, dark purple to yellow). */
const VIRIDIS: Array<[number, number, number]> = [
  [0x44, 0x01, 0x54], [0x48, 0x28, 0x78], [0x3e, 0x49, 0x89], [0x31, 0x68, 0x8e], [0x26, 0x82, 0x8e],
  [0x1f, 0x9e, 0x89], [0x35, 0xb7, 0x79], [0x6e, 0xce, 0x58], [0xb5, 0xde, 0x2b], [0xfd, 0xe7, 0x25],
];

/** Viridis colour for t in [0, 1] (clamped), linearly interpolated between stops. */
export function viridis(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i]!;
  const b = VIRIDIS[i + 1]!;
  return [0, 1, 2].map((k) => Math.round(a[k]! + (b[k]! - a[k]!) * f)) as [number, number, number];
}

// ---------------------------------------------------------------------------------------------
// PNG (synchronous, RGB8, no filtering): chart functions return SVG strings synchronously, and sharp is
// async, so raster layers (heatmap cells, colour bars) are encoded here and embedded as data: URIs.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data.buffer, data.byteOffset, data.length).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** rgb: width*height*3 bytes, row-major from the top row. */
export function encodeRgbPng(rgb: Uint8Array, width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  const raw = new Uint8Array(height * (1 + width * 3));
  for (let y = 0; y < height; y++) raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

/** An <image> showing an RGB raster stretched over a rectangle, cells kept sharp. */
export function rasterImage(rgb: Uint8Array, w: number, h: number, x: number, y: number, width: number, height: number): string {
  const uri = `data:image/png;base64,${encodeRgbPng(rgb, w, h).toString('base64')}`;
  return `<image x="${px(x)}" y="${px(y)}" width="${px(width)}" height="${px(height)}" preserveAspectRatio="none" image-rendering="optimizeSpeed" style="image-rendering:pixelated" href="${uri}"/>`;
}

// ---------------------------------------------------------------------------------------------
// The axes frame every chart is drawn in

export interface FrameOptions {
  width: number;
  height: number;
  title: string;
  xLabel?: string;
  yLabel?: string;
  xScale: Scale;
  yScale: Scale;
  /** Extra room on the right (legend, colour bar). */
  rightPad?: number;
  /** Minimum left margin, to line up the plot areas of stacked charts. */
  minLeft?: number;
  grid?: boolean;
}

export interface Frame {
  /** Plot area in pixels. */
  left: number;
  top: number;
  w: number;
  h: number;
  sx(x: number): number;
  sy(y: number): number;
  /** Background, grid, axes, ticks, labels and title. */
  svg: string;
}

export function frame(o: FrameOptions): Frame {
  const yLabelWidth = Math.max(...o.yScale.labels.map((l) => textWidth(l, 11)), 10);
  const left = Math.max(o.minLeft ?? 0, Math.round(12 + (o.yLabel ? 20 : 0) + yLabelWidth + 8));
  const top = o.title ? 34 : 12;
  const bottom = 26 + (o.xLabel ? 20 : 0);
  const right = 16 + (o.rightPad ?? 0);
  const w = Math.max(20, o.width - left - right);
  const h = Math.max(20, o.height - top - bottom);
  const sx = (x: number) => o.xScale.map(x, left, left + w);
  const sy = (y: number) => o.yScale.map(y, top + h, top);
  const parts: string[] = [];
  parts.push(`<rect x="0" y="0" width="${o.width}" height="${o.height}" fill="white"/>`);
  const grid = o.grid ?? true;
  o.xScale.ticks.forEach((t, i) => {
    const x = sx(t);
    if (grid) parts.push(`<line x1="${px(x)}" y1="${top}" x2="${px(x)}" y2="${top + h}" stroke="#e5e5e5" stroke-width="1"/>`);
    parts.push(`<line x1="${px(x)}" y1="${top + h}" x2="${px(x)}" y2="${top + h + 5}" stroke="#333" stroke-width="1"/>`);
    parts.push(text(x, top + h + 18, o.xScale.labels[i]!, { size: 11, anchor: 'middle' }));
  });
  o.yScale.ticks.forEach((t, i) => {
    const y = sy(t);
    if (grid) parts.push(`<line x1="${left}" y1="${px(y)}" x2="${left + w}" y2="${px(y)}" stroke="#e5e5e5" stroke-width="1"/>`);
    parts.push(`<line x1="${left - 5}" y1="${px(y)}" x2="${left}" y2="${px(y)}" stroke="#333" stroke-width="1"/>`);
    parts.push(text(left - 8, y + 4, o.yScale.labels[i]!, { size: 11, anchor: 'end' }));
  });
  parts.push(`<rect x="${left}" y="${top}" width="${w}" height="${h}" fill="none" stroke="#333" stroke-width="1"/>`);
  if (o.title) parts.push(text(left + w / 2, 22, o.title, { size: 15, anchor: 'middle', weight: 'bold' }));
  if (o.xLabel) parts.push(text(left + w / 2, top + h + 40, o.xLabel, { size: 12, anchor: 'middle' }));
  if (o.yLabel) parts.push(text(16, top + h / 2, o.yLabel, { size: 12, anchor: 'middle', rotate: true }));
  return { left, top, w, h, sx, sy, svg: parts.join('\n') };
}

/** Content drawn in plot-area pixel coordinates, clipped to the plot area (a nested <svg> clips without ids). */
export function clipped(f: Frame, content: string): string {
  return `<svg x="${f.left}" y="${f.top}" width="${f.w}" height="${f.h}" overflow="hidden"><g transform="translate(${-f.left} ${-f.top})">\n${content}\n</g></svg>`;
}

export function document(width: number, height: number, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n${body}\n</svg>\n`;
}

/** A legend box: one coloured swatch and name per entry, top-left corner at (x, y). */
export function legend(entries: Array<{ name: string; color: string; kind: 'line' | 'box' | 'dot' }>, x: number, y: number): string {
  const parts: string[] = [];
  const rowH = 18;
  const width = Math.max(...entries.map((e) => textWidth(e.name, 12)), 20) + 34;
  parts.push(`<rect x="${px(x)}" y="${px(y)}" width="${px(width)}" height="${entries.length * rowH + 8}" fill="white" fill-opacity="0.85" stroke="#bbb" stroke-width="1"/>`);
  entries.forEach((e, i) => {
    const cy = y + 4 + rowH * i + rowH / 2;
    if (e.kind === 'line') parts.push(`<line x1="${px(x + 6)}" y1="${px(cy)}" x2="${px(x + 24)}" y2="${px(cy)}" stroke="${e.color}" stroke-width="2.5"/>`);
    else if (e.kind === 'box') parts.push(`<rect x="${px(x + 7)}" y="${px(cy - 6)}" width="16" height="12" fill="${e.color}" fill-opacity="0.45" stroke="${e.color}" stroke-width="1.5"/>`);
    else parts.push(`<circle cx="${px(x + 15)}" cy="${px(cy)}" r="4" fill="${e.color}"/>`);
    parts.push(text(x + 30, cy + 4, e.name, { size: 12 }));
  });
  return parts.join('\n');
}

export function legendWidth(names: string[]): number {
  return Math.max(...names.map((n) => textWidth(n, 12)), 20) + 34;
}
