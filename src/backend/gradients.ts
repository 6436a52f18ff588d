// tfjs-core's Node bundle (tf-core.node.js) registers no gradient functions: they are only
// registered by the @tensorflow/tfjs umbrella (tfjs-core's own register_all_gradients is an
// extensionless ESM tree Node cannot load). Without this import tf.grad/variableGrads throw
// "gradient function not found for Sum". Costs ~130 ms at start-up; imported by select.ts and ops.ts.
import '@tensorflow/tfjs';
