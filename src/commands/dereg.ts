// rdmactl dereg ID… | --all: release registrations held by detached holders (`reg --detach`).

import { Argument, Command, Option } from 'commander';
import { completes, dynamic } from '../lib/completionHints.js';
import { deregExitCode, deregister, type DeregResult } from '../held/dereg.js';
import { HOLDER_PROCESS_NAME, runtimeDir } from '../held/store.js';
import { RdmactlError, UsageError } from '../lib/errors.js';
import { note, type Context } from '../lib/context.js';
import type { Field } from '../lib/fields.js';
import { addOutputOptions, outputView, type OutputFlags } from '../lib/output.js';
import { DURATION_HELP, parseDuration } from '../lib/size.js';

interface DeregFlags extends OutputFlags {
  all?: boolean;
  timeout: string;
}

export const DEREG_FIELDS: readonly Field<DeregResult>[] = [
  { key: 'id', label: 'ID', description: 'the held registration\'s id (from reg --detach)', get: (r) => r.id },
  { key: 'pid', label: 'PID', description: 'its holder process (null when there was no record)', get: (r) => r.pid },
  { key: 'status', label: 'RESULT', description: 'what happened: released, stale-removed, not-found, timeout, …', get: (r) => r.status },
  { key: 'exitCode', label: 'EXIT-CODE', description: 'exit status this result calls for (0: released or stale)', get: (r) => r.exitCode, extra: true },
  { key: 'signalled', label: 'SIGNALLED', description: 'SIGTERM was sent to the holder', kind: 'bool', get: (r) => r.signalled, extra: true },
  { key: 'pinnedBytesHeld', label: 'VMPIN-HELD', description: 'the holder\'s VmPin just before it was signalled', kind: 'bytes', get: (r) => r.pinnedBytesHeld },
  { key: 'lockedBytesHeld', label: 'VMLCK-HELD', description: 'the holder\'s VmLck just before it was signalled', kind: 'bytes', get: (r) => r.lockedBytesHeld },
  { key: 'holderExited', label: 'HOLDER-EXITED', description: 'the holder process was seen gone', kind: 'bool', get: (r) => r.holderExited },
  { key: 'recordRemovedByHolder', label: 'RECORD-REMOVED', description: 'the holder removed its own record (ran its release path); null when not applicable', kind: 'bool', get: (r) => r.recordRemovedByHolder, extra: true },
  { key: 'releaseMillis', label: 'RELEASE-TIME', description: 'milliseconds from the signal to the holder\'s exit', get: (r) => r.releaseMillis, extra: true },
  { key: 'message', label: 'MESSAGE', description: 'one line for people', get: (r) => r.message, extra: true, prose: true },
];

const DEREG_OUTPUT = { name: 'dereg', fields: DEREG_FIELDS };

export function deregCommand(ctx: Context): Command {
  const command = new Command('dereg')
    .summary('release registrations held by `reg --detach` (by id or holder pid)')
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

A holder is also found without its record: holders name themselves "${HOLDER_PROCESS_NAME}" (comm) and
carry their id in their token, so a holder whose record was deleted or damaged still shows in
\`rdmactl ls\` (handle "ID (missing record)") and is released by \`dereg ID\`, \`dereg PID\` or
\`dereg --all\`, after the same checks.

A stale record — its holder was killed (e.g. SIGKILL) or its pid now belongs to another process — is
removed without signalling anything, and counts as success: the registration is already gone.

Several deregs of one registration at once: exactly one signals the holder and says "released" (it
holds an flock on the record, dropped when it exits); the others wait for the holder to exit and say
"already-released", also exit 0. Only the dereg that removed a stale record says "stale-removed".

Runtime directory: $XDG_RUNTIME_DIR/rdmactl, else /run/rdmactl for root, else /tmp/rdmactl-<uid>
(mode 0700, owned by you; anything else is refused). It is currently ${runtimeDir(ctx.env)}.`)
    .addArgument(completes(new Argument('[id|pid...]', 'ids printed by `reg --detach` (8 hex digits), or holder pids'), dynamic('held-ids')))
    .option('--all', 'release every registration you hold (and remove stale records)')
    .option('--timeout <duration>', `how long to wait for each holder to exit after SIGTERM (${DURATION_HELP})`, '10s')
    .addOption(new Option('--json', 'print one JSON document: {"host", "schema", "results": [...]} with one entry per id'))
    .addHelpText('after', `
Exit status: 0 when every registration is released (or its record was stale, or another dereg released
it, now or in the last ten minutes); 2 for an id or pid that names no held registration; 1 when a holder is still running after --timeout, or the record's pid is alive but
is not an rdmactl holder (the record is removed, nothing signalled); 4 for a holder of another user
(not signalled). With several ids, the highest of these.

Examples:
  id=$(rdmactl reg 64M --backend uring --detach --json | jq -r .id)
  rdmactl dereg "$id"            release it; the holder exits
  rdmactl dereg --all            release everything you hold; "nothing held" when there is nothing
  rdmactl dereg --all --json     {"host":…,"schema":"rdmactl.dereg/1","results":[{"id":…,"status":"released",…}]}
  rdmactl dereg --all -rn -o id,pinnedBytesHeld -b`)
    .action(async (ids: string[], flags: DeregFlags) => {
      const view = outputView(ctx, DEREG_OUTPUT, flags);
      if (flags.all && ids.length > 0) throw new UsageError('give ids or --all, not both');
      if (!flags.all && ids.length === 0) throw new UsageError('nothing to release: give one or more ids, or --all', ['see held registrations with `rdmactl ls`']);
      const timeoutMillis = parseDuration(flags.timeout, '--timeout');
      const results = await deregister(flags.all ? 'all' : ids, { env: ctx.env, timeoutMillis });
      const ok = results.filter((r) => r.exitCode === 0);
      const failures = results.filter((r) => r.exitCode !== 0);
      if (view.json) {
        view.printDocument({ results: results.map((r) => view.record(r)) });
      } else if (results.length === 0) {
        view.prose('nothing held');
      } else if (ok.length > 0) {
        view.printTable(ok);
      }
      for (const r of ok) if (r.status === 'stale-removed') note(ctx, r.message);
      if (failures.length === 1) throw new RdmactlError(failures[0]!.message, failures[0]!.exitCode);
      if (failures.length > 1) {
        for (const r of failures) note(ctx, r.message);
        throw new RdmactlError(`${failures.length} of ${results.length} registrations were not released`, deregExitCode(results));
      }
    });
  return addOutputOptions(command, ctx, DEREG_OUTPUT);
}
