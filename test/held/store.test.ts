// The held-records store on its own: directory rules, atomic 0600 records, symlink and owner checks,
// holder verification against this test process, and the holder's argument rebuilding.
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ensureRuntimeDir, existingRuntimeDir, isHolderCommandLine, listHeld, readHeld, removeHeld, removeStale, runtimeDir, verifyHolder, writeHeld,
  type HeldRecord,
} from '../../src/held/store.js';
import { holderArgs, holderFailure } from '../../src/held/holder.js';
import { EXIT, RdmactlError } from '../../src/lib/errors.js';
import { procStat, tempRuntime } from './helpers.js';

let runtime: ReturnType<typeof tempRuntime>;
beforeEach(() => { runtime = tempRuntime(); });
afterEach(() => runtime.cleanup());

const store = (): { env: NodeJS.ProcessEnv } => ({ env: runtime.env });

function sample(fields: Partial<HeldRecord> = {}): Omit<HeldRecord, 'id' | 'version'> {
  return {
    pid: process.pid, startTime: procStat(process.pid)!.startTime, uid: process.geteuid!(), token: 'feedfacefeedface',
    createdAt: new Date().toISOString(), releaseAt: null, registration: { backend: 'uring', length: 4096 }, ...fields,
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
    expect(JSON.parse(readFileSync(join(dir, `${records[0]!.id}.json`), 'utf8'))).toMatchObject({ version: 1, id: records[0]!.id });
    expect(removeHeld(records[0]!.id, store())).toBe(true);
    expect(removeHeld(records[0]!.id, store())).toBe(false);
    expect(readHeld(records[0]!.id, store())).toBeNull();
  });

  it('ignores an id or version passed in (a copied record gets a new id)', () => {
    const first = writeHeld(sample(), store());
    const copy = writeHeld({ ...first, version: 99 }, store());
    expect(copy.id).not.toBe(first.id);
    expect(copy.version).toBe(1);
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

  it('the command line must carry rdmactl, reg and this token', () => {
    const argv = ['/usr/bin/node', '/opt/rdmactl/bin/rdmactl', 'reg', '64M', '--holder-token', 'abc123'];
    expect(isHolderCommandLine(argv, 'abc123')).toBe(true);
    expect(isHolderCommandLine(['node', '/x/rdmactl', 'reg', '64M', '--holder-token=abc123'], 'abc123')).toBe(true);
    expect(isHolderCommandLine(argv, 'abc124')).toBe(false);
    expect(isHolderCommandLine(argv, '')).toBe(false);
    expect(isHolderCommandLine(['sleep', 'reg', '--holder-token', 'abc123'], 'abc123')).toBe(false);
    expect(isHolderCommandLine(['node', '/x/rdmactl', 'ls', '--holder-token', 'abc123'], 'abc123')).toBe(false);
  });
});

describe('holder plumbing', () => {
  it('holderArgs repeats exactly the options typed, as --name=value, without --detach/--json', () => {
    const command = new Command('reg')
      .argument('<size>')
      .addOption(new Option('-b, --backend <name>').default('auto'))
      .option('--backing <kind>', '', 'anon')
      .option('--file <path>')
      .option('--dontfork')
      .option('--for <duration>')
      .option('--json')
      .option('--detach')
      .action(() => undefined);
    command.parse(['64M', '-b', 'uring', '--dontfork', '--file', '-odd-name', '--json', '--detach', '--for', '5s'], { from: 'user' });
    expect(holderArgs(command, ['64M'])).toEqual(['reg', '64M', '--backend=uring', '--file=-odd-name', '--dontfork', '--for=5s']);
  });

  it('holderFailure keeps the holder\'s message, hints and exit code', () => {
    const err = holderFailure('rdmactl: cannot register 16 MiB\n  raise the limit:\n  ulimit -l unlimited\n', 1, null);
    expect(err).toMatchObject({ message: 'cannot register 16 MiB', exitCode: 1, hints: ['raise the limit:', 'ulimit -l unlimited'] });
    expect(holderFailure("rdmactl: invalid size 'x'\n(run 'rdmactl reg --help' for usage)\n", 2, null)).toMatchObject({ exitCode: 2, hints: [] });
    expect(holderFailure('', null, 'SIGKILL')).toMatchObject({ exitCode: 1, message: expect.stringMatching(/killed by SIGKILL/) });
    expect(holderFailure('Segmentation fault\n', 139, null)).toMatchObject({ exitCode: 1, message: expect.stringMatching(/status 139 before it held the registration: Segmentation fault/) });
  });
});
