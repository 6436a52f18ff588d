// Coding integers with rANS under discretised logistic mixtures (the priors of an integer discrete flow):
// P(z) = sum_k pi_k [sigmoid((z + 0.5 - mu_k)/s_k) - sigmoid((z - 0.5 - mu_k)/s_k)], pi = softmax(logits).
//
// Per symbol, a window [lo, hi] of integers covers the mixture's mass (every component of weight >= 1e-8
// to 16 scales either side, at most 2^16 integers, within int32); an ESCAPE slot of 64/2^24 codes any
// other int32 raw in 32 bits. Inside the window the quantised CDF is closed-form, so encoding costs O(1)
// mixture evaluations and decoding a binary search: with N = hi - lo + 1 and S = 2^24 - 64 - N,
// C(j) = floor(F(j) S) + j, F(j) = G(lo + j - 0.5) / G(hi + 0.5), G(x) = Phi(x) - Phi(lo - 0.5), F(0) = 0 and
// F(N) = 1 exactly; integer lo + j has [C(j), C(j+1)), so every frequency is >= 1. G sums, per component, a
// difference of sigmoids taken in whichever tail of lo - 0.5 is small (no cancellation), and each term is a
// non-decreasing function of x in floating point, so C never decreases. Encoder and decoder call the very
// same SymbolModel, so their tables match bit for bit (given the same Math.exp: V8's is fdlibm's).
import { CorruptStreamError, PROB_SCALE, type RansDecoder, type RansEncoder, getBits32, putBits32 } from './rans.js';

export interface MixtureParams {
  /** K, the number of logistic components per symbol. */
  components: number;
  /** Each of length n*K: symbol i's component k at i*K + k. Means and scales in integer (bin) units, s = exp(logScale). */
  logits: Float32Array;
  means: Float32Array;
  logScales: Float32Array;
}

/** The escape slot's frequency (out of 2^24): z outside the window costs ~18 + 32 bits. */
export const ESCAPE_FREQ = 64;
/** The widest window, in integers. */
export const MAX_WINDOW = 2 ** 16;
/** The window reaches TAIL_SCALES scales beyond each mean (logistic tail mass e^-16 ~ 1e-7 a side). */
const TAIL_SCALES = 16;
/** Components lighter than this do not widen the window (their mass outside it is escaped). */
const WINDOW_MIN_WEIGHT = 1e-8;
/** logScale is clamped here: beyond, the scale is all mass on one integer or flat over int32 anyway. */
const LOG_SCALE_MIN = -30;
const LOG_SCALE_MAX = 30;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const ESC_START = PROB_SCALE - ESCAPE_FREQ;

function checkParams(params: MixtureParams, n: number): void {
  const K = params.components;
  if (!(Number.isInteger(K) && K >= 1)) throw new RangeError(`mixture components ${K} is not a positive integer`);
  for (const name of ['logits', 'means', 'logScales'] as const) {
    const a = params[name];
    if (a.length !== n * K) throw new RangeError(`mixture ${name} has length ${a.length}, not n*K = ${n}*${K}`);
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i]!)) throw new Error(`mixture params for symbol ${Math.floor(i / K)} are not finite: ${name}[${i}] (component ${i % K}) = ${a[i]}`);
    }
  }
}

/** One symbol's mixture, window and quantised CDF; load() reuses its arrays for the next symbol. */
class SymbolModel {
  private readonly K: number;
  private readonly w: Float64Array;
  private readonly mu: Float64Array;
  private readonly invS: Float64Array;
  /** Per component: the sigmoid at lo - 0.5 in the tail taken (the upper tail's complement when up). */
  private readonly sa: Float64Array;
  private readonly up: Uint8Array;
  /** Per component: 1 - e^(-1/s), the bin-mass factor of logBinMass. */
  private readonly em1: Float64Array;
  /** log sum_k exp(logit_k): log pi_k = logit_k - logNorm. */
  private logNorm = 0;
  private i = 0;
  /** The heaviest component. */
  private best = 0;
  lo = 0;
  hi = 0;
  /** hi - lo + 1. */
  n = 1;
  private s = 0;
  private d = 1;
  private uniform = false;

  constructor(private readonly params: MixtureParams) {
    const K = params.components;
    this.K = K;
    this.w = new Float64Array(K);
    this.mu = new Float64Array(K);
    this.invS = new Float64Array(K);
    this.sa = new Float64Array(K);
    this.up = new Uint8Array(K);
    this.em1 = new Float64Array(K);
  }

  /** Symbol i's weights, means and scales: enough for logProb(). */
  loadMixture(i: number): void {
    const { K, w, mu, invS, em1 } = this;
    const { logits, means, logScales } = this.params;
    const base = i * K;
    this.i = i;
    let maxLogit = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < K; k++) maxLogit = Math.max(maxLogit, logits[base + k]!);
    let sum = 0;
    for (let k = 0; k < K; k++) sum += w[k] = Math.exp(logits[base + k]! - maxLogit);
    this.logNorm = maxLogit + Math.log(sum);
    let best = 0;
    for (let k = 0; k < K; k++) {
      w[k]! /= sum;
      if (w[k]! > w[best]!) best = k;
      mu[k] = means[base + k]!;
      const is = Math.exp(-Math.min(LOG_SCALE_MAX, Math.max(LOG_SCALE_MIN, logScales[base + k]!)));
      invS[k] = is;
      em1[k] = -Math.expm1(-is);
    }
    this.best = best;
  }

  /** Symbol i's mixture, window and quantised CDF. */
  load(i: number): void {
    this.loadMixture(i);
    const { K, w, mu, invS, sa, up } = this;
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < K; k++) {
      if (w[k]! >= WINDOW_MIN_WEIGHT) {
        const reach = TAIL_SCALES / invS[k]!;
        lo = Math.min(lo, mu[k]! - reach);
        hi = Math.max(hi, mu[k]! + reach);
      }
    }
    const best = this.best;
    lo = Math.min(INT32_MAX, Math.max(INT32_MIN, Math.floor(lo)));
    hi = Math.min(INT32_MAX, Math.max(INT32_MIN, Math.ceil(hi)));
    if (hi - lo + 1 > MAX_WINDOW) {
      // Too wide: the MAX_WINDOW integers inside it centred on the heaviest component.
      let l = Math.max(lo, Math.floor(mu[best]!) - MAX_WINDOW / 2);
      if (l + MAX_WINDOW - 1 > hi) l = hi - MAX_WINDOW + 1;
      lo = l;
      hi = l + MAX_WINDOW - 1;
    }
    this.lo = lo;
    this.hi = hi;
    this.n = hi - lo + 1;
    this.s = ESC_START - this.n;
    const a = lo - 0.5;
    for (let k = 0; k < K; k++) {
      const t = (a - mu[k]!) * invS[k]!;
      up[k] = t >= 0 ? 1 : 0;
      sa[k] = t >= 0 ? 1 / (1 + Math.exp(t)) : 1 / (1 + Math.exp(-t));
    }
    const d = this.g(hi + 0.5);
    this.uniform = !(d > 0 && d <= 2);
    this.d = d;
  }

  /** Phi(x) - Phi(lo - 0.5) for x >= lo - 0.5: non-negative and non-decreasing in x. */
  private g(x: number): number {
    const { K, w, mu, invS, sa, up } = this;
    let g = 0;
    for (let k = 0; k < K; k++) {
      const t = (x - mu[k]!) * invS[k]!;
      g += up[k] === 1 ? w[k]! * (sa[k]! - 1 / (1 + Math.exp(t))) : w[k]! * (1 / (1 + Math.exp(-t)) - sa[k]!);
    }
    return g;
  }

  /** C(j), the start of integer lo + j's slots (j in 0..n; C(n) is the escape's start). */
  cdf(j: number): number {
    if (j <= 0) return 0;
    if (j >= this.n) return ESC_START;
    const f = this.uniform ? j / this.n : this.g(this.lo + j - 0.5) / this.d;
    return Math.floor(f * this.s) + j;
  }

  /** A first guess at the j whose slots hold `slot`: the heaviest component's quantile. */
  guess(slot: number): number {
    const u = (slot + 0.5) / ESC_START;
    const x = this.mu[this.best]! + Math.log(u / (1 - u)) / this.invS[this.best]!;
    return Math.min(this.n - 1, Math.max(0, Math.floor(x + 0.5) - this.lo));
  }

  /**
   * ln P(z): sum_k pi_k sigmoid(b_k) sigmoid(-a_k) (1 - e^(-1/s_k)) (each factor accurate to a few ulp in
   * every tail), or, where that sum underflows, the same in the log domain.
   */
  logProb(z: number): number {
    const { K, w, mu, invS, em1 } = this;
    let p = 0;
    for (let k = 0; k < K; k++) {
      const a = (z - 0.5 - mu[k]!) * invS[k]!;
      const b = (z + 0.5 - mu[k]!) * invS[k]!;
      p += (((w[k]! / (1 + Math.exp(-b))) / (1 + Math.exp(a))) * em1[k]!);
    }
    return p > 1e-280 ? Math.log(p) : logProbLog(this.params, this.i, z, this.logNorm);
  }
}

/** ln P(z) under symbol i's mixture in the log domain (scales clamped as SymbolModel clamps them): for P below ~1e-280. */
function logProbLog(params: MixtureParams, i: number, z: number, logNorm: number): number {
  const K = params.components;
  const base = i * K;
  // log-sum-exp over components of log pi_k + log(bin mass_k), streaming.
  let m = Number.NEGATIVE_INFINITY;
  let acc = 0;
  for (let k = 0; k < K; k++) {
    const ls = Math.min(LOG_SCALE_MAX, Math.max(LOG_SCALE_MIN, params.logScales[base + k]!));
    const invS = Math.exp(-ls);
    const mu = params.means[base + k]!;
    const lp = params.logits[base + k]! - logNorm + logBinMass((z - 0.5 - mu) * invS, (z + 0.5 - mu) * invS, invS);
    if (lp > m) {
      acc = acc * Math.exp(m - lp) + 1;
      m = lp;
    } else acc += Math.exp(lp - m);
  }
  return m + Math.log(acc);
}

/** ln(sigmoid(b) - sigmoid(a)) for b - a = d > 0: ln sigmoid(b) + ln sigmoid(-a) + ln(1 - e^-d), exact in every tail. */
function logBinMass(a: number, b: number, d: number): number {
  const log1mexp = d > Math.LN2 ? Math.log1p(-Math.exp(-d)) : Math.log(-Math.expm1(-d));
  return logSigmoid(b) + logSigmoid(-a) + log1mexp;
}

function logSigmoid(x: number): number {
  return x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x));
}

/** The model's ideal code length of `symbols`, -sum log2 P(z_i), in bits (float64, unquantised). */
export function mixtureIdealBits(symbols: Int32Array, params: MixtureParams): number {
  checkParams(params, symbols.length);
  const model = new SymbolModel(params);
  let nats = 0;
  for (let i = 0; i < symbols.length; i++) {
    model.loadMixture(i);
    nats -= model.logProb(symbols[i]!);
  }
  return nats / Math.LN2;
}

/**
 * Queues symbols[i] under symbol i's mixture on enc; returns their ideal code length in bits (as mixtureIdealBits).
 * Bad params throw before anything is queued; an empty slot range (a bug: the quantised CDF decreased) throws
 * midway, and the encoder should then be discarded.
 */
export function encodeMixtureSymbols(enc: RansEncoder, symbols: Int32Array, params: MixtureParams): number {
  checkParams(params, symbols.length);
  const model = new SymbolModel(params);
  let nats = 0;
  for (let i = 0; i < symbols.length; i++) {
    const z = symbols[i]!;
    model.load(i);
    if (z >= model.lo && z <= model.hi) {
      const j = z - model.lo;
      const c0 = model.cdf(j);
      const c1 = model.cdf(j + 1);
      if (!(c1 > c0)) throw new Error(`mixture code: symbol ${i} (${z}) has an empty slot range [${c0}, ${c1}) (the quantised CDF decreased)`);
      enc.put(c0, c1 - c0);
    } else {
      enc.put(ESC_START, ESCAPE_FREQ);
      putBits32(enc, z >>> 0);
    }
    nats -= model.logProb(z);
  }
  return nats / Math.LN2;
}

/** The n symbols encodeMixtureSymbols queued with the same params; throws CorruptStreamError on an escape it cannot have written. */
export function decodeMixtureSymbols(dec: RansDecoder, n: number, params: MixtureParams): Int32Array {
  checkParams(params, n);
  const model = new SymbolModel(params);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    model.load(i);
    const slot = dec.peek();
    if (slot >= ESC_START) {
      dec.advance(ESC_START, ESCAPE_FREQ);
      const z = getBits32(dec) | 0;
      if (z >= model.lo && z <= model.hi) throw new CorruptStreamError(`symbol ${i}: escaped value ${z} lies inside its window [${model.lo}, ${model.hi}]`);
      out[i] = z;
      continue;
    }
    // The j in [0, n) with C(j) <= slot < C(j+1): gallop from the guess to a bracket, then bisect.
    let jLo = 0;
    let jHi = model.n;
    let cLo = 0;
    let cHi = ESC_START;
    const j0 = model.guess(slot);
    const c0 = model.cdf(j0);
    if (c0 <= slot) {
      jLo = j0;
      cLo = c0;
      for (let step = 1; jLo + step < jHi; step *= 2) {
        const c = model.cdf(jLo + step);
        if (c > slot) {
          jHi = jLo + step;
          cHi = c;
          break;
        }
        jLo += step;
        cLo = c;
      }
    } else {
      jHi = j0;
      cHi = c0;
      for (let step = 1; jHi - step > jLo; step *= 2) {
        const c = model.cdf(jHi - step);
        if (c <= slot) {
          jLo = jHi - step;
          cLo = c;
          break;
        }
        jHi -= step;
        cHi = c;
      }
    }
    // Interpolation steps while they at least halve the bracket, bisection after one that does not.
    let bisect = false;
    while (jHi - jLo > 1) {
      const width = jHi - jLo;
      const mid = bisect ? (jLo + jHi) >>> 1 : Math.min(jHi - 1, Math.max(jLo + 1, jLo + Math.floor(((slot - cLo) / (cHi - cLo)) * width)));
      const c = model.cdf(mid);
      if (c <= slot) {
        jLo = mid;
        cLo = c;
      } else {
        jHi = mid;
        cHi = c;
      }
      bisect = !bisect && 2 * (jHi - jLo) > width;
    }
    dec.advance(cLo, cHi - cLo);
    out[i] = model.lo + jLo;
  }
  return out;
}
