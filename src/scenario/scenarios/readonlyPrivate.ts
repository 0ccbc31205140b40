// readonly-private (the 2012 thread): a file mapped PROT_READ, MAP_PRIVATE, registered asking for
// read access or for write access. The access a device gets should match the mapping; a write pin of a
// read-only mapping must be refused, and a long-term pin of a private file page may be given a private
// copy instead of the file's page-cache page. Evidence: the registration's outcome (the errno of a
// refusal), the PFN of the process's page against the file's own page-cache page (read through a
// separate MAP_SHARED mapping of the same file, in pagemap), and — after the file is rewritten through
// its fd — what the process, the device and the file read: a device on the page-cache page sees the
// file's new bytes, a device on a private copy keeps the old ones.

import { allocateBuffer } from '../../engine/buffer.js';
import { roundUp } from '../../lib/size.js';
import { register, type RegistrationSet } from '../../engine/register.js';
import type { MappedBuffer } from '../../engine/types.js';
import { view } from '../../ffi/libc.js';
import { IBV_ACCESS_REMOTE_READ } from '../../ffi/verbs/enums.js';
import { devicePathFor, type DevicePath } from '../../fork/devicePath.js';
import { checkpoint } from '../../fork/interrupt.js';
import { PATTERN } from '../../fork/observe.js';
import { VERBS_FORK_ACCESS } from '../../fork/runner.js';
import { releaseInOrder, setupSkipReason } from '../../fork/registeredRange.js';
import { bareObservation, firstPfn, observe } from '../evidence.js';
import { emptyRow } from '../setup.js';
import { compactBytes, refusedEvidence, shortSeen, stepOf } from '../summary.js';
import type { Observation, ScenarioCase, ScenarioDefinition, ScenarioEnvironment, ScenarioRow, ScenarioRunContext, ScenarioVerdict } from '../types.js';
import { PatternFile, fileLine, filesystemOf, pinRefusalOf } from './common.js';

const NAME = 'readonly-private';
const VARIANTS = ['read-access', 'write-access'] as const;

export const READONLY_PRIVATE_VERDICTS = [
  {
    id: 'refused', words: 'registration refused', expectable: true,
    meaning: 'the kernel would not pin the read-only mapping with the access asked (the errno is in the row): io_uring always pins for writing (FOLL_WRITE), so a PROT_READ mapping gives EFAULT; a verbs MR with write access likewise',
  },
  {
    id: 'private-copy', words: 'pinned a private copy (the file\'s later writes do not reach the device)', expectable: true,
    meaning: 'the pin moved the process off the file\'s page-cache page onto a private copy: the device keeps the bytes of registration time while the file changes',
  },
  {
    id: 'page-cache', words: 'pinned the file\'s page-cache page', expectable: true,
    meaning: 'the device holds the file\'s own page-cache page: it sees what is written to the file afterwards, as the process does',
  },
  {
    id: 'split', words: 'the device and the process see different bytes', expectable: true,
    meaning: 'after the file was rewritten, the device read one thing and the process another: they are on different pages',
  },
  {
    id: 'not-pinned', words: 'not pinned (no device path to check)', expectable: true,
    meaning: 'plain or mlock: nothing holds a long-term pin; the row shows whether the process maps the page-cache page',
  },
  {
    id: 'unverified', words: 'cannot tell (no device path, PFNs hidden)', expectable: true,
    meaning: 'pinned, but neither a device path nor PFNs could show which page the device holds',
  },
] as const satisfies readonly ScenarioVerdict[];

/** verbs access for each variant: remote-read only (no local-write), or local-write + remote-write + remote-read. */
export function readonlyPrivateAccess(variant: string | null, extra: number): number {
  return (variant === 'write-access' ? VERBS_FORK_ACCESS : IBV_ACCESS_REMOTE_READ) | extra;
}

function notApplicable(c: ScenarioCase, env: ScenarioEnvironment): string | null {
  if (c.backing !== 'file-private') return `not applicable: this scenario maps a file read-only and private (file-private), not ${c.backing}`;
  if (c.variant !== null && !(VARIANTS as readonly string[]).includes(c.variant)) return `not applicable: variant ${c.variant} (read-access or write-access)`;
  if ((c.backend === 'plain' || c.backend === 'mlock') && c.variant === 'write-access') {
    return `not applicable: ${c.backend} asks for no access mode (the read-access row shows it)`;
  }
  if (c.backend === 'verbs' && env.verbsUnavailable) return env.verbsUnavailable;
  return null;
}

/** Reads one byte of every page through the mapping: the process's own loads fault the pages in. */
function touch(buffer: MappedBuffer, pageBytes: number): void {
  const bytes = view(buffer.addr, buffer.length);
  let sum = 0;
  for (let offset = 0; offset < buffer.length; offset += pageBytes) sum += bytes[offset]!;
  if (sum < 0) throw new Error('unreachable');
}

function samePage(a: number | null, b: number | null): string {
  if (a === null || b === null) return 'PFNs hidden or not present';
  return a === b ? `the file's page-cache page (PFN ${a})` : `PFN ${a}, not the file's page-cache page (PFN ${b}): a private copy`;
}

async function run(c: ScenarioCase, ctx: ScenarioRunContext): Promise<ScenarioRow> {
  const inapplicable = notApplicable(c, ctx.env);
  if (inapplicable) return emptyRow(NAME, c, 'skipped', inapplicable, ctx.verbsAccess);
  const row = emptyRow(NAME, c, 'error', null, ctx.verbsAccess);
  const page = ctx.env.pageSize;
  const length = roundUp(ctx.length, page);
  let file: PatternFile | null = null;
  let witness: MappedBuffer | null = null;
  let plain: MappedBuffer | null = null;
  let set: RegistrationSet | null = null;
  let device: DevicePath | null = null;
  try {
    try {
      file = new PatternFile(length, PATTERN.preFork);
      // The file's own page-cache pages, through a separate shared mapping of the same file.
      witness = allocateBuffer({ length, backing: 'file-shared', readOnly: true, file: file.path });
      touch(witness, page);
    } catch (err) {
      const why = setupSkipReason(err);
      if (why === null) throw err;
      return { ...row, verdict: 'skipped', reason: why };
    }
    const pageCachePfn = (): number | null => firstPfn('self', witness!.addr);
    row.observations.push(bareObservation('mapped', {
      pfn: pageCachePfn(), note: `PFN of the file's page-cache page (a separate MAP_SHARED mapping of the file, on ${filesystemOf(file.path)})`,
    }));
    row.length = length;

    let buffer: MappedBuffer;
    if (c.backend === 'plain') {
      plain = allocateBuffer({ length, backing: 'file-private', readOnly: true, file: file.path });
      buffer = plain;
      row.devicePath = 'plain registers nothing: there is no device path';
    } else {
      const access = c.backend === 'verbs' ? readonlyPrivateAccess(c.variant, ctx.verbsAccess) : null;
      try {
        set = await register({
          length, backend: c.backend, backing: 'file-private', readOnly: true, file: file.path,
          ...(access !== null ? { access } : {}),
        });
      } catch (err) {
        const refusal = pinRefusalOf(err);
        if (refusal === null) {
          const why = setupSkipReason(err);
          if (why === null) throw err;
          return { ...row, verdict: 'skipped', reason: why };
        }
        row.observations.push(bareObservation('refused', { note: `${refusal.call}: ${refusal.errnoName}${access !== null ? ` (access ${access})` : ''}` }));
        row.verdict = 'refused';
        row.reason = c.backend === 'uring'
          ? `${refusal.call}: ${refusal.errnoName} — io_uring pins for writing (FOLL_WRITE) whatever access is asked, and the mapping is PROT_READ`
          : `${refusal.call}: ${refusal.errnoName}${c.variant === 'write-access' ? ' — write access to a PROT_READ mapping' : ''}`;
        return row;
      }
      const first = set.registrations[0]!;
      buffer = first.buffer;
      if (c.backend === 'mlock') {
        row.devicePath = 'mlock pins nothing: there is no device path';
      } else {
        const found = devicePathFor(first.registration);
        device = found.path;
        row.devicePath = found.path ? found.path.name : found.unavailable;
      }
    }
    touch(buffer, page);
    const target = { pid: 'self' as const, addr: buffer.addr, length, device };
    const registered = observe('registered', target, {});
    registered.note = `the process maps ${samePage(registered.pfn, pageCachePfn())}`;
    row.observations.push(registered);
    const live = set?.registrations[0]!.registration ?? null;
    await ctx.onStep?.('registered', { pid: 'self', addr: buffer.addr, length, registration: live });
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    file.fill(PATTERN.parent); // pwrite through the fd: the page cache gets the new bytes
    const written: Observation = observe('file-written', target, {});
    written.note = `the file was rewritten (pwrite); ${fileLine(file.fd, length).line}; the process maps ${samePage(written.pfn, pageCachePfn())}`;
    row.observations.push(written);
    await ctx.onStep?.('file-written', { pid: 'self', addr: buffer.addr, length, registration: live });

    if (!row.pinned && !row.onDemand) {
      row.verdict = 'not-pinned';
      row.reason = `the process ${written.processSees === 'parent-write' ? 'sees the file\'s new bytes' : `reads ${written.processSees} after the file was rewritten`}; it maps ${samePage(written.pfn, pageCachePfn())}`;
    } else if (device && written.deviceReads !== 'failed') {
      if (written.deviceReads !== written.processSees) {
        row.verdict = 'split';
        row.reason = `after the file was rewritten the device read ${written.deviceReads}, the process ${written.processSees}`;
      } else if (written.deviceReads === 'parent-write') {
        row.verdict = 'page-cache';
        row.reason = 'the device read the file\'s new bytes through the registration';
      } else if (written.deviceReads === 'pre-fork') {
        row.verdict = 'private-copy';
        row.reason = `the device (and the process) still read the bytes of registration time; the process maps ${samePage(written.pfn, pageCachePfn())}`;
      } else {
        row.verdict = 'unverified';
        row.reason = `the device read ${written.deviceReads}`;
      }
    } else {
      const pc = pageCachePfn();
      if (written.pfn === null || pc === null) {
        row.verdict = 'unverified';
        row.reason = `${row.devicePath ?? 'no device path'}; ${device ? written.note : 'PFNs hidden or not present'}`;
      } else {
        row.verdict = written.pfn === pc ? 'page-cache' : 'private-copy';
        row.reason = `from PFNs only (${row.devicePath ?? 'no device path'}): the process maps ${samePage(written.pfn, pc)}`;
      }
    }
    return row;
  } finally {
    releaseInOrder([() => device?.close(), () => set?.close(), () => plain?.close(), () => witness?.close(), () => file?.close()]);
  }
}

/**
 * "PFN ≠ page cache; after pwrite proc pre, dev pre": which page the process maps against the file's
 * page-cache page, and what the process and the device read after the file was rewritten; or the errno.
 */
export function readonlyPrivateEvidence(row: ScenarioRow): string {
  const refused = refusedEvidence(row);
  if (refused) return refused;
  const pageCache = stepOf(row, 'mapped')?.pfn ?? null;
  const written = stepOf(row, 'file-written');
  const pfn = written?.pfn ?? null;
  const parts = [pfn === null || pageCache === null ? 'PFNs hidden' : `PFN ${pfn === pageCache ? '=' : '≠'} cache`];
  if (row.backend === 'mlock') parts.push(`VmLck ${compactBytes(stepOf(row, 'registered')?.lockedBytes ?? null)}`);
  if (written) parts.push(`pwrite: proc ${shortSeen(written.processSees)}${written.deviceReads !== null ? `, dev ${shortSeen(written.deviceReads)}` : ''}`);
  return parts.join('; ');
}

export const readonlyPrivateScenario: ScenarioDefinition = {
  name: NAME,
  summary: 'a read-only MAP_PRIVATE file registered for read or write access: refused, page cache or private copy (2012 thread)',
  description: `Writes a file with a pattern and maps it PROT_READ, MAP_PRIVATE, plus a separate MAP_SHARED
mapping of the same file whose PFN (pagemap) is the file's own page-cache page. Then registers the
private mapping: variant read-access asks for read access only (verbs: remote-read, no local-write),
write-access for write access (verbs: local-write, remote-write, remote-read); io_uring always pins
for writing, and mlock asks for no access at all. A refusal is the verdict, with its errno. Otherwise
it compares the process's PFN with the page-cache PFN (did the pin make a private copy?), rewrites
the file through its fd, and reads what the file, the process and the device hold: a device on the
page-cache page sees the new bytes, a device on a private copy keeps the old ones.`,
  verdicts: READONLY_PRIVATE_VERDICTS,
  backends: ['plain', 'mlock', 'uring', 'verbs'],
  backings: ['file-private'],
  variants: VARIANTS,
  defaultCases: [
    { backend: 'plain', backing: 'file-private', variant: 'read-access' },
    { backend: 'mlock', backing: 'file-private', variant: 'read-access' },
    { backend: 'uring', backing: 'file-private', variant: 'read-access' },
    { backend: 'uring', backing: 'file-private', variant: 'write-access' },
    { backend: 'verbs', backing: 'file-private', variant: 'read-access' },
    { backend: 'verbs', backing: 'file-private', variant: 'write-access' },
  ],
  notApplicable,
  run,
  evidence: readonlyPrivateEvidence,
};
