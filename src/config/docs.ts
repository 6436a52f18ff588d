// Reads the zod config schema back as data: the README's config reference table and the
// "expected ..." half of every config error come from here, so they cannot drift from the schema.
import type { z } from 'zod';
import { ConfigSchema } from './schema.js';

export const README_MARKERS = {
  start: '<!-- config-reference:start -->',
  end: '<!-- config-reference:end -->',
} as const;

type AnySchema = z.core.$ZodType;

export interface FieldInfo {
  /** Dotted key path, e.g. 'model.depth'. */
  path: string;
  /** The schema with the default/optional wrappers removed. */
  schema: AnySchema;
  /** The field as declared (with its default wrapper), for safeParse. */
  declared: AnySchema;
  defaultValue: unknown;
  description: string;
}

/** Strips .default()/.optional() wrappers (and a .transform() after the value's schema) to reach the value's own schema. */
export function unwrap(schema: AnySchema): AnySchema {
  let s = schema;
  for (;;) {
    const def = s._zod.def as { type: string; innerType?: AnySchema; in?: AnySchema };
    if ((def.type === 'default' || def.type === 'optional' || def.type === 'prefault') && def.innerType) s = def.innerType;
    // A normalising transform (e.g. learn_top: true -> 'position'): what the user may write is its input.
    else if (def.type === 'pipe' && def.in && def.in._zod.def.type !== 'transform') s = def.in;
    else return s;
  }
}

export function isSection(schema: AnySchema): boolean {
  return unwrap(schema)._zod.def.type === 'object';
}

/** The fields of an object schema (sections or leaves), in declaration order. */
export function shapeOf(schema: AnySchema): Record<string, AnySchema> {
  const inner = unwrap(schema);
  if (inner._zod.def.type !== 'object') throw new Error('shapeOf: not an object schema');
  return (inner._zod.def as unknown as { shape: Record<string, AnySchema> }).shape;
}

function descriptionOf(schema: AnySchema): string {
  return (schema as unknown as { description?: string }).description ?? '';
}

function defaultOf(schema: AnySchema): unknown {
  const def = schema._zod.def as { type: string; defaultValue?: unknown };
  return def.type === 'default' ? def.defaultValue : undefined;
}

/** Every leaf option of the config in declaration order (sections flattened to dotted paths). */
export function configFields(root: AnySchema = ConfigSchema): FieldInfo[] {
  const out: FieldInfo[] = [];
  const walk = (obj: AnySchema, prefix: string): void => {
    for (const [key, field] of Object.entries(shapeOf(obj))) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (isSection(field)) walk(field, path);
      else out.push({ path, schema: unwrap(field), declared: field, defaultValue: defaultOf(field), description: descriptionOf(field) });
    }
  };
  walk(root, '');
  return out;
}

/** Section paths and their leaf keys, for "did you mean" suggestions across levels. */
export function sectionKeys(root: AnySchema = ConfigSchema): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const walk = (obj: AnySchema, prefix: string): void => {
    const shape = shapeOf(obj);
    out.set(prefix, Object.keys(shape));
    for (const [key, field] of Object.entries(shape)) if (isSection(field)) walk(field, prefix ? `${prefix}.${key}` : key);
  };
  walk(root, '');
  return out;
}

interface Bound {
  value: number;
  inclusive: boolean;
}

function numberFacts(schema: AnySchema): { int: boolean; min?: Bound; max?: Bound } {
  const checks = ((schema._zod.def as { checks?: Array<{ _zod: { def: Record<string, unknown> } }> }).checks ?? []).map((c) => c._zod.def);
  let int = false;
  let min: Bound | undefined;
  let max: Bound | undefined;
  for (const c of checks) {
    if (c.check === 'number_format' && typeof c.format === 'string' && /int/.test(c.format)) int = true;
    if (c.check === 'greater_than') min = { value: c.value as number, inclusive: c.inclusive as boolean };
    if (c.check === 'less_than') max = { value: c.value as number, inclusive: c.inclusive as boolean };
  }
  return { int, min, max };
}

function stringRule(schema: AnySchema): string | null {
  const checks = ((schema._zod.def as { checks?: Array<{ _zod: { def: Record<string, unknown> } }> }).checks ?? []).map((c) => c._zod.def);
  for (const c of checks) {
    if (c.check === 'string_format' && c.format === 'regex') {
      // A custom message given to .regex() is the human wording of the rule; else show the pattern.
      const err = c.error as ((iss: unknown) => unknown) | undefined;
      const msg = typeof err === 'function' ? err({}) : undefined;
      return typeof msg === 'string' ? msg : `matching ${String(c.pattern)}`;
    }
  }
  return null;
}

function literalValues(schema: AnySchema): unknown[] | null {
  const def = schema._zod.def as { type: string; options?: AnySchema[]; values?: unknown[]; entries?: Record<string, unknown> };
  if (def.type === 'enum' && def.entries) return Object.values(def.entries);
  if (def.type === 'literal' && def.values) return [...def.values];
  if (def.type === 'union' && def.options) {
    const all: unknown[] = [];
    for (const o of def.options) {
      const v = literalValues(unwrap(o));
      if (!v) return null;
      all.push(...v);
    }
    return all;
  }
  return null;
}

function showLiteral(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : String(v);
}

function rangeText(f: { min?: Bound; max?: Bound }): string {
  const { min, max } = f;
  if (min && max && min.inclusive && max.inclusive) return ` in [${min.value}, ${max.value}]`;
  const parts: string[] = [];
  if (min) parts.push(`${min.inclusive ? '>=' : '>'} ${min.value}`);
  if (max) parts.push(`${max.inclusive ? '<=' : '<'} ${max.value}`);
  return parts.length ? ' ' + parts.join(' and ') : '';
}

/** What a value must be, as a phrase for "expected ...": 'an integer >= 1', "one of 'glow', 'realnvp', 'nice'". */
export function expectedText(schema: AnySchema): string {
  const s = unwrap(schema);
  const type = s._zod.def.type;
  const lits = literalValues(s);
  if (lits) return lits.length === 1 ? showLiteral(lits[0]) : `one of ${lits.map(showLiteral).join(', ')}`;
  if (type === 'number') {
    const f = numberFacts(s);
    return (f.int ? 'an integer' : 'a number') + rangeText(f);
  }
  if (type === 'boolean') return 'true or false';
  if (type === 'string') {
    const rule = stringRule(s);
    return rule ? `a string (${rule})` : 'a string';
  }
  if (type === 'object') return 'a mapping of options';
  return type;
}

/** The same as expectedText, shortened for the reference table's Type column. */
export function typeText(schema: AnySchema): string {
  const s = unwrap(schema);
  const type = s._zod.def.type;
  const lits = literalValues(s);
  if (lits) return lits.map(showLiteral).join(' \\| ');
  if (type === 'number') {
    const f = numberFacts(s);
    return (f.int ? 'integer' : 'number') + rangeText(f);
  }
  if (type === 'string') {
    const rule = stringRule(s);
    return rule ? `string (${rule})` : 'string';
  }
  return type;
}

function defaultText(v: unknown): string {
  if (v === '') return "''";
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

function cell(text: string): string {
  // '<name>' would be swallowed as an HTML tag by Markdown renderers.
  return text.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\n/g, ' ');
}

/** The Markdown table of every option: key path, type / allowed values, default, description. */
export function renderConfigReference(): string {
  const lines = ['| Key | Type | Default | Description |', '| --- | --- | --- | --- |'];
  for (const f of configFields()) {
    // typeText already escapes the '|' it puts between allowed values.
    lines.push(`| \`${f.path}\` | ${typeText(f.schema)} | \`${cell(defaultText(f.defaultValue))}\` | ${cell(f.description)} |`);
  }
  return lines.join('\n') + '\n';
}

/** Replaces the text between README_MARKERS with the current reference table. Throws if the markers are missing. */
export function updateReadme(readmeText: string): string {
  const start = readmeText.indexOf(README_MARKERS.start);
  const end = readmeText.indexOf(README_MARKERS.end);
  if (start < 0 || end < 0 || end < start) {
    throw new Error(`README has no config reference block; expected the lines ${README_MARKERS.start} and ${README_MARKERS.end}`);
  }
  const before = readmeText.slice(0, start + README_MARKERS.start.length);
  const after = readmeText.slice(end);
  return `${before}\n${renderConfigReference()}${after}`;
}

/** The text currently between the README markers, or null when there are none. */
export function readmeReferenceBlock(readmeText: string): string | null {
  const start = readmeText.indexOf(README_MARKERS.start);
  const end = readmeText.indexOf(README_MARKERS.end);
  if (start < 0 || end < 0 || end < start) return null;
  return readmeText.slice(start + README_MARKERS.start.length, end).replace(/^\n/, '');
}
