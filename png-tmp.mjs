import sharp from 'sharp';
import { loadDataset, parseDataSpec } from './dist/src/data/index.js';
const data = await loadDataset(parseDataSpec(process.argv[2]));
const split = data.test; const [h, w, c] = data.shape; const dims = h*w*c;
const n = Math.min(split.n, Number(process.argv[3] ?? 2000));
const r = {};
for (const [name, enc] of Object.entries({
  png9: (i) => i.png({ compressionLevel: 9, adaptiveFiltering: true, palette: false }),
  png9e10: (i) => i.png({ compressionLevel: 9, effort: 10, adaptiveFiltering: true, palette: false }),
  png9nofilter: (i) => i.png({ compressionLevel: 9, adaptiveFiltering: false, palette: false }),
  webp6: (i) => i.webp({ lossless: true, effort: 6 }),
})) {
  let bytes = 0;
  for (let k = 0; k < n; k++) {
    const px = Buffer.from(split.x.subarray(k*dims, (k+1)*dims));
    let img = sharp(px, { raw: { width: w, height: h, channels: c } });
    if (c <= 2) img = img.toColourspace('b-w');
    bytes += (await enc(img).toBuffer()).length;
  }
  r[name] = (bytes*8/(n*dims)).toFixed(3);
}
console.log(process.argv[2], n, JSON.stringify(r));
