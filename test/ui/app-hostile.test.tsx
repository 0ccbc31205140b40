// The dashboard with names other users chose: a comm carrying a terminal title, bell and clear-screen
// sequence, a comm with a newline and a forged row, a user name with a bidi override, a mapped file
// and a cgroup named with ESC. ink's Text passes escape sequences through to the terminal: every one
// of them must reach the frame as \xNN, on the line it belongs to.
import { afterEach, describe, expect, it } from 'vitest';
import { render, cleanup } from 'ink-testing-library';
import { App } from '../../src/ui/dashboard/App.js';
import type { GroupRow } from '../../src/observe/cgroups.js';
import { FakeSource, MiB, fakeActions, frameMatching, proc, report } from './fixtures.js';

afterEach(() => cleanup());

const TITLE = 'x\x1b]0;PWNED\x07\x1b[2J';
const TITLE_ESCAPED = 'x\\x1b]0;PWNED\\x07\\x1b[2J';
const FORGER = 'x\n1 root FORGED';
const USER = 'ev\u202eil';
const CGROUP = '/jobs/\x1b]0;CG\x07.slice';


/** Nothing of the hostile strings gets through raw (ink's own styling escapes aside). */
function expectInert(frame: string): void {
  expect(frame).not.toContain('\x1b]0;');
  expect(frame).not.toContain('\x07');
  expect(frame).not.toContain('\x1b[2J');
  expect(frame).not.toContain('\u202e');
  for (const line of frame.split('\n')) if (line.includes('FORGED')) expect(line).toContain('\\x0a1 root FORGED');
}

describe('dashboard with hostile names', () => {
  it('process table, user panel, detail and grouped view print them escaped', async () => {
    const source = new FakeSource();
    const processes = [proc(101, TITLE, 8, 0, { user: USER }), proc(202, FORGER, 4, 0)];
    source.push(report(processes, [{ uid: 1000, user: USER, processes: 2, pinnedBytes: 12 * MiB, lockedBytes: 0, uringBytes: 0 }]));
    const base = fakeActions();
    const groups: GroupRow[] = [{
      group: CGROUP, cgroup: CGROUP, hierarchy: 1, unit: null, container: null, runtime: null, podUid: null, qosClass: null, slurmJob: null, slurmStep: null,
      processes: 2, pinnedBytes: 12 * MiB, lockedBytes: 0, uringBytes: 0, memoryLimitBytes: null, memoryUsageBytes: null, memoryHeadroomBytes: null,
      unevictableBytes: null, rdma: null, flags: [], unreadableFiles: [], members: processes.map((p) => ({ pid: p.pid, nsPid: p.pid, comm: p.comm })),
    }];
    const actions = fakeActions({
      loadDetail: (pid) => ({
        ...base.loadDetail(pid), comm: TITLE, user: USER,
        lockedRanges: [{ start: 0x7f1000000000n, end: 0x7f1000100000n, what: `/tmp/${TITLE}\n1 root FORGED` }],
        notes: [`kernel MR table: ${FORGER}`],
      }),
      groups: () => groups,
    });
    const app = render(<App source={source} actions={actions} columns={120} rows={30} />);

    let frame = await frameMatching(app, (f) => f.includes('PWNED'));
    expectInert(frame);
    // Escaped before the columns are cut to width (USER 8, COMM 15 columns): each row stays one line.
    expect(frame).toContain('101 ev\\xe2\\… x\\x1b]0;PWNED\\…');
    expect(frame).toContain('202 alice    x\\x0a1 root FO…');
    expect(frame).toMatch(/^  ev\\xe2\\x80\\… +2 +12 MiB/m); // the user panel

    app.stdin.write('\r');
    frame = await frameMatching(app, (f) => f.includes('Locked ranges'));
    expectInert(frame);
    expect(frame).toContain(`pid 101  ${TITLE_ESCAPED}  user ev\\xe2\\x80\\xaeil`);
    expect(frame).toContain(`/tmp/${TITLE_ESCAPED}\\x0a1 root FORGED`);
    expect(frame).toContain('note: kernel MR table: x\\x0a1 root FORGED');

    app.stdin.write('\x1b');
    await frameMatching(app, (f) => !f.includes('Locked ranges'));
    for (const key of ['g', 'g', 'g']) app.stdin.write(key); // unit, container, cgroup
    frame = await frameMatching(app, (f) => /CGROUP\s+PROCS/.test(f));
    expectInert(frame);
    expect(frame).toContain('/jobs/\\x1b]0;CG\\x07.slice');
  });
});
