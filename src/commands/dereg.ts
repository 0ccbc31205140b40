// rdmactl dereg ID… | --all: release registrations held by detached holders (`reg --detach`).

import { Argument, Command, Option } from 'commander';
import { completes, dynamic } from '../lib/completionHints.js';
import { deregExitCode, deregister, type DeregResult } from '../held/dereg.js';
import { runtimeDir } from '../held/store.js';
import { RdmactlError, UsageError } from '../lib/errors.js';
import { note, printJson, type Context } from '../lib/context.js';
import { renderTable, toJson, type Field } from '../lib/fields.js';
import { DURATION_HELP, parseDuration } from '../lib/size.js';

interface DeregFlags {
  all?: boolean;
  timeout: string;
  json?: boolean;
}

export const DEREG_FIELDS: readonly Field<DeregResult>[] = [
  { key: 'id', label: 'id', get: (r) => r.id },
  { key: 'pid', label: 'pid', get: (r) => r.pid },
  { key: 'status', label: 'result', get: (r) => r.status },
  { key: 'exitCode', label: 'exit code', get: (r) => r.exitCode, jsonOnly: true },
  { key: 'signalled', label: 'signalled', kind: 'bool', get: (r) => r.signalled, jsonOnly: true },
  { key: 'pinnedBytesHeld', label: 'VmPin held', kind: 'bytes', get: (r) => r.pinnedBytesHeld },
  { key: 'lockedBytesHeld', label: 'VmLck held', kind: 'bytes', get: (r) => r.lockedBytesHeld },
  { key: 'holderExited', label: 'holder exited', kind: 'bool', get: (r) => r.holderExited },
  { key: 'recordRemovedByHolder', label: 'holder removed record', kind: 'bool', get: (r) => r.recordRemovedByHolder, jsonOnly: true },
  { key: 'releaseMillis', label: 'release time', get: (r) => r.releaseMillis, jsonOnly: true },
  { key: 'message', label: 'message', get: (r) => r.message, jsonOnly: true },
];

export function deregCommand(ctx: Context): Command {
  return new Command('dereg')
    .summary('release registrations held by `reg --detach`')
    .description(`Release registrations that detached holders (\`rdmactl reg SIZE --detach\`) keep pinned or
locked. For each ID, dereg reads the record from the runtime directory and checks that its holder is
really that holder before signalling it: the pid is alive and not a zombie, its start time
(/proc/PID/stat field 22) equals the recorded one (so a reused pid is never signalled), its command
line carries the record's random --holder-token, and it runs as you. Then it sends SIGTERM (through a
pidfd, so the pid cannot change under it) and waits until the holder process is gone. The holder
releases its registrations and removes its record; a process that has exited has no memory map and
therefore nothing pinned (VmPin) or locked (VmLck). dereg reports the VmPin/VmLck the holder had when
signalled.

A holder runs in its own session (closing the terminal does not end it; it ignores SIGHUP) and
releases on SIGTERM or SIGINT, so \`kill PID\` works too; dereg adds the checks and the wait.

A stale record — its holder was killed (e.g. SIGKILL) or its pid now belongs to another process — is
removed without signalling anything, and counts as success: the registration is already gone.

Runtime directory: $XDG_RUNTIME_DIR/rdmactl, else /run/rdmactl for root, else /tmp/rdmactl-<uid>
(mode 0700, owned by you; anything else is refused). It is currently ${runtimeDir(ctx.env)}.`)
    .addArgument(completes(new Argument('[id...]', 'ids printed by `reg --detach` (8 hex digits)'), dynamic('held-ids')))
    .option('--all', 'release every registration you hold (and remove stale records)')
    .option('--timeout <duration>', `how long to wait for each holder to exit after SIGTERM (${DURATION_HELP})`, '10s')
    .addOption(new Option('--json', 'print one JSON document: {"results": [...]} with one entry per id'))
    .addHelpText('after', `
Exit status: 0 when every registration is released (or its record was stale); 2 for an id that names no
held registration; 1 when a holder is still running after --timeout, or the record's pid is alive but
is not an rdmactl holder (the record is removed, nothing signalled); 4 for a holder of another user
(not signalled). With several ids, the highest of these.

Examples:
  id=$(rdmactl reg 64M --backend uring --detach --json | jq -r .id)
  rdmactl dereg "$id"            release it; the holder exits
  rdmactl dereg --all            release everything you hold; "nothing held" when there is nothing
  rdmactl dereg --all --json     {"results":[{"id":…,"pid":…,"status":"released","pinnedBytesHeld":…}]}`)
    .action(async (ids: string[], flags: DeregFlags) => {
      if (flags.all && ids.length > 0) throw new UsageError('give ids or --all, not both');
      if (!flags.all && ids.length === 0) throw new UsageError('nothing to release: give one or more ids, or --all', ['see held registrations with `rdmactl ls`']);
      const timeoutMillis = parseDuration(flags.timeout, '--timeout');
      const results = await deregister(flags.all ? 'all' : ids, { env: ctx.env, timeoutMillis });
      const ok = results.filter((r) => r.exitCode === 0);
      const failures = results.filter((r) => r.exitCode !== 0);
      if (flags.json) {
        printJson(ctx, { results: results.map((r) => toJson(DEREG_FIELDS, r)) });
      } else if (results.length === 0) {
        ctx.stdout.write('nothing held\n');
      } else if (ok.length > 0) {
        ctx.stdout.write(`${renderTable(DEREG_FIELDS, ok)}\n`);
      }
      for (const r of ok) if (r.status === 'stale-removed') note(ctx, r.message);
      if (failures.length === 1) throw new RdmactlError(failures[0]!.message, failures[0]!.exitCode);
      if (failures.length > 1) {
        for (const r of failures) note(ctx, r.message);
        throw new RdmactlError(`${failures.length} of ${results.length} registrations were not released`, deregExitCode(results));
      }
    });
}
