// Unprivileged verbs registration over RLIMIT_MEMLOCK: nobody without capabilities (no CAP_IPC_LOCK, so
// the limit is enforced), RLIMIT_MEMLOCK 8 MiB, 16 MiB requested → ENOMEM from ibv_reg_mr, explained by
// rdmactl with exit 1; nothing stays pinned. Checked through the CLI and in one process (the built
// engine) that catches the error and reads its own VmPin.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inLab, labKernel, run } from './helpers.js';
import { BIN, MiB, UNPRIVILEGED, kernelMrs, labRuntime, probe } from './verbs-helpers.js';

// `ulimit -l` in KiB; dash sets soft and hard.
const LIMITED = ['/bin/sh', '-c', 'ulimit -l 8192 && exec "$@"', 'sh', ...UNPRIVILEGED];
const HINTS = ['raise the limit:', 'ulimit -l unlimited', 'rdmactl limits PID --set', 'limits.conf', 'LimitMEMLOCK=infinity', 'docker run --ulimit memlock=-1'];

interface MemlockProbe {
  uid: number;
  pinBeforeKb: number;
  registered: boolean;
  error?: { message: string; exitCode: number; hints: string[]; errno: string };
  pinAfterKb: number;
  okPinKb: number;
  okPinAfterCloseKb: number;
}

describe.skipIf(!inLab)(`RLIMIT_MEMLOCK for unprivileged verbs on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  let rt: ReturnType<typeof labRuntime>;
  beforeAll(() => {
    rt = labRuntime();
  });
  afterAll(() => rt?.cleanup());

  it('CLI: 16 MiB over an 8 MiB limit → exit 1 with the RLIMIT_MEMLOCK explanation; nothing left in the MR table', () => {
    const before = kernelMrs().length;
    const r = run([...LIMITED, process.execPath, BIN, 'reg', '16MiB', '--backend', 'verbs', '--for', '1ms'], { env: { ...rt.env, XDG_RUNTIME_DIR: '' }, timeoutMs: 90_000 });
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain('cannot register 16 MiB with verbs (ibv_reg_mr: ENOMEM');
    expect(r.stderr).toContain('RLIMIT_MEMLOCK is 8 MiB');
    expect(r.stderr).toContain('this process already has 0 B pinned (VmPin) and 0 B locked (VmLck)');
    for (const hint of HINTS) expect(r.stderr).toContain(hint);
    expect(kernelMrs()).toHaveLength(before);
  });

  it('in one process: the error is caught, VmPin is 0 afterwards, and 4 MiB within the limit still registers', () => {
    const p = probe<MemlockProbe>(['memlock', String(16 * MiB), String(4 * MiB)], LIMITED);
    expect(p.uid).toBe(65534);
    expect(p.registered).toBe(false);
    expect(p.error?.errno).toBe('ENOMEM');
    expect(p.error?.exitCode).toBe(1);
    expect(p.error?.message).toContain('RLIMIT_MEMLOCK is 8 MiB');
    expect(p.error?.hints.join('\n')).toContain('ulimit -l unlimited');
    expect(p.pinBeforeKb).toBe(0);
    expect(p.pinAfterKb).toBe(0);
    expect(p.okPinKb).toBe(4096);
    expect(p.okPinAfterCloseKb).toBe(0);
  });
});
