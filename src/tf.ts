// The one place the project imports TensorFlow.js from. tfjs-core's Node build registers no
// gradient functions; the @tensorflow/tfjs umbrella does (src/backend/gradients.ts), and every
// backend package resolves to this same tfjs-core 4.22.0.
import * as tf from '@tensorflow/tfjs-core';
import './backend/gradients.js';
export { tf };
export type Tensor = tf.Tensor;
export type Variable = tf.Variable;
