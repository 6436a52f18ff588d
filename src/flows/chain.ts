// Composition: Chain runs its layers in order (inverse in reverse order) and sums their logdets;
// Inverse swaps a bijector's directions.
import { tf, type Tensor } from '../tf.js';
import { type Bijector, type ForwardResult, type InverseResult, type NamedVariable, prefixed } from './bijector.js';

export class Chain implements Bijector {
  constructor(
    readonly name: string,
    readonly layers: Bijector[],
  ) {
    const seen = new Set<string>();
    for (const l of layers) {
      if (seen.has(l.name)) throw new Error(`chain '${name}': two layers are named '${l.name}'`);
      seen.add(l.name);
    }
  }

  forward(x: Tensor): ForwardResult {
    let y = x;
    let logdet: Tensor | null = null;
    for (const l of this.layers) {
      const r = l.forward(y);
      y = r.y;
      logdet = logdet ? tf.add(logdet, r.logdet) : r.logdet;
    }
    return { y, logdet: logdet ?? tf.zeros([x.shape[0]!]) };
  }

  inverse(y: Tensor): InverseResult {
    let x = y;
    let logdet: Tensor | null = null;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const r = this.layers[i]!.inverse(x);
      x = r.x;
      logdet = logdet ? tf.add(logdet, r.logdet) : r.logdet;
    }
    return { x, logdet: logdet ?? tf.zeros([y.shape[0]!]) };
  }

  variables(): NamedVariable[] {
    return this.layers.flatMap((l) => prefixed(l.name, l.variables()));
  }

  /** Initialises every layer that needs data on the input it actually sees (each layer after its predecessors). */
  initialize(x: Tensor): void {
    tf.tidy(() => {
      this.initializeThrough(x);
    });
  }

  /** initialize() that also returns the chain's output, so nested chains run forward once. Call inside tidy. */
  initializeThrough(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) {
      if (l instanceof Chain) h = l.initializeThrough(h);
      else {
        l.initialize?.(h);
        h = l.forward(h).y;
      }
    }
    return h;
  }

  /** The leaf layers in order with their full dotted names (prefix + nested chain names). */
  leaves(prefix = this.name): Array<{ name: string; bijector: Bijector }> {
    return this.layers.flatMap((l) => {
      const name = prefix ? `${prefix}.${l.name}` : l.name;
      return l instanceof Chain ? l.leaves(name) : [{ name, bijector: l }];
    });
  }
}

/** The inverse of a bijector: forward is its inverse and vice versa; shares its variables. */
export class Inverse implements Bijector {
  readonly name: string;
  constructor(
    readonly inner: Bijector,
    name?: string,
  ) {
    this.name = name ?? `inverse_${inner.name}`;
  }
  forward(x: Tensor): ForwardResult {
    const r = this.inner.inverse(x);
    return { y: r.x, logdet: r.logdet };
  }
  inverse(y: Tensor): InverseResult {
    const r = this.inner.forward(y);
    return { x: r.y, logdet: r.logdet };
  }
  variables(): NamedVariable[] {
    return this.inner.variables();
  }
}
