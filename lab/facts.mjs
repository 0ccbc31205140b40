// Kernel facts records: what test/lab/kernel-facts.test.ts printed inside one lab VM (the verdict of
// every `scenario all --backend verbs|uring` row and the kernel facts rdmactl detects), how
// test-lab.mjs finds them in the guest's output and keeps them (CACHE/facts/KERNEL.json), and the
// scenario × kernel tables built from them (test-lab.mjs's summary, scripts/kernels-doc.mjs).
// Pure functions except saveFactsRecord. Node builtins only.

import fs from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';

/** The record is printed as one JSON line between these (a newline the console inserts is dropped). */
export const FACTS_BEGIN = '@@rdmactl-kernel-facts-begin@@';
export const FACTS_END = '@@rdmactl-kernel-facts-end@@';
export const FACTS_SCHEMA = 'rdmactl.kernel-facts/1';
/** A record is at most this long: a larger one is not ours (or is broken) and is not read. */
export const MAX_RECORD_CHARS = 1 << 20;
export const BACKENDS = ['verbs', 'uring'];

/** The line the test prints (the JSON has no raw newlines: JSON.stringify escapes them). */
export function formatFactsRecord(record) {
  return `${FACTS_BEGIN}${JSON.stringify(record)}${FACTS_END}`;
}

/** Throws unless `record` has the shape the tables read. */
export function checkFactsRecord(record) {
  const fail = (why) => {
    throw new Error(`not a kernel facts record: ${why}`);
  };
  if (record === null || typeof record !== 'object') fail('not an object');
  if (record.schema !== FACTS_SCHEMA) fail(`schema is ${JSON.stringify(record.schema)}, not ${FACTS_SCHEMA}`);
  if (typeof record.kernel?.name !== 'string' || !/^[a-z0-9-]+$/.test(record.kernel.name)) fail('kernel.name');
  if (typeof record.kernel?.release !== 'string') fail('kernel.release');
  for (const backend of BACKENDS) {
    const rows = record.scenarios?.[backend]?.rows;
    if (!Array.isArray(rows)) fail(`scenarios.${backend}.rows`);
    for (const r of rows) if (typeof r?.scenario !== 'string' || typeof r?.backing !== 'string' || typeof r?.verdict !== 'string') fail(`a ${backend} row: ${JSON.stringify(r)}`);
  }
  if (!Array.isArray(record.facts)) fail('facts');
  for (const f of record.facts) if (typeof f?.id !== 'string' || typeof f?.title !== 'string' || typeof f?.value !== 'string') fail(`a fact: ${JSON.stringify(f)}`);
  return record;
}

/**
 * Finds complete records in guest output. Returns the records and the text after the last complete
 * one that may still hold the start of a record (feed it back with the next chunk).
 */
export function extractFactsRecords(text) {
  const records = [];
  let rest = text;
  for (;;) {
    const begin = rest.indexOf(FACTS_BEGIN);
    if (begin < 0) return { records, rest: rest.slice(-(FACTS_BEGIN.length - 1)) };
    const end = rest.indexOf(FACTS_END, begin);
    if (end < 0) {
      const pending = rest.slice(begin);
      return { records, rest: pending.length > MAX_RECORD_CHARS ? '' : pending };
    }
    const body = rest.slice(begin + FACTS_BEGIN.length, end).replace(/[\r\n]/g, '');
    rest = rest.slice(end + FACTS_END.length);
    try {
      records.push(checkFactsRecord(JSON.parse(body)));
    } catch (err) {
      records.push({ invalid: err.message });
    }
  }
}

/** Collects records from a stream of output chunks (the lab's serial port). */
export function factsCollector() {
  let pending = '';
  // A chunk may end inside a multi-byte character (the records hold → and ≠): decode across chunks.
  let decoder = new StringDecoder('utf8');
  const records = [];
  return {
    feed(chunk) {
      const { records: found, rest } = extractFactsRecords(pending + (typeof chunk === 'string' ? chunk : decoder.write(chunk)));
      records.push(...found);
      pending = rest;
    },
    /** Records found since the last take(); a record cut off by the end of a VM's output is dropped. */
    take() {
      pending = '';
      decoder = new StringDecoder('utf8');
      return records.splice(0, records.length);
    },
  };
}

/**
 * Writes CACHE/facts/NAME.json: a new file (O_EXCL, O_NOFOLLOW) under a temporary name, then renamed
 * over the old one, so a reader never sees half a record.
 */
export function saveFactsRecord(cacheDir, record, recordedAt = new Date()) {
  const dir = path.join(cacheDir, 'facts');
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = path.join(dir, `${record.kernel.name}.json`);
  writeAtomically(file, `${JSON.stringify({ ...record, recordedAt: recordedAt.toISOString() }, null, 2)}\n`);
  return file;
}

/** Writes `text` to `file` through a new temporary file (O_EXCL, O_NOFOLLOW), synced, renamed over it. */
export function writeAtomically(file, text) {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  const { O_CREAT, O_EXCL, O_WRONLY, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0o644);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Reads every CACHE/facts/*.json (each read capped); the invalid ones are reported, not thrown. */
export function loadFactsRecords(dir) {
  const records = [];
  const problems = [];
  let names = [];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  } catch (err) {
    if (err.code === 'ENOENT') return { records, problems: [`${dir} does not exist: run the kernel facts test in the lab first`] };
    throw err;
  }
  for (const name of names) {
    const file = path.join(dir, name);
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const buf = Buffer.alloc(MAX_RECORD_CHARS + 1);
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      if (n > MAX_RECORD_CHARS) throw new Error('larger than 1 MiB');
      records.push(checkFactsRecord(JSON.parse(buf.subarray(0, n).toString('utf8'))));
    } catch (err) {
      problems.push(`${file}: ${err.message}`);
    } finally {
      fs.closeSync(fd);
    }
  }
  return { records, problems };
}

/** Oldest to newest kernel: by release (numeric parts), the name breaking ties. */
export function sortByKernel(records) {
  const parts = (r) => r.kernel.release.split(/[^0-9]+/).filter(Boolean).map(Number);
  return [...records].sort((a, b) => {
    const pa = parts(a);
    const pb = parts(b);
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) if ((pa[i] ?? -1) !== (pb[i] ?? -1)) return (pa[i] ?? -1) - (pb[i] ?? -1);
    return a.kernel.name.localeCompare(b.kernel.name);
  });
}

/** The name of a scenario row across kernels: scenario, its variant where it has one, backing. */
export const rowKey = (r) => `${r.scenario}${r.variant ? ` ${r.variant}` : ''} (${r.backing})`;

/** One cell: the verdict, with the errno of a refusal. */
export const cellOf = (r) => (r.verdict === 'refused' && r.errno ? `refused ${r.errno}` : r.verdict);

/**
 * The scenario × kernel matrix of one backend: row keys in the order the scenarios ran (first
 * appearance over the kernels, oldest first), one column per record, '—' where a kernel ran no such row.
 */
export function verdictMatrix(records, backend) {
  const sorted = sortByKernel(records);
  const keys = [];
  for (const rec of sorted) for (const r of rec.scenarios[backend].rows) if (!keys.includes(rowKey(r))) keys.push(rowKey(r));
  const kernels = sorted.map((rec) => rec.kernel.name);
  const cells = keys.map((key) => sorted.map((rec) => {
    const r = rec.scenarios[backend].rows.find((x) => rowKey(x) === key);
    return r ? cellOf(r) : '—';
  }));
  return { kernels, keys, cells };
}

/** The facts × kernel matrix: fact titles in first-appearance order, '—' where a kernel has no such fact. */
export function factMatrix(records) {
  const sorted = sortByKernel(records);
  const ids = [];
  const titles = new Map();
  for (const rec of sorted) for (const f of rec.facts) if (!ids.includes(f.id)) { ids.push(f.id); titles.set(f.id, f.title); }
  return {
    kernels: sorted.map((rec) => rec.kernel.name),
    ids,
    titles: ids.map((id) => titles.get(id)),
    cells: ids.map((id) => sorted.map((rec) => rec.facts.find((f) => f.id === id)?.value ?? '—')),
  };
}

/** Control characters as \xNN: the cells come from guest output and go to a terminal or a page. */
export const escapeControls = (text) => String(text).replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

/** A plain text table (for the terminal at the end of a lab run). */
export function textTable(rawHeader, input) {
  const header = rawHeader.map(escapeControls);
  const rows = input.map((r) => r.map(escapeControls));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

/** The end-of-run summary: per backend, scenario × kernel → verdict for the records of this run. */
export function verdictSummary(records) {
  const valid = records.filter((r) => !r.invalid);
  if (valid.length === 0) return '';
  const parts = [];
  for (const backend of BACKENDS) {
    const m = verdictMatrix(valid, backend);
    parts.push(`scenario all --backend ${backend}: verdict per kernel`);
    parts.push(textTable(['SCENARIO (BACKING)', ...m.kernels.map((k, i) => `${k} ${sortByKernel(valid)[i].kernel.release}`)], m.keys.map((key, i) => [key, ...m.cells[i]])));
    parts.push('');
  }
  return parts.join('\n');
}

/**
 * test-lab.mjs's hook after one kernel's run: saves each record that kernel printed (the last one
 * wins) as CACHE/facts/NAME.json, says so on stderr, and returns the saved records.
 */
export function keepFactsRecords(kernelName, records, cacheDir, log = (line) => process.stderr.write(`${line}\n`)) {
  const kept = [];
  for (const record of records) {
    if (record.invalid) log(`test:lab: ${kernelName}: ignoring a kernel facts record: ${record.invalid}`);
    else if (record.kernel.name !== kernelName) log(`test:lab: ${kernelName}: ignoring a kernel facts record of kernel ${JSON.stringify(record.kernel.name)}`);
    else kept.splice(0, kept.length, record);
  }
  for (const record of kept) log(`test:lab: ${kernelName}: kernel facts saved to ${saveFactsRecord(cacheDir, record)}`);
  return kept;
}
