// truncate (the 2018 thread on file-backed pages under long-term pins): register a shared file
// mapping — a memfd (shmem, which every kernel lets you pin) or a regular file — then truncate the file
// to 0 (and back to its size), or punch a hole over the range. The file's pages leave the file and the
// process's page tables (the process gets SIGBUS beyond EOF, or fresh zero pages in the hole), but a
// pin keeps the old pages alive for the device: it reads the old bytes and its writes reach nothing
// anyone else can read. Evidence: pread on the file's fd, the process's view through /proc/self/mem
// (EIO where a load would SIGBUS: the scenario never touches the range itself after truncating), the
// device's reads and writes through the registration, VmPin and the pins outstanding. On kernels that
// refuse a long-term pin of a regular file's pages (FOLL_LONGTERM on a file that needs dirty
// tracking), the refusal and its errno are the verdict.

import { closeSync, ftruncateSync } from 'node:fs';
import { allocateBuffer } from '../../engine/buffer.js';
import { roundUp } from '../../lib/size.js';
import { register, type RegistrationSet } from '../../engine/register.js';
import type { MappedBuffer } from '../../engine/types.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, fallocate, memfdCreate } from '../../ffi/libc.js';
import { devicePathFor, pwriteAll, type DevicePath } from '../../fork/devicePath.js';
import { checkpoint } from '../../fork/interrupt.js';
import { PATTERN, type EvidenceTarget } from '../../fork/observe.js';
import { VERBS_FORK_ACCESS } from '../../fork/runner.js';
import { releaseInOrder, setupSkipReason } from '../../fork/registeredRange.js';
import { procPath } from '../../proc/procfs.js';
import { readStatus } from '../../proc/status.js';
import { bareObservation, observe, pinsOutstanding } from '../evidence.js';
import { emptyRow } from '../setup.js';
import { compactBytes, refusedEvidence, shortSeen, stepOf } from '../summary.js';
import type { Observation, ScenarioCase, ScenarioDefinition, ScenarioEnvironment, ScenarioRow, ScenarioRunContext, ScenarioVerdict } from '../types.js';
import { PatternFile, fileLine, filesystemOf, pinRefusalOf, type FileContent } from './common.js';

const NAME = 'truncate';
const VARIANTS = ['truncate', 'punch-hole'] as const;

export const TRUNCATE_VERDICTS = [
  {
    id: 'device-keeps-old-pages', words: 'the device keeps the file\'s old pages (its writes reach nothing)', expectable: true,
    meaning: 'after the truncate or hole punch, the file and the process no longer have the pages, but the device still reads the old bytes through its pin, and what it writes is seen by neither the file nor the process',
  },
  {
    id: 'device-lost-access', words: 'the device lost access', expectable: true,
    meaning: 'after the truncate or hole punch, the device\'s reads failed (an on-demand MR follows the file, which has no page there)',
  },
  {
    id: 'device-follows-file', words: 'the device follows the file', expectable: true,
    meaning: 'after the truncate or hole punch, the device read what the file holds now (an on-demand MR faults in the file\'s new pages)',
  },
  {
    id: 'refused', words: 'long-term pin of this file refused', expectable: true,
    meaning: 'the kernel refused to pin the file\'s pages long-term (the errno is in the row): current kernels refuse FOLL_LONGTERM writable pins of files that need dirty tracking (regular files on most filesystems; shmem and hugetlbfs are allowed)',
  },
  {
    id: 'not-pinned', words: 'not pinned (no device path to check)', expectable: true,
    meaning: 'plain or mlock: nothing keeps the pages; the row shows what the process and the file see',
  },
  {
    id: 'unverified', words: 'cannot tell (no device data path here)', expectable: true,
    meaning: 'pinned, but there is no device path to show which pages the device holds',
  },
] as const satisfies readonly ScenarioVerdict[];

function notApplicable(c: ScenarioCase, env: ScenarioEnvironment): string | null {
  if (c.backing !== 'memfd' && c.backing !== 'file-shared') return `not applicable: truncate needs a shared file mapping (memfd or file-shared), not ${c.backing}`;
  if (c.variant !== null && !(VARIANTS as readonly string[]).includes(c.variant)) return `not applicable: variant ${c.variant} (truncate or punch-hole)`;
  if (c.backend === 'verbs' && env.verbsUnavailable) return env.verbsUnavailable;
  return null;
}

/** The file behind the mapping, with an fd the scenario keeps (to truncate, punch and pread). */
interface BackingFile {
  fd: number;
  /** A path the engine can map it by (/proc/self/fd/N for a memfd: the same file, opened again). */
  path: string;
  /** "a memfd (shmem)", "a regular file on ext2/3/4": which pins the kernel allows depends on it. */
  what: string;
  close(): void;
}

function openBackingFile(c: ScenarioCase, length: number): BackingFile {
  if (c.backing === 'file-shared') {
    const file = new PatternFile(length, PATTERN.preFork);
    return { fd: file.fd, path: file.path, what: `a regular file on ${filesystemOf(file.path)}`, close: () => file.close() };
  }
  const fd = memfdCreate('rdmactl-truncate');
  try {
    ftruncateSync(fd, length);
    pwriteAll(fd, Buffer.alloc(length, PATTERN.preFork));
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return { fd, path: procPath('self', `fd/${fd}`), what: 'a memfd (shmem)', close: () => closeSync(fd) };
}

function describeFileContent(content: FileContent): string {
  return content === 'eof' ? 'EOF' : content;
}

async function run(c: ScenarioCase, ctx: ScenarioRunContext): Promise<ScenarioRow> {
  const inapplicable = notApplicable(c, ctx.env);
  if (inapplicable) return emptyRow(NAME, c, 'skipped', inapplicable, ctx.verbsAccess);
  const row = emptyRow(NAME, c, 'error', null, ctx.verbsAccess);
  const variant = c.variant ?? 'truncate';
  const length = roundUp(ctx.length, ctx.env.pageSize);
  let file: BackingFile | null = null;
  let plain: MappedBuffer | null = null;
  let set: RegistrationSet | null = null;
  let device: DevicePath | null = null;
  try {
    try {
      file = openBackingFile(c, length);
    } catch (err) {
      const why = setupSkipReason(err);
      if (why === null) throw err;
      return { ...row, verdict: 'skipped', reason: why };
    }
    let buffer: MappedBuffer;
    try {
      if (c.backend === 'plain') {
        plain = allocateBuffer({ length, backing: 'file-shared', file: file.path });
        buffer = plain;
      } else {
        set = await register({
          length, backend: c.backend, backing: 'file-shared', file: file.path,
          ...(c.backend === 'verbs' ? { access: VERBS_FORK_ACCESS | ctx.verbsAccess } : {}),
        });
        buffer = set.registrations[0]!.buffer;
      }
    } catch (err) {
      const refusal = pinRefusalOf(err);
      if (refusal === null) {
        const why = setupSkipReason(err);
        if (why === null) throw err;
        return { ...row, verdict: 'skipped', reason: why };
      }
      row.observations.push(bareObservation('refused', { pinsOutstanding: pinsOutstanding(), note: `${refusal.call}: ${refusal.errnoName}` }));
      row.verdict = 'refused';
      row.reason = `${refusal.call}: ${refusal.errnoName} — the kernel would not take a long-term pin of the pages of ${file.what}`;
      return row;
    }
    row.length = length;
    if (set && c.backend !== 'mlock') {
      const found = devicePathFor(set.registrations[0]!.registration);
      device = found.path;
      row.devicePath = found.path ? found.path.name : found.unavailable;
    } else {
      row.devicePath = `${c.backend} pins nothing: there is no device path`;
    }
    const target: EvidenceTarget = { pid: 'self', addr: buffer.addr, length, device };
    // The file is read first at each step: the process's read of a punched hole faults a new page into it.
    const live = set?.registrations[0]!.registration ?? null;
    const step = async (name: string, what: string): Promise<{ observation: Observation; file: FileContent }> => {
      const seen = fileLine(file!.fd, length);
      const observation = observe(name, target, {});
      observation.note = [what, seen.line, observation.note].filter(Boolean).join('; ');
      row.observations.push(observation);
      await ctx.onStep?.(name, { pid: 'self', addr: buffer.addr, length, registration: live && !live.closed ? live : null });
      return { observation, file: seen.content };
    };

    const registered = (await step('registered', `registered ${length} bytes of ${file.what}`)).observation;
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    if (variant === 'punch-hole') fallocate(file.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, length);
    else ftruncateSync(file.fd, 0);
    const cut = await step(variant === 'punch-hole' ? 'punched' : 'truncated', variant === 'punch-hole'
      ? 'fallocate(PUNCH_HOLE|KEEP_SIZE) over the whole range'
      : 'ftruncate to 0 (the process reading the range now gets EIO through /proc/self/mem where a load would SIGBUS)');
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    let later = cut;
    if (variant === 'truncate') {
      ftruncateSync(file.fd, length);
      later = await step('resized', `ftruncate back to ${length} bytes`);
    }
    let wrote: { observation: Observation; file: FileContent } | null = null;
    if (device) {
      let error: string | null = null;
      try {
        device.deviceWrite(Buffer.alloc(length, PATTERN.device), 0);
      } catch (err) {
        error = err instanceof Error ? err.message : String(err);
      }
      wrote = await step('device-wrote', error ? `the device's write failed: ${error}` : 'the device wrote through the registration');
    }
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    releaseInOrder([() => device?.close(), ...(set ? set.registrations.map((r) => () => r.registration.close()) : [])]);
    device = null;
    row.observations.push(bareObservation('released', {
      pinnedBytes: readStatus('self')?.pinnedBytes ?? null, lockedBytes: readStatus('self')?.lockedBytes ?? null,
      pinsOutstanding: pinsOutstanding(), note: 'the registration released (the mapping is still there)',
    }));
    await ctx.onStep?.('released', { pid: 'self', addr: buffer.addr, length, registration: null });

    const c0 = cut.observation;
    if (!row.pinned && !row.onDemand) {
      row.verdict = 'not-pinned';
      row.reason = `after ${variant}: the file reads ${describeFileContent(cut.file)}, the process ${c0.processSees === 'unmapped' ? 'gets EIO (SIGBUS region)' : `reads ${c0.processSees}`}`;
    } else if (!wrote) {
      row.verdict = 'unverified';
      row.reason = row.devicePath;
    } else if (c0.deviceReads === 'failed') {
      row.verdict = 'device-lost-access';
      // A failed RDMA transfer moves the loopback QP to the error state: later device steps fail too.
      row.reason = `after ${variant} the device's read failed (${c0.note ?? ''})${c.backend === 'verbs' ? '; later device steps fail with the QP in the error state, not for want of pages' : ''}`;
    } else if (c0.deviceReads === registered.deviceReads && cut.file !== registered.deviceReads) {
      row.verdict = 'device-keeps-old-pages';
      row.reason = `after ${variant} the device still read ${c0.deviceReads} while the file read ${describeFileContent(cut.file)}`
        + `; after its write the device read ${wrote.observation.deviceReads}, the file ${describeFileContent(wrote.file)}, the process ${wrote.observation.processSees}`;
    } else {
      row.verdict = 'device-follows-file';
      row.reason = `after ${variant} the device read ${c0.deviceReads}, the file ${describeFileContent(cut.file)}; later the device read ${later.observation.deviceReads}`;
    }
    return row;
  } finally {
    releaseInOrder([() => device?.close(), () => set?.close(), () => plain?.close(), () => file?.close()]);
  }
}

/** What the file read in an observation's note ("file (pread): EOF, 0 bytes" / "…: 16384 bytes, pre-fork"). */
function fileSeenIn(o: Observation | undefined): string {
  const m = o?.note ? /file \(pread\): (?:(EOF)|\d+ bytes, ([a-z-]+))/.exec(o.note) : null;
  return m ? (m[1] ?? shortSeen(m[2])) : '-';
}

/** "cut: file EOF, proc unmapped, dev pre; VmPin 16K→0": what the file, process and device read after the cut. */
export function truncateEvidence(row: ScenarioRow): string {
  const refused = refusedEvidence(row);
  if (refused) return refused;
  const cut = stepOf(row, row.variant === 'punch-hole' ? 'punched' : 'truncated');
  if (!cut) return '';
  const parts = [`file ${fileSeenIn(cut)}/proc ${shortSeen(cut.processSees)}${cut.deviceReads !== null ? `/dev ${shortSeen(cut.deviceReads)}` : ''}`];
  const released = stepOf(row, 'released');
  if (row.pinned) parts.push(`VmPin ${compactBytes(stepOf(row, 'registered')?.pinnedBytes ?? null)}→${compactBytes(released?.pinnedBytes ?? null)}`);
  else if (row.backend === 'mlock') parts.push(`VmLck ${compactBytes(stepOf(row, 'registered')?.lockedBytes ?? null)}→${compactBytes(released?.lockedBytes ?? null)}`);
  return parts.join('; ');
}

export const truncateScenario: ScenarioDefinition = {
  name: NAME,
  summary: 'truncate a file, or punch a hole in it, under a registration of its pages (2018 thread)',
  description: `Fills a file with a pattern — a memfd (shmem) or a regular file (file-shared) — maps it shared and
registers the mapping. Variant truncate: ftruncate to 0, then back to the size; punch-hole:
fallocate(PUNCH_HOLE|KEEP_SIZE) over the range. After each step it reads the file (pread), what the
process sees (through /proc/self/mem: EIO where a load would SIGBUS) and what the device reads
through the registration; then the device writes and all three are read again, and the registration
is released (VmPin, pins outstanding). A pin keeps the old pages alive for the device: it reads the
old bytes and its writes reach nobody. A kernel that refuses the long-term pin of a regular file's
pages says so with an errno: that refusal is the row's verdict. The regular file is an unnamed file
in $TMPDIR: its file system decides (tmpfs pages may be pinned; ext4, xfs, btrfs not from Linux 6.5).`,
  verdicts: TRUNCATE_VERDICTS,
  backends: ['plain', 'mlock', 'uring', 'verbs'],
  backings: ['memfd', 'file-shared'],
  variants: VARIANTS,
  defaultCases: [
    { backend: 'plain', backing: 'memfd', variant: 'truncate' },
    { backend: 'mlock', backing: 'memfd', variant: 'truncate' },
    { backend: 'uring', backing: 'memfd', variant: 'truncate' },
    { backend: 'uring', backing: 'memfd', variant: 'punch-hole' },
    { backend: 'uring', backing: 'file-shared', variant: 'truncate' },
    { backend: 'verbs', backing: 'memfd', variant: 'truncate' },
    { backend: 'verbs', backing: 'memfd', variant: 'punch-hole' },
    { backend: 'verbs', backing: 'file-shared', variant: 'truncate' },
  ],
  notApplicable,
  run,
  evidence: truncateEvidence,
};
