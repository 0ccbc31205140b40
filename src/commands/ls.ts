// rdmactl ls: one row per registration, system-wide, from every source.

import { Command, Option } from 'commander';
import { commaListOf, completes, dynamic } from '../lib/completionHints.js';
import { collectRegistrations, REGISTRATION_SOURCES, type RegistrationRow, type RegistrationSource, type RegistrationsReport } from '../observe/registrations.js';
import { RdmactlError, UsageError } from '../lib/errors.js';
import { parseSortKeys, sortRecords, type SortValues } from '../lib/sort.js';
import { note, printJson, printJsonLine, type Context } from '../lib/context.js';
import { toJson, type Field } from '../lib/fields.js';
import { addOutputOptions, jsonDocument, outputView, type OutputFlags, type OutputView } from '../lib/output.js';
import { hex } from '../lib/size.js';
import { targetPids } from '../observe/targets.js';
import { heldSource } from '../observe/held.js';
import { addWatchOptions, eachSample, watchPlan, type SampleStamp, type WatchFlags } from '../lib/watch.js';
import { counted } from '../lib/plural.js';

export const REGISTRATION_FIELDS: readonly Field<RegistrationRow>[] = [
  { key: 'source', label: 'SOURCE', description: 'where the row comes from: rdma, io_uring, mlock or held', get: (r) => r.source },
  { key: 'pid', label: 'PID', description: 'process that holds the registration', get: (r) => r.pid },
  { key: 'comm', label: 'COMM', description: 'its command name', get: (r) => r.comm },
  { key: 'addr', label: 'RANGE', description: 'start address (hex; null where the source has none: the kernel MR table)', get: (r) => (r.addr === null ? null : hex(r.addr)), nullText: '?' },
  { key: 'endAddr', label: 'END', description: 'end address, exclusive (hex)', get: (r) => (r.addr === null ? null : hex(r.addr + BigInt(r.length))), extra: true },
  { key: 'length', label: 'LENGTH', description: 'registered bytes', kind: 'bytes', get: (r) => r.length },
  { key: 'pages', label: 'PAGES', description: 'registered pages (of the system page size)', kind: 'count', get: (r) => r.pages },
  { key: 'device', label: 'DEVICE', description: 'RDMA device of an MR', get: (r) => r.device },
  { key: 'lkey', label: 'LKEY', description: 'local key of an MR (hex without 0x, as `rdma res show mr`)', get: (r) => r.lkey, extra: true },
  { key: 'rkey', label: 'RKEY', description: 'remote key of an MR (hex without 0x)', get: (r) => r.rkey, extra: true },
  { key: 'handle', label: 'HANDLE', description: 'io_uring: ring fd and buffer slot; rdma: MR number; held: the holder id', get: (r) => r.handle },
  { key: 'forkProtection', label: 'FORK', description: 'MADV_DONTFORK / WIPEONFORK coverage of the range (smaps VmFlags)', get: (r) => r.forkProtection, nullText: '?' },
  { key: 'overlap', label: 'OVERLAP', description: 'another pinned registration of the process covers part of this range', kind: 'bool', get: (r) => r.overlap },
  { key: 'doubleCountedBytes', label: 'COUNTED-TWICE', description: 'bytes also covered by an earlier pinned registration: VmPin counts them again', kind: 'bytes', get: (r) => r.doubleCountedBytes },
  { key: 'evidence', label: 'EVIDENCE', description: 'held rows: the kernel source that confirms the registration (missing: none does)', get: (r) => r.evidence, extra: true },
  { key: 'cgroup', label: 'CGROUP', description: 'cgroup of the process (memory hierarchy on v1, unified on v2)', get: (r) => r.owner?.cgroup ?? null, extra: true },
  { key: 'unit', label: 'UNIT', description: 'systemd unit of the process, from its cgroup path', get: (r) => r.owner?.unit ?? null, extra: true },
  { key: 'container', label: 'CONTAINER', description: 'container (or pod, Slurm job) of the process, from its cgroup path', get: (r) => r.owner?.container ?? null, extra: true },
];

const LS_OUTPUT = { name: 'ls', fields: REGISTRATION_FIELDS };

export function parseSources(text: string): RegistrationSource[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of names) {
    if (!(REGISTRATION_SOURCES as readonly string[]).includes(name)) {
      throw new UsageError(`invalid --source '${name}': expected a comma list of ${REGISTRATION_SOURCES.join(', ')}`);
    }
  }
  if (names.length === 0) throw new UsageError(`invalid --source '': expected a comma list of ${REGISTRATION_SOURCES.join(', ')}`);
  return names as RegistrationSource[];
}

/** The body of an `ls --json` document (schema rdmactl.ls/1); `fields` from -o. */
export function lsJson(report: RegistrationsReport, fields: readonly Field<RegistrationRow>[] = REGISTRATION_FIELDS): { [key: string]: unknown } {
  return {
    registrations: report.registrations.map((r) => toJson(fields, r)),
    sources: report.sources,
    unreadableProcesses: report.unreadableProcesses,
  };
}

/** Raw values to sort by where a column shows text: addresses and MR keys as integers. */
const REGISTRATION_SORT_VALUES: SortValues<RegistrationRow> = {
  addr: (r) => r.addr,
  endAddr: (r) => (r.addr === null ? null : r.addr + BigInt(r.length)),
  lkey: (r) => hexKey(r.lkey),
  rkey: (r) => hexKey(r.rkey),
};

function hexKey(text: string | null): bigint | null {
  return text !== null && /^[0-9a-f]+$/i.test(text) ? BigInt(`0x${text}`) : null;
}

interface LsFlags extends OutputFlags, WatchFlags {
  pid?: string;
  source?: string;
  sort?: string;
  reverse?: boolean;
  ndjson?: boolean;
}

export function lsCommand(ctx: Context): Command {
  const command = new Command('ls')
    .summary('list every registration on the machine')
    .description(`One row per registration, from every source the kernel exposes:
  rdma      the kernel MR table (iproute2 \`rdma res show mr\`): pid, length, keys (no address)
  io_uring  fixed buffers in /proc/PID/fdinfo of io_uring fds
  mlock     locked VMAs (VmFlags lo) in /proc/PID/smaps
  held      registrations held by \`rdmactl reg --detach\`, joined with the kernel rows
FORK is the MADV_DONTFORK / WIPEONFORK coverage of the range; OVERLAP and COUNTED-TWICE show
pinned registrations of one process over the same pages, which VmPin counts once per registration.
Stale held records (holder gone) are shown and cleaned.

A --pid that names no process is reported on stderr ("no such process: PID") and the exit status is
1, as with ps -p; the registrations of the processes that do exist are still printed.`)
    .addOption(completes(new Option('-p, --pid <pids>', 'only these processes (comma list)'), dynamic('pids', true)))
    .addOption(completes(new Option('--source <list>', `only these sources (comma list of ${REGISTRATION_SOURCES.join(', ')})`), commaListOf(REGISTRATION_SOURCES)))
    .addOption(completes(new Option('-s, --sort <keys>', 'sort by these columns (keys or labels, see -H), comma list, -KEY descending; default: by pid, source, address'), commaListOf(REGISTRATION_FIELDS.map((f) => f.key))))
    .option('--reverse', 'reverse the sort: every --sort key (or the default order) the other way round')
    .option('--json', 'print one JSON document: { registrations: [...], sources: {...} }')
    .option('--ndjson', 'print one JSON registration per line (schema rdmactl.registration/1)')
    .addHelpText('after', `
Examples:
  rdmactl ls                         everything
  rdmactl ls --source io_uring,rdma  pinned registrations only
  rdmactl ls --ndjson | jq -r 'select(.overlap) | .pid'
  rdmactl ls --sort=-length          the largest registrations first
  rdmactl ls -o +lkey,rkey,evidence         the default columns and the MR keys
  rdmactl ls -rn -b -o pid,length           bare lines: pid and bytes of every registration
  rdmactl ls --source rdma --interval 5s    the MR table again every 5 s, each time after a time line
  rdmactl ls --ndjson -i 1s | jq -c '{time, pid, length}'   each row carries its sample's "time"

--interval repeats on a fixed clock until Ctrl-C, SIGTERM or --count N samples (exit 0); text samples
are separated by a blank line.`)
    .action(async (flags: LsFlags) => {
      if (flags.json && flags.ndjson) throw new UsageError('choose one of --json and --ndjson');
      if (flags.raw && flags.ndjson) throw new UsageError('choose one of --ndjson and --raw');
      const view = outputView(ctx, LS_OUTPUT, { ...flags, json: (flags.json ?? false) || (flags.ndjson ?? false) });
      const sortKeys = flags.sort !== undefined ? parseSortKeys(flags.sort, REGISTRATION_FIELDS, { reverse: flags.reverse ?? false, values: REGISTRATION_SORT_VALUES }) : null;
      const pids = flags.pid !== undefined ? targetPids([flags.pid], (line) => note(ctx, line), '--pid') : undefined;
      const sources = flags.source !== undefined ? parseSources(flags.source) : undefined;
      const plan = watchPlan(flags);
      let missing: number[] = [];
      await eachSample(ctx, plan, view.json, (stamp) => {
        const report = collectRegistrations({ ...(pids ? { pids } : {}), ...(sources ? { sources } : {}), held: (scanned) => heldSource({ cleanStale: true, env: ctx.env }, scanned), owners: true });
        // As ps -p: nothing found is an error and prints nothing; some found prints those, still exit 1.
        missing = report.missingPids;
        if (pids !== undefined && missing.length === pids.length) throw new RdmactlError(`no such process: ${missing.join(', ')}`);
        if (sortKeys !== null) report.registrations = sortRecords(report.registrations, sortKeys);
        else if (flags.reverse) report.registrations.reverse();
        printLs(ctx, flags, view, sources, report, stamp, plan !== null);
      });
      if (missing.length > 0) throw new RdmactlError(`no such process: ${missing.join(', ')}`);
    });
  return addOutputOptions(addWatchOptions(command), ctx, LS_OUTPUT);
}

/**
 * Text, JSON or NDJSON of the registrations; notes about sources and unreadable processes. `stamp`
 * adds a repeated sample's time; `repeating` keeps each --json sample on one line.
 */
function printLs(ctx: Context, flags: LsFlags, view: OutputView<RegistrationRow>, sources: RegistrationSource[] | undefined, report: RegistrationsReport, stamp: SampleStamp, repeating: boolean): void {
  if (flags.json) return (repeating ? printJsonLine : printJson)(ctx, jsonDocument('ls', { ...stamp.json, ...lsJson(report, view.fields) }));
  if (flags.ndjson) {
    for (const row of report.registrations) printJsonLine(ctx, jsonDocument('registration', { ...stamp.json, ...view.record(row) }));
    return;
  }
  // As stat: off a terminal the table is printed even when empty (its header), like ps.
  if (report.registrations.length === 0 && ctx.stdoutIsTty) view.prose('No registrations found.');
  else view.printTable(report.registrations);
  for (const [source, status] of Object.entries(report.sources)) {
    if (!status.available && status.reason !== 'not requested' && (!sources || sources.includes(source as RegistrationSource))) {
      view.warn(`${source}: ${status.reason}`);
    }
  }
  if (report.unreadableProcesses > 0) view.warn(`${counted(report.unreadableProcesses, 'process', 'processes')} only partly readable${ctx.euid === 0 ? '' : '; run as root for all'}.`);
}

