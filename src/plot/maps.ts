// Charts of 2-D data as standalone SVG documents: density heatmaps on a grid and scatter plots (the
// toy data sets and their models' densities). Render with renderPng (render.ts).
import { UserError } from '../errors.js';
import { clipped, document, extent, frame, makeScale, px, rasterImage, seriesColor, text, viridis } from './svg.js';

/**
 * Values on a regular nx x ny grid over [x0, x1] x [y0, y1]: values[j * nx + i] is the value of the cell
 * whose centre is (x0 + (i + 0.5)(x1 - x0)/nx, y0 + (j + 0.5)(y1 - y0)/ny), so row j = 0 is the bottom (y0).
 */
export interface Grid {
  values: Float32Array | number[];
  nx: number;
  ny: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

export interface HeatmapOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Colour by log(value) (for densities spanning orders of magnitude); non-positive values get the lowest colour. */
  log?: boolean;
  /** Colour range; default the finite min and max of the (log) values. */
  vmin?: number;
  vmax?: number;
  /** Draw a colour bar with its value scale on the right. Default true. */
  colorbar?: boolean;
  /** Label of the colour bar. */
  valueLabel?: string;
}

const NAN_RGB: [number, number, number] = [0xcc, 0xcc, 0xcc];

export function heatmap(grid: Grid, opts: HeatmapOptions): string {
  const { values, nx, ny, x0, x1, y0, y1 } = grid;
  if (!Number.isInteger(nx) || !Number.isInteger(ny) || nx < 1 || ny < 1) throw new UserError(`heatmap: nx and ny must be positive integers, got ${nx} x ${ny}`);
  if (values.length !== nx * ny) throw new UserError(`heatmap: expected nx * ny = ${nx * ny} values, got ${values.length}`);
  if (!(x1 > x0) || !(y1 > y0)) throw new UserError(`heatmap: need x0 < x1 and y0 < y1, got [${x0}, ${x1}] x [${y0}, ${y1}]`);
  const width = opts.width ?? 480;
  const height = opts.height ?? 420;
  const tr = (v: number) => (opts.log ? (v > 0 ? Math.log(v) : -Infinity) : v);
  const shown = Array.from(values, tr);
  const [dlo, dhi] = extent(shown) ?? [0, 1];
  const vmin = opts.vmin !== undefined ? tr(opts.vmin) : dlo;
  const vmax = opts.vmax !== undefined ? tr(opts.vmax) : dhi;
  const span = vmax - vmin;
  const rgb = new Uint8Array(nx * ny * 3);
  for (let j = 0; j < ny; j++) {
    const row = ny - 1 - j; // image rows run top-down, grid rows bottom-up
    for (let i = 0; i < nx; i++) {
      const raw = values[j * nx + i]!;
      const v = shown[j * nx + i]!;
      const c = Number.isNaN(raw) ? NAN_RGB : viridis(span > 0 ? (v === -Infinity ? 0 : (v - vmin) / span) : 0.5);
      rgb.set(c, (row * nx + i) * 3);
    }
  }
  const colorbar = opts.colorbar ?? true;
  const xScale = makeScale(x0, x1, { nice: false });
  const yScale = makeScale(y0, y1, { nice: false });
  const cbScale = makeScale(vmin, span > 0 ? vmax : vmin + 1, { nice: false, target: 5 });
  const cbLabelW = Math.max(...cbScale.labels.map((l) => l.length * 6.6), 10);
  const cbTitle = opts.valueLabel ?? (opts.log ? 'log value' : '');
  const cbPad = colorbar ? 14 + 14 + 7 + cbLabelW + (cbTitle ? 22 : 0) : 0;
  const f = frame({ width, height, title: opts.title, xLabel: opts.xLabel, yLabel: opts.yLabel, xScale, yScale, rightPad: cbPad, grid: false });
  const parts = [f.svg, rasterImage(rgb, nx, ny, f.left, f.top, f.w, f.h), `<rect x="${f.left}" y="${f.top}" width="${f.w}" height="${f.h}" fill="none" stroke="#333" stroke-width="1"/>`];
  if (colorbar) {
    const cx = f.left + f.w + 14;
    const strip = new Uint8Array(256 * 3);
    for (let k = 0; k < 256; k++) strip.set(viridis(1 - k / 255), k * 3);
    parts.push(rasterImage(strip, 1, 256, cx, f.top, 14, f.h));
    parts.push(`<rect x="${cx}" y="${f.top}" width="14" height="${f.h}" fill="none" stroke="#333" stroke-width="1"/>`);
    cbScale.ticks.forEach((t, k) => {
      const y = cbScale.map(t, f.top + f.h, f.top);
      parts.push(`<line x1="${cx + 14}" y1="${px(y)}" x2="${cx + 18}" y2="${px(y)}" stroke="#333" stroke-width="1"/>`);
      parts.push(text(cx + 21, y + 4, cbScale.labels[k]!, { size: 11 }));
    });
    if (cbTitle) parts.push(text(cx + 21 + cbLabelW + 16, f.top + f.h / 2, cbTitle, { size: 12, anchor: 'middle', rotate: true }));
  }
  return document(width, height, parts.join('\n'));
}

// ---------------------------------------------------------------------------------------------

export interface Domain {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** The bounding box of xy pairs grown by `pad` of its size on each side: a shared domain for side-by-side panels. */
export function dataDomain(points: Float32Array | number[], pad = 0.05): Domain {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let k = 0; k + 1 < points.length; k += 2) xs.push(points[k]!), ys.push(points[k + 1]!);
  const [ax, bx] = extent(xs) ?? [-1, 1];
  const [ay, by] = extent(ys) ?? [-1, 1];
  const dx = (bx - ax || 1) * pad;
  const dy = (by - ay || 1) * pad;
  return { x0: ax - dx, x1: bx + dx, y0: ay - dy, y1: by + dy };
}

export interface ScatterOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  color?: string;
  /** Dot radius in pixels. Default 1.6. */
  radius?: number;
  /** Dot opacity; default lower for many points so dense regions show. */
  opacity?: number;
  /** Axis ranges (exactly, no rounding out); default the data's bounding box rounded out to ticks. */
  domain?: Domain;
  /** Draw at most this many points (an even stride through them); default 20000 keeps the SVG small. */
  maxPoints?: number;
}

/** points: interleaved x, y pairs. Points outside the domain are clipped; non-finite ones skipped. */
export function scatter(points: Float32Array | number[], opts: ScatterOptions): string {
  if (points.length % 2 !== 0) throw new UserError(`scatter: points must be x, y pairs, got an odd length ${points.length}`);
  const width = opts.width ?? 420;
  const height = opts.height ?? 420;
  const n = points.length / 2;
  let xScale: ReturnType<typeof makeScale>;
  let yScale: ReturnType<typeof makeScale>;
  if (opts.domain) {
    xScale = makeScale(opts.domain.x0, opts.domain.x1, { nice: false });
    yScale = makeScale(opts.domain.y0, opts.domain.y1, { nice: false });
  } else {
    const d = dataDomain(points, 0);
    xScale = makeScale(d.x0, d.x1, {});
    yScale = makeScale(d.y0, d.y1, {});
  }
  const f = frame({ width, height, title: opts.title, xLabel: opts.xLabel, yLabel: opts.yLabel, xScale, yScale });
  const maxPoints = opts.maxPoints ?? 20000;
  const stride = Math.max(1, Math.ceil(n / maxPoints));
  const r = px(opts.radius ?? 1.6);
  const dots: string[] = [];
  for (let k = 0; k < n; k += stride) {
    const x = points[2 * k]!;
    const y = points[2 * k + 1]!;
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    dots.push(`<circle cx="${px(f.sx(x))}" cy="${px(f.sy(y))}" r="${r}"/>`);
  }
  const opacity = opts.opacity ?? (dots.length > 2000 ? 0.35 : dots.length > 300 ? 0.6 : 0.85);
  const body = `<g fill="${opts.color ?? seriesColor(0)}" fill-opacity="${opacity}">${dots.join('')}</g>`;
  return document(width, height, [f.svg, clipped(f, body)].join('\n'));
}
