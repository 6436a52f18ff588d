// Rewrites README.md's config reference block (between the config-reference markers) from the schema.
// Usage: node dist/scripts/gen-config-docs.js [README.md]   (--check: exit 1 if it is out of date)
import { readFileSync } from 'node:fs';
import { updateReadme } from '../src/config/docs.js';
import { atomicWriteFile } from '../src/io/atomic.js';

const args = process.argv.slice(2);
const check = args.includes('--check');
const file = args.find((a) => !a.startsWith('--')) ?? 'README.md';
const before = readFileSync(file, 'utf8');
let after: string;
try {
  after = updateReadme(before);
} catch (e) {
  console.error(`${file}: ${(e as Error).message}`);
  process.exit(2);
}
if (check) {
  if (after !== before) {
    console.error(`${file}: config reference is out of date; run node dist/scripts/gen-config-docs.js`);
    process.exit(1);
  }
  console.log(`${file}: config reference is up to date`);
} else if (after === before) {
  console.log(`${file}: config reference already up to date`);
} else {
  atomicWriteFile(file, after);
  console.log(`${file}: config reference updated`);
}
