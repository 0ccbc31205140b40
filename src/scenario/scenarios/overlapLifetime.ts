// overlap-lifetime (Dreier, 2005): two handles on one range with lifetimes of their own — two
// io_uring rings each with the range as a fixed buffer, or two verbs MRs over it. The kernel, not user
// space, must keep the pages alive while any handle is valid. Release one handle: VmPin (counted once
// per handle) halves, the remaining handle's device path still reads and writes the process's pages,
// the released one's path is refused by the kernel. Then munmap the range with the other handle still
// registered: the process has nothing there, the device still reaches the old pages. Release the last:
// VmPin and the machine's outstanding pins come back. mlock twice does not stack: one munlock undoes both.

import { register, type RegistrationSet } from '../../engine/register.js';
import type { Registration } from '../../engine/types.js';
import { UringRegistration } from '../../engine/uring.js';
import { VerbsRegistration } from '../../engine/verbs/registration.js';
import { SyscallError } from '../../lib/errno.js';
import { view } from '../../ffi/libc.js';
import { devicePathFor, type DevicePath } from '../../fork/devicePath.js';
import { checkpoint } from '../../fork/interrupt.js';
import { PATTERN, classify } from '../../fork/observe.js';
import { VERBS_FORK_ACCESS } from '../../fork/runner.js';
import { releaseInOrder, setupSkipReason } from '../../fork/registeredRange.js';
import { readStatus } from '../../proc/status.js';
import { bareObservation, deviceReads, observe, pinsOutstanding } from '../evidence.js';
import { emptyRow } from '../setup.js';
import { compactBytes, shortSeen, stepOf } from '../summary.js';
import type { Observation, ScenarioCase, ScenarioDefinition, ScenarioEnvironment, ScenarioRow, ScenarioRunContext, ScenarioVerdict } from '../types.js';
import { pagesOf } from './common.js';

const NAME = 'overlap-lifetime';

export const OVERLAP_VERDICTS = [
  {
    id: 'lifetimes-independent', words: 'each handle keeps the pages on its own', expectable: true,
    meaning: 'after one of two handles was released, the other still read and wrote the process\'s pages, and after munmap it still reached them; the last release gave VmPin back (the row shows VmPin with two handles, one and none)',
  },
  {
    id: 'remaining-handle-broken', words: 'the remaining handle lost the pages', expectable: true,
    meaning: 'after one handle was released, the other no longer read or wrote the process\'s pages (the lifetime bug the 2005 thread warned of)',
  },
  {
    id: 'lost-after-munmap', words: 'the remaining handle lost the pages at munmap', expectable: true,
    meaning: 'after munmap, the remaining handle could no longer reach the old pages (an on-demand MR follows the page tables, which have nothing there now)',
  },
  {
    id: 'pins-leaked', words: 'pins left after the last release', expectable: true,
    meaning: 'after both handles were released, VmPin did not come back to where it was before registering',
  },
  {
    id: 'locks-do-not-stack', words: 'mlock does not stack: one munlock unlocks both', expectable: true,
    meaning: 'the second mlock of the range added nothing to VmLck, and one munlock took VmLck back to where it was although the other "handle" never let go',
  },
  {
    id: 'unverified', words: 'cannot tell (no device data path here)', expectable: true,
    meaning: 'the handles pin, but there is no device data path to show what each one reaches',
  },
] as const satisfies readonly ScenarioVerdict[];

/** Released the first handle the way its backend's user would, but keeping what its device path needs. */
function releaseFirstHandle(registration: Registration): string {
  switch (registration.backend) {
    case 'uring':
      // IORING_UNREGISTER_BUFFERS: the ring stays open, so its path can still ask the kernel (and be refused).
      if (!(registration instanceof UringRegistration)) throw new Error('internal: a uring registration without its ring');
      registration.ring.unregisterBuffers();
      return 'io_uring_register(IORING_UNREGISTER_BUFFERS) on the first ring';
    case 'verbs':
      // ibv_dereg_mr only: the PD and the path's QP stay, so the path can still try the old rkey.
      if (!(registration instanceof VerbsRegistration)) throw new Error('internal: a verbs registration without its MR');
      registration.mr.close();
      return 'ibv_dereg_mr of the first MR';
    case 'mlock':
      registration.close();
      return 'munlock of the range (the first "handle")';
  }
}

/** After releaseFirstHandle: closes the rest of that handle; a uring ring whose buffers we unregistered says ENXIO, which is expected. */
function closeFirstHandle(registration: Registration): void {
  try {
    registration.close();
  } catch (err) {
    if (!(registration.backend === 'uring' && err instanceof SyscallError && err.call === 'io_uring_register' && err.errnoName === 'ENXIO')) throw err;
  }
}

/**
 * Releases the second handle. mlock after munmap: munlock of a range that is no longer mapped fails
 * with ENOMEM — munmap already unlocked it; that refusal is returned as evidence, not thrown.
 */
function closeSecondHandle(registration: Registration): string | null {
  try {
    registration.close();
    return null;
  } catch (err) {
    if (registration.backend === 'mlock' && err instanceof SyscallError && err.errnoName === 'ENOMEM') return err.message;
    throw err;
  }
}

function notApplicable(c: ScenarioCase, env: ScenarioEnvironment): string | null {
  if (c.backend === 'plain') return 'not applicable: plain registers nothing, so there are no handles to overlap';
  if (c.backend === 'verbs' && env.verbsUnavailable) return env.verbsUnavailable;
  return null;
}

function pinnedNow(): number | null {
  return readStatus('self')?.pinnedBytes ?? null;
}

function lockedNow(): number | null {
  return readStatus('self')?.lockedBytes ?? null;
}

async function run(c: ScenarioCase, ctx: ScenarioRunContext): Promise<ScenarioRow> {
  const inapplicable = notApplicable(c, ctx.env);
  if (inapplicable) return emptyRow(NAME, c, 'skipped', inapplicable, ctx.verbsAccess);
  const row = emptyRow(NAME, c, 'error', null, ctx.verbsAccess);
  const before = readStatus('self');
  const pinnedBefore = before?.pinnedBytes ?? 0;
  const lockedBefore = before?.lockedBytes ?? 0;
  const pinsBefore = pinsOutstanding();

  let set: RegistrationSet;
  try {
    set = await register({
      length: ctx.length, backend: c.backend as 'mlock' | 'uring' | 'verbs', backing: c.backing, overlap: true,
      ...(c.backend === 'verbs' ? { access: VERBS_FORK_ACCESS | ctx.verbsAccess } : {}),
    });
  } catch (err) {
    const why = setupSkipReason(err);
    if (why === null) throw err;
    return { ...row, verdict: 'skipped', reason: why };
  }

  const [first, second] = set.registrations;
  const buffer = first!.buffer;
  const { addr, length } = buffer;
  row.length = length;
  const pages = pagesOf(length, ctx.env.pageSize);
  let firstPath: DevicePath | null = null;
  let secondPath: DevicePath | null = null;
  let firstReleased = false;
  // observe() reads the range through /proc/self/mem, so it is safe after munmap too (a view is not).
  const obs = (step: string, device: DevicePath | null, note: string | null): Observation =>
    observe(step, { pid: 'self', addr, length, device }, { note });
  try {
    // A verbs device path registers a bounce buffer of its own (pinned too): VmPin is compared without it.
    const pinnedRegistered = pinnedNow() ?? 0;
    if (c.backend !== 'mlock') {
      const a = devicePathFor(first!.registration);
      const b = devicePathFor(second!.registration);
      firstPath = a.path;
      secondPath = b.path;
      row.devicePath = b.path ? `${b.path.name}, one per handle` : b.unavailable;
    } else {
      row.devicePath = 'mlock pins nothing: there is no device path';
    }
    const pathBytes = (pinnedNow() ?? 0) - pinnedRegistered;
    const mine = view(addr, length);
    mine.fill(PATTERN.preFork);

    const registered = obs('registered', secondPath, `two handles on one range (${length} bytes each): VmPin +${pinnedRegistered - pinnedBefore}, VmLck +${lockedNow()! - lockedBefore} bytes`
      + (pathBytes > 0 ? ` (the device paths' own bounce buffers pin ${pathBytes} bytes more)` : ''));
    row.observations.push(registered);
    await ctx.onStep?.('registered', { pid: 'self', addr, length, registration: second!.registration });
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    const how = releaseFirstHandle(first!.registration);
    firstReleased = true;
    if (firstPath) {
      const attempt = deviceReads(firstPath, length);
      row.observations.push(bareObservation('released-handle-read', { deviceReads: attempt.seen, pinsOutstanding: pinsOutstanding(), note: attempt.error ? `device read through the released handle failed: ${attempt.error}` : null }));
    }
    const afterOne = obs('released-one', secondPath, how);
    row.observations.push(afterOne);
    await ctx.onStep?.('released-one', { pid: 'self', addr, length, registration: second!.registration });
    let deviceWrote: Observation | null = null;
    if (secondPath) {
      let writeError: string | null = null;
      try {
        secondPath.deviceWrite(Buffer.alloc(length, PATTERN.device), 0);
      } catch (err) {
        writeError = err instanceof Error ? err.message : String(err);
      }
      deviceWrote = obs('device-wrote', secondPath, writeError ? `device write through the remaining handle failed: ${writeError}` : 'the device wrote through the remaining handle');
      deviceWrote.processSees = classify(mine); // the process's own load, through its page tables
      row.observations.push(deviceWrote);
      await ctx.onStep?.('device-wrote', { pid: 'self', addr, length, registration: second!.registration });
    }
    // The released handle's path is done: close it now, so VmPin after the last release is comparable.
    firstPath?.close();
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    buffer.close(); // munmap, with the second handle still registered
    const afterMunmap = observe('munmap', { pid: 'self', addr, length, device: secondPath, unmapped: true }, { note: 'munmap of the range with the second handle still registered' });
    row.observations.push(afterMunmap);
    await ctx.onStep?.('munmap', { pid: 'self', addr, length, registration: second!.registration });
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    let lastNote = 'both handles released';
    releaseInOrder([() => secondPath?.close(), () => {
      const refused = closeSecondHandle(second!.registration);
      if (refused) lastNote = `munlock of the second "handle" after munmap: ${refused} (nothing is mapped there; munmap already unlocked it)`;
    }]);
    const pinsHeld = registered.pinsOutstanding;
    const lastRelease = bareObservation('released', {
      pinnedBytes: pinnedNow(), lockedBytes: lockedNow(), pinsOutstanding: pinsOutstanding(), note: lastNote,
    });
    row.observations.push(lastRelease);
    await ctx.onStep?.('released', { pid: 'self', addr, length, registration: null });

    // The verdict, from what was seen.
    const vmPinTwice = pinnedRegistered - pinnedBefore;
    const vmPinOnce = (afterOne.pinnedBytes ?? 0) - pathBytes - pinnedBefore;
    if (c.backend === 'mlock') {
      const lockedTwice = (registered.lockedBytes ?? 0) - lockedBefore;
      const lockedAfterOne = (afterOne.lockedBytes ?? 0) - lockedBefore;
      if (lockedTwice < 2 * length && lockedAfterOne === 0) {
        row.verdict = 'locks-do-not-stack';
        row.reason = `two mlocks raised VmLck by ${lockedTwice} bytes (${length} bytes each); one munlock took it back by ${lockedTwice - lockedAfterOne}`;
      } else {
        row.verdict = 'lifetimes-independent';
        row.reason = `VmLck +${lockedTwice} for two mlocks, +${lockedAfterOne} after one munlock`;
      }
      return row;
    }
    if (lastRelease.pinnedBytes !== null && lastRelease.pinnedBytes > pinnedBefore) {
      row.verdict = 'pins-leaked';
      row.reason = `VmPin ${lastRelease.pinnedBytes} after both releases, ${pinnedBefore} before registering`;
      return row;
    }
    if (!secondPath) {
      row.verdict = 'unverified';
      row.reason = row.devicePath;
      return row;
    }
    const stillCoherent = afterOne.deviceReads === 'pre-fork' && deviceWrote?.processSees === 'device-write';
    if (!stillCoherent) {
      row.verdict = 'remaining-handle-broken';
      row.reason = `after releasing one handle the other read ${afterOne.deviceReads}; after it wrote, the process read ${deviceWrote?.processSees ?? 'nothing'}`;
      return row;
    }
    if (afterMunmap.deviceReads !== 'device-write') {
      row.verdict = 'lost-after-munmap';
      row.reason = `after munmap the remaining handle read ${afterMunmap.deviceReads}${afterMunmap.note?.startsWith('device read failed') ? ` (${afterMunmap.note})` : ''}`;
      return row;
    }
    const pinsLine = pinsHeld !== null && pinsBefore !== null && lastRelease.pinsOutstanding !== null
      ? `; pins outstanding (machine-wide, other processes move them too) ${pinsHeld - pinsBefore >= 0 ? '+' : ''}${pinsHeld - pinsBefore} pages with both handles (${2 * pages} pinned), ${lastRelease.pinsOutstanding - pinsBefore >= 0 ? '+' : ''}${lastRelease.pinsOutstanding - pinsBefore} after the last release`
      : '';
    row.verdict = 'lifetimes-independent';
    row.reason = `VmPin +${vmPinTwice} with two handles, +${vmPinOnce} with one, +${(lastRelease.pinnedBytes ?? 0) - pinnedBefore} with none`
      + pinsLine;
    return row;
  } finally {
    // Paths before their registrations (a verbs QP holds its PD); the first handle's remains; then the set.
    releaseInOrder([
      () => secondPath?.close(),
      () => firstPath?.close(),
      () => (firstReleased ? closeFirstHandle(first!.registration) : undefined),
      () => closeSecondHandle(second!.registration),
      () => set.close(),
    ]);
  }
}

/** "VmPin 32K→16K→0 (2/1/0 handles); after munmap dev reads dev": the accounting per handle, and what the last handle reached. */
export function overlapEvidence(row: ScenarioRow): string {
  const field = row.backend === 'mlock' ? 'lockedBytes' : 'pinnedBytes';
  const values = ['registered', 'released-one', 'released'].map((s) => compactBytes(stepOf(row, s)?.[field] ?? null));
  const parts = [`${row.backend === 'mlock' ? 'VmLck' : 'VmPin'} ${values.join('→')}`];
  const munmap = stepOf(row, 'munmap');
  if (munmap?.deviceReads != null) parts.push(`unmapped: dev reads ${shortSeen(munmap.deviceReads)}`);
  return parts.join('; ');
}

export const overlapLifetimeScenario: ScenarioDefinition = {
  name: NAME,
  summary: 'two handles on one range, released one at a time, with a munmap in between (Dreier 2005)',
  description: `Registers one range twice — two io_uring rings with it as a fixed buffer, two verbs MRs, or
two mlocks — and fills it with a pattern. Then releases the first handle (IORING_UNREGISTER_BUFFERS,
ibv_dereg_mr, munlock): VmPin counted each handle and drops by one; the remaining handle's device
path must still read the process's bytes and its writes must reach the process, while the released
handle's path is refused by the kernel. Then it munmaps the range with the second handle still
registered: the process has nothing there (a read of /proc/self/mem fails), the device still reaches
the old pages. Releasing the last handle gives VmPin and the machine's outstanding pins back. mlock
shows why locks are not handles: the second mlock adds nothing to VmLck and one munlock undoes both.`,
  verdicts: OVERLAP_VERDICTS,
  backends: ['plain', 'mlock', 'uring', 'verbs'],
  backings: ['anon', 'thp', 'hugetlb', 'memfd'],
  variants: null,
  defaultCases: [
    { backend: 'mlock', backing: 'anon', variant: null },
    { backend: 'uring', backing: 'anon', variant: null },
    { backend: 'verbs', backing: 'anon', variant: null },
  ],
  notApplicable,
  run,
  evidence: overlapEvidence,
};
