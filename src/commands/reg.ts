// rdmactl reg SIZE: register buffers, print what the kernel charged, hold, release, print again.

import { Command, Option } from 'commander';
import { readAccounting, register, type RegistrationSet, type RegisterOptions, type Accounting } from '../engine/register.js';
import { BACKENDS, BACKINGS, type Backing, type BackendName } from '../engine/types.js';
import { EXIT, RdmactlError, UsageError } from '../lib/errors.js';
import { OutputError, note, printJson, type Context } from '../lib/context.js';
import { renderRecord, renderTable, toJson, type Field } from '../lib/fields.js';
import { DURATION_HELP, SIZE_HELP, hex, parseCount, parseDuration, parseSize } from '../lib/size.js';
import { waitForRelease } from '../lib/hold.js';
import { holdDetached, holderArgs, spawnHolder, type PendingHolder } from '../held/holder.js';

type BackendChoice = BackendName | 'auto';

interface RegFlags {
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
  count: string;
  overlap?: boolean;
  for?: string;
  json?: boolean;
  detach?: boolean;
  /** Internal: set by `reg --detach` on the holder it starts. */
  holderToken?: string;
}

/** What `reg` reports: the request, the kernel's accounting before and after, and each handle. */
export interface RegRecord {
  set: RegistrationSet;
  backendRequested: BackendChoice;
}

const isVerbs = (r: RegRecord): boolean => r.set.options.backend === 'verbs';

function first(record: RegRecord) {
  return record.set.registrations[0];
}

function verbsDetail(record: RegRecord, key: 'device' | 'lkey' | 'rkey'): string | number | null {
  const registration = first(record)?.registration;
  return registration?.backend === 'verbs' ? registration.details[key] : null;
}

export const REG_FIELDS: readonly Field<RegRecord>[] = [
  { key: 'pid', label: 'pid', get: (r) => r.set.pid },
  { key: 'backend', label: 'backend', get: (r) => r.set.options.backend },
  { key: 'backendRequested', label: 'requested backend', get: (r) => r.backendRequested, jsonOnly: true },
  { key: 'backing', label: 'backing', get: (r) => r.set.options.backing ?? 'anon' },
  { key: 'readOnly', label: 'read-only', kind: 'bool', get: (r) => r.set.options.readOnly ?? false },
  { key: 'protections', label: 'fork protection', get: (r) => protections(r.set.options), nullText: 'none' },
  { key: 'addr', label: 'addr', get: (r) => (first(r) ? hex(first(r)!.buffer.addr) : null) },
  { key: 'length', label: 'length', kind: 'bytes', get: (r) => first(r)?.buffer.length ?? 0 },
  { key: 'buffers', label: 'buffers', kind: 'count', get: (r) => r.set.buffers.length },
  { key: 'handles', label: 'registrations', kind: 'count', get: (r) => r.set.registrations.length },
  { key: 'device', label: 'device', get: (r) => verbsDetail(r, 'device'), showIf: isVerbs },
  { key: 'lkey', label: 'lkey', get: (r) => verbsDetail(r, 'lkey'), showIf: isVerbs },
  { key: 'rkey', label: 'rkey', get: (r) => verbsDetail(r, 'rkey'), showIf: isVerbs },
  { key: 'pinnedBytesBefore', label: 'VmPin before', kind: 'bytes', get: (r) => r.set.before.pinnedBytes },
  { key: 'pinnedBytesAfter', label: 'VmPin after', kind: 'bytes', get: (r) => r.set.after.pinnedBytes },
  { key: 'lockedBytesBefore', label: 'VmLck before', kind: 'bytes', get: (r) => r.set.before.lockedBytes },
  { key: 'lockedBytesAfter', label: 'VmLck after', kind: 'bytes', get: (r) => r.set.after.lockedBytes },
  { key: 'memlockLimitBytes', label: 'RLIMIT_MEMLOCK', kind: 'bytes', nullText: 'unlimited', get: (r) => r.set.memlockLimitBytes },
  { key: 'elapsedMicros', label: 'registration time', kind: 'micros', get: (r) => r.set.registrations.reduce((sum, t) => sum + t.elapsedMicros, 0) },
  {
    key: 'registrations', label: 'registrations', jsonOnly: true,
    get: (r) => r.set.registrations.map((t) => ({ addr: hex(t.registration.addr), length: t.registration.length, elapsedMicros: t.elapsedMicros, ...t.registration.details })),
  },
];

function protections(options: RegisterOptions): string[] | null {
  const list = [options.dontfork && 'dontfork', options.wipeonfork && 'wipeonfork', options.forkInit && 'fork-init'].filter((p): p is string => Boolean(p));
  return list.length > 0 ? list : null;
}

interface ReleaseRecord {
  pid: number;
  after: Accounting;
}

const RELEASE_FIELDS: readonly Field<ReleaseRecord>[] = [
  { key: 'pid', label: 'pid', get: (r) => r.pid },
  { key: 'pinnedBytesAfterRelease', label: 'VmPin after release', kind: 'bytes', get: (r) => r.after.pinnedBytes },
  { key: 'lockedBytesAfterRelease', label: 'VmLck after release', kind: 'bytes', get: (r) => r.after.lockedBytes },
];

const HANDLE_FIELDS: readonly Field<RegistrationSet['registrations'][number]>[] = [
  { key: 'addr', label: 'addr', get: (t) => hex(t.registration.addr) },
  { key: 'length', label: 'length', kind: 'bytes', get: (t) => t.registration.length },
  { key: 'elapsedMicros', label: 'time', kind: 'micros', get: (t) => t.elapsedMicros },
  { key: 'details', label: 'details', get: (t) => Object.entries(t.registration.details).map(([k, v]) => `${k}=${String(v)}`).join(' ') },
];

/** Pick the backend for --backend auto: verbs when an RDMA device exists, else io_uring. */
export async function resolveBackend(choice: BackendChoice, ctx: Context, quiet: boolean): Promise<BackendName> {
  if (choice !== 'auto') return choice;
  let deviceNames: string[] = [];
  try {
    const { listDeviceNames } = await import('../engine/verbs/index.js');
    deviceNames = listDeviceNames();
  } catch {
    deviceNames = []; // no libibverbs: same answer as no device
  }
  const chosen: BackendName = deviceNames.length > 0 ? 'verbs' : 'uring';
  if (!quiet) {
    note(ctx, chosen === 'verbs'
      ? `--backend auto: using verbs on ${deviceNames[0]}`
      : '--backend auto: no RDMA device, using uring (io_uring fixed buffers take the same long-term pin)');
  }
  return chosen;
}

/**
 * `reg --detach`: print what the holder reported, then tell it to keep the registration. If the id
 * cannot reach the user (stdout is /dev/null or closed, full, or its reader has gone), the holder is
 * told to release instead, and we fail: a registration nobody knows about must not stay pinned.
 */
async function startDetached(ctx: Context, flags: RegFlags, holder: PendingHolder): Promise<void> {
  const { record } = holder.line;
  try {
    if (ctx.stdoutIsNull) {
      throw new RdmactlError('standard output is /dev/null (or was closed): the id of the detached registration would reach nobody', EXIT.USAGE, [
        'send stdout to a terminal, a file or a pipe, e.g. rdmactl reg 64M --detach --json > reg.json',
      ]);
    }
    if (flags.json) {
      printJson(ctx, { event: 'registered', id: record.id, ...record.registration, pid: record.pid, detached: true, releaseAt: record.releaseAt });
    } else {
      ctx.stdout.write(`${holder.line.text}\n`);
    }
  } catch (err) {
    await holder.abort();
    if (err instanceof OutputError) throw new RdmactlError(`${err.message}: the id of the detached registration could not be printed, so its holder released it`);
    throw err;
  }
  await holder.confirm();
  if (flags.backend === 'auto') note(ctx, `--backend auto: the holder used ${String(record.registration['backend'])}`);
  if (!flags.json) note(ctx, `held by pid ${record.pid} in the background${flags.for !== undefined ? ` for ${flags.for}` : ''}; release with: rdmactl dereg ${record.id}`);
}

export function regCommand(ctx: Context): Command {
  return new Command('reg')
    .summary('register buffers and report what the kernel charged')
    .description(`Map SIZE bytes, register them (verbs MR, io_uring fixed buffer, or mlock), print the
record with VmPin/VmLck before and after, hold until Ctrl-C / SIGTERM or --for, then release and
print the accounting after release.`)
    .argument('<size>', `bytes per buffer: ${SIZE_HELP}`)
    .addOption(new Option('-b, --backend <name>', 'how to register: verbs (ibv_reg_mr), uring (io_uring fixed buffers), mlock (mlock2), or auto (verbs when a device exists, else uring)').choices(['auto', ...BACKENDS]).default('auto'))
    .addOption(new Option('--backing <kind>', 'what backs the buffer').choices([...BACKINGS]).default('anon'))
    .option('--file <path>', 'file to map for --backing file-shared/file-private (default: a temporary file, removed afterwards)')
    .option('--read-only', 'map the buffer PROT_READ (the classic case: a read-only MAP_PRIVATE file)')
    .option('-d, --device <name>', 'verbs: RDMA device (default: the first one)')
    .option('-a, --access <flags>', 'verbs: comma-separated access flags: local-write, remote-write, remote-read, remote-atomic, mw-bind, zero-based, on-demand, hugetlb, relaxed-ordering (default: local-write,remote-write,remote-read; remote-read with --read-only)')
    .option('--on-fault', 'mlock: MLOCK_ONFAULT (lock pages as they are touched)')
    .option('--dontfork', 'madvise(MADV_DONTFORK) the buffer first: a child of fork() gets no mapping')
    .option('--wipeonfork', 'madvise(MADV_WIPEONFORK) the buffer first: a child of fork() sees zeros')
    .option('--fork-init', 'verbs: call ibv_fork_init() first (libibverbs then marks each MR MADV_DONTFORK; libibverbs 44 does so even when the kernel copies pinned pages at fork and the fork status is "unneeded")')
    .option('-n, --count <n>', 'register N separate buffers', '1')
    .option('--overlap', 'register each buffer twice: two handles over one range (see how VmPin counts it)')
    .option('--for <duration>', `hold for this long, then release (${DURATION_HELP}); default: until Ctrl-C or SIGTERM`)
    .option('--json', 'print JSON: one line when registered, one when released')
    .option('--detach', 'hold in a background process and exit once registered: prints the record with an id (--json: also "id"); release with `rdmactl dereg ID` (or after --for); see `rdmactl dereg --help`')
    .addOption(new Option('--holder-token <token>', 'internal: run as the detached holder').hideHelp())
    .addHelpText('after', `
Examples:
  rdmactl reg 64MiB --backend uring          pin 64 MiB with io_uring, hold until Ctrl-C
  rdmactl reg 1G --backend mlock --for 10s   lock 1 GiB for ten seconds
  rdmactl reg 4M --overlap --json --for 1s   two registrations of one range: VmPin counts it twice
  rdmactl reg 64M --backend uring --detach   keep 64 MiB pinned after the command exits; prints an id for dereg
  rdmactl reg 16M --backing file-private --read-only --backend verbs --access remote-read`)
    .action(async (sizeText: string, flags: RegFlags, command: Command) => {
      const length = parseSize(sizeText, 'size');
      const count = parseCount(flags.count, '--count', 16384);
      const holdMillis = flags.for !== undefined ? parseDuration(flags.for, '--for') : null;
      const isHolder = flags.holderToken !== undefined;
      if (flags.detach && !isHolder) return await startDetached(ctx, flags, await spawnHolder({ args: holderArgs(command, [sizeText]), env: ctx.env }));
      const backend = await resolveBackend(flags.backend, ctx, isHolder);
      let access: number | undefined;
      if (backend === 'verbs') {
        const { parseAccessFlags } = await import('../engine/verbs/access.js');
        access = parseAccessFlags(flags.access ?? (flags.readOnly ? 'remote-read' : 'local-write,remote-write,remote-read'));
      } else if (flags.access !== undefined) {
        throw new UsageError(`--access applies to --backend verbs only (backend is ${backend})`);
      }
      const options: RegisterOptions = {
        length, backend, backing: flags.backing, file: flags.file ?? null, readOnly: flags.readOnly ?? false,
        device: flags.device ?? null, access, onFault: flags.onFault ?? false, dontfork: flags.dontfork ?? false,
        wipeonfork: flags.wipeonfork ?? false, forkInit: flags.forkInit ?? false, count, overlap: flags.overlap ?? false,
      };
      using set = await register(options);
      const record: RegRecord = { set, backendRequested: flags.backend };
      if (isHolder) {
        const text = (id: string): string => `${renderRecord([{ key: 'id', label: 'id', get: () => id }, ...REG_FIELDS], record)}${set.registrations.length > 1 ? `\n${renderTable(HANDLE_FIELDS, set.registrations)}` : ''}`;
        // Awaited here, inside the `using` scope: returning the promise would release the registration at once.
        await holdDetached({ holdable: set, token: flags.holderToken!, registration: toJson(REG_FIELDS, record), renderText: text, holdMillis, env: ctx.env });
        return;
      }
      // Listen for the release signals before printing: a script may signal as soon as it reads the record.
      const released = waitForRelease(holdMillis);
      if (flags.json) {
        printJson(ctx, { event: 'registered', ...toJson(REG_FIELDS, record) });
      } else {
        ctx.stdout.write(`${renderRecord(REG_FIELDS, record)}\n`);
        if (set.registrations.length > 1) ctx.stdout.write(`${renderTable(HANDLE_FIELDS, set.registrations)}\n`);
        note(ctx, holdMillis === null ? 'holding; press Ctrl-C (or send SIGTERM) to release' : `holding for ${flags.for}`);
      }
      await released;
      set.close();
      const release: ReleaseRecord = { pid: set.pid, after: readAccounting() };
      if (flags.json) printJson(ctx, { event: 'released', ...toJson(RELEASE_FIELDS, release) });
      else ctx.stdout.write(`${renderRecord(RELEASE_FIELDS, release)}\n`);
    });
}
