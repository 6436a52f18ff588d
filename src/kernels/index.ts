// Which Ops each backend runs: the CPU fast paths on wasm and cpu, stock tf kernels everywhere else
// (webgpu, tensorflow). Imported once by src/tf.ts, so every model sees its backend's Ops.
import { registerOps, setDefaultOps } from './ops.js';
import { stockOps } from './stock.js';
import { fastOps } from './fast.js';

setDefaultOps(stockOps);
registerOps('wasm', fastOps);
registerOps('cpu', fastOps);

export { ops, type Ops, type Activation, type AdamOptions, type LuFactors } from './ops.js';
