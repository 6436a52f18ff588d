// Composition: Chain runs its layers in order (inverse in reverse order), sums their logdets and passes
// the context to each; built with an input shape it checks every layer's shape then and there, so a
// mismatch names the layer instead of failing in a kernel later. Inverse swaps a bijector's directions.
import { tf, type Tensor } from '../tf.js';
import { type Bijector, type ForwardResult, type InverseResult, type NamedVariable, ShapeError, prefixed } from './bijector.js';

export interface Leaf {
  /** Full dotted name: the chain's prefix, nested chain names, the layer's name. */
  name: string;
  bijector: Bijector;
  /** Per-example shape the layer receives. */
  inputShape: number[];
}

export class Chain implements Bijector {
  constructor(
    readonly name: string,
    readonly layers: Bijector[],
    /** When given, every layer's shape is checked now (see outputShape). */
    inputShape?: readonly number[],
  ) {
    const seen = new Set<string>();
    for (const l of layers) {
      if (seen.has(l.name)) throw new Error(`chain '${name}': two layers are named '${l.name}'`);
      seen.add(l.name);
    }
    if (inputShape) this.outputShape(inputShape);
  }

  forward(x: Tensor, context?: Tensor): ForwardResult {
    let y = x;
    let logdet: Tensor | null = null;
    for (const l of this.layers) {
      const r = l.forward(y, context);
      y = r.y;
      logdet = logdet ? tf.add(logdet, r.logdet) : r.logdet;
    }
    return { y, logdet: logdet ?? tf.zeros([x.shape[0]!]) };
  }

  inverse(y: Tensor, context?: Tensor): InverseResult {
    let x = y;
    let logdet: Tensor | null = null;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const r = this.layers[i]!.inverse(x, context);
      x = r.x;
      logdet = logdet ? tf.add(logdet, r.logdet) : r.logdet;
    }
    return { x, logdet: logdet ?? tf.zeros([y.shape[0]!]) };
  }

  /** Every layer's output shape in turn; a layer that cannot take its input throws a ShapeError with its dotted name. */
  outputShape(inputShape: readonly number[]): number[] {
    let shape = [...inputShape];
    for (const l of this.layers) {
      try {
        shape = l.outputShape(shape);
      } catch (e) {
        if (e instanceof ShapeError) throw new ShapeError(`${this.name}.${e.layer}`, e.detail);
        throw new ShapeError(`${this.name}.${l.name}`, (e as Error).message);
      }
    }
    return shape;
  }

  variables(): NamedVariable[] {
    return this.layers.flatMap((l) => prefixed(l.name, l.variables()));
  }

  /** Initialises every layer that needs data on the input it actually sees (each layer after its predecessors). */
  initialize(x: Tensor, context?: Tensor): void {
    tf.tidy(() => {
      this.initializeThrough(x, context);
    });
  }

  /** initialize() that also returns the chain's output, so nested chains run forward once. Call inside tidy. */
  initializeThrough(x: Tensor, context?: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) {
      if (l instanceof Chain) h = l.initializeThrough(h, context);
      else {
        l.initialize?.(h, context);
        h = l.forward(h, context).y;
      }
    }
    return h;
  }

  /** The leaf layers in order with their full dotted names (prefix + nested chain names) and input shapes. */
  leaves(inputShape: readonly number[], prefix = this.name): Leaf[] {
    const out: Leaf[] = [];
    let shape = [...inputShape];
    for (const l of this.layers) {
      const name = prefix ? `${prefix}.${l.name}` : l.name;
      if (l instanceof Chain) out.push(...l.leaves(shape, name));
      else out.push({ name, bijector: l, inputShape: shape });
      shape = l.outputShape(shape);
    }
    return out;
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
  forward(x: Tensor, context?: Tensor): ForwardResult {
    const r = this.inner.inverse(x, context);
    return { y: r.x, logdet: r.logdet };
  }
  inverse(y: Tensor, context?: Tensor): InverseResult {
    const r = this.inner.forward(y, context);
    return { x: r.y, logdet: r.logdet };
  }
  /** Only shape-preserving layers invert here: a bijector says its output shape, not the input shape for an output. */
  outputShape(inputShape: readonly number[]): number[] {
    const out = this.inner.outputShape(inputShape);
    if (out.length !== inputShape.length || out.some((d, i) => d !== inputShape[i])) {
      throw new Error(`the inverse of ${this.inner.name} ([${inputShape}] -> [${out}]) changes the shape, which Inverse cannot follow`);
    }
    return out;
  }
  variables(): NamedVariable[] {
    return this.inner.variables();
  }
}
