// Test checks of invertible layers: reconstruction error, inverse-logdet consistency, and the brute-force
// Jacobian log|det| to compare a layer's analytic logdet with, built from `flow check`'s own Jacobian rows
// (src/audit/jacobian.ts) but read synchronously, as the cpu backend the tests use allows.
import { tf, type Tensor } from '../src/tf.js';
import type { Bijector } from '../src/flows/bijector.js';
import { logAbsDet } from '../src/linalg.js';
import { jacobianRows, jacobianSize } from '../src/audit/jacobian.js';

/** log|det J| of f at the single example x (f must preserve dimension), in float64. */
export function bruteForceLogAbsDet(f: (x: Tensor) => Tensor, x: Tensor): number {
  const rows = jacobianSize(f, x);
  if (rows !== x.size) throw new Error(`the Jacobian is ${rows}x${x.size}: f does not preserve dimension`);
  const block = jacobianRows(f, x, 0, rows);
  const values = block.dataSync() as Float32Array;
  block.dispose();
  return logAbsDet(values, rows);
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
