// The full Jacobian of a dimension-preserving map at one example, in row chunks so a deep image flow
// (hundreds of dimensions) never holds hundreds of copies of its activations at once, and the
// brute-force log|det J| it gives (float64 LU) to hold a model's analytic logdet against.
import { tf, type Tensor } from '../tf.js';
import { logAbsDet } from '../flows/linalg.js';

/**
 * J[i][j] = d f(x)_i / d x_j for ONE example x = [1, ...], f mapping [B, ...] -> [B, D] per example
 * independently. Rows come `chunk` at a time: chunk copies of x go through f once and copy k's gradient
 * is row (start + k), picked by a 0/1 weight on the outputs.
 */
export async function chunkedJacobian(f: (x: Tensor) => Tensor, x: Tensor, chunk = 64): Promise<{ values: Float64Array; rows: number; cols: number }> {
  if (x.shape[0] !== 1) throw new Error(`jacobian needs a single example [1, ...], got [${x.shape}]`);
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`jacobian chunk must be a positive integer, got ${chunk}`);
  const cols = x.size;
  const rows = tf.tidy(() => f(x).shape[1]!);
  const values = new Float64Array(rows * cols);
  for (let start = 0; start < rows; start += chunk) {
    const k = Math.min(chunk, rows - start);
    const block = tf.tidy(() => {
      const xs = tf.tile(x, [k, ...x.shape.slice(1).map(() => 1)]);
      const pick = new Float32Array(k * rows);
      for (let j = 0; j < k; j++) pick[j * rows + start + j] = 1;
      const weights = tf.tensor2d(pick, [k, rows]);
      const g = tf.grad((batch: Tensor) => tf.sum(tf.mul(f(batch), weights)));
      return tf.reshape(g(xs), [k, cols]);
    });
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
