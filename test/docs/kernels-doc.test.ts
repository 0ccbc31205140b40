// docs/kernels.md is generated (npm run docs:kernels) from the lab's kernel facts records: the page
// renderer is a pure function of the records (checked on a fixture set), the committed page is exactly
// what the renderer makes of the committed data beside it (docs/kernels.json), and its tables parse,
// with one column per kernel it names and cells that are verdicts of rdmactl's scenarios.
import { readFileSync, readdirSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { SCENARIOS } from '../../src/scenario/registry.js';
// @ts-expect-error: plain ESM modules of the lab runner and the docs script (Node builtins only, no types)
import { DATA_SCHEMA, GENERATED_MARK, dataText, parseKernelsDoc, renderKernelsDoc } from '../../scripts/kernels-doc.mjs';
// @ts-expect-error: as above
import { extractFactsRecords, factsCollector, formatFactsRecord, verdictMatrix } from '../../lab/facts.mjs';

const ROOT = new URL('../../', import.meta.url);
const FIXTURES = new URL('test/fixtures/kernel-facts/', ROOT);

type Sections = Map<string, { header: string[]; rows: string[][] }>;
interface Rendered { markdown: string; data: { schema: string; records: Array<{ kernel: { name: string; release: string } }> } }

function fixtureRecords(): unknown[] {
  return readdirSync(FIXTURES).filter((n) => n.endsWith('.json')).sort().map((n) => JSON.parse(readFileSync(new URL(n, FIXTURES), 'utf8')) as unknown);
}

/** Every id a cell of the scenario tables may hold. */
const VERDICTS = new Set(['skipped', 'error', ...SCENARIOS.flatMap((s) => s.verdicts.map((v) => v.id))]);
const validCell = (c: string): boolean => c === '—' || VERDICTS.has(c) || /^refused E[A-Z0-9]+$/.test(c);

describe('kernels doc renderer (fixture records)', () => {
  const rendered = renderKernelsDoc(fixtureRecords()) as Rendered;
  const sections = parseKernelsDoc(rendered.markdown) as Sections;

  it('is a pure function of the records: the same page whatever their order', () => {
    expect((renderKernelsDoc([...fixtureRecords()].reverse()) as Rendered).markdown).toBe(rendered.markdown);
  });

  it('names the run: the generated mark, the dates and each kernel\'s release, oldest first', () => {
    expect(rendered.markdown.startsWith(`${GENERATED_MARK}\n# Kernel facts\n`)).toBe(true);
    expect(rendered.markdown).toContain('Generated from the lab runs of 2026-01-02 to 2026-01-03 on 2 kernels: bullseye 5.10.0-9-amd64, new 7.1.3+deb14-amd64.');
    expect(rendered.markdown).toContain('Not covered: stable, trixie (no record).');
    expect(rendered.markdown).toContain(['## Where the kernels differ', '',
      '- verbs, truncate truncate (file-shared): bullseye device-keeps-old-pages; new refused EFAULT',
      '- verbs, migrate (anon): bullseye —; new skipped',
      '- uring, truncate truncate (file-shared): bullseye refused EOPNOTSUPP; new refused EFAULT',
      '- RDMA netlink copy-on-fork attribute (rdma sys show): bullseye absent; new on',
      '- mlock of 16K: bullseye VmPin +0K, VmLck +16K; new —',
      '- rxe0 on-demand paging (ODP): bullseye —; new yes (RC: send|recv)', ''].join('\n'));
    const runs = sections.get('Runs')!;
    expect(runs.rows.map((r) => r.slice(0, 3))).toEqual([['bullseye', '5.10.0-9-amd64', '2026-01-02 03:04 UTC'], ['new', '7.1.3+deb14-amd64', '2026-01-03 10:00 UTC']]);
    expect(runs.rows[0]![5]).toBe('all 7');
    expect(runs.rows[1]![5]).toBe('3 of 7; failed or not run: mr-table, accounting, uring-unprivileged, uring-limit');
  });

  it('the scenario tables are the records\' verdicts: one row per scenario row, a column per kernel, refusals with their errno, — where a kernel ran no such row', () => {
    const verbs = sections.get('scenario all --backend verbs')!;
    expect(verbs.header).toEqual(['scenario (backing)', 'bullseye', 'new']);
    expect(verbs.rows).toEqual([
      ['munmap (anon)', 'device-keeps-old-pages', 'device-keeps-old-pages'],
      ['truncate truncate (file-shared)', 'device-keeps-old-pages', 'refused EFAULT'],
      ['migrate (anon)', '—', 'skipped'],
    ]);
    const uring = sections.get('scenario all --backend uring')!;
    expect(uring.rows[1]).toEqual(['truncate truncate (file-shared)', 'refused EOPNOTSUPP', 'refused EFAULT']);
    // The same cells as the lab runner's summary builds from the records.
    for (const backend of ['verbs', 'uring']) {
      const m = verdictMatrix(fixtureRecords(), backend) as { keys: string[]; cells: string[][] };
      expect(sections.get(`scenario all --backend ${backend}`)!.rows).toEqual(m.keys.map((k, i) => [k, ...m.cells[i]!]));
    }
  });

  it('the facts table has every fact of any kernel, with its value per kernel (| escaped)', () => {
    const facts = sections.get('Facts')!;
    expect(facts.header).toEqual(['fact', 'bullseye', 'new']);
    expect(facts.rows).toEqual([
      ['RDMA netlink copy-on-fork attribute (rdma sys show)', 'absent', 'on'],
      ['mlock of 16K', 'VmPin +0K, VmLck +16K', '—'],
      ['rxe0 on-demand paging (ODP)', '—', 'yes (RC: send|recv)'],
    ]);
    expect(rendered.markdown).toContain('yes (RC: send\\|recv)');
  });

  it('the data beside the page keeps what the page shows and nothing else (no evidence strings, no reasons)', () => {
    expect(rendered.data.schema).toBe(DATA_SCHEMA);
    expect(rendered.data.records.map((r) => r.kernel.name)).toEqual(['bullseye', 'new']);
    expect(JSON.stringify(rendered.data)).not.toContain('"evidence"');
    expect(JSON.stringify(rendered.data)).not.toContain('one NUMA node');
  });

  it('the lab runner finds a record in guest output even when a newline splits it, and rejects a broken one', () => {
    const [rec] = fixtureRecords();
    const line = formatFactsRecord(rec) as string;
    const split = `noise\n${line.slice(0, 100)}\r\n${line.slice(100)}\nmore\n${line.replace('"schema"', '"schemo"')}\n`;
    const { records } = extractFactsRecords(split) as { records: unknown[] };
    expect(records[0]).toEqual(rec);
    expect(records[1]).toMatchObject({ invalid: expect.stringMatching(/schema/) });
    // Through the serial port in chunks that cut multi-byte characters (the fixture has → in it).
    const bytes = Buffer.from(`${line}\n`);
    expect(bytes.length).toBeGreaterThan(line.length);
    const collector = factsCollector() as { feed(b: Buffer): void; take(): unknown[] };
    for (let i = 0; i < bytes.length; i += 7) collector.feed(bytes.subarray(i, i + 7));
    expect(collector.take()).toEqual([rec]);
  });
});

describe('the committed docs/kernels.md', () => {
  let markdown = '';
  let data: Rendered['data'];
  beforeAll(() => {
    markdown = readFileSync(new URL('docs/kernels.md', ROOT), 'utf8');
    data = JSON.parse(readFileSync(new URL('docs/kernels.json', ROOT), 'utf8')) as Rendered['data'];
  });

  it('is what npm run docs:kernels makes of docs/kernels.json (generated, not edited)', () => {
    const again = renderKernelsDoc(data.records) as Rendered;
    expect(again.markdown).toBe(markdown);
    expect(dataText(again.data)).toBe(readFileSync(new URL('docs/kernels.json', ROOT), 'utf8'));
  });

  it('parses: every table has a column per kernel it was generated from, and the scenario cells are verdicts', () => {
    const sections = parseKernelsDoc(markdown) as Sections;
    const kernels = sections.get('Runs')!.rows.map((r) => r[0]);
    expect(kernels.length).toBeGreaterThanOrEqual(2);
    for (const r of sections.get('Runs')!.rows) expect(markdown).toContain(`${r[0]} ${r[1]}`);
    for (const backend of ['verbs', 'uring']) {
      const t = sections.get(`scenario all --backend ${backend}`)!;
      expect(t.header).toEqual(['scenario (backing)', ...kernels]);
      expect(t.rows.length).toBeGreaterThan(0);
      for (const row of t.rows) for (const c of row.slice(1)) expect(validCell(c), `${backend} ${row[0]}: ${c}`).toBe(true);
    }
    expect(sections.get('Facts')!.header).toEqual(['fact', ...kernels]);
  });
});
