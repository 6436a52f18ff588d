// Convolution and matmul entry points used by every layer. Kept here so the backend-specific
// fast paths (custom gradients for wasm, which lacks Conv2DBackpropFilter) live in one place.
import { tf, type Tensor } from '../tf.js';

/** Stride-1 'same' 2-D convolution, NHWC input, HWIO filter. */
export function conv2d(x: Tensor, filter: Tensor): Tensor {
  return tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same');
}

/** Plain [m,k] x [k,n] matmul. */
export function matMul(a: Tensor, b: Tensor): Tensor {
  return tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D);
}
