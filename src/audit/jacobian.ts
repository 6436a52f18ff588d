// The full Jacobian of a dimension-preserving map at one example, in row chunks so a deep image flow
// (hundreds of dimensions) never holds hundreds of copies of its activations at once, and the
// brute-force log|det J| it gives (float64 LU) to hold a model's analytic logdet against.
import { tf, type Tensor } from '../tf.js';
import { logAbsDet } from '../linalg.js';

/** The number of outputs D of f at the single example x = [1, ...] (the Jacobian's rows). */
export function jacobianSize(f: (x: Tensor) => Tensor, x: Tensor): number {
  if (x.shape[0] !== 1) throw new Error(`jacobian needs a single example [1, ...], got [${x.shape}]`);
  return tf.tidy(() => f(x).size);
}

/**
 * Rows start .. start + k - 1 of the Jacobian as a [k, x.size] tensor, in one backward pass: k copies of x
 * go through f and copy j's gradient, picked by a 0/1 weight on the outputs, is row start + j.
 */
export function jacobianRows(f: (x: Tensor) => Tensor, x: Tensor, start: number, k: number): Tensor {
  const rows = jacobianSize(f, x);
  return tf.tidy(() => {
    const xs = tf.tile(x, [k, ...x.shape.slice(1).map(() => 1)]);
    const pick = new Float32Array(k * rows);
    for (let j = 0; j < k; j++) pick[j * rows + start + j] = 1;
    const weights = tf.tensor2d(pick, [k, rows]);
    const g = tf.grad((batch: Tensor) => tf.sum(tf.mul(tf.reshape(f(batch), [k, rows]), weights)));
    return tf.reshape(g(xs), [k, x.size]);
  });
}

/**
 * J[i][j] = d f(x)_i / d x_j for ONE example x = [1, ...], f mapping [B, ...] -> [B, D] per example
 * independently, `chunk` rows at a time (jacobianRows), read back asynchronously (GPU backends).
 */
export async function chunkedJacobian(f: (x: Tensor) => Tensor, x: Tensor, chunk = 64): Promise<{ values: Float64Array; rows: number; cols: number }> {
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`jacobian chunk must be a positive integer, got ${chunk}`);
  const rows = jacobianSize(f, x);
  const cols = x.size;
  const values = new Float64Array(rows * cols);
  for (let start = 0; start < rows; start += chunk) {
    const block = jacobianRows(f, x, start, Math.min(chunk, rows - start));
    values.set(await block.data(), start * cols);
    block.dispose();
  }
  return { values, rows, cols };
}

/** log|det J| of f at x (float64 LU of the float32 Jacobian); -Infinity when singular. */
export async function jacobianLogAbsDet(f: (x: Tensor) => Tensor, x: Tensor, chunk = 64): Promise<number> {
  const j = await chunkedJacobian(f, x, chunk);
  if (j.rows !== j.cols) throw new Error(`the Jacobian is ${j.rows}x${j.cols}: f does not preserve dimension`);
  return logAbsDet(j.values, j.rows);
}
