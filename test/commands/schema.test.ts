// Every JSON document rdmactl prints is validated against its JSON Schema (schema/*.json, shipped in
// the package) with ajv, using real output of real commands: a detached holder pinning with
// io_uring, an in-process mlock registration, a small fork matrix, this host's (absent) devices.
// The schemas are also held to the field lists, so a key added, renamed or removed in one place
// and not the other fails here.
import { readdirSync, readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, rdmactl } from '../helpers/run.js';
import { BIN, builtOrThrow, ROOT, runSync } from '../helpers/spawn.js';
import { becomeSubreaper, killAndReap, rdmactlBin, tempRuntime } from '../held/helpers.js';
import { PROCESS_FIELDS, SYSTEM_FIELDS, USER_FIELDS } from '../../src/observe/statFields.js';
import { REGISTRATION_FIELDS } from '../../src/commands/ls.js';
import { LIMITS_FIELDS } from '../../src/commands/limits.js';
import { DEVICE_FIELDS, PORT_FIELDS } from '../../src/commands/devices.js';
import { FORK_FIELDS } from '../../src/commands/fork.js';
import { SCENARIO_FIELDS } from '../../src/commands/scenario.js';
import { REG_FIELDS, RELEASE_FIELDS } from '../../src/commands/reg.js';
import { DEREG_FIELDS } from '../../src/commands/dereg.js';
import { LATENCY_FIELDS, PROCESS_SUMMARY_FIELDS } from '../../src/trace/summary.js';
import type { Field } from '../../src/lib/fields.js';
import { SCENARIOS } from '../../src/scenario/registry.js';

type Json = Record<string, unknown>;
type Schema = Json & { properties?: Record<string, unknown>; definitions?: Record<string, Schema> };

const SCHEMA_DIR = `${ROOT}schema/`;
const schemas = new Map<string, Schema>(readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.json'))
  .map((f) => [f.replace(/\.json$/, ''), JSON.parse(readFileSync(SCHEMA_DIR + f, 'utf8')) as Schema]));
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validators = new Map<string, ValidateFunction>([...schemas].map(([name, schema]) => [name, ajv.compile(schema)]));

/** Validate a document against the schema its own "schema" key names (and that it is the expected one). */
function expectValid(document: unknown, expected: string): void {
  const doc = document as Json;
  expect(doc['schema']).toBe(`rdmactl.${expected}/1`);
  const validate = validators.get(expected)!;
  const ok = validate(doc);
  expect(ok, `${expected}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(doc).slice(0, 400)}`).toBe(true);
  expect(Object.keys(doc).slice(0, 2)).toEqual(['host', 'schema']);
}

function keysOf(schema: Schema | undefined, leaveOut: readonly string[] = []): string[] {
  return Object.keys(schema?.properties ?? {}).filter((k) => !leaveOut.includes(k)).sort();
}

function fieldKeys<R>(fields: readonly Field<R>[]): string[] {
  return fields.map((f) => f.key).sort();
}

describe('JSON schemas', () => {
  const runtime = tempRuntime();
  const savedXdg = process.env['XDG_RUNTIME_DIR'];
  const holders = new Set<number>();
  let detached: Json;

  beforeAll(() => {
    builtOrThrow();
    becomeSubreaper();
    process.env['XDG_RUNTIME_DIR'] = runtime.dir; // in-process ls/dereg see the detached holder
    const started = rdmactlBin(['reg', '4M', '--backend', 'uring', '--overlap', '--detach', '--json'], runtime.env);
    expect(started.status, started.stderr).toBe(0);
    detached = JSON.parse(started.stdout) as Json;
    holders.add(detached['pid'] as number);
  });

  afterAll(async () => {
    await killAndReap(holders);
    runtime.cleanup();
    if (savedXdg === undefined) delete process.env['XDG_RUNTIME_DIR'];
    else process.env['XDG_RUNTIME_DIR'] = savedXdg;
  });

  it('every schema file is a valid draft-07 schema with an id, and the package ships them', () => {
    expect([...schemas.keys()].sort()).toEqual(['columns', 'dereg', 'devices', 'doctor', 'fork', 'limits', 'ls', 'reg', 'registration', 'scenario', 'stat', 'trace-cleanup', 'trace-event', 'trace-sources', 'trace-summary']);
    for (const [name, schema] of schemas) expect(schema['$id'], name).toBe(`urn:rdmactl:schema:${name}:1`);
    const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('schema');
  });

  it('the schemas list exactly the keys of the field lists (no drift)', () => {
    const def = (name: string, key: string): Schema | undefined => schemas.get(name)!.definitions?.[key];
    expect(keysOf(def('stat', 'process'))).toEqual(fieldKeys(PROCESS_FIELDS));
    expect(keysOf(def('stat', 'user'))).toEqual(fieldKeys(USER_FIELDS));
    expect(keysOf(def('stat', 'system'))).toEqual(fieldKeys(SYSTEM_FIELDS));
    expect(keysOf(def('ls', 'registration'))).toEqual(fieldKeys(REGISTRATION_FIELDS));
    expect(keysOf(schemas.get('registration'), ['host', 'schema', 'time'])).toEqual(fieldKeys(REGISTRATION_FIELDS));
    expect(keysOf(schemas.get('limits'), ['host', 'schema', 'previous'])).toEqual(fieldKeys(LIMITS_FIELDS));
    expect(keysOf(def('devices', 'device'))).toEqual(fieldKeys(DEVICE_FIELDS));
    expect(keysOf(def('devices', 'port'))).toEqual(fieldKeys(PORT_FIELDS));
    expect(keysOf(def('fork', 'scenario'))).toEqual(fieldKeys(FORK_FIELDS));
    expect(keysOf(def('scenario', 'row'))).toEqual(fieldKeys(SCENARIO_FIELDS));
    expect(keysOf(def('reg', 'registered'), ['host', 'schema', 'event', 'detached', 'releaseAt'])).toEqual(fieldKeys(REG_FIELDS));
    expect(keysOf(def('reg', 'released'), ['host', 'schema', 'event'])).toEqual(fieldKeys(RELEASE_FIELDS));
    expect(keysOf(def('dereg', 'result'))).toEqual(fieldKeys(DEREG_FIELDS));
    expect(keysOf(def('trace-summary', 'process'))).toEqual(fieldKeys(PROCESS_SUMMARY_FIELDS));
    expect(keysOf(def('trace-summary', 'latency'))).toEqual(fieldKeys(LATENCY_FIELDS));
  });

  it('stat --json, stat --all --json, stat -o --json and top --json snapshots', async () => {
    for (const args of [['stat', '--json'], ['stat', '--all', '--json'], ['stat', '-o', 'pid,flags', '--json'], ['stat', String(detached['pid']), '--json']]) {
      const result = await rdmactl(...args);
      expect(result.code, result.stderr).toBe(0);
      expectValid(JSON.parse(result.stdout), 'stat');
    }
    const top = await rdmactl('top', '--json', '--count', '2', '--interval', '100ms');
    const lines = jsonLines(top.stdout);
    expect(lines).toHaveLength(2);
    for (const line of lines) expectValid(line, 'stat');
  });

  it('stat, ls and top samples (--interval / top --json): valid, "time" third, local time with its offset', async () => {
    const offset = runSync(['date', '+%:z']).stdout.trim(); // the offset date(1) uses in this TZ
    const runs: Array<[string[], string]> = [
      [['stat', '--json', '--interval', '100ms', '--count', '2'], 'stat'],
      [['top', '--json', '--interval', '100ms', '--count', '2'], 'stat'],
      [['ls', '--json', '--interval', '100ms', '--count', '2'], 'ls'],
      [['ls', '--ndjson', '-p', String(detached['pid']), '--interval', '100ms', '--count', '2'], 'registration'],
    ];
    for (const [args, schema] of runs) {
      const result = await rdmactl(...args);
      expect(result.code, result.stderr).toBe(0);
      const lines = jsonLines(result.stdout);
      expect(lines.length, args.join(' ')).toBeGreaterThanOrEqual(2);
      for (const line of lines) {
        expectValid(line, schema);
        expect(Object.keys(line)[2]).toBe('time');
        expect(line['time']).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d${offset.replace('+', '\\+')}$`));
      }
    }
    // A single document has no time.
    expect(JSON.parse((await rdmactl('stat', '--json')).stdout)).not.toHaveProperty('time');
  });

  it('ls --json and every ls --ndjson line, with the held and io_uring rows of a real holder', async () => {
    const result = await rdmactl('ls', '--json');
    const document = JSON.parse(result.stdout) as { registrations: Json[] };
    expectValid(document, 'ls');
    const sources = new Set(document.registrations.filter((r) => r['pid'] === detached['pid']).map((r) => r['source']));
    expect([...sources].sort()).toEqual(['held', 'io_uring']);
    const lines = jsonLines((await rdmactl('ls', '--ndjson', '-p', String(detached['pid']))).stdout);
    expect(lines.length).toBeGreaterThanOrEqual(4); // two io_uring buffers over one range, two held rows
    for (const line of lines) expectValid(line, 'registration');
    expectValid(JSON.parse((await rdmactl('ls', '--json', '--output-all')).stdout), 'ls');
  });

  it('limits --json, with -o, and after --set (the previous record)', async () => {
    expectValid(JSON.parse((await rdmactl('limits', '--json')).stdout), 'limits');
    expectValid(JSON.parse((await rdmactl('limits', String(detached['pid']), '--json', '-o', 'pid,capIpcLock')).stdout), 'limits');
    const current = JSON.parse((await rdmactl('limits', String(detached['pid']), '--json')).stdout) as Json;
    const limit = (v: unknown): string => (v === null ? 'unlimited' : String(v));
    // The same values again: prlimit(2) runs, nothing changes.
    const set = await rdmactl('limits', String(detached['pid']), '--set', `${limit(current['memlockSoftBytes'])}:${limit(current['memlockHardBytes'])}`, '--json');
    expect(set.code, set.stderr).toBe(0);
    const document = JSON.parse(set.stdout) as Json;
    expectValid(document, 'limits');
    expect(document['previous']).toBeDefined();
  });

  it('devices --json (no RDMA device on this host: an empty list, still a valid document)', async () => {
    const result = await rdmactl('devices', '--json');
    expect(result.code, result.stderr).toBe(0);
    expectValid(JSON.parse(result.stdout), 'devices');
  });

  it('reg --json: the registered and released events; reg --detach --json', async () => {
    const lines = jsonLines((await rdmactl('reg', '1M', '--backend', 'mlock', '--count', '2', '--for', '1ms', '--json')).stdout);
    expect(lines.map((l) => l['event'])).toEqual(['registered', 'released']);
    for (const line of lines) expectValid(line, 'reg');
    expectValid(jsonLines((await rdmactl('reg', '1M', '--backend', 'uring', '--for', '1ms', '--json', '-o', 'pid,pinnedBytesAfter')).stdout)[0], 'reg');
    expectValid(detached, 'reg');
    expect(detached).toMatchObject({ event: 'registered', detached: true });
  });

  it('fork --json: rows that ran, rows skipped here, and -o', async () => {
    const result = await rdmactl('fork', '--backend', 'plain,uring,verbs', '--protect', 'none,dontfork', '--json');
    expect(result.code, result.stderr).toBe(0);
    expectValid(JSON.parse(result.stdout), 'fork');
    expectValid(JSON.parse((await rdmactl('fork', '--backend', 'uring', '--json', '-o', 'backend,verdict')).stdout), 'fork');
  });

  it('scenario all --json (every row, observations included), -o, and --list --json', async () => {
    const result = await rdmactl('scenario', 'all', '--json');
    expect(result.code, result.stderr).toBe(0);
    const document = JSON.parse(result.stdout) as Json & { rows: Json[] };
    expectValid(document, 'scenario');
    expect(new Set(document.rows.map((r) => r['scenario']))).toEqual(new Set(SCENARIOS.map((d) => d.name)));
    expect(document.rows.some((r) => (r['observations'] as unknown[]).length > 0)).toBe(true);
    expectValid(JSON.parse((await rdmactl('scenario', 'munlock', '--backend', 'uring', '--json', '-o', 'scenario,verdict')).stdout), 'scenario');
    expectValid(JSON.parse((await rdmactl('scenario', '--list', '--json')).stdout), 'scenario');
  });

  it('dereg --json: a real release, then nothing held', async () => {
    const released = await rdmactl('dereg', String(detached['id']), '--json');
    expect(released.code, released.stderr).toBe(0);
    const document = JSON.parse(released.stdout) as { results: Json[] };
    expectValid(document, 'dereg');
    expect(document.results[0]).toMatchObject({ id: detached['id'], status: 'released' });
    expectValid(JSON.parse((await rdmactl('dereg', '--all', '--json')).stdout), 'dereg');
  });

  it('doctor --json: this shell, a process by pid with a request, and a real --try', async () => {
    const documents = [
      await rdmactl('doctor', '--json'),
      await rdmactl('doctor', String(process.pid), '--size', '64K', '--backend', 'mlock', '--json'),
      await rdmactl('doctor', '--size', '1M', '--backend', 'uring', '--try', '--json'),
    ];
    for (const result of documents) {
      // Exit 1 is "a check failed here", still a complete document.
      expect([0, 1], result.stderr).toContain(result.code);
      expectValid(JSON.parse(result.stdout), 'doctor');
    }
    const tried = JSON.parse(documents[2]!.stdout) as Json & { try: Json | null; prediction: Json | null };
    expect(tried.prediction).not.toBeNull();
    expect(tried.try).not.toBeNull();
    expect(validators.get('doctor')!({ ...tried, findings: [{ id: 'memlock.limit', status: 'fine' }] })).toBe(false);
  });

  it.each(['stat', 'ls', 'limits', 'devices', 'reg', 'fork', 'scenario', 'dereg'])('%s -H --json matches the columns schema', async (command) => {
    expectValid(JSON.parse((await rdmactl(command, '-H', '--json')).stdout), 'columns');
  });

  it('the schemas reject what they must: a wrong type, an unknown key, a missing host', async () => {
    const document = JSON.parse((await rdmactl('stat', String(detached['pid']), '--json')).stdout) as Json & { processes: Json[] };
    const validate = validators.get('stat')!;
    expect(validate(document)).toBe(true);
    expect(validate({ ...document, processes: [{ ...document.processes[0], pinnedBytes: '4 MiB' }] })).toBe(false);
    expect(validate({ ...document, processes: [{ ...document.processes[0], pinned: 1 }] })).toBe(false);
    const { host: _host, ...withoutHost } = document;
    expect(validate(withoutHost)).toBe(false);
    expect(validators.get('reg')!({ ...detached, event: 'held' })).toBe(false);
  });

  it('the built binary prints the same documents (stat --json)', () => {
    const result = rdmactlBin(['stat', '--json'], runtime.env);
    expect(result.status, result.stderr).toBe(0);
    expectValid(JSON.parse(result.stdout), 'stat');
    expect(BIN.endsWith('bin/rdmactl')).toBe(true);
  });
});
