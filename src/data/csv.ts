// Numeric CSV -> float32 vectors. The delimiter (comma, semicolon or tab) comes from the first
// line; that line is a header when any of its cells is not a number.
import fs from 'node:fs';
import { dataError, statOrThrow } from './common.js';

function parseCell(cell: string): number {
  let s = cell.trim();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1).trim();
  if (s === '') return NaN;
  const v = Number(s);
  return Number.isFinite(v) ? v : NaN;
}

export function parseCsv(text: string, file: string): { x: Float32Array; n: number; dims: number; header?: string[] } {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let first = lines.findIndex((l) => l.trim() !== '');
  if (first < 0) throw dataError(file, 'is empty, expected rows of numbers');
  const firstLine = lines[first]!;
  const delimiter = firstLine.includes(',') ? ',' : firstLine.includes('\t') ? '\t' : firstLine.includes(';') ? ';' : ',';
  let header: string[] | undefined;
  const firstCells = firstLine.split(delimiter);
  if (firstCells.some((c) => Number.isNaN(parseCell(c)))) {
    header = firstCells.map((c) => c.trim());
    first++;
  }
  const dims = firstCells.length;
  const values: number[] = [];
  let n = 0;
  for (let li = first; li < lines.length; li++) {
    const line = lines[li]!;
    if (line.trim() === '') continue;
    const cells = line.split(delimiter);
    if (cells.length !== dims) throw dataError(file, `line ${li + 1} has ${cells.length} columns, expected ${dims}`);
    for (let c = 0; c < dims; c++) {
      const v = parseCell(cells[c]!);
      if (Number.isNaN(v)) throw dataError(file, `line ${li + 1}, column ${c + 1}: '${cells[c]!.trim()}' is not a finite number, expected numeric cells`);
      values.push(v);
    }
    n++;
  }
  if (n === 0) throw dataError(file, 'has a header but no data rows, expected rows of numbers');
  return { x: Float32Array.from(values), n, dims, ...(header ? { header } : {}) };
}

export function readCsv(file: string): { x: Float32Array; n: number; dims: number; header?: string[] } {
  const stat = statOrThrow(file, 'a CSV file of numbers');
  if (!stat.isFile()) throw dataError(file, 'is a directory, expected a CSV file of numbers');
  return parseCsv(fs.readFileSync(file, 'utf8'), file);
}
