// Numerical checks of invertible layers: reconstruction error, inverse-logdet consistency, and the
// brute-force Jacobian log|det| to compare a layer's analytic logdet with (tests and a layer audit).
import { tf, type Tensor } from '../tf.js';
import type { Bijector } from './bijector.js';
import { logAbsDet } from './linalg.js';

/**
 * The Jacobian of flatten(f(x)) with respect to flatten(x) for ONE example x = [1, ...], row-major
 * [output][input], in a single backward pass: the example is repeated once per output and row i of the
 * Jacobian is the gradient of output i of copy i. f must treat the examples of a batch independently.
 */
export function jacobian(f: (x: Tensor) => Tensor, x: Tensor): { values: Float32Array; rows: number; cols: number } {
  if (x.shape[0] !== 1) throw new Error(`jacobian needs a single example [1, ...], got [${x.shape}]`);
  const cols = x.size;
  const rows = tf.tidy(() => f(x).size);
  const grad = tf.tidy(() => {
    const xs = tf.tile(x, [rows, ...x.shape.slice(1).map(() => 1)]);
    const pick = tf.eye(rows);
    const g = tf.grad((batch: Tensor) => tf.sum(tf.mul(tf.reshape(f(batch), [rows, rows]), pick)));
    return tf.reshape(g(xs), [rows, cols]);
  });
  const values = grad.dataSync() as Float32Array;
  grad.dispose();
  return { values, rows, cols };
}

/** log|det J| of f at the single example x (f must preserve dimension), in float64. */
export function bruteForceLogAbsDet(f: (x: Tensor) => Tensor, x: Tensor): number {
  const j = jacobian(f, x);
  if (j.rows !== j.cols) throw new Error(`the Jacobian is ${j.rows}x${j.cols}: f does not preserve dimension`);
  return logAbsDet(j.values, j.rows);
}

export interface BijectorAudit {
  /** max |x - f^{-1}(f(x))| */
  reconstructionError: number;
  /** max |forward logdet + inverse logdet| over the batch */
  inverseLogdetError: number;
  /** max |forward logdet| over the batch (for scale) */
  maxLogdet: number;
}

/** Round-trips x through b and reports how exact the inverse and its logdet are. */
export function auditBijector(b: Bijector, x: Tensor): BijectorAudit {
  const stats = tf.tidy(() => {
    const fwd = b.forward(x);
    const inv = b.inverse(fwd.y);
    return tf.stack([
      tf.max(tf.abs(tf.sub(x, inv.x))),
      tf.max(tf.abs(tf.add(fwd.logdet, inv.logdet))),
      tf.max(tf.abs(fwd.logdet)),
    ]);
  });
  const [reconstructionError, inverseLogdetError, maxLogdet] = Array.from(stats.dataSync());
  stats.dispose();
  return { reconstructionError: reconstructionError!, inverseLogdetError: inverseLogdetError!, maxLogdet: maxLogdet! };
}
