// The rANS coder (src/compress/rans.ts): random streams round-trip in put order, argument checks, the
// stream's corruption checks (truncation, padding, every single-byte change), and compression efficiency
// against the ideal code length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/rng.js';
import { CorruptStreamError, PROB_SCALE, RansDecoder, RansEncoder, STATE_BYTES, getBits32, getUniform, putBits32, putUniform } from '../src/compress/rans.js';

const M = PROB_SCALE;

/** n random symbols; freq log-uniform in [1, M] so tiny and huge frequencies both occur. */
function randomSymbols(rng: Rng, n: number): { starts: Uint32Array; freqs: Uint32Array } {
  const starts = new Uint32Array(n);
  const freqs = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const f = Math.min(M, Math.max(1, Math.floor(2 ** (rng.next() * 24.5))));
    freqs[i] = f;
    starts[i] = Math.floor(rng.next() * (M - f + 1));
  }
  return { starts, freqs };
}

function roundTrip(starts: ArrayLike<number>, freqs: ArrayLike<number>): Uint8Array {
  const enc = new RansEncoder();
  for (let i = 0; i < starts.length; i++) enc.put(starts[i]!, freqs[i]!);
  const bytes = enc.finish();
  const dec = new RansDecoder(bytes);
  for (let i = 0; i < starts.length; i++) {
    const slot = dec.peek();
    if (!(slot >= starts[i]! && slot < starts[i]! + freqs[i]!)) assert.fail(`symbol ${i}: slot ${slot} outside [${starts[i]}, ${starts[i]! + freqs[i]!})`);
    dec.advance(starts[i]!, freqs[i]!);
  }
  dec.finish();
  return bytes;
}

test('random (start, freq) streams of length 0, 1, 10 and 10^5 round-trip in put order', () => {
  const rng = new Rng(1);
  for (const n of [0, 1, 10, 100_000]) {
    const { starts, freqs } = randomSymbols(rng, n);
    const bytes = roundTrip(starts, freqs);
    if (n === 0) assert.equal(bytes.length, STATE_BYTES);
  }
});

test('freq = 1 symbols at both edges of [0, 2^24), and the whole range as one symbol', () => {
  const starts = [0, M - 1, 0, M - 1, 0, M - 1, M - 1, 0, 12345];
  const freqs = [1, 1, 1, 1, M, 1, 1, 1, 1];
  roundTrip(starts, freqs);
  roundTrip(new Array(1000).fill(M - 1), new Array(1000).fill(1));
  roundTrip(new Array(1000).fill(0), new Array(1000).fill(1));
  roundTrip([0, 0], [M, M]);
});

test('the encoder is empty again after finish() and can be reused', () => {
  const enc = new RansEncoder();
  enc.put(5, 7);
  const a = enc.finish();
  assert.equal(enc.length, 0);
  enc.put(5, 7);
  assert.deepEqual(enc.finish(), a);
});

test('invalid put and advance arguments throw RangeError saying which', () => {
  const enc = new RansEncoder();
  assert.throws(() => enc.put(0.5, 1), /start 0.5 is not an integer/);
  assert.throws(() => enc.put(0, 2.5), /freq 2.5 is not an integer/);
  assert.throws(() => enc.put(0, 0), /freq 0 is below 1/);
  assert.throws(() => enc.put(-1, 1), /start -1 is negative/);
  assert.throws(() => enc.put(M - 1, 2), /exceeds 2\^24/);
  assert.throws(() => enc.put(Number.NaN, 1), RangeError);
  assert.throws(() => enc.put(0, Number.POSITIVE_INFINITY), RangeError);
  assert.equal(enc.length, 0);
  enc.put(100, 10);
  const dec = new RansDecoder(enc.finish());
  const slot = dec.peek();
  assert.ok(slot >= 100 && slot < 110);
  assert.throws(() => dec.advance(0, 100), /does not hold the peeked slot/);
  assert.throws(() => dec.advance(-10, 200), /negative/);
  assert.throws(() => dec.advance(100, 10.5), /not an integer/);
  dec.advance(100, 10);
  dec.finish();
  assert.throws(() => putUniform(enc, 4, 2), /outside \[0, 2\^2\)/);
  assert.throws(() => putUniform(enc, 0, 17), /bits 17/);
  assert.throws(() => putBits32(enc, -1), /not a uint32/);
  assert.throws(() => putBits32(enc, 2 ** 32), /not a uint32/);
});

test('putUniform/getUniform and putBits32/getBits32 round-trip, interleaved with other symbols', () => {
  const rng = new Rng(2);
  const enc = new RansEncoder();
  const values: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const bits = i % 17;
    const v = Math.floor(rng.next() * 2 ** bits);
    const w = i % 3 === 0 ? 0xffffffff : i % 3 === 1 ? 0 : Math.floor(rng.next() * 2 ** 32);
    values.push(v, w);
    putUniform(enc, v, bits);
    putBits32(enc, w);
    enc.put(7, 1000);
  }
  const bytes = enc.finish();
  const dec = new RansDecoder(bytes);
  for (let i = 0; i < 5000; i++) {
    assert.equal(getUniform(dec, i % 17), values[2 * i]);
    assert.equal(getBits32(dec), values[2 * i + 1]);
    dec.advance(7, 1000);
  }
  dec.finish();
  const enc2 = new RansEncoder();
  putBits32(enc2, -5 >>> 0);
  const dec2 = new RansDecoder(enc2.finish());
  assert.equal(getBits32(dec2) | 0, -5);
  dec2.finish();
});

/** A skewed 256-symbol table (frequencies sum to M) and its lookup. */
function skewedTable(): { cum: Float64Array; freq: Float64Array } {
  const weights = Array.from({ length: 256 }, (_, s) => Math.exp(-s / 6) + 1e-4);
  const total = weights.reduce((a, b) => a + b, 0);
  const freq = new Float64Array(256);
  let sum = 0;
  for (let s = 0; s < 256; s++) sum += freq[s] = Math.max(1, Math.floor((weights[s]! / total) * M));
  freq[0]! += M - sum;
  const cum = new Float64Array(257);
  for (let s = 0; s < 256; s++) cum[s + 1] = cum[s]! + freq[s]!;
  assert.equal(cum[256], M);
  return { cum, freq };
}

function sampleTable(rng: Rng, cum: Float64Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = lookup(cum, Math.floor(rng.next() * M));
  return out;
}

function lookup(cum: Float64Array, slot: number): number {
  let lo = 0;
  let hi = 256;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (cum[mid]! <= slot) lo = mid;
    else hi = mid;
  }
  return lo;
}

function encodeTable(symbols: Uint8Array, cum: Float64Array, freq: Float64Array): Uint8Array {
  const enc = new RansEncoder();
  for (const s of symbols) enc.put(cum[s]!, freq[s]!);
  return enc.finish();
}

/** Decodes n symbols with the table and checks the stream's end; throws what the decoder throws. */
function decodeTable(bytes: Uint8Array, n: number, cum: Float64Array, freq: Float64Array): Uint8Array {
  const dec = new RansDecoder(bytes);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const s = lookup(cum, dec.peek());
    dec.advance(cum[s]!, freq[s]!);
    out[i] = s;
  }
  dec.finish();
  return out;
}

test('compression efficiency: 10^5 skewed symbols cost within 0.1% (+ 16 bytes) of their ideal code length', () => {
  const { cum, freq } = skewedTable();
  const rng = new Rng(3);
  const n = 100_000;
  const symbols = sampleTable(rng, cum, n);
  let ideal = 0;
  for (const s of symbols) ideal -= Math.log2(freq[s]! / M);
  const bytes = encodeTable(symbols, cum, freq);
  assert.deepEqual(decodeTable(bytes, n, cum, freq), symbols);
  const bits = bytes.length * 8;
  console.log(`# rANS efficiency: ${bits} bits written, ${ideal.toFixed(0)} ideal (${((bits / ideal - 1) * 100).toFixed(4)}% over)`);
  assert.ok(bits <= ideal * 1.001 + 16 * 8, `${bits} bits written for ${ideal} ideal`);
  assert.ok(bits >= ideal - 8, 'fewer bits than the ideal: the test measures the wrong thing');
});

test('a truncated stream, a padded stream and a stream of a few bytes throw CorruptStreamError', () => {
  const { cum, freq } = skewedTable();
  const n = 2000;
  const symbols = sampleTable(new Rng(4), cum, n);
  const bytes = encodeTable(symbols, cum, freq);
  assert.deepEqual(decodeTable(bytes, n, cum, freq), symbols);
  for (const cut of [1, 2, 5, 100]) assert.throws(() => decodeTable(bytes.subarray(0, bytes.length - cut), n, cum, freq), CorruptStreamError);
  for (const extra of [0, 1, 255]) {
    const padded = new Uint8Array(bytes.length + 1);
    padded.set(bytes);
    padded[bytes.length] = extra;
    assert.throws(() => decodeTable(padded, n, cum, freq), /rANS stream is corrupt: 1 of \d+ bytes left unread/);
  }
  assert.throws(() => new RansDecoder(new Uint8Array(3)), /fewer than the 7-byte state/);
  assert.throws(() => new RansDecoder(new Uint8Array(7)), /initial state 0 outside/);
  assert.throws(() => new RansDecoder(new Uint8Array(7).fill(255)), CorruptStreamError);
  // Decoding one symbol too many reads past the end.
  assert.throws(() => decodeTable(bytes, n + 1, cum, freq), /read past the end/);
  // One too few leaves the state away from L (or bytes unread).
  assert.throws(() => decodeTable(bytes, n - 1, cum, freq), CorruptStreamError);
});

// Decoding is the exact inverse of encoding, so a stream that decodes to symbols S and passes finish() is
// byte for byte the encoding of S: a changed stream can never decode to the same symbols and pass. It can
// be the valid encoding of other symbols, though: a small change to the state's low bits survives the
// coding steps as a small offset, so a flip that moves one slot across a symbol boundary can decode to a
// neighbouring symbol and still end on the initial state (~0.3% of single-byte changes here). No coder
// without added redundancy can reject those; the container's sha256 of the decoded images is the real guard.
test('changing any single byte of a 2000-symbol stream never decodes to the same symbols, and almost always throws CorruptStreamError', () => {
  const { cum, freq } = skewedTable();
  const n = 2000;
  const symbols = sampleTable(new Rng(5), cum, n);
  const bytes = encodeTable(symbols, cum, freq);
  let changes = 0;
  let undetected = 0;
  for (let p = 0; p < bytes.length; p++) {
    for (const mask of [1, 2, 0x10, 0x80, 0x5a, 0xff]) {
      const bad = bytes.slice();
      bad[p]! ^= mask;
      changes++;
      let decoded: Uint8Array;
      try {
        decoded = decodeTable(bad, n, cum, freq);
      } catch (e) {
        if (!(e instanceof CorruptStreamError)) throw e;
        continue;
      }
      undetected++;
      assert.notDeepEqual(decoded, symbols, `byte ${p} ^ ${mask} decoded to the same symbols and passed finish()`);
    }
  }
  console.log(`# rANS single-byte changes: ${undetected} of ${changes} decode to other symbols without an error`);
  assert.ok(changes > 5000);
  assert.ok(undetected / changes < 0.02, `${undetected} of ${changes} changes undetected`);
});

test('throughput: 7.84M symbols (10,000 images x 784) encode and decode in a few seconds', () => {
  const n = 7_840_000;
  const rng = new Rng(6);
  const { cum, freq } = skewedTable();
  const symbols = sampleTable(rng, cum, n);
  const t0 = performance.now();
  const enc = new RansEncoder();
  for (let i = 0; i < n; i++) enc.put(cum[symbols[i]!]!, freq[symbols[i]!]!);
  const bytes = enc.finish();
  const t1 = performance.now();
  const dec = new RansDecoder(bytes);
  let mismatches = 0;
  for (let i = 0; i < n; i++) {
    const s = symbols[i]!;
    if (dec.peek() < cum[s]! || dec.peek() >= cum[s + 1]!) mismatches++;
    dec.advance(cum[s]!, freq[s]!);
  }
  dec.finish();
  const t2 = performance.now();
  assert.equal(mismatches, 0);
  console.log(`# rANS throughput: encode ${((n / (t1 - t0)) * 1e3 / 1e6).toFixed(1)}M symbols/s, decode ${((n / (t2 - t1)) * 1e3 / 1e6).toFixed(1)}M symbols/s`);
  assert.ok(t2 - t0 < 10_000, `${(t2 - t0).toFixed(0)} ms`);
});
