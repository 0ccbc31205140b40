// The dashboard's grouped view (key g), fed by a fake sampler and a grouping stand-in that records
// what it was asked (the grouping itself is tested against real cgroups in test/commands).
import { afterEach, describe, expect, it } from 'vitest';
import { render, cleanup } from 'ink-testing-library';
import { App } from '../../src/ui/dashboard/App.js';
import type { GroupBy, GroupRow } from '../../src/observe/cgroups.js';
import type { ProcessRow } from '../../src/observe/stat.js';
import { FakeSource, MiB, fakeActions, frameMatching, proc, report } from './fixtures.js';

afterEach(() => cleanup());

function group(label: string, members: readonly ProcessRow[], extra: Partial<GroupRow> = {}): GroupRow {
  return {
    group: label, cgroup: `/system.slice/${label}`, hierarchy: 2, unit: label, container: null, runtime: null, podUid: null, qosClass: null,
    slurmJob: null, slurmStep: null, processes: members.length,
    pinnedBytes: members.reduce((s, p) => s + p.pinnedBytes, 0), lockedBytes: members.reduce((s, p) => s + p.lockedBytes, 0), uringBytes: 0,
    memoryLimitBytes: 512 * MiB, memoryUsageBytes: 100 * MiB, memoryHeadroomBytes: 512 * MiB - members.reduce((s, p) => s + p.pinnedBytes + p.lockedBytes, 0),
    unevictableBytes: 2 * MiB, rdma: [{ device: 'rxe0', current: { hca_handle: 1, hca_object: 3 }, max: { hca_handle: null, hca_object: 3 }, objectsHeadroom: 0, handlesHeadroom: null }],
    flags: ['near-rdma-limit'], unreadableFiles: [], members: members.map((p) => ({ pid: p.pid, nsPid: p.pid, comm: p.comm })), ...extra,
  };
}


describe('dashboard grouped view', () => {
  it('g cycles unit → container → cgroup → processes; groups are made from the processes shown', async () => {
    const source = new FakeSource();
    source.push(report([proc(101, 'trainer', 8, 0), proc(202, 'nccl-proxy', 64, 2)]));
    const asked: Array<{ by: GroupBy; pids: number[] }> = [];
    const actions = fakeActions({
      groups: (by, processes) => {
        asked.push({ by, pids: processes.map((p) => p.pid).sort() });
        return [group('train.service', processes)];
      },
    });
    const app = render(<App source={source} actions={actions} columns={120} rows={30} />);
    await frameMatching(app, (f) => f.includes('trainer'));
    expect(asked).toEqual([]);

    app.stdin.write('g');
    let frame = await frameMatching(app, (f) => /UNIT\s+PROCS\s+PINNED\s+LOCKED\s+MEMLIMIT\s+HEADROOM/.test(f));
    expect(frame).toMatch(/train\.service\s+2\s+72 MiB\s+2 MiB\s+512 MiB\s+438 MiB\s+2 MiB\s+rxe0 3\/3\s+near-rdma-limit/);
    expect(frame).toContain('by unit (g: container)');
    expect(asked.at(-1)).toEqual({ by: 'unit', pids: [101, 202] });

    app.stdin.write('g');
    await frameMatching(app, (f) => /CONTAINER\s+PROCS/.test(f));
    expect(asked.at(-1)!.by).toBe('container');
    app.stdin.write('g');
    await frameMatching(app, (f) => /CGROUP\s+PROCS/.test(f));
    app.stdin.write('g');
    frame = await frameMatching(app, (f) => /PID USER\s+COMM/.test(f));
    expect(frame).toContain('g group');
  });

  it('the filter narrows the groups; Enter in the grouped view says how to get back', async () => {
    const source = new FakeSource();
    source.push(report([proc(101, 'trainer', 8, 0), proc(202, 'nccl-proxy', 64, 2)]));
    const asked: number[][] = [];
    const actions = fakeActions({ groups: (_by, processes) => { asked.push(processes.map((p) => p.pid)); return [group('x.service', processes)]; } });
    const app = render(<App source={source} actions={actions} columns={120} rows={30} />);
    await frameMatching(app, (f) => f.includes('trainer'));
    for (const ch of '/nccl\r') app.stdin.write(ch);
    await frameMatching(app, (f) => f.includes("filter 'nccl'"));
    app.stdin.write('g');
    await frameMatching(app, (f) => f.includes('x.service'));
    expect(asked.at(-1)).toEqual([202]);
    app.stdin.write('\r');
    await frameMatching(app, (f) => f.includes('press g until the process table is back'));
  });

  it('without a grouping action, g says so', async () => {
    const source = new FakeSource();
    source.push(report([proc(101, 'trainer', 8, 0)]));
    const actions = fakeActions();
    delete (actions as { groups?: unknown }).groups;
    const app = render(<App source={source} actions={actions} columns={120} rows={30} />);
    await frameMatching(app, (f) => f.includes('trainer'));
    app.stdin.write('g');
    await frameMatching(app, (f) => f.includes('grouping is not available here'));
  });
});
