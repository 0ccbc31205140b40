// rdmactl reg SIZE: register buffers, print what the kernel charged, hold, release, print again.

import { Command, Option } from 'commander';
import { commaListOf, completes } from '../lib/completionHints.js';
import { readAccounting, register, validateOptions, type RegisterOptions, type Accounting } from '../engine/register.js';
import { reportRegistrations, type HandleReport, type RegistrationSetReport } from '../engine/report.js';
import { BACKENDS, BACKINGS, type Backing, type BackendChoice } from '../engine/types.js';
import { resolveBackend } from '../engine/backendChoice.js';
import { EXIT, RdmactlError, UsageError } from '../lib/errors.js';
import { OutputError, note, type Context } from '../lib/context.js';
import { toJson, type Field } from '../lib/fields.js';
import { addOutputOptions, outputView, type OutputFlags, type OutputView } from '../lib/output.js';
import { DURATION_HELP, SIZE_HELP, parseCount, parseDuration, parseSize } from '../lib/size.js';
import { waitForRelease } from '../lib/hold.js';
import { spawnHolder, type PendingHolder } from '../held/starter.js';

/** For completion; loaded only then (the verbs bindings are not needed to start `reg`). */
const accessFlagNames = async (): Promise<string[]> => Object.keys((await import('../engine/verbs/access.js')).ACCESS_FLAGS);

interface RegFlags extends OutputFlags {
  backend: BackendChoice;
  backing: Backing;
  file?: string;
  readOnly?: boolean;
  device?: string;
  access?: string;
  onFault?: boolean;
  dontfork?: boolean;
  wipeonfork?: boolean;
  forkInit?: boolean;
  count: number;
  overlap?: boolean;
  for?: string;
  json?: boolean;
  detach?: boolean;
}

/**
 * What `reg` prints: the typed report of the registration (made here, or by a detached holder and
 * read back from its answer), and a detached holder's id. Text and JSON both come from REG_FIELDS.
 */
export interface RegRecord {
  report: RegistrationSetReport;
  /** A detached holder's id. */
  id?: string;
}

const isVerbs = (r: RegRecord): boolean => r.report.backend === 'verbs';

function verbsDetail(record: RegRecord, key: 'device' | 'lkey' | 'rkey'): string | number | null {
  const { report } = record;
  return report.backend === 'verbs' ? report.handles[0]?.details[key] ?? null : null;
}

/** A handle as reg --json prints it in registrations[]: the backend's details flattened beside addr and length. */
function handleJson(handle: HandleReport): { [key: string]: string | number | boolean } {
  return { addr: handle.addr, length: handle.length, elapsedMicros: handle.elapsedMicros, ...handle.details };
}

export const REG_FIELDS: readonly Field<RegRecord>[] = [
  { key: 'id', label: 'ID', title: 'id', description: 'id of a held registration (--detach; null otherwise): give it to dereg', get: (r) => r.id ?? null, showIf: (r) => r.id !== undefined },
  { key: 'pid', label: 'PID', title: 'pid', description: 'process holding the registration', get: (r) => r.report.pid },
  { key: 'backend', label: 'BACKEND', title: 'backend', description: 'how it is registered: verbs, uring or mlock', get: (r) => r.report.backend },
  { key: 'backendRequested', label: 'REQUESTED', title: 'requested backend', description: 'the --backend asked for (auto picks one)', get: (r) => r.report.backendRequested, extra: true },
  { key: 'backing', label: 'BACKING', title: 'backing', description: 'what backs the buffer: anon, thp, hugetlb, memfd, file-shared, file-private', get: (r) => r.report.backing },
  { key: 'readOnly', label: 'READ-ONLY', title: 'read-only', description: 'the buffer is mapped PROT_READ', kind: 'bool', get: (r) => r.report.readOnly },
  { key: 'protections', label: 'PROTECTION', title: 'fork protection', description: 'dontfork, wipeonfork, fork-init applied first (null: none)', get: (r) => (r.report.protections.length > 0 ? [...r.report.protections] : null), nullText: 'none' },
  { key: 'addr', label: 'ADDR', title: 'addr', description: 'address of the first buffer (hex)', get: (r) => r.report.addr },
  { key: 'length', label: 'LENGTH', title: 'length', description: 'bytes of the first buffer', kind: 'bytes', get: (r) => r.report.length },
  { key: 'buffers', label: 'BUFFERS', title: 'buffers', description: 'buffers mapped (--count)', kind: 'count', get: (r) => r.report.buffers },
  { key: 'handles', label: 'REGISTRATIONS', title: 'registrations', description: 'registrations made (twice the buffers with --overlap)', kind: 'count', get: (r) => r.report.handles.length },
  { key: 'device', label: 'DEVICE', title: 'device', description: 'verbs: RDMA device of the first MR', get: (r) => verbsDetail(r, 'device'), showIf: isVerbs },
  { key: 'lkey', label: 'LKEY', title: 'lkey', description: 'verbs: local key of the first MR', get: (r) => verbsDetail(r, 'lkey'), showIf: isVerbs },
  { key: 'rkey', label: 'RKEY', title: 'rkey', description: 'verbs: remote key of the first MR', get: (r) => verbsDetail(r, 'rkey'), showIf: isVerbs },
  { key: 'pinnedBytesBefore', label: 'VMPIN-BEFORE', title: 'VmPin before', description: 'VmPin of the registering process before registering', kind: 'bytes', get: (r) => r.report.before.pinnedBytes },
  { key: 'pinnedBytesAfter', label: 'VMPIN-AFTER', title: 'VmPin after', description: 'VmPin after registering', kind: 'bytes', get: (r) => r.report.after.pinnedBytes },
  { key: 'lockedBytesBefore', label: 'VMLCK-BEFORE', title: 'VmLck before', description: 'VmLck before registering', kind: 'bytes', get: (r) => r.report.before.lockedBytes },
  { key: 'lockedBytesAfter', label: 'VMLCK-AFTER', title: 'VmLck after', description: 'VmLck after registering', kind: 'bytes', get: (r) => r.report.after.lockedBytes },
  { key: 'memlockLimitBytes', label: 'MEMLOCK', title: 'RLIMIT_MEMLOCK', description: 'soft RLIMIT_MEMLOCK of the registering process (null: unlimited)', kind: 'bytes', nullText: 'unlimited', get: (r) => r.report.memlockLimitBytes },
  { key: 'elapsedMicros', label: 'TIME', title: 'registration time', description: 'microseconds spent registering, all handles', kind: 'micros', get: (r) => r.report.handles.reduce((sum, h) => sum + h.elapsedMicros, 0) },
  {
    key: 'registrations', label: 'HANDLES', title: 'registrations', description: 'every handle: addr, length, elapsedMicros and the backend\'s details (device, lkey, rkey, ring fd, slot, …)', extra: true,
    get: (r) => r.report.handles.map(handleJson),
  },
];

const REG_OUTPUT = { name: 'reg', fields: REG_FIELDS, jsonLines: true };

interface ReleaseRecord {
  pid: number;
  after: Accounting;
}

export const RELEASE_FIELDS: readonly Field<ReleaseRecord>[] = [
  { key: 'pid', label: 'PID', title: 'pid', description: 'process that held the registration', get: (r) => r.pid },
  { key: 'pinnedBytesAfterRelease', label: 'VMPIN-RELEASED', title: 'VmPin after release', description: 'VmPin after releasing', kind: 'bytes', get: (r) => r.after.pinnedBytes },
  { key: 'lockedBytesAfterRelease', label: 'VMLCK-RELEASED', title: 'VmLck after release', description: 'VmLck after releasing', kind: 'bytes', get: (r) => r.after.lockedBytes },
];

const HANDLE_FIELDS: readonly Field<HandleReport>[] = [
  { key: 'addr', label: 'ADDR', description: 'start address (hex)', get: (h) => h.addr },
  { key: 'length', label: 'LENGTH', description: 'registered bytes', kind: 'bytes', get: (h) => h.length },
  { key: 'elapsedMicros', label: 'TIME', description: 'time to register', kind: 'micros', get: (h) => h.elapsedMicros },
  { key: 'details', label: 'DETAILS', description: 'the backend\'s details', get: (h) => Object.entries(h.details).map(([k, v]) => `${k}=${String(v)}`).join(' ') },
];

/**
 * `reg --detach`: print what the holder reported (its typed record, printed through REG_FIELDS like
 * any registration), then tell it to keep the registration. If the id cannot reach the user (stdout is
 * /dev/null or closed, full, or its reader has gone), the holder is told to release instead, and we
 * fail: a registration nobody knows about must not stay pinned.
 */
async function startDetached(ctx: Context, flags: RegFlags, holder: PendingHolder): Promise<void> {
  const { record } = holder;
  const reg: RegRecord = { report: record.registration, id: record.id };
  try {
    if (ctx.stdoutIsNull) {
      throw new RdmactlError('standard output is /dev/null (or was closed): the id of the detached registration would reach nobody', EXIT.USAGE, [
        'send stdout to a terminal, a file or a pipe, e.g. rdmactl reg 64M --detach --json > reg.json',
      ]);
    }
    const view = outputView(ctx, REG_OUTPUT, flags);
    if (view.json) {
      const { id: _id, ...chosen } = view.record(reg);
      view.printDocument({ event: 'registered', id: record.id, ...chosen, pid: record.pid, detached: true, releaseAt: record.releaseAt });
    } else {
      printRegistered(view, reg);
    }
  } catch (err) {
    await holder.abort();
    if (err instanceof OutputError) throw new RdmactlError(`${err.message}: the id of the detached registration could not be printed, so its holder released it`);
    throw err;
  }
  await holder.confirm();
  if (!flags.json) note(ctx, `held by pid ${record.pid} in the background${flags.for !== undefined ? ` for ${flags.for}` : ''}; release with: rdmactl dereg ${record.id}`);
}

export function regCommand(ctx: Context): Command {
  const command = new Command('reg')
    .summary('register buffers and report what the kernel charged')
    .description(`Map SIZE bytes, register them (verbs MR, io_uring fixed buffer, or mlock), print the
record with VmPin/VmLck before and after, hold until Ctrl-C / SIGTERM or --for, then release and
print the accounting after release.`)
    .argument('<size>', `bytes per buffer: ${SIZE_HELP}`)
    .addOption(new Option('-b, --backend <name>', 'how to register: verbs (ibv_reg_mr), uring (io_uring fixed buffers), mlock (mlock2), or auto (verbs when a device exists, else uring)').choices(['auto', ...BACKENDS]).default('auto'))
    .addOption(new Option('--backing <kind>', 'what backs the buffer').choices([...BACKINGS]).default('anon'))
    .addOption(completes(new Option('--file <path>', 'file to map for --backing file-shared/file-private (default: an unnamed temporary file in TMPDIR, gone with the process however it ends)'), { kind: 'files' }))
    .option('--read-only', 'map the buffer PROT_READ (the classic case: a read-only MAP_PRIVATE file)')
    .option('-d, --device <name>', 'verbs: RDMA device (default: the first one)')
    .addOption(completes(new Option('-a, --access <flags>', 'verbs: comma-separated access flags: local-write, remote-write, remote-read, remote-atomic, mw-bind, zero-based, on-demand, hugetlb, relaxed-ordering (default: local-write,remote-write,remote-read; remote-read with --read-only)'), commaListOf(accessFlagNames)))
    .option('--on-fault', 'mlock: MLOCK_ONFAULT (lock pages as they are touched)')
    .option('--dontfork', 'madvise(MADV_DONTFORK) the buffer first: a child of fork() gets no mapping')
    .option('--wipeonfork', 'madvise(MADV_WIPEONFORK) the buffer first: a child of fork() sees zeros')
    .option('--fork-init', 'verbs: call ibv_fork_init() first (libibverbs then marks each MR MADV_DONTFORK; libibverbs 44 does so even when the kernel copies pinned pages at fork and the fork status is "unneeded")')
    .addOption(new Option('-n, --count <n>', 'register N separate buffers').default(1).argParser((text) => parseCount(text, '--count', 16384)))
    .option('--overlap', 'register each buffer twice: two handles over one range (see how VmPin counts it)')
    .option('--for <duration>', `hold for this long, then release (${DURATION_HELP}); default: until Ctrl-C or SIGTERM`)
    .option('--json', 'print JSON: one line when registered, one when released')
    .option('--detach', 'hold in a background process and exit once registered: prints the record with an id (--json: also "id"); release with `rdmactl dereg ID` (or after --for); see `rdmactl dereg --help`')
    .addHelpText('after', `
Examples:
  rdmactl reg 64MiB --backend uring          pin 64 MiB with io_uring, hold until Ctrl-C
  rdmactl reg 1G --backend mlock --for 10s   lock 1 GiB for ten seconds
  rdmactl reg 4M --overlap --json --for 1s   two registrations of one range: VmPin counts it twice
  rdmactl reg 64M --backend uring --detach   keep 64 MiB pinned after the command exits; prints an id for dereg
  rdmactl reg 16M --backing file-private --read-only --backend verbs --access remote-read
  rdmactl reg 8M --backend mlock --for 1s -r --noheadings --bytes -o pid,lockedBytesAfter

JSON (--json): one line per event, {"host","schema":"rdmactl.reg/1","event":"registered",…} and
{…,"event":"released",…}; -o picks the keys of the registered event.`)
    .action(async (sizeText: string, flags: RegFlags) => {
      const view = outputView(ctx, REG_OUTPUT, flags);
      const length = parseSize(sizeText, 'size');
      const count = flags.count;
      const holdMillis = flags.for !== undefined ? parseDuration(flags.for, '--for') : null;
      const { backend, explanation } = await resolveBackend(flags.backend);
      if (explanation !== null) note(ctx, explanation);
      let access: number | undefined;
      if (backend === 'verbs') {
        const { defaultAccessText, parseAccessFlags } = await import('../engine/verbs/access.js');
        access = parseAccessFlags(flags.access ?? defaultAccessText(flags.readOnly ?? false));
      } else if (flags.access !== undefined) {
        throw new UsageError(`--access applies to --backend verbs only (backend is ${backend})`);
      }
      const options: RegisterOptions = {
        length, backend, backing: flags.backing, file: flags.file ?? null, readOnly: flags.readOnly ?? false,
        device: flags.device ?? null, access, onFault: flags.onFault ?? false, dontfork: flags.dontfork ?? false,
        wipeonfork: flags.wipeonfork ?? false, forkInit: flags.forkInit ?? false, count, overlap: flags.overlap ?? false,
      };
      if (flags.detach) {
        validateOptions(options); // usage errors start no holder
        return await startDetached(ctx, flags, await spawnHolder({ request: { options, backendRequested: flags.backend, holdMillis }, env: ctx.env }));
      }
      using set = await register(options);
      const record: RegRecord = { report: reportRegistrations(set, flags.backend) };
      // Listen for the release signals before printing: a script may signal as soon as it reads the record.
      const released = waitForRelease(holdMillis);
      if (view.json) {
        view.printDocument({ event: 'registered', ...view.record(record) });
      } else {
        printRegistered(view, record);
        note(ctx, holdMillis === null ? 'holding; press Ctrl-C (or send SIGTERM) to release' : `holding for ${flags.for}`);
      }
      await released;
      set.close();
      const release: ReleaseRecord = { pid: set.pid, after: readAccounting() };
      if (view.json) view.printDocument({ event: 'released', ...toJson(RELEASE_FIELDS, release) });
      else view.printOtherRecord(RELEASE_FIELDS, release, 'bare');
    });
  return addOutputOptions(command, ctx, REG_OUTPUT);
}

/** The registered record, and a table of the handles when there are several. */
function printRegistered(view: OutputView<RegRecord>, record: RegRecord): void {
  view.printRecord(record);
  if (record.report.handles.length > 1) view.printOther(HANDLE_FIELDS, record.report.handles);
}
