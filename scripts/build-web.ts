// `npm run build` step 2: bundles the page of `flow export --web` (src/web/app.ts and the flow code it
// imports, shared with the CLI) with esbuild into dist/web/, beside index.html and tfjs-backend-wasm's
// .wasm files, so an export copies one folder and the page loads nothing from elsewhere.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEB_DIST = path.join(ROOT, 'dist', 'web');

/**
 * The page registers stock ops on every backend (src/web/kernels.ts) in place of the CLI's registration,
 * and Node built-ins (reached only through Node-side helpers of shared modules, e.g. the PNG writer of
 * src/plot, never called by the page) become a stub that throws if anything does call them.
 */
const browserPlugin: Plugin = {
  name: 'flow-browser',
  setup(b) {
    const kernelsIndex = path.join(ROOT, 'src', 'kernels', 'index.ts');
    b.onResolve({ filter: /kernels\/index\.js$/ }, (args) => {
      const target = path.resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts'));
      return target === kernelsIndex ? { path: path.join(ROOT, 'src', 'web', 'kernels.ts') } : undefined;
    });
    b.onResolve({ filter: /^(node:.*|sharp|fs|path|os|crypto|worker_threads|perf_hooks|util)$/ }, (args) => ({ path: args.path, namespace: 'node-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, (args) => ({
      contents: `module.exports = new Proxy({}, { get: (_, k) => k === '__esModule' ? false : () => { throw new Error(${JSON.stringify(`${args.path} is not available in the browser`)} + ': ' + String(k)); } });`,
      loader: 'js',
    }));
  },
};

export async function buildWeb(opts: { quiet?: boolean } = {}): Promise<void> {
  fs.mkdirSync(path.join(WEB_DIST, 'tfjs'), { recursive: true });
  const result = await build({
    entryPoints: [path.join(ROOT, 'src', 'web', 'app.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    outfile: path.join(WEB_DIST, 'app.js'),
    plugins: [browserPlugin],
    logLevel: opts.quiet ? 'error' : 'warning',
    metafile: true,
  });
  fs.copyFileSync(path.join(ROOT, 'src', 'web', 'index.html'), path.join(WEB_DIST, 'index.html'));
  // The wasm backend fetches these at run time from setWasmPaths (tfjs/ beside index.html).
  const wasmDir = path.join(ROOT, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
  for (const f of fs.readdirSync(wasmDir).filter((f) => f.endsWith('.wasm'))) fs.copyFileSync(path.join(wasmDir, f), path.join(WEB_DIST, 'tfjs', f));
  if (!opts.quiet) {
    const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
    process.stdout.write(`web bundle: ${path.relative(ROOT, WEB_DIST)}/app.js (${(bytes / 2 ** 20).toFixed(2)} MiB)\n`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildWeb();
}
