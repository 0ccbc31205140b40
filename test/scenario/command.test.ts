// The scenario command: listing, selection, --expect (exit 5 / usage error 2), help generated from
// the definitions, and fork reachable through the engine with the same rows as `rdmactl fork`.
import { describe, expect, it } from 'vitest';
import { rdmactl } from '../helpers/run.js';
import { SCENARIOS } from '../../src/scenario/registry.js';

describe('rdmactl scenario', { timeout: 60_000 }, () => {
  it('--list: one line per scenario, text and JSON', async () => {
    const text = await rdmactl('scenario', '--list');
    expect(text.code, text.stderr).toBe(0);
    for (const def of SCENARIOS) expect(text.stdout).toMatch(new RegExp(`^${def.name}\\s+${def.summary.slice(0, 20).replace(/[()?]/g, '.')}`, 'm'));
    const json = JSON.parse((await rdmactl('scenario', '--list', '--json')).stdout) as { scenarios: Array<{ name: string; verdicts: unknown[] }> };
    expect(json.scenarios.map((s) => s.name)).toEqual(SCENARIOS.map((s) => s.name));
    expect(json.scenarios.every((s) => s.verdicts.length > 0)).toBe(true);
  });

  it('usage errors (exit 2): no name, an unknown scenario, a verdict the scenario does not have, a value it does not have', async () => {
    expect((await rdmactl('scenario')).code).toBe(2);
    const unknown = await rdmactl('scenario', 'nosuch');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(new RegExp(`unknown scenario 'nosuch': valid values are ${SCENARIOS.map((d) => d.name).join(', ')}, all`));
    const verdict = await rdmactl('scenario', 'munmap', '--expect', 'coherent');
    expect(verdict.code).toBe(2);
    expect(verdict.stderr).toMatch(/invalid --expect 'coherent' for scenario munmap: valid verdicts are device-keeps-old-pages, /);
    expect(verdict.stderr.trim().split('\n')).toHaveLength(1); // one line
    const variant = await rdmactl('scenario', 'munmap', '--variant', 'none/parent');
    expect(variant.code).toBe(2);
    const backend = await rdmactl('scenario', 'munlock', '--backend', 'plain');
    expect(backend.code).toBe(2);
    expect(backend.stderr).toMatch(/scenario munlock has no --backend plain: valid values are mlock, uring, verbs/);
  });

  it('--expect: exit 0 when every row that ran agrees, 5 when one does not; SCENARIO=VERDICT per scenario', async () => {
    const ok = await rdmactl('scenario', 'munmap', '--backend', 'uring,verbs', '--expect', 'device-keeps-old-pages');
    expect(ok.code, ok.stdout + ok.stderr).toBe(0); // verbs is skipped here (or agrees in the lab)
    const off = await rdmactl('scenario', 'munmap', '--backend', 'uring,mlock', '--expect', 'device-keeps-old-pages');
    expect(off.code).toBe(5);
    expect(off.stderr).toMatch(/munmap mlock\/anon \(released-with-mapping\)/);
    const both = await rdmactl('scenario', 'all', '--backend', 'mlock', '--expect', 'munmap=released-with-mapping,munlock=munlock-releases-all');
    expect(both.code, both.stdout + both.stderr).toBe(0);
  });

  it('all --variant runs only the scenarios that have the variant; none having it is a usage error', async () => {
    const out = await rdmactl('scenario', 'all', '--variant', 'punch-hole', '--backend', 'plain,mlock', '--json');
    expect(out.code, out.stderr).toBe(0);
    const rows = (JSON.parse(out.stdout) as { rows: Array<{ scenario: string; variant: string | null }> }).rows;
    const having = SCENARIOS.filter((d) => d.variants?.includes('punch-hole')).map((d) => d.name);
    expect(rows.length).toBeGreaterThan(0);
    expect(new Set(rows.map((r) => r.scenario))).toEqual(new Set(having));
    expect(rows.every((r) => r.variant === 'punch-hole')).toBe(true);
    const none = await rdmactl('scenario', 'all', '--variant', 'punch-hole', '--backing', 'anon');
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no scenario has --variant punch-hole .*truncate: truncate, punch-hole/);
    expect(none.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('text: the notes under the table cite each skipped row by its # column and the row\'s own values', async () => {
    // plain overlap-lifetime and plain/mlock readonly-private write-access are not applicable anywhere.
    const out = await rdmactl('scenario', 'all', '--backend', 'plain,mlock');
    expect(out.code, out.stderr).toBe(0);
    const lines = out.stdout.split('\n');
    const header = lines.findIndex((l) => /^#\s+SCENARIO\s+VARIANT\s+BACKEND\s+BACKING\b/.test(l));
    expect(header, out.stdout).toBeGreaterThanOrEqual(0);
    const tableRows = new Map<number, string[]>();
    for (const line of lines.slice(header + 1)) {
      const m = /^(\d+)\s+(.*)$/.exec(line);
      if (!m || /^\d+ rows?: /.test(line)) break; // the count under the table ends it
      tableRows.set(Number(m[1]), m[2]!.trim().split(/\s+/));
    }
    // In a pipe the notes are on stderr (stdout carries the table alone).
    const notes = out.stderr.split('\n').map((l) => /^rdmactl: {3}#(\d+) (\S+)(?: (\S+))? (\S+)\/(\S+): (skipped|failed)\b/.exec(l)).filter((m) => m !== null);
    expect(notes.length).toBeGreaterThanOrEqual(3);
    for (const note of notes) {
      const row = tableRows.get(Number(note[1]));
      expect(row, `note #${note[1]} names no row of the table`).toBeDefined();
      // Skipped rows have no evidence: scenario, variant (- for none), backend, backing, verdict.
      expect(row).toEqual([note[2], note[3] ?? '-', note[4], note[5], 'skipped']);
    }
  });

  it('help is generated from every definition: its description and its verdicts', async () => {
    const help = await rdmactl('scenario', '--help');
    expect(help.code).toBe(0);
    for (const def of SCENARIOS) {
      expect(help.stdout).toContain(`  ${def.name}: `);
      for (const v of def.verdicts) expect(help.stdout).toContain(v.id);
    }
    expect(help.stdout.split('\n').every((line) => line.length <= 110)).toBe(true);
  });

  it('scenario fork runs the same rows as rdmactl fork, through the engine', async () => {
    const viaEngine = JSON.parse((await rdmactl('scenario', 'fork', '--backend', 'plain,uring', '--variant', 'none/parent,dontfork/parent', '--json')).stdout) as { rows: Array<Record<string, unknown>> };
    const direct = JSON.parse((await rdmactl('fork', '--backend', 'plain,uring', '--protect', 'none,dontfork', '--json')).stdout) as { scenarios: Array<Record<string, unknown>> };
    const key = (backend: unknown, variant: unknown): string => `${String(backend)} ${String(variant)}`;
    expect(new Map(viaEngine.rows.map((r) => [key(r['backend'], r['variant']), r['verdict']])))
      .toEqual(new Map(direct.scenarios.map((r) => [key(r['backend'], `${String(r['protection'])}/${String(r['writer'])}`), r['verdict']])));
    const uring = viaEngine.rows.find((r) => r['backend'] === 'uring' && r['variant'] === 'none/parent')!;
    expect((uring['observations'] as Array<{ step: string }>).map((o) => o.step)).toEqual(['registered', 'forked', 'written by parent', 'device wrote']);
  });
});
