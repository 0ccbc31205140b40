// Attached holders (what `doctor --try` and scenario exit register through): the holder answers with
// its typed registration, holds while the starter keeps its stdin open, and is no detached holder —
// no record, not named rdmactl-holder, not listed.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findHolderProcesses, listHeld } from '../../src/held/store.js';
import { parseAttachedAnswer, parseHolderRequest, type HolderRequest } from '../../src/held/protocol.js';
import { attachedStartError, startAttachedHolder } from '../../src/held/starter.js';
import { statusKb } from '../helpers/proc.js';
import { holderSandbox, running, sampleReport } from './helpers.js';

const KiB = 1024;
const sandbox = holderSandbox();

function request(backend: 'uring' | 'mlock', length: number, extra: Partial<HolderRequest> = {}): HolderRequest {
  return { options: { length, backend, backing: 'anon', count: 1 }, backendRequested: backend, holdMillis: null, ...extra };
}

describe('attached holder', () => {
  it('answers with its registration, holds with oom_score_adj 1000 while its stdin is open, releases and exits 0 when it closes', async () => {
    const start = await startAttachedHolder({ request: request('uring', 16 * KiB, { oomScoreAdj: 1000 }), env: sandbox.runtime.env, answerWithinMs: 30_000 });
    if (!start.ok) throw attachedStartError(start);
    const { holder } = start;
    sandbox.holders.push(holder.pid);
    expect(holder.registration).toMatchObject({ backend: 'uring', pid: holder.pid, length: 16 * KiB, after: { pinnedBytes: 16 * KiB } });
    expect(statusKb(holder.pid, 'VmPin')).toBe(16);
    expect(readFileSync(`/proc/${holder.pid}/oom_score_adj`, 'utf8').trim()).toBe('1000');
    expect(readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim()).not.toBe('rdmactl-holder');
    expect(findHolderProcesses([holder.pid])).toEqual([]);
    expect(listHeld({ env: sandbox.runtime.env })).toEqual([]);
    await holder.release();
    expect(running(holder.pid)).toBe(false);
  });

  it('SIGKILL ends it while it holds', async () => {
    const start = await startAttachedHolder({ request: request('mlock', 64 * KiB), env: sandbox.runtime.env });
    if (!start.ok) throw attachedStartError(start);
    sandbox.holders.push(start.holder.pid);
    expect(statusKb(start.holder.pid, 'VmLck')).toBe(64);
    start.holder.kill();
    await start.holder.exited;
    expect(running(start.holder.pid)).toBe(false);
  });

  it('a refusal comes back as the holder\'s own failure (kind, exit code, errno)', async () => {
    const start = await startAttachedHolder({ request: { ...request('mlock', 4 * KiB), options: { length: 4 * KiB, backend: 'mlock', backing: 'anon', count: 1, forkInit: true } }, env: sandbox.runtime.env });
    expect(start).toMatchObject({ ok: false, failure: { kind: 'UsageError', exitCode: 2, errno: null } });
  });

  it('the protocol: an attached answer carries a typed registration; a request may ask for an oom_score_adj', () => {
    const registration = sampleReport('uring');
    expect(parseAttachedAnswer(JSON.parse(JSON.stringify({ ok: true, registration })))).toEqual({ ok: true, registration });
    expect(parseAttachedAnswer({ ok: true, registration: { ...registration, backend: 'rdma' } })).toBeNull();
    expect(parseAttachedAnswer({ ok: true, record: registration })).toBeNull();
    expect(parseHolderRequest(request('uring', 4096, { oomScoreAdj: 1000 }))).toMatchObject({ oomScoreAdj: 1000 });
    expect(parseHolderRequest(request('uring', 4096, { oomScoreAdj: 1001 }))).toBeNull();
  });
});
