// The held-records store on its own: directory rules, atomic 0600 records, symlink and owner checks,
// holder verification against this test process, the typed record read back (and an old version's),
// and the holder's request and answer lines.
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  HELD_RECORD_VERSION, ensureRuntimeDir, existingRuntimeDir, isHolderCommandLine, listHeld, parseHeldRecord, readHeld, removeHeld, removeStale, runtimeDir,
  verifyHolder, writeHeld, type HeldRecord,
} from '../../src/held/store.js';
import { parseHolderAnswer, parseHolderRequest, type HolderRequest } from '../../src/held/protocol.js';
import { holderExitFailure } from '../../src/held/starter.js';
import { failureError, failureOf } from '../../src/lib/failure.js';
import { EXIT, PermissionError, RdmactlError, UsageError } from '../../src/lib/errors.js';
import { SyscallError } from '../../src/lib/errno.js';
import { procStat, sampleReport, tempRuntime } from './helpers.js';

let runtime: ReturnType<typeof tempRuntime>;
beforeEach(() => { runtime = tempRuntime(); });
afterEach(() => runtime.cleanup());

const store = (): { env: NodeJS.ProcessEnv } => ({ env: runtime.env });

function sample(fields: Partial<HeldRecord> = {}): Omit<HeldRecord, 'id' | 'version'> {
  return {
    pid: process.pid, startTime: procStat(process.pid)!.startTime, uid: process.geteuid!(), token: 'feedfacefeedface',
    createdAt: new Date().toISOString(), releaseAt: null, registration: sampleReport('uring'), ...fields,
  };
}

function thrown(fn: () => unknown): RdmactlError {
  try { fn(); } catch (err) { if (err instanceof RdmactlError) return err; throw err; }
  throw new Error('did not throw');
}

describe('runtimeDir', () => {
  it('is $XDG_RUNTIME_DIR/rdmactl, else /run/rdmactl for root, else /tmp/rdmactl-<uid>', () => {
    expect(runtimeDir({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000)).toBe('/run/user/1000/rdmactl');
    expect(runtimeDir({ XDG_RUNTIME_DIR: '/run/user/0' }, 0)).toBe('/run/user/0/rdmactl');
    expect(runtimeDir({}, 0)).toBe('/run/rdmactl');
    expect(runtimeDir({}, 1000)).toBe('/tmp/rdmactl-1000');
    expect(runtimeDir({ XDG_RUNTIME_DIR: '' }, 1000)).toBe('/tmp/rdmactl-1000');
    expect(runtimeDir({ XDG_RUNTIME_DIR: 'relative/dir' }, 1000)).toBe('/tmp/rdmactl-1000'); // ignored, as the XDG spec says
  });
});

describe('the directory', () => {
  it('is created 0700 on first write and not before', () => {
    expect(existingRuntimeDir(store())).toBeNull();
    expect(listHeld(store())).toEqual([]);
    const old = process.umask(0);
    try { expect(ensureRuntimeDir(store())).toBe(join(runtime.dir, 'rdmactl')); } finally { process.umask(old); }
    expect(statSync(join(runtime.dir, 'rdmactl')).mode & 0o777).toBe(0o700);
  });

  it('a symlink is refused (exit 4), even to a good directory', () => {
    mkdirSync(join(runtime.dir, 'elsewhere'), { mode: 0o700 });
    symlinkSync(join(runtime.dir, 'elsewhere'), join(runtime.dir, 'rdmactl'));
    const err = thrown(() => writeHeld(sample(), store()));
    expect(err.exitCode).toBe(EXIT.PERMISSION);
    expect(err.message).toMatch(/refusing runtime directory .*rdmactl: it is a symbolic link/);
    expect(readdirSync(join(runtime.dir, 'elsewhere'))).toEqual([]);
    expect(() => listHeld(store())).toThrow(/symbolic link/);
  });

  it('a directory others can enter is refused, with the chmod that fixes it', () => {
    mkdirSync(join(runtime.dir, 'rdmactl'));
    chmodSync(join(runtime.dir, 'rdmactl'), 0o755);
    const err = thrown(() => ensureRuntimeDir(store()));
    expect(err.exitCode).toBe(EXIT.PERMISSION);
    expect(err.message).toMatch(/mode 0755 lets others in; it must be 0700/);
    expect(err.hints).toEqual([`chmod 700 ${join(runtime.dir, 'rdmactl')}`]);
  });

  it.skipIf(process.geteuid?.() !== 0)('a directory owned by someone else is refused', () => {
    mkdirSync(join(runtime.dir, 'rdmactl'), { mode: 0o700 });
    chownSync(join(runtime.dir, 'rdmactl'), 65534, 65534);
    expect(thrown(() => listHeld(store())).message).toMatch(/owned by uid 65534, not by you \(uid 0\)/);
  });

  it('a missing XDG_RUNTIME_DIR is a clear error', () => {
    const err = thrown(() => ensureRuntimeDir({ env: { XDG_RUNTIME_DIR: join(runtime.dir, 'missing') } }));
    expect(err.exitCode).toBe(EXIT.FAILURE);
    expect(err.message).toMatch(/parent does not exist/);
  });
});

describe('records', () => {
  it('are 0600 files named by unique 8-hex ids, written without leftovers, read back as written', () => {
    const records = Array.from({ length: 20 }, () => writeHeld(sample(), store()));
    expect(new Set(records.map((r) => r.id)).size).toBe(20);
    const dir = join(runtime.dir, 'rdmactl');
    expect(readdirSync(dir).sort()).toEqual(records.map((r) => `${r.id}.json`).sort());
    for (const r of records) {
      expect(r.id).toMatch(/^[0-9a-f]{8}$/);
      expect(statSync(join(dir, `${r.id}.json`)).mode & 0o777).toBe(0o600);
      expect(readHeld(r.id, store())).toEqual(r);
    }
    expect(JSON.parse(readFileSync(join(dir, `${records[0]!.id}.json`), 'utf8'))).toMatchObject({ version: HELD_RECORD_VERSION, id: records[0]!.id });
    expect(removeHeld(records[0]!.id, store())).toBe(true);
    expect(removeHeld(records[0]!.id, store())).toBe(false);
    expect(readHeld(records[0]!.id, store())).toBeNull();
  });

  it('ignores an id or version passed in (a copied record gets a new id)', () => {
    const first = writeHeld(sample(), store());
    const copy = writeHeld({ ...first, version: 99 }, store());
    expect(copy.id).not.toBe(first.id);
    expect(copy.version).toBe(HELD_RECORD_VERSION);
  });

  it('symlinks, malformed files, other names and files of other owners are ignored', () => {
    const good = writeHeld(sample(), store());
    const dir = join(runtime.dir, 'rdmactl');
    symlinkSync(join(dir, `${good.id}.json`), join(dir, 'aaaaaaaa.json'));
    writeFileSync(join(dir, 'bbbbbbbb.json'), '{not json', { mode: 0o600 });
    writeFileSync(join(dir, 'cccccccc.json'), JSON.stringify({ ...good, id: 'dddddddd' }), { mode: 0o600 }); // id ≠ name
    writeFileSync(join(dir, 'notes.txt'), 'hello');
    if (process.geteuid?.() === 0) {
      writeFileSync(join(dir, 'eeeeeeee.json'), JSON.stringify({ ...good, id: 'eeeeeeee' }), { mode: 0o600 });
      chownSync(join(dir, 'eeeeeeee.json'), 65534, 65534);
      expect(readHeld('eeeeeeee', store())).toBeNull();
    }
    expect(lstatSync(join(dir, 'aaaaaaaa.json')).isSymbolicLink()).toBe(true);
    expect(readHeld('aaaaaaaa', store())).toBeNull();
    expect(listHeld(store()).map((e) => e.id)).toEqual([good.id]);
    expect(readHeld('../../etc/passwd', store())).toBeNull();
  });
});

describe('verifyHolder', () => {
  it('this test process with the right start time is "not-holder" (no token on its command line)', () => {
    expect(verifyHolder(sample())).toMatchObject({ state: 'stale', problem: 'not-holder' });
  });

  it('a different start time is a reused pid', () => {
    expect(verifyHolder(sample({ startTime: 1 }))).toMatchObject({ state: 'stale', problem: 'pid-reused' });
  });

  it('a pid that does not exist has exited', () => {
    expect(verifyHolder(sample({ pid: 4_194_304 }))).toMatchObject({ state: 'stale', problem: 'exited' });
  });

  it('removeStale removes exactly the stale records', () => {
    writeHeld(sample(), store());
    writeHeld(sample({ pid: 4_194_304 }), store());
    expect(listHeld(store()).map((e) => e.state)).toEqual(['stale', 'stale']);
    expect(removeStale(store())).toBe(2);
    expect(listHeld(store())).toEqual([]);
  });

  it('the command line must be the holder program (or an older rdmactl reg holder) with this token', () => {
    const argv = ['/usr/bin/node', '/opt/rdmactl/dist/held/holderMain.js', '--holder-token', 'abc123'];
    expect(isHolderCommandLine(argv, 'abc123')).toBe(true);
    expect(isHolderCommandLine(['node', 'holderMain.js', '--holder-token=abc123'], 'abc123')).toBe(true);
    expect(isHolderCommandLine(['/usr/bin/node', '/opt/rdmactl/dist/held/holderMain.cjs', '--holder-token', 'abc123'], 'abc123')).toBe(true);
    expect(isHolderCommandLine(argv, 'abc124')).toBe(false);
    expect(isHolderCommandLine(argv, '')).toBe(false);
    expect(isHolderCommandLine(['node', '/x/notholderMain.js.bak', '--holder-token', 'abc123'], 'abc123')).toBe(false);
    expect(isHolderCommandLine(['sleep', 'reg', '--holder-token', 'abc123'], 'abc123')).toBe(false);
    // A holder started by an rdmactl from before the holder program: still recognised, so it can be released.
    const older = ['/usr/bin/node', '/opt/rdmactl/bin/rdmactl', 'reg', '64M', '--holder-token', 'abc123'];
    expect(isHolderCommandLine(older, 'abc123')).toBe(true);
    expect(isHolderCommandLine(['node', '/x/rdmactl', 'ls', '--holder-token', 'abc123'], 'abc123')).toBe(false);
  });
});

describe('the typed record read back', () => {
  it.each(['verbs', 'uring', 'mlock'] as const)('a %s record comes back exactly as written', (backend) => {
    const written = writeHeld(sample({ registration: sampleReport(backend) }), store());
    const read = readHeld(written.id, store());
    expect(read).toEqual(written);
    expect(read!.registration).toEqual(sampleReport(backend));
    expect(listHeld(store())).toEqual([expect.objectContaining({ id: written.id, record: 'ok', registration: sampleReport(backend) })]);
  });

  /** The path of every object key in a JSON value (inside arrays too, through the item's index). */
  function keyPaths(value: unknown, prefix: string[] = []): string[][] {
    if (typeof value !== 'object' || value === null) return [];
    if (Array.isArray(value)) return value.flatMap((item, i) => keyPaths(item, [...prefix, String(i)]));
    return Object.entries(value).flatMap(([key, v]) => [[...prefix, key], ...keyPaths(v, [...prefix, key])]);
  }

  function renamed(value: unknown, path: string[]): unknown {
    const copy = structuredClone(value) as Record<string, unknown>;
    let target = copy;
    for (const key of path.slice(0, -1)) target = target[key] as Record<string, unknown>;
    const last = path.at(-1)!;
    target[`${last}Renamed`] = target[last];
    delete target[last];
    return copy;
  }

  // The writer (a holder) stores the typed report as JSON; the readers take it back through
  // parseHeldRecord. A key renamed on either side only leaves the record unreadable, never half-read:
  // the registration becomes null (a damaged record), so ls says so instead of showing empty columns.
  it.each(['verbs', 'uring', 'mlock'] as const)('%s: renaming any one key of the stored registration makes it unreadable, not partly read', (backend) => {
    const record: HeldRecord = { version: HELD_RECORD_VERSION, id: 'abcdef01', ...sample({ registration: sampleReport(backend) }) };
    const json = JSON.parse(JSON.stringify(record)) as Record<string, unknown>;
    expect(parseHeldRecord(json)).toEqual(record);
    const paths = keyPaths(json['registration']);
    expect(paths.length).toBeGreaterThan(20);
    for (const path of paths) {
      const parsed = parseHeldRecord({ ...json, registration: renamed(json['registration'], path) });
      expect(parsed, path.join('.')).not.toBeNull();
      expect(parsed!.registration, `registration.${path.join('.')} renamed`).toBeNull();
    }
  });

  it('a record of another version: holder fields kept (verified, listed, released), registration unknown', () => {
    const written = writeHeld(sample({ pid: 4_194_304 }), store());
    const file = join(runtime.dir, 'rdmactl', `${written.id}.json`);
    // What version 1 stored: reg --json's printed keys.
    const v1 = { ...written, version: 1, registration: { pid: 4_194_304, backend: 'uring', addr: '0x7f0000000000', length: 4096, registrations: [{ addr: '0x7f0000000000', length: 4096, ringFd: 17, fixedBuffers: 1 }] } };
    writeFileSync(file, JSON.stringify(v1));
    expect(readHeld(written.id, store())).toMatchObject({ id: written.id, pid: 4_194_304, version: 1, registration: null });
    expect(listHeld(store())).toEqual([expect.objectContaining({ id: written.id, record: 'damaged', state: 'stale', problem: 'exited', registration: null })]);
    expect(removeStale(store())).toBe(1);
  });

  it('without readable holder fields a record is not read at all', () => {
    const record = { version: HELD_RECORD_VERSION, id: 'abcdef01', ...sample() };
    for (const key of ['id', 'pid', 'startTime', 'uid', 'token', 'createdAt'] as const) {
      const { [key]: _gone, ...rest } = record;
      expect(parseHeldRecord(rest), key).toBeNull();
    }
    expect(parseHeldRecord({ ...record, releaseAt: 5 })).toBeNull();
    expect(parseHeldRecord([record])).toBeNull();
  });
});

describe('holder plumbing', () => {
  const request: HolderRequest = {
    options: { length: 4096, backend: 'uring', backing: 'anon', file: null, readOnly: false, device: null, onFault: false, dontfork: true, wipeonfork: false, forkInit: false, count: 2, overlap: false },
    backendRequested: 'auto',
    holdMillis: 1500,
  };

  it('the request survives its JSON line; anything else is refused', () => {
    expect(parseHolderRequest(JSON.parse(JSON.stringify(request)))).toEqual(request);
    const verbs = { ...request, options: { ...request.options, backend: 'verbs', device: 'rxe0', access: 7 } };
    expect(parseHolderRequest(JSON.parse(JSON.stringify(verbs)))).toEqual(verbs);
    expect(parseHolderRequest({ ...request, holdMillis: null })).toEqual({ ...request, holdMillis: null });
    for (const bad of [{ length: 0 }, { length: '4K' }, { backend: 'auto' }, { backing: 'disk' }, { count: 0 }, { access: 1.5 }, { dontfork: 'yes' }, { file: 3 }]) {
      expect(parseHolderRequest({ ...request, options: { ...request.options, ...bad } }), JSON.stringify(bad)).toBeNull();
    }
    expect(parseHolderRequest({ ...request, holdMillis: -1 })).toBeNull();
    expect(parseHolderRequest({ ...request, backendRequested: 'rdma' })).toBeNull();
    expect(parseHolderRequest(null)).toBeNull();
  });

  it('an answer carries a typed record, or a failure the starter rethrows with the same message, hints and exit code', () => {
    const record: HeldRecord = { version: HELD_RECORD_VERSION, id: 'abcdef01', ...sample({ registration: sampleReport('verbs') }) };
    expect(parseHolderAnswer(JSON.parse(JSON.stringify({ ok: true, record })))).toEqual({ ok: true, record });
    expect(parseHolderAnswer({ ok: true, record: { ...record, registration: null } })).toBeNull();
    expect(parseHolderAnswer({ ok: true, record: { ...record, version: 1 } })).toBeNull();

    const cases: Array<[unknown, new (...args: never[]) => RdmactlError, number]> = [
      [new UsageError("invalid size 'x'", ['use 4K']), UsageError, EXIT.USAGE],
      [new PermissionError('refusing runtime directory /x: mode 0755 lets others in', ['chmod 700 /x']), PermissionError, EXIT.PERMISSION],
      [new RdmactlError('cannot register 16 MiB with uring', EXIT.FAILURE, ['ulimit -l']), RdmactlError, EXIT.FAILURE],
      [new SyscallError('mmap', 1), RdmactlError, EXIT.PERMISSION],
      [new SyscallError('mmap', 12), RdmactlError, EXIT.FAILURE],
      [new TypeError('boom'), RdmactlError, EXIT.FAILURE],
    ];
    for (const [err, type, exitCode] of cases) {
      const failure = failureOf(err);
      const answer = parseHolderAnswer(JSON.parse(JSON.stringify({ ok: false, error: failure })));
      expect(answer).toEqual({ ok: false, error: failure });
      const again = failureError((answer as { error: typeof failure }).error);
      expect(again).toBeInstanceOf(type);
      expect(again).toMatchObject({ message: (err as Error).name === 'TypeError' ? 'internal error: boom' : (err as Error).message, exitCode, hints: failure.hints });
    }
    expect(parseHolderAnswer({ ok: false, error: { kind: 'x', message: 'm', hints: [], exitCode: 0 } })).toBeNull();
    expect(parseHolderAnswer({ ok: false, error: { kind: 'x', message: 'm', hints: [], exitCode: 42 } })).toBeNull();
    expect(parseHolderAnswer({ event: 'held' })).toBeNull();
  });

  it('a failure carries the errno it came from (the error itself, or the call it explains), not read back out of its message', () => {
    expect(failureOf(new SyscallError('mlock2', 12)).errno).toBe('ENOMEM');
    const explained = new RdmactlError('cannot register 16 MiB with uring: RLIMIT_MEMLOCK is 8 MiB', EXIT.FAILURE, [], { cause: new SyscallError('io_uring_register', 12) });
    expect(failureOf(explained)).toMatchObject({ errno: 'ENOMEM', message: explained.message });
    expect(failureOf(new RdmactlError('ibv_fork_init: EINVAL — memory was already registered')).errno).toBeNull();
    const answer = parseHolderAnswer(JSON.parse(JSON.stringify({ ok: false, error: failureOf(explained) })));
    expect(answer).toMatchObject({ ok: false, error: { errno: 'ENOMEM' } });
    expect(parseHolderAnswer({ ok: false, error: { kind: 'x', message: 'm', hints: [], exitCode: 1 } })).toMatchObject({ ok: false, error: { errno: null } });
    expect(parseHolderAnswer({ ok: false, error: { kind: 'x', message: 'm', hints: [], exitCode: 1, errno: 12 } })).toBeNull();
  });

  it('a holder that exits without answering: its status and the first line of its stderr', () => {
    expect(holderExitFailure('', null, 'SIGKILL')).toMatchObject({ exitCode: 1, message: expect.stringMatching(/killed by SIGKILL/) });
    expect(holderExitFailure('Segmentation fault\n', 139, null)).toMatchObject({ exitCode: 1, message: expect.stringMatching(/status 139 before it held the registration: Segmentation fault/) });
  });
});
