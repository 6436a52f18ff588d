// The audit as a plain-text table for the terminal, and the verdict lines.
import type { AuditFinding, LayerStats, ModelAudit } from './invertibility.js';
import type { AuditInputKind } from './inputs.js';

/** Two significant digits in exponent form (errors span 1e-9..1e+30); 0 stays "0". */
export function sci(v: number): string {
  if (v === 0) return '0';
  if (!Number.isFinite(v)) return String(v);
  return v.toExponential(1);
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

const CHECK_WORDS: Record<AuditFinding['check'], string> = {
  reconstruction: 'reconstruction max error',
  logdet: 'inverse-logdet relative error',
  'non-finite': 'non-finite values',
  jacobian: 'logdet vs brute-force Jacobian relative error',
};

/** "whole model: uniform non-finite values 1080 > 0 (starts at levels.1.steps.7.coupling)" */
export function describeFinding(f: AuditFinding): string {
  const where = f.layer ?? 'whole model';
  const value = f.check === 'non-finite' ? String(f.value) : sci(f.value);
  const tol = f.check === 'non-finite' ? '0' : sci(f.tolerance);
  return `${where}: ${f.input} ${CHECK_WORDS[f.check]} ${value} > ${tol}${f.blame ? ` (the chained inverse breaks down at ${f.blame})` : ''}`;
}

/** The verdict: OK or FAIL with the worst layer named; a WARNING line for out-of-distribution findings. */
export function verdict(audit: ModelAudit): string[] {
  const lines: string[] = [];
  const w = audit.worstLayer;
  if (audit.ok) {
    const closest = w && !audit.warnings.length && w.ratio > 0 ? ` (closest: ${w.layer}, ${w.reason})` : '';
    // Name only the checks that ran: a skipped Jacobian check passed nothing.
    const kinds = audit.strictOod ? 'check' : audit.jacobian.skipped ? 'data check' : 'data and Jacobian check';
    const skipped = audit.jacobian.skipped ? ` (Jacobian check skipped: ${audit.jacobian.skipped})` : '';
    lines.push(`OK: every ${kinds} within tolerance${skipped}${closest}`);
  } else {
    const first = audit.failures.find((f) => f.layer === null) ?? audit.failures[0]!;
    lines.push(`FAIL: ${audit.failures.length} check(s) over tolerance, e.g. ${describeFinding(first)}`);
    if (w) lines.push(`worst layer: ${w.layer} (${w.reason})`);
  }
  if (audit.warnings.length) {
    const kinds = [...new Set(audit.warnings.map((f) => f.input))];
    const perKind = kinds.map((k) => {
      const s = audit.model[k];
      const blame = audit.warnings.find((f) => f.input === k && f.blame)?.blame;
      if (!s || !audit.warnings.some((f) => f.input === k && f.layer === null)) return `${k}: ${describeFinding(audit.warnings.find((f) => f.input === k)!)}`;
      return `${k}: reconstruction error ${sci(s.reconMax)}${s.nonFinite ? `, ${s.nonFinite} non-finite values` : ''}${blame ? `, breaking down at ${blame}` : ''}`;
    });
    lines.push(`WARNING: the inverse is unreliable on out-of-distribution inputs (${perKind.join('; ')}); not a failure unless --strict-ood`);
    if (audit.ok && w) lines.push(`worst layer: ${w.layer} (${w.reason})`);
  }
  return lines;
}

function worstOver(byInput: Partial<Record<AuditInputKind, LayerStats>>, kinds: AuditInputKind[], field: 'reconMax' | 'chainedReconMax'): number {
  let m = 0;
  for (const k of kinds) {
    const s = byInput[k];
    if (!s) continue;
    const nonFinite = field === 'chainedReconMax' ? s.chainedNonFinite : s.nonFinite;
    m = Math.max(m, nonFinite > 0 ? Infinity : s[field]);
  }
  return m;
}

/** The whole audit as aligned text lines: per-layer table, whole-model table, Jacobian checks, tolerances, verdict. */
export function formatAudit(audit: ModelAudit, header: string): string[] {
  const t = audit.tolerances;
  const ood = audit.inputs.filter((i) => i.ood).map((i) => i.kind);
  const dataKinds = audit.inputs.filter((i) => !i.ood).map((i) => i.kind);
  const lines: string[] = [header];
  for (const i of audit.inputs) lines.push(`  ${pad(i.kind, 9)} ${i.n} x ${i.description}`);
  lines.push('');
  lines.push('per layer: "alone" = the layer\'s own round trip on its input; "chained" = its input as rebuilt by inverting the whole model from the latents');

  const nameW = Math.max(5, ...audit.layers.map((l) => l.name.length));
  const shapeW = Math.max(5, ...audit.layers.map((l) => `[${l.inputShape.join(',')}]`.length));
  const cols = [
    ...(dataKinds.length ? ['alone max', 'alone mean', 'chained'] : []),
    'logdet rel',
    ...(ood.length ? ['OOD alone', 'OOD chained'] : []),
    'non-finite',
  ];
  const W = 11;
  lines.push(`${pad('layer', nameW)}  ${pad('input', shapeW)}  ${cols.map((c) => pad(c, W, true)).join(' ')}`);
  const flagged = new Set([...audit.failures, ...audit.warnings].filter((f) => f.layer).map((f) => f.layer));
  for (const l of audit.layers) {
    const stats = Object.values(l.byInput) as LayerStats[];
    const d = dataKinds.length ? l.byInput[dataKinds[0]!] : undefined;
    const nonFinite = stats.reduce((a, s) => a + s.nonFinite, 0);
    const logdetRel = Math.max(0, ...stats.map((s) => s.logdetRelError));
    const cells = [
      ...(d ? [sci(d.reconMax), sci(d.reconMean), sci(d.chainedNonFinite > 0 ? Infinity : d.chainedReconMax)] : []),
      sci(logdetRel),
      ...(ood.length ? [sci(worstOver(l.byInput, ood, 'reconMax')), sci(worstOver(l.byInput, ood, 'chainedReconMax'))] : []),
      String(nonFinite),
    ];
    const mark = flagged.has(l.name) ? '  <- over tolerance' : audit.worstLayer?.layer === l.name ? '  <- worst' : '';
    lines.push(`${pad(l.name, nameW)}  ${pad(`[${l.inputShape.join(',')}]`, shapeW)}  ${cells.map((c) => pad(c, W, true)).join(' ')}${mark}`);
  }
  lines.push('');

  lines.push(`${pad('whole model', 12)} ${['recon max', 'recon mean', 'logdet err', 'logdet rel', 'non-finite'].map((c) => pad(c, W, true)).join(' ')}  result`);
  for (const i of audit.inputs) {
    const s = audit.model[i.kind]!;
    const failed = audit.failures.some((f) => f.layer === null && f.input === i.kind && f.check !== 'jacobian');
    const warned = audit.warnings.some((f) => f.layer === null && f.input === i.kind);
    const cells = [sci(s.reconMax), sci(s.reconMean), sci(s.logdetError), sci(s.logdetRelError), String(s.nonFinite)];
    lines.push(`${pad(i.kind, 12)} ${cells.map((c) => pad(c, W, true)).join(' ')}  ${failed ? 'FAIL' : warned ? 'WARN' : 'ok'}`);
  }
  lines.push('');

  if (audit.jacobian.skipped) lines.push(`brute-force Jacobian: skipped (${audit.jacobian.skipped})`);
  for (const j of audit.jacobian.checks) {
    const ok = j.relError <= t.jacobian;
    lines.push(`brute-force Jacobian, data example ${j.example}: summed logdet ${j.logdet.toFixed(4)}, log|det J| ${j.bruteForce.toFixed(4)}, relative error ${sci(j.relError)}  ${ok ? 'ok' : 'FAIL'}`);
  }
  lines.push(`tolerances: reconstruction ${sci(t.recon)} (data), ${sci(t.reconOod)} (OOD${audit.strictOod ? '' : ', warning only'}); logdet ${sci(t.logdet)} relative; Jacobian ${sci(t.jacobian)} relative`);
  lines.push(...verdict(audit));
  return lines;
}
