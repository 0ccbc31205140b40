// rdmactl doctor [PID]: why a registration fails (or will), with evidence from the kernel and the fix.

import { Command, Option } from 'commander';
import { anyFailed, runDoctor, type DoctorReport } from '../doctor/index.js';
import { FINDING_STATUSES, type Finding } from '../doctor/types.js';
import { BACKENDS, BACKINGS, type Backing, type BackendChoice, type BackendName } from '../engine/types.js';
import { resolveBackend } from '../engine/backendChoice.js';
import { EXIT, RdmactlError, UsageError } from '../lib/errors.js';
import { escapeText } from '../lib/escape.js';
import { note, printJson, type Context } from '../lib/context.js';
import { jsonDocument } from '../lib/output.js';
import { targetPids } from '../observe/targets.js';
import { toJson, type Field, type JsonValue } from '../lib/fields.js';
import { SIZE_HELP, formatBytes, parseSize } from '../lib/size.js';

export const FINDING_FIELDS: readonly Field<Finding>[] = [
  { key: 'id', label: 'ID', description: 'stable id of the check, e.g. memlock.limit', get: (f) => f.id },
  { key: 'status', label: 'STATUS', description: 'ok, warn, fail, or skip (with the reason)', get: (f) => f.status },
  { key: 'summary', label: 'SUMMARY', description: 'one line for people', get: (f) => f.summary, prose: true },
  { key: 'evidence', label: 'EVIDENCE', description: 'what was read from the kernel (numbers, files)', get: (f) => f.evidence },
  { key: 'fix', label: 'FIX', description: 'concrete fixes for the environment found', get: (f) => f.fix, prose: true },
  { key: 'reason', label: 'REASON', description: 'why a check was skipped', get: (f) => f.reason, prose: true },
];

function reportJson(report: DoctorReport): { [key: string]: JsonValue } {
  const { target, options, prediction, tried } = report;
  const counts = Object.fromEntries(FINDING_STATUSES.map((s) => [s, report.findings.filter((f) => f.status === s).length]));
  return {
    target: { pid: target.pid, comm: target.status.name, uid: target.status.uid, self: target.self },
    request: { sizeBytes: options.request.sizeBytes, backend: options.request.backend, backing: options.request.backing, access: options.request.access },
    findings: report.findings.map((f) => toJson(FINDING_FIELDS, f)),
    prediction: prediction ? { backend: prediction.backend, sizeBytes: prediction.sizeBytes, outcome: prediction.outcome, cause: prediction.cause, summary: prediction.summary } : null,
    try: tried ? { outcome: tried.outcome, exitCode: tried.exitCode, errno: tried.errno, message: tried.message, pinnedBytes: tried.pinnedBytes, lockedBytes: tried.lockedBytes } : null,
    counts,
    failed: anyFailed(report),
  };
}

function evidenceText(key: string, value: JsonValue): string {
  if (typeof value === 'number' && /Bytes$/.test(key)) return `${key}=${formatBytes(value)}`;
  if (value === null) return `${key}=-`;
  return `${key}=${typeof value === 'object' ? JSON.stringify(value) : String(value)}`;
}

function reportText(report: DoctorReport): string {
  const { target, options, prediction } = report;
  const lines: string[] = [];
  const req = options.request.sizeBytes !== null ? `; request: ${formatBytes(options.request.sizeBytes)} with ${options.request.backend} (${options.request.backing})` : '';
  lines.push(`target: pid ${target.pid} (${escapeText(target.status.name)}) uid ${target.status.uid}${target.self ? ', rdmactl itself: the limits and credentials of the shell that started it' : ''}${req}`);
  const width = Math.max(...report.findings.map((f) => f.id.length));
  for (const f of report.findings) {
    lines.push(`${f.status.padEnd(4)}  ${f.id.padEnd(width)}  ${f.summary}`);
    if (f.status === 'ok' || f.status === 'skip') continue;
    const evidence = Object.entries(f.evidence).map(([k, v]) => evidenceText(k, v));
    if (evidence.length > 0) lines.push(`      evidence: ${evidence.join(' ')}`);
    for (const fix of f.fix) lines.push(`      fix: ${fix}`);
  }
  if (prediction) lines.push(`prediction: ${prediction.summary}`);
  const counts = FINDING_STATUSES.map((s) => `${report.findings.filter((f) => f.status === s).length} ${s}`).join(', ');
  lines.push(`${counts}${anyFailed(report) ? ' (exit 1: a check failed)' : ''}`);
  // Summaries, evidence and fixes quote comms, unit names and cgroup paths other users chose: each
  // line stays one line, with no control character in it.
  return `${lines.map((line) => escapeText(line)).join('\n')}\n`;
}

interface DoctorFlags {
  size?: string;
  backend?: BackendChoice;
  backing: Backing;
  access?: string;
  try?: boolean;
  root: string;
  json?: boolean;
}

export function doctorCommand(ctx: Context): Command {
  return new Command('doctor')
    .summary('why a registration fails (or will): every check, with evidence and the fix')
    .description(`Check what decides whether memory can be registered for PID (default: rdmactl itself, i.e.
the limits and credentials of your shell): RLIMIT_MEMLOCK and CAP_IPC_LOCK, where the limit came from
(parent chain, limits.conf), io_uring's per-user charge, vm.max_map_count, fork safety, huge pages, the
verbs stack, the machine's pinned memory, and the process's systemd unit, container and cgroup
(memory and rdma limits); with --backing file-shared, whether this kernel allows a long-term write pin
of a shared file on $TMPDIR's file system (a one-page io_uring probe: refused on ext4/xfs/btrfs from
Linux 6.5, allowed on tmpfs). One line per check: ok, warn, fail, or skip with the reason.
With --size, predict whether that registration succeeds and name the cause if not (--backend auto,
the default, picks verbs when an RDMA device exists, else uring, and says so on stderr, as reg does);
--try also really registers it in a child and compares. Exit 1 when any check fails.`)
    .argument('[pid]', 'process to diagnose (default: this shell, through rdmactl itself)')
    .option('-s, --size <size>', `predict a registration of this size: ${SIZE_HELP}`)
    .addOption(new Option('-b, --backend <name>', 'with --size: how it would be registered (default auto: verbs when an RDMA device exists, else uring)').choices(['auto', ...BACKENDS]))
    .addOption(new Option('--backing <kind>', 'with --size: what backs the buffer').choices([...BACKINGS]).default('anon'))
    .option('-a, --access <flags>', 'with --backend verbs: access flags as for reg (on-demand checks ODP)')
    .option('--try', 'also really register it (in a child, as rdmactl reg does, with this shell\'s limits and credentials) and compare with the prediction')
    .option('--root <dir>', 'read /etc/security/limits.conf and limits.d under DIR (an image or chroot) as if DIR were /; the user and its groups come from NSS (LDAP, sssd, …) for this machine\'s own /, else from DIR\'s etc/passwd and etc/group: links stay inside DIR; only regular files up to 1 MiB (passwd, group 64 MiB) are read, others are named on stderr and skipped', '/')
    .option('--json', 'print JSON: { target, request, findings: [...], prediction, try, counts, failed }')
    .addHelpText('after', `
Examples:
  rdmactl doctor                                   this shell's environment and the machine
  rdmactl doctor 1234                              a running process (an MPI rank, a container's pid)
  rdmactl doctor --size 4GiB --backend verbs       will registering 4 GiB succeed? why not?
  rdmactl doctor --size 64M                        the same with the backend reg would pick
  rdmactl doctor --size 1M --backing file-shared --backend uring --try
                                                   may a shared file on $TMPDIR's file system be pinned?
  rdmactl doctor --size 64M --backend uring --try  predict, then really try it, and compare
Exit status: 0 no check failed, 1 a check failed (or the process vanished), 2 usage error (also a
--root DIR that is missing or not a directory), 4 the process's /proc files are not readable.`)
    .action(async (pidText: string | undefined, flags: DoctorFlags) => {
      const pid = pidText === undefined ? null : targetPids([pidText], (line) => note(ctx, line))[0]!;
      const sizeBytes = flags.size === undefined ? null : parseSize(flags.size, '--size');
      if (sizeBytes === null && flags.backend !== undefined) throw new UsageError('--backend needs --size (how much would be registered)');
      if (flags.try && sizeBytes === null) throw new UsageError('--try needs --size (what to try)');
      if (flags.try && pid !== null) throw new UsageError(`--try registers in a child of rdmactl, with this shell's limits and credentials, not those of pid ${pid}: drop PID, or run rdmactl from that process's environment`);
      if (flags.access !== undefined && sizeBytes === null) throw new UsageError('--access needs --size (and --backend verbs)');
      let backend: BackendName | null = null;
      if (sizeBytes !== null) {
        const resolved = await resolveBackend(flags.backend ?? 'auto');
        if (resolved.explanation !== null) note(ctx, resolved.explanation);
        backend = resolved.backend;
      }
      if (flags.access !== undefined && backend !== 'verbs') throw new UsageError(`--access applies to --backend verbs only${backend ? ` (backend is ${backend})` : ''}`);
      let access: number | null = null;
      if (flags.access !== undefined) {
        const { parseAccessFlags } = await import('../engine/verbs/access.js');
        access = parseAccessFlags(flags.access);
      }
      const report = await runDoctor({
        pid,
        request: { sizeBytes, backend, backing: flags.backing, access },
        root: flags.root,
        try: flags.try ?? false,
        accessText: flags.access ?? null,
        env: ctx.env,
      });
      // One line per file under --root that exists but was not read; the checks go on without it.
      for (const skipped of report.skippedFiles) note(ctx, `doctor: skipped ${skipped.file}: ${skipped.reason}`);
      if (flags.json) printJson(ctx, jsonDocument('doctor', reportJson(report)));
      else ctx.stdout.write(reportText(report));
      const failed = report.findings.filter((f) => f.status === 'fail');
      if (failed.length > 0) throw new RdmactlError(`${failed.length} check${failed.length === 1 ? '' : 's'} failed: ${failed.map((f) => f.id).join(', ')}`, EXIT.FAILURE);
    });
}
