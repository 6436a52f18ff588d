// The one small interface every invertible layer implements (cf. nflows' Transform,
// distrax's Bijector): forward and inverse each return the result and log|det J| per example.
import { tf, type Tensor } from '../tf.js';

export interface ForwardResult {
  y: Tensor;
  /** log|det ∂y/∂x| per example, shape [batch]. */
  logdet: Tensor;
}
export interface InverseResult {
  x: Tensor;
  /** log|det ∂x/∂y| per example, shape [batch]; equals minus the forward logdet. */
  logdet: Tensor;
}

/** A named variable: stable dotted names are what checkpoints store. */
export type NamedVariable = [name: string, variable: tf.Variable];

export interface Bijector {
  readonly name: string;
  forward(x: Tensor): ForwardResult;
  inverse(y: Tensor): InverseResult;
  /** Every variable (trainable and state), local names; containers prefix them. */
  variables(): NamedVariable[];
  /** Data-dependent initialisation from one batch (ActNorm). Absent when not needed. */
  initialize?(x: Tensor): void;
}
