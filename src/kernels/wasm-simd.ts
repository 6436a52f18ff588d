// Hand-assembled WebAssembly SIMD kernels for the two products that dominate training on wasm.
//
// Aᵀ·B with A [R, M] and B [R, N] both row-major and R large (every weight gradient: R is batch x
// pixels). tfjs can only run it as transpose(A) · B, paying a transpose of A and a repack of B
// (XNNPACK packs its right operand on every call): for a [12544,128] pair that is 3.5 + 4.4 ms around
// a 10 ms product. Here both operands are streamed in place, 4x8 output tiles in registers, over row
// chunks that stay in L2: ~8 ms for the same product (~50 GFLOP/s single-threaded). Optionally one
// more output row holds the column sums of B (a bias gradient for free).
//
// A·B (+ bias, ReLU) with a small B (weights, [K, N]): B is packed in JS into 8-column panels, A is
// streamed, 4x8 tiles: ~54 GFLOP/s against ~36-40 for the backend's matmul on [12544,128]x[128,128],
// and B may be given transposed at no cost (the packing reads it either way).
//
// The module is built byte by byte below (no toolchain is needed at build or run time) and imports
// the wasm backend's own memory, so it reads and writes tensors where they already live.
// Over 350 lines for a reason: the hand-assembled module is one unit: its bytes, the instruction
// builders and the kernels' loop nests are emitted together.

// ---- a minimal wasm encoder ----

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, bytes: number[]): number[] => [id, ...uleb(bytes.length), ...bytes];
const name = (t: string): number[] => vec([...Buffer.from(t)].map((x) => [x]));
const I32 = 0x7f;
const V128 = 0x7b;
const op = {
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  i32: (n: number) => [0x41, ...sleb(n)],
  add: [0x6a],
  mul: [0x6c],
  shl: [0x74],
  ne: [0x47],
  gtu: [0x4b],
  geu: [0x4f],
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (d: number) => [0x0c, ...uleb(d)],
  brIf: (d: number) => [0x0d, ...uleb(d)],
  // SIMD (0xfd prefix); memarg = alignment exponent, offset.
  v128Load: (offset: number) => [0xfd, ...uleb(0x00), 4, ...uleb(offset)],
  v128Store: (offset: number) => [0xfd, ...uleb(0x0b), 4, ...uleb(offset)],
  loadSplat32: (offset: number) => [0xfd, ...uleb(0x09), 2, ...uleb(offset)],
  f32x4Splat: [0xfd, ...uleb(0x13)],
  f32Const1: [0x43, 0x00, 0x00, 0x80, 0x3f],
  f32x4Add: [0xfd, ...uleb(0xe4)],
  f32x4Mul: [0xfd, ...uleb(0xe6)],
  f32x4Max: [0xfd, ...uleb(0xe9)],
  v128Zero: [0xfd, ...uleb(0x0c), ...new Array<number>(16).fill(0)],
  f32x4Gt: [0xfd, ...uleb(0x44)],
  v128And: [0xfd, ...uleb(0x4e)],
  if: [0x04, 0x40],
};

/**
 * tile(a, b, c, M, N, r0, r1, i0, i1, j0, j1): for the output block rows [i0, i1) in steps of mr and
 * columns [j0, j1) in steps of 4*nv, C[i, j] += Σ_{r0 <= r < r1} A[r, i] · B[r, j]. Pointers are
 * byte offsets; C is [*, N]. ones = true ignores A and uses 1 (column sums of B into row i0).
 */
function tileFunction(mr: number, nv: number, ones: boolean): number[] {
  const [A, B, C, M, N, R0, R1, I0, I1, J0, J1] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const [I, J, PA, PB, PC, SA, SB, PEND] = [11, 12, 13, 14, 15, 16, 17, 18];
  const ACC = 19;
  const BV = ACC + mr * nv;
  const AV = BV + nv;
  const code: number[] = [];
  const e = (...xs: number[][]) => xs.forEach((x) => code.push(...x));
  const rowPtr = (base: number, row: number, width: number, col: number) => e(op.get(base), op.get(row), op.get(width), op.mul, op.get(col), op.add, op.i32(2), op.shl, op.add);
  e(op.get(M), op.i32(2), op.shl, op.set(SA));
  e(op.get(N), op.i32(2), op.shl, op.set(SB));
  e(op.get(I0), op.set(I));
  e(op.block, op.loop);
  e(op.get(I), op.i32(mr), op.add, op.get(I1), op.gtu, op.brIf(1)); // while i + mr <= i1
  e(op.get(J0), op.set(J));
  e(op.block, op.loop);
  e(op.get(J), op.i32(4 * nv), op.add, op.get(J1), op.gtu, op.brIf(1)); // while j + 4nv <= j1
  rowPtr(C, I, N, J);
  e(op.set(PC));
  const accPtr = (i: number) => {
    e(op.get(PC));
    if (i > 0) e(op.get(SB), op.i32(i), op.mul, op.add);
  };
  for (let i = 0; i < mr; i++) {
    for (let h = 0; h < nv; h++) {
      accPtr(i);
      e(op.v128Load(16 * h), op.set(ACC + nv * i + h));
    }
  }
  rowPtr(A, R0, M, I);
  e(op.set(PA));
  rowPtr(B, R0, N, J);
  e(op.set(PB));
  rowPtr(B, R1, N, J);
  e(op.set(PEND));
  if (ones) e(op.f32Const1, op.f32x4Splat, op.set(AV));
  e(op.block, op.get(PB), op.get(PEND), op.geu, op.brIf(0), op.loop);
  for (let h = 0; h < nv; h++) e(op.get(PB), op.v128Load(16 * h), op.set(BV + h));
  for (let i = 0; i < mr; i++) {
    if (!ones) e(op.get(PA), op.loadSplat32(4 * i), op.set(AV));
    for (let h = 0; h < nv; h++) e(op.get(ACC + nv * i + h), op.get(AV), op.get(BV + h), op.f32x4Mul, op.f32x4Add, op.set(ACC + nv * i + h));
  }
  e(op.get(PA), op.get(SA), op.add, op.set(PA), op.get(PB), op.get(SB), op.add, op.set(PB));
  e(op.get(PB), op.get(PEND), op.ne, op.brIf(0));
  e(op.end, op.end);
  for (let i = 0; i < mr; i++) {
    for (let h = 0; h < nv; h++) {
      accPtr(i);
      e(op.get(ACC + nv * i + h), op.v128Store(16 * h));
    }
  }
  e(op.get(J), op.i32(4 * nv), op.add, op.set(J), op.br(0));
  e(op.end, op.end);
  e(op.get(I), op.i32(mr), op.add, op.set(I), op.br(0));
  e(op.end, op.end, op.end);
  const body = [...vec([[...uleb(8), I32], [...uleb(mr * nv + nv + 1), V128]]), ...code];
  return [...uleb(body.length), ...body];
}

/**
 * gemm(a, bp, c, K, N, r0, r1, j0, j1, bias, relu): C[r, j] = bias[j] + Σ_k A[r, k] Bp(k, j) for rows
 * [r0, r1) in steps of mr and columns [j0, j1) in steps of 4*nv, then max(., 0) when relu. A is
 * [*, K], C is [*, N]; Bp is B packed in column panels: the panel starting at column j holds rows
 * k = 0..K-1 of its 4*nv columns contiguously, at float offset j*K.
 */
function gemmFunction(mr: number, nv: number): number[] {
  const [A, BP, C, K, N, R0, R1, J0, J1, BIAS, RELU] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const [R, J, PB, PBEND, SA, SC, PC] = [11, 12, 13, 14, 15, 16, 17];
  const PA = 18; // one pointer per tile row
  const ACC = PA + mr;
  const BV = ACC + mr * nv;
  const AV = BV + nv;
  const ZERO = AV + 1;
  const code: number[] = [];
  const e = (...xs: number[][]) => xs.forEach((x) => code.push(...x));
  e(op.get(K), op.i32(2), op.shl, op.set(SA));
  e(op.get(N), op.i32(2), op.shl, op.set(SC));
  e(op.v128Zero, op.set(ZERO));
  e(op.get(J0), op.set(J));
  e(op.block, op.loop);
  e(op.get(J), op.i32(4 * nv), op.add, op.get(J1), op.gtu, op.brIf(1)); // while j + 4nv <= j1
  e(op.get(R0), op.set(R));
  e(op.block, op.loop);
  e(op.get(R), op.i32(mr), op.add, op.get(R1), op.gtu, op.brIf(1)); // while r + mr <= r1
  for (let i = 0; i < mr; i++) {
    for (let h = 0; h < nv; h++) e(op.get(BIAS), op.get(J), op.i32(2), op.shl, op.add, op.v128Load(16 * h), op.set(ACC + nv * i + h));
  }
  for (let i = 0; i < mr; i++) e(op.get(A), op.get(R), op.i32(i), op.add, op.get(SA), op.mul, op.add, op.set(PA + i));
  e(op.get(BP), op.get(J), op.get(K), op.mul, op.i32(2), op.shl, op.add, op.set(PB));
  e(op.get(PB), op.get(K), op.i32(16 * nv), op.mul, op.add, op.set(PBEND));
  e(op.block, op.get(PB), op.get(PBEND), op.geu, op.brIf(0), op.loop);
  for (let h = 0; h < nv; h++) e(op.get(PB), op.v128Load(16 * h), op.set(BV + h));
  for (let i = 0; i < mr; i++) {
    e(op.get(PA + i), op.loadSplat32(0), op.set(AV));
    for (let h = 0; h < nv; h++) e(op.get(ACC + nv * i + h), op.get(AV), op.get(BV + h), op.f32x4Mul, op.f32x4Add, op.set(ACC + nv * i + h));
    e(op.get(PA + i), op.i32(4), op.add, op.set(PA + i));
  }
  e(op.get(PB), op.i32(16 * nv), op.add, op.set(PB));
  e(op.get(PB), op.get(PBEND), op.ne, op.brIf(0));
  e(op.end, op.end);
  e(op.get(C), op.get(R), op.get(SC), op.mul, op.add, op.get(J), op.i32(2), op.shl, op.add, op.set(PC));
  e(op.get(RELU), op.if);
  for (let i = 0; i < mr; i++) for (let h = 0; h < nv; h++) e(op.get(ACC + nv * i + h), op.get(ZERO), op.f32x4Max, op.set(ACC + nv * i + h));
  e(op.end);
  for (let i = 0; i < mr; i++) {
    for (let h = 0; h < nv; h++) {
      e(op.get(PC));
      if (i > 0) e(op.get(SC), op.i32(i), op.mul, op.add);
      e(op.get(ACC + nv * i + h), op.v128Store(16 * h));
    }
  }
  e(op.get(R), op.i32(mr), op.add, op.set(R), op.br(0));
  e(op.end, op.end);
  e(op.get(J), op.i32(4 * nv), op.add, op.set(J), op.br(0));
  e(op.end, op.end, op.end);
  const body = [...vec([[...uleb(7 + mr), I32], [...uleb(mr * nv + nv + 2), V128]]), ...code];
  return [...uleb(body.length), ...body];
}

/** The tile variants: name, rows per tile, vectors (of 4 columns) per tile, ones. */
const TILES: Array<[string, number, number, boolean]> = [
  ['t4x8', 4, 2, false],
  ['t1x8', 1, 2, false],
  ['t4x4', 4, 1, false],
  ['t1x4', 1, 1, false],
  ['s8', 1, 2, true],
  ['s4', 1, 1, true],
];

/** reluGrad(dy, y, out, n): out = dy where y > 0, else 0, for n floats (n % 4 == 0). */
function reluGradFunction(): number[] {
  const [DY, Y, OUT, N] = [0, 1, 2, 3];
  const [I, END] = [4, 5];
  const ZERO = 6;
  const code: number[] = [];
  const e = (...xs: number[][]) => xs.forEach((x) => code.push(...x));
  e(op.v128Zero, op.set(ZERO));
  e(op.i32(0), op.set(I));
  e(op.get(N), op.i32(2), op.shl, op.set(END));
  e(op.block, op.get(I), op.get(END), op.geu, op.brIf(0), op.loop);
  e(op.get(OUT), op.get(I), op.add);
  e(op.get(DY), op.get(I), op.add, op.v128Load(0));
  e(op.get(Y), op.get(I), op.add, op.v128Load(0), op.get(ZERO), op.f32x4Gt);
  e(op.v128And, op.v128Store(0));
  e(op.get(I), op.i32(16), op.add, op.set(I));
  e(op.get(I), op.get(END), op.ne, op.brIf(0));
  e(op.end, op.end, op.end);
  const body = [...vec([[...uleb(2), I32], [...uleb(1), V128]]), ...code];
  return [...uleb(body.length), ...body];
}

/** The gemm variants: name, rows per tile, vectors per tile. */
const GEMMS: Array<[string, number, number]> = [
  ['g4x8', 4, 2],
  ['g1x8', 1, 2],
  ['g4x4', 4, 1],
  ['g1x4', 1, 1],
];

function moduleBytes(): Uint8Array<ArrayBuffer> {
  // Type 0: 11 i32 -> (); type 1: 4 i32 -> ().
  const i32s = (k: number) => Array.from({ length: k }, () => [I32]);
  const type = section(1, vec([[0x60, ...vec(i32s(11)), ...vec([])], [0x60, ...vec(i32s(4)), ...vec([])]]));
  const imports = section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(0)]]));
  const names = [...TILES.map(([n]) => n), ...GEMMS.map(([n]) => n), 'reluGrad'];
  const types = [...TILES.map(() => 0), ...GEMMS.map(() => 0), 1];
  const funcs = section(3, vec(types.map((t) => uleb(t))));
  const exports = section(7, vec(names.map((n, i) => [...name(n), 0x00, ...uleb(i)])));
  const bodies = [...TILES.map(([, mr, nv, ones]) => tileFunction(mr, nv, ones)), ...GEMMS.map(([, mr, nv]) => gemmFunction(mr, nv)), reluGradFunction()];
  const code = section(10, vec(bodies));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...type, ...imports, ...funcs, ...exports, ...code]);
}

type Tile = (a: number, b: number, c: number, m: number, n: number, r0: number, r1: number, i0: number, i1: number, j0: number, j1: number) => void;
type Elementwise = (dy: number, y: number, out: number, n: number) => void;

let compiled: WebAssembly.Module | null = null;
let supported: boolean | null = null;

/** Whether this JavaScript engine runs the kernels (WebAssembly SIMD). */
export function simdSupported(): boolean {
  supported ??= WebAssembly.validate(moduleBytes());
  return supported;
}
const instances = new WeakMap<WebAssembly.Memory, Record<string, Tile>>();

/** The kernel's functions bound to a wasm memory (one instance per memory, i.e. per backend). */
export function simdKernels(memory: WebAssembly.Memory): Record<string, Tile> {
  let k = instances.get(memory);
  if (!k) {
    compiled ??= new WebAssembly.Module(moduleBytes());
    k = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as Record<string, Tile>;
    instances.set(memory, k);
  }
  return k;
}

/** Rows per pass: both operands' chunk stays in L2 while every output tile sweeps it. */
const CHUNK_ROWS = 128;

/**
 * C [M (+1), N] = Aᵀ·B (plus a last row of B's column sums when withSums) for A at byte offset a
 * ([R, M]), B at b ([R, N]), C at c; N must be a multiple of 4. C is overwritten.
 */
export function matMulTransposedA(memory: WebAssembly.Memory, a: number, b: number, c: number, r: number, m: number, n: number, withSums: boolean): void {
  const k = simdKernels(memory);
  new Float32Array(memory.buffer, c, (m + (withSums ? 1 : 0)) * n).fill(0);
  const m4 = m - (m % 4);
  const n8 = n - (n % 8);
  const sumRow = c + m * n * 4;
  for (let r0 = 0; r0 < r; r0 += CHUNK_ROWS) {
    const r1 = Math.min(r, r0 + CHUNK_ROWS);
    k.t4x8!(a, b, c, m, n, r0, r1, 0, m4, 0, n8);
    if (m4 < m) k.t1x8!(a, b, c, m, n, r0, r1, m4, m, 0, n8);
    if (n8 < n) {
      k.t4x4!(a, b, c, m, n, r0, r1, 0, m4, n8, n);
      if (m4 < m) k.t1x4!(a, b, c, m, n, r0, r1, m4, m, n8, n);
    }
    if (withSums) {
      // The sums tile writes "row 0" of a C that starts at the sums row.
      k.s8!(a, b, sumRow, m, n, r0, r1, 0, 1, 0, n8);
      if (n8 < n) k.s4!(a, b, sumRow, m, n, r0, r1, 0, 1, n8, n);
    }
  }
}

/**
 * Packs B for gemm: 8-column panels (a 4-column one when N % 8 == 4), each K rows deep. B is [K, N],
 * or [N, K] when transposed (then the packing is the transpose).
 */
export function packB(b: Float32Array, k: number, n: number, transposed: boolean, out: Float32Array): void {
  for (let j0 = 0; j0 < n; j0 += 8) {
    const w = Math.min(8, n - j0);
    const base = j0 * k;
    for (let kk = 0; kk < k; kk++) {
      const row = base + kk * w;
      if (transposed) for (let t = 0; t < w; t++) out[row + t] = b[(j0 + t) * k + kk]!;
      else for (let t = 0; t < w; t++) out[row + t] = b[kk * n + j0 + t]!;
    }
  }
}

/**
 * C [R, N] = A [R, K] · B + bias (then ReLU) with B already packed (packB) at byte offset bp and the
 * bias ([N] floats) at byte offset bias. N must be a multiple of 4.
 */
export function gemm(memory: WebAssembly.Memory, a: number, bp: number, c: number, r: number, k: number, n: number, bias: number, relu: boolean): void {
  const f = simdKernels(memory);
  const r4 = r - (r % 4);
  const n8 = n - (n % 8);
  const rl = relu ? 1 : 0;
  for (let r0 = 0; r0 < r4; r0 += GEMM_CHUNK_ROWS) {
    const r1 = Math.min(r4, r0 + GEMM_CHUNK_ROWS);
    f.g4x8!(a, bp, c, k, n, r0, r1, 0, n8, bias, rl);
    if (n8 < n) f.g4x4!(a, bp, c, k, n, r0, r1, n8, n, bias, rl);
  }
  if (r4 < r) {
    f.g1x8!(a, bp, c, k, n, r4, r, 0, n8, bias, rl);
    if (n8 < n) f.g1x4!(a, bp, c, k, n, r4, r, n8, n, bias, rl);
  }
}

/** Rows per gemm pass: the A rows stay in L1/L2 while every column panel sweeps them. */
const GEMM_CHUNK_ROWS = 64;

/** out = dy where y > 0, else 0 (a ReLU's gradient from its output), n floats at byte offsets. */
export function reluGrad(memory: WebAssembly.Memory, dy: number, y: number, out: number, n: number): void {
  const f = simdKernels(memory) as unknown as { reluGrad: Elementwise };
  const n4 = n - (n % 4);
  f.reluGrad(dy, y, out, n4);
  if (n4 < n) {
    const v = new Float32Array(memory.buffer);
    for (let i = n4; i < n; i++) v[out / 4 + i] = v[y / 4 + i]! > 0 ? v[dy / 4 + i]! : 0;
  }
}
