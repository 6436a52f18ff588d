// The one place the project imports TensorFlow.js from; every backend package resolves to this same
// tfjs-core 4.22.0. tfjs-core's Node bundle (tf-core.node.js) registers no gradient functions: only the
// @tensorflow/tfjs umbrella does (tfjs-core's own register_all_gradients is an extensionless ESM tree Node
// cannot load), and without it tf.grad/variableGrads throw "gradient function not found for Sum".
// Costs ~130 ms at start-up.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
export { tf };
export type Tensor = tf.Tensor;
export type Variable = tf.Variable;
