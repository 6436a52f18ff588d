// The one place the project imports TensorFlow.js from. tfjs-core (not the @tensorflow/tfjs
// umbrella) keeps start-up fast; every backend package resolves to this same tfjs-core 4.22.0.
import * as tf from '@tensorflow/tfjs-core';
export { tf };
export type Tensor = tf.Tensor;
export type Variable = tf.Variable;
