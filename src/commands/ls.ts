// rdmactl ls: one row per registration, system-wide, from every source.

import { Command, Option } from 'commander';
import { commaListOf, completes, dynamic } from '../lib/completionHints.js';
import { collectRegistrations, REGISTRATION_SOURCES, type RegistrationRow, type RegistrationSource, type RegistrationsReport } from '../observe/registrations.js';
import { UsageError } from '../lib/errors.js';
import { printJson, type Context } from '../lib/context.js';
import { renderTable, toJson, type Field } from '../lib/fields.js';
import { hex } from '../lib/size.js';
import { parsePidList } from '../lib/pids.js';
import { heldSource } from '../observe/held.js';

export const REGISTRATION_FIELDS: readonly Field<RegistrationRow>[] = [
  { key: 'source', label: 'SOURCE', get: (r) => r.source },
  { key: 'pid', label: 'PID', get: (r) => r.pid },
  { key: 'comm', label: 'COMM', get: (r) => r.comm },
  { key: 'addr', label: 'RANGE', get: (r) => (r.addr === null ? null : hex(r.addr)), nullText: '?' },
  { key: 'endAddr', label: 'END', get: (r) => (r.addr === null ? null : hex(r.addr + BigInt(r.length))), jsonOnly: true },
  { key: 'length', label: 'LENGTH', kind: 'bytes', get: (r) => r.length },
  { key: 'pages', label: 'PAGES', kind: 'count', get: (r) => r.pages },
  { key: 'device', label: 'DEVICE', get: (r) => r.device, jsonOnly: true },
  { key: 'lkey', label: 'LKEY', get: (r) => r.lkey, jsonOnly: true },
  { key: 'rkey', label: 'RKEY', get: (r) => r.rkey, jsonOnly: true },
  { key: 'handle', label: 'HANDLE', get: (r) => r.handle },
  { key: 'forkProtection', label: 'FORK', get: (r) => r.forkProtection, nullText: '?' },
  { key: 'overlap', label: 'OVERLAP', kind: 'bool', get: (r) => r.overlap },
  { key: 'doubleCountedBytes', label: 'COUNTED TWICE', kind: 'bytes', get: (r) => r.doubleCountedBytes },
  { key: 'evidence', label: 'EVIDENCE', get: (r) => r.evidence, jsonOnly: true },
];

/** Text-only column joining device and keys, so the table stays narrow. */
function withKeys(row: RegistrationRow): string {
  if (!row.device && !row.lkey) return '-';
  return [row.device, row.lkey && `lkey ${row.lkey}`, row.rkey && `rkey ${row.rkey}`].filter(Boolean).join(' ');
}

const TEXT_FIELDS: readonly Field<RegistrationRow>[] = [
  ...REGISTRATION_FIELDS.slice(0, 7),
  { key: 'deviceKeys', label: 'DEVICE/KEYS', get: withKeys },
  ...REGISTRATION_FIELDS.slice(10),
];

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

export function lsJson(report: RegistrationsReport): Record<string, unknown> {
  return {
    registrations: report.registrations.map((r) => toJson(REGISTRATION_FIELDS, r)),
    sources: report.sources,
    unreadableProcesses: report.unreadableProcesses,
  };
}

export function lsCommand(ctx: Context): Command {
  return new Command('ls')
    .summary('list every registration on the machine')
    .description(`One row per registration, from every source the kernel exposes:
  rdma      the kernel MR table (iproute2 \`rdma res show mr\`): pid, length, keys (no address)
  io_uring  fixed buffers in /proc/PID/fdinfo of io_uring fds
  mlock     locked VMAs (VmFlags lo) in /proc/PID/smaps
  held      registrations held by \`rdmactl reg --detach\`, joined with the kernel rows
FORK is the MADV_DONTFORK / WIPEONFORK coverage of the range; OVERLAP and COUNTED TWICE show
pinned registrations of one process over the same pages, which VmPin counts once per registration.
Stale held records (holder gone) are shown and cleaned.`)
    .addOption(completes(new Option('-p, --pid <pids>', 'only these processes (comma list)'), dynamic('pids', true)))
    .addOption(completes(new Option('-s, --source <list>', `only these sources (comma list of ${REGISTRATION_SOURCES.join(', ')})`), commaListOf(REGISTRATION_SOURCES)))
    .option('--json', 'print one JSON document: { registrations: [...], sources: {...} }')
    .option('--ndjson', 'print one JSON registration per line')
    .addHelpText('after', `
Examples:
  rdmactl ls                         everything
  rdmactl ls --source io_uring,rdma  pinned registrations only
  rdmactl ls --ndjson | jq -r 'select(.overlap) | .pid'`)
    .action((flags: { pid?: string; source?: string; json?: boolean; ndjson?: boolean }) => {
      if (flags.json && flags.ndjson) throw new UsageError('choose one of --json and --ndjson');
      const pids = flags.pid !== undefined ? parsePidList([flags.pid]) : undefined;
      const sources = flags.source !== undefined ? parseSources(flags.source) : undefined;
      const report = collectRegistrations({ ...(pids ? { pids } : {}), ...(sources ? { sources } : {}), held: () => heldSource({ cleanStale: true, env: ctx.env }) });
      if (flags.json) return printJson(ctx, lsJson(report));
      if (flags.ndjson) {
        for (const row of report.registrations) printJson(ctx, toJson(REGISTRATION_FIELDS, row));
        return;
      }
      if (report.registrations.length === 0) ctx.stdout.write('No registrations found.\n');
      else ctx.stdout.write(`${renderTable(TEXT_FIELDS, report.registrations)}\n`);
      for (const [source, status] of Object.entries(report.sources)) {
        if (!status.available && status.reason !== 'not requested' && (!sources || sources.includes(source as RegistrationSource))) {
          ctx.stdout.write(`${source}: ${status.reason}\n`);
        }
      }
      if (report.unreadableProcesses > 0) ctx.stdout.write(`${report.unreadableProcesses} processes only partly readable${process.geteuid?.() === 0 ? '' : '; run as root for all'}.\n`);
    });
}
