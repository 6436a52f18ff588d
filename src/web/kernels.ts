// The page's Ops registration, put in place of src/kernels/index.ts by the web bundle (scripts/build-web.ts):
// stock tf kernels on every backend. The CLI's fast paths for wasm/cpu drive Node's wasm backend internals
// and our own SIMD module; in the browser webgpu, webgl, wasm and cpu all run the stock ops as they are.
import { setDefaultOps } from '../kernels/ops.js';
import { stockOps } from '../kernels/stock.js';

setDefaultOps(stockOps);

export { ops, type Ops, type Activation, type AdamOptions } from '../kernels/ops.js';
