// A verbs registration failure takes the errno of the umem failure nested in it on the same thread
// (src/trace/kernelErrno.ts). Fixture events in the shapes the verbs and umem sources make.
import { describe, expect, it } from 'vitest';
import { KernelErrnos } from '../../src/trace/kernelErrno.js';
import type { TraceEvent } from '../../src/trace/types.js';

const MiB = 1024 * 1024;

function failed(source: 'verbs' | 'umem', tid: number, time: number, latencyUs: number, errno: string): TraceEvent {
  return {
    time, pid: 100, tid, comm: 'ib_write_bw', source, op: 'failed', attempt: 'register', bytes: MiB,
    latencyNs: latencyUs * 1000, errno, detail: { function: source === 'verbs' ? 'ibv_reg_mr' : 'ib_umem_get' },
  };
}

describe('KernelErrnos', () => {
  it('gives a verbs failure the errno of the umem failure inside its call, and says where it came from', () => {
    const errnos = new KernelErrnos();
    const umem = failed('umem', 7, 10.000300, 100, 'ENOMEM');
    expect(errnos.fill(umem)).toBe(umem);
    const verbs = errnos.fill(failed('verbs', 7, 10.000500, 400, 'unknown'));
    expect(verbs.errno).toBe('ENOMEM');
    expect(verbs.detail).toEqual({ function: 'ibv_reg_mr', errnoFrom: 'umem' });
    // Used once: the next verbs failure of the thread without a umem failure of its own stays unknown.
    expect(errnos.fill(failed('verbs', 7, 10.001000, 100, 'unknown')).errno).toBe('unknown');
  });

  it('keeps unknown when the umem failure was on another thread, or before or after the call', () => {
    const errnos = new KernelErrnos();
    errnos.fill(failed('umem', 8, 10.000300, 100, 'ENOMEM'));
    expect(errnos.fill(failed('verbs', 7, 10.000500, 400, 'unknown')).errno).toBe('unknown');
    // Before the call began (10.0005 - 100 µs = 10.0004): an earlier call's, not this one's.
    expect(errnos.fill(failed('verbs', 8, 10.000500, 100, 'unknown')).errno).toBe('unknown');
    errnos.fill(failed('umem', 9, 10.002000, 100, 'EFAULT'));
    expect(errnos.fill(failed('verbs', 9, 10.001000, 500, 'unknown')).errno).toBe('unknown');
  });

  it('leaves alone what is not a verbs registration failure with errno unknown', () => {
    const errnos = new KernelErrnos();
    errnos.fill(failed('umem', 7, 10.000300, 100, 'ENOMEM'));
    const other: TraceEvent[] = [
      { ...failed('verbs', 7, 10.000500, 400, 'unknown'), attempt: 'deregister' },
      { ...failed('verbs', 7, 10.000500, 400, 'unknown'), latencyNs: null },
      failed('umem', 7, 10.000500, 400, 'unknown'),
    ];
    for (const event of other) expect(errnos.fill(event)).toBe(event);
    // A umem failure with errno unknown (a NULL return) gives nothing: the earlier ENOMEM still stands.
    expect(errnos.fill(failed('verbs', 7, 10.000600, 400, 'unknown')).errno).toBe('ENOMEM');
  });

  it('forgets the oldest threads beyond its bound', () => {
    const errnos = new KernelErrnos();
    for (let tid = 1; tid <= 4097; tid++) errnos.fill(failed('umem', tid, 10.000300, 100, 'ENOMEM'));
    expect(errnos.fill(failed('verbs', 1, 10.000500, 400, 'unknown')).errno).toBe('unknown');
    expect(errnos.fill(failed('verbs', 4097, 10.000500, 400, 'unknown')).errno).toBe('ENOMEM');
  });
});
