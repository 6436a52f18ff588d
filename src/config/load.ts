// Config loading: YAML file + `--set a.b=value` overrides -> a fully defaulted, validated Config.
// Every failure is one UserError line: `<source>: <path>: <what>; expected <what>`, first problem only,
// checked in document order so the message points at the first thing the user wrote wrong.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import YAML from 'yaml';
import { UserError } from '../errors.js';
import { VERSION } from '../version.js';
import { ConfigSchema, type Config } from './schema.js';
import { expectedText, isSection, sectionKeys, shapeOf, unwrap } from './docs.js';

type AnySchema = Parameters<typeof expectedText>[0];
type Plain = Record<string, unknown>;

function isPlainObject(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function levenshtein(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The closest candidate, or null when none is close enough to be a plausible typo. */
export function closestKey(key: string, candidates: string[]): string | null {
  let best: string | null = null;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = levenshtein(key.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      bestDist = d;
      best = c;
    }
  }
  return best !== null && bestDist <= Math.max(2, Math.ceil(key.length / 3)) ? best : null;
}

/** Render a bad value for "got ...". */
function showValue(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

function unknownKeyMessage(section: string, key: string): string {
  const keys = sectionKeys();
  const here = keys.get(section) ?? [];
  const path = section ? `${section}.${key}` : key;
  const near = closestKey(key, here);
  if (near) return `${path}: unknown key; did you mean '${near}'?`;
  // An option written in the wrong section (e.g. `depth:` at the top level) is a common slip.
  for (const [other, otherKeys] of keys) {
    if (other !== section && otherKeys.includes(key)) return `${path}: unknown key; did you mean '${other ? other + '.' : ''}${key}'?`;
  }
  return `${path}: unknown key; expected one of ${here.join(', ')}`;
}

/** Where each overridden path came from, so errors name `--set ...` instead of the file. */
type Provenance = Map<string, string>;

function sourceFor(path: string, fileLabel: string, prov: Provenance): string {
  for (let p = path; ; ) {
    const s = prov.get(p);
    if (s) return s;
    const dot = p.lastIndexOf('.');
    if (dot < 0) return fileLabel;
    p = p.slice(0, dot);
  }
}

function fail(source: string, message: string): never {
  throw new UserError(`${source}: ${message}`);
}

function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') fail(file, 'config file not found; expected a path to a YAML file');
    if (code === 'EISDIR') fail(file, 'is a directory; expected a YAML config file');
    fail(file, `cannot read (${code ?? (e as Error).message}); expected a readable YAML file`);
  }
  return parseYamlText(text, file);
}

/** Parse YAML text; malformed YAML becomes `<source>:<line>:<col>: invalid YAML: ...`. */
export function parseYamlText(text: string, source: string): unknown {
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  const err = doc.errors[0];
  if (err) {
    const pos = err.linePos?.[0];
    const where = pos ? `${source}:${pos.line}:${pos.col}` : source;
    const what = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?\s*$/, '');
    throw new UserError(`${where}: invalid YAML: ${what}; expected valid YAML (check indentation, quotes and brackets)`);
  }
  return doc.toJS();
}

function parseSetValue(src: string, text: string): unknown {
  if (text === '') return '';
  const doc = YAML.parseDocument(text);
  if (doc.errors.length) fail(src, `value ${JSON.stringify(text)} is not a valid YAML scalar; quote it`);
  return doc.toJS();
}

/**
 * An override: `a.b=value` from --set, or one a command's own flag stands for (e.g. `--name x` is name=x),
 * with the flag as the user typed it, so errors quote that rather than a --set they never wrote.
 */
export type ConfigOverride = string | { set: string; flag: string };

/** Apply one `a.b=value` override to the raw (unvalidated) config object. */
function applySet(raw: Plain, override: ConfigOverride, fileLabel: string, prov: Provenance): void {
  const set = typeof override === 'string' ? override : override.set;
  const src = typeof override === 'string' ? `--set ${set}` : override.flag;
  const eq = set.indexOf('=');
  if (eq <= 0) fail(src, 'expected key.path=value (e.g. --set model.depth=16)');
  const path = set.slice(0, eq).trim();
  const segs = path.split('.');
  let schema: AnySchema = ConfigSchema;
  let obj: Plain = raw;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const prefix = segs.slice(0, i).join('.');
    if (seg === '') fail(src, `'${path}' has an empty key; expected a dotted path like model.depth`);
    if (!isSection(schema)) fail(src, `${prefix} is an option, not a section; expected a path like ${prefix}=value`);
    const shape = shapeOf(schema);
    const field = shape[seg];
    if (!field) fail(src, unknownKeyMessage(prefix, seg));
    schema = field;
    if (i === segs.length - 1) {
      const text = set.slice(eq + 1);
      let value = parseSetValue(src, text);
      // `--set name=2024` means the string: YAML would read a number.
      if (unwrap(field)._zod.def.type === 'string' && (typeof value === 'number' || typeof value === 'boolean' || value === null)) value = text;
      obj[seg] = value;
    } else {
      const next = obj[seg];
      if (next === undefined || next === null) obj[seg] = {};
      else if (!isPlainObject(next)) {
        const p = segs.slice(0, i + 1).join('.');
        fail(sourceFor(p, fileLabel, prov), `${p}: expected a mapping of ${p} options, got ${showValue(next)}`);
      }
      obj = obj[seg] as Plain;
    }
  }
  prov.set(path, src);
}

/** Check the raw object against the schema in document order; drop empty sections so defaults apply. */
function checkRaw(obj: Plain, schema: AnySchema, prefix: string, fileLabel: string, prov: Provenance): void {
  const shape = shapeOf(schema);
  for (const key of Object.keys(obj)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const field = shape[key];
    if (!field) fail(sourceFor(path, fileLabel, prov), unknownKeyMessage(prefix, key));
    const value = obj[key];
    if (isSection(field)) {
      // `model:` with every option commented out parses as null: treat it as an empty section.
      if (value === null || value === undefined) {
        delete obj[key];
        continue;
      }
      if (!isPlainObject(value)) fail(sourceFor(path, fileLabel, prov), `${path}: expected a mapping of ${path} options, got ${showValue(value)}`);
      checkRaw(value, field, path, fileLabel, prov);
    } else {
      const r = (field as unknown as { safeParse(v: unknown): { success: boolean } }).safeParse(value);
      if (!r.success) fail(sourceFor(path, fileLabel, prov), `${path}: expected ${expectedText(field)}, got ${showValue(value)}`);
    }
  }
}

/** How a config-relative data.path was written, by the absolute path it resolved to (for not-found errors). */
const dataPathOrigins = new Map<string, { written: string; file: string; dir: string }>();

export function dataPathOrigin(p: string): { written: string; file: string; dir: string } | undefined {
  return dataPathOrigins.get(resolve(p));
}

/**
 * data.path as the loader should see it. `${VAR}` and `${VAR:-default}` take environment variables (the
 * shipped configs use ${FLOW_DATA:-../data} so one variable moves every dataset). A relative result is
 * relative to the config file's folder, as users of YAML configs expect (a path given with --set, or one
 * starting with a variable's value, is relative to the working directory instead, like any shell path).
 */
export function resolveDataPath(written: string, source: string, configDir: string | null, env: NodeJS.ProcessEnv = process.env): string {
  if (written === '') return written;
  let fromEnvAtStart = false;
  const expanded = written.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, dflt: string | undefined, offset: number) => {
    const value = env[name];
    if (value !== undefined && value !== '') {
      if (offset === 0) fromEnvAtStart = true;
      return value;
    }
    if (dflt !== undefined) return dflt;
    fail(source, `data.path: ${JSON.stringify(written)} uses \${${name}}, which is not set; expected ${name}=DIR in the environment (or a default: \${${name}:-DIR})`);
  });
  if (configDir === null || fromEnvAtStart || isAbsolute(expanded)) return expanded;
  const abs = resolve(configDir, expanded);
  dataPathOrigins.set(abs, { written, file: source, dir: configDir });
  return abs;
}

/** Validate an already-parsed YAML value (plus overrides) into a resolved Config. */
export function resolveConfig(parsed: unknown, sets: ConfigOverride[], fileLabel: string, configDir: string | null = null): Config {
  let raw: Plain;
  if (parsed === null || parsed === undefined) raw = {};
  else if (isPlainObject(parsed)) raw = parsed;
  else fail(fileLabel, `top level: expected a mapping of sections (${Object.keys(shapeOf(ConfigSchema)).join(', ')}), got ${showValue(parsed)}`);
  const prov: Provenance = new Map();
  for (const s of sets) applySet(raw, s, fileLabel, prov);
  checkRaw(raw, ConfigSchema, '', fileLabel, prov);
  const r = ConfigSchema.safeParse(raw);
  if (!r.success) {
    // checkRaw validates every field the schema knows, so this is only reachable by a cross-field rule.
    const issue = r.error.issues[0]!;
    const path = issue.path.join('.') || 'top level';
    fail(sourceFor(path, fileLabel, prov), `${path}: ${issue.message}`);
  }
  const cfg = r.data;
  const pathSource = sourceFor('data.path', fileLabel, prov);
  cfg.data.path = resolveDataPath(cfg.data.path, pathSource, pathSource === fileLabel ? configDir : null);
  return cfg;
}

/** Parse config text (as if read from `source`) and apply overrides. */
export function parseConfigText(text: string, source = 'config', sets: ConfigOverride[] = []): Config {
  return resolveConfig(parseYamlText(text, source), sets, source);
}

/**
 * Load a config: YAML file (null = defaults only), then `--set a.b=value` overrides
 * (each value parsed as a YAML scalar), validated with every default filled in.
 */
export function loadConfig(file: string | null, sets: ConfigOverride[] = []): Config {
  const parsed = file === null ? null : readYamlFile(file);
  // An empty file is more likely a mistake (wrong file, unsaved editor) than a wish to train every default into runs/run.
  if (file !== null && (parsed === null || parsed === undefined)) {
    fail(file, 'the config file is empty (or only comments); expected YAML options, e.g. name: and a data: section (see configs/quickstart.yaml)');
  }
  return resolveConfig(parsed, sets, file ?? '--set', file === null ? null : dirname(resolve(file)));
}

/** YAML of a resolved config (what a run directory's config.yaml holds); loadConfig reads it back unchanged. */
export function dumpConfig(cfg: Config): string {
  return `# flow ${VERSION} resolved config (every option, defaults filled in)\n` + YAML.stringify(cfg, { lineWidth: 0 });
}
