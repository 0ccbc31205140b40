// rdmactl fork: fork with registered memory, on this kernel and with this way of registering, and
// show with evidence what happened to the pages — one row per scenario, each with a verdict.

import { Command, Option } from 'commander';
import { commaListOf, completes, oneOf } from '../lib/completionHints.js';
import type { Backing, Protection } from '../engine/types.js';
import { EXIT, RdmactlError, UsageError } from '../lib/errors.js';
import type { Context } from '../lib/context.js';
import { toJson, type Field } from '../lib/fields.js';
import { addOutputOptions, outputView, type OutputFlags, type OutputView } from '../lib/output.js';
import { SIZE_HELP, formatBytes } from '../lib/size.js';
import { withInterrupts } from '../fork/interrupt.js';
import {
  DEFAULT_MATRIX, EXPECTABLE_VERDICTS, FORK_BACKENDS, FORK_BACKINGS, PROTECTIONS, SELECTION_DEFAULTS, VERDICTS, VERDICT_TEXT, WRITERS,
  buildMatrix, runMatrix, type ForkBackend, type ForkReport, type ScenarioResult, type VerdictId, type Writer,
} from '../fork/scenario.js';
import { helpList, wrapWords } from '../lib/helpText.js';
import { choiceListArg } from '../lib/choices.js';
import { parseRunFlags, type RunFlags } from '../scenario/runFlags.js';

interface ForkFlags extends OutputFlags, RunFlags {
  backend?: ForkBackend[];
  protect?: Protection[];
  writer?: Writer[];
  backing?: Backing[];
  size?: string;
  json?: boolean;
  expect?: string;
  stepDelay?: string;
  access?: string;
}

/** Verdicts a run can be expected to reach (`skipped` and `error` are not outcomes). */
const EXPECTABLE: readonly VerdictId[] = EXPECTABLE_VERDICTS;

export interface ForkRow {
  index: number;
  r: ScenarioResult;
}

function verdictWords(r: ScenarioResult): string {
  const words = VERDICT_TEXT[r.verdict];
  return (r.verdict === 'skipped' || r.verdict === 'error') && r.reason ? `${words}: ${r.reason}` : words;
}

export const FORK_FIELDS: readonly Field<ForkRow>[] = [
  { key: 'index', label: '#', description: 'row number', get: (x) => x.index },
  { key: 'backend', label: 'BACKEND', description: 'how the buffer is registered: plain (not at all), mlock, uring, verbs', get: (x) => x.r.backend },
  { key: 'protection', label: 'PROTECT', description: 'fork protection: none, dontfork, wipeonfork, fork-init', get: (x) => x.r.protection },
  { key: 'writer', label: 'WRITER', description: 'who writes after the fork: parent, child, both, none', get: (x) => x.r.writer },
  { key: 'backing', label: 'BACKING', description: 'what backs the buffer: anon, thp, hugetlb, memfd, file-shared, file-private', get: (x) => x.r.backing },
  { key: 'length', label: 'SIZE', description: 'buffer bytes (the size rounded up to the backing\'s page size)', kind: 'bytes', get: (x) => x.r.length, extra: true },
  { key: 'pinned', label: 'PINNED', description: 'the registration pins pages (uring, verbs except on-demand)', kind: 'bool', get: (x) => x.r.pinned, extra: true },
  { key: 'onDemand', label: 'ON-DEMAND', description: 'a verbs on-demand (ODP) MR: nothing pinned', kind: 'bool', get: (x) => x.r.onDemand, extra: true },
  { key: 'parentPfnBefore', label: 'PFN-BEFORE', description: 'physical page of the parent\'s first page after registration (needs CAP_SYS_ADMIN)', get: (x) => x.r.parentPfnBefore, extra: true },
  { key: 'parentPfnAfter', label: 'PFN-AFTER', description: 'physical page of the parent\'s first page after the writes', get: (x) => x.r.parentPfnAfter, extra: true },
  { key: 'parentPfnStable', label: 'STABLE', description: 'no page of the buffer moved in the parent', kind: 'bool', get: (x) => x.r.parentPfnStable, extra: true },
  { key: 'parentPagesMoved', label: 'PAGES-MOVED', description: 'pages whose physical page changed in the parent', get: (x) => x.r.parentPagesMoved, extra: true },
  { key: 'childPfn', label: 'CHILD-PFN', description: 'physical page of the child\'s first page', get: (x) => x.r.childPfn, extra: true },
  { key: 'childSharesPage', label: 'CHILD-SHARES', description: 'the child maps the parent\'s physical page (first page)', kind: 'bool', get: (x) => x.r.childSharesPage, extra: true },
  { key: 'childMapped', label: 'CHILD-MAPPED', description: 'the child has the range mapped (process_vm_readv succeeded)', kind: 'bool', get: (x) => x.r.childMapped, extra: true },
  { key: 'childInherited', label: 'CHILD-GOT', description: 'what the child found right after the fork: pre-fork, zeros or unmapped', get: (x) => x.r.childInherited },
  { key: 'parentSees', label: 'PARENT-SEES', description: 'the parent\'s bytes after the writes: pre-fork, parent-write, child-write, mixed, …', get: (x) => x.r.parentSees },
  { key: 'childSees', label: 'CHILD-SEES', description: 'the child\'s bytes after the writes', get: (x) => x.r.childSees },
  { key: 'deviceSeesParentWrite', label: 'DEV-READS-PARENT', description: 'the device read what the parent sees now (null when nothing is pinned)', kind: 'bool', get: (x) => x.r.deviceSeesParentWrite, extra: true },
  { key: 'parentSeesDeviceWrite', label: 'PARENT-SEES-DEV', description: 'after the device wrote a new pattern, the parent reads it', kind: 'bool', get: (x) => x.r.parentSeesDeviceWrite, extra: true },
  { key: 'childSeesAfterDeviceWrite', label: 'CHILD-AFTER-DEV', description: 'what the child holds after the device wrote', get: (x) => x.r.childSeesAfterDeviceWrite, extra: true },
  { key: 'devicePath', label: 'DEVICE-PATH', description: 'the data path used as the device, or why there is none', get: (x) => x.r.devicePath, extra: true, prose: true },
  { key: 'verdict', label: 'VERDICT', description: 'coherent, parent-disconnected, child-unmapped, child-zeros, not-pinned, unverified, skipped, error', get: (x) => x.r.verdict },
  { key: 'verdictText', label: 'VERDICT-TEXT', description: 'the verdict in words, with the reason of a skip or failure', get: (x) => verdictWords(x.r), extra: true, prose: true },
  { key: 'reason', label: 'REASON', description: 'why a row was skipped or failed, or how the verdict was reached', get: (x) => x.r.reason, extra: true, prose: true },
  { key: 'elapsedMs', label: 'MS', description: 'milliseconds the scenario took', get: (x) => x.r.elapsedMs, extra: true },
];

const FORK_OUTPUT = { name: 'fork', fields: FORK_FIELDS };

function rowName(x: ForkRow): string {
  return `#${x.index} ${x.r.backend}/${x.r.protection}/${x.r.writer}/${x.r.backing}`;
}

/** The text report: what the kernel does, the table, then the verdicts in words (people only). */
export function printForkText(view: OutputView<ForkRow>, report: ForkReport, rows: readonly ForkRow[], length: number): void {
  if (report.copyOnFork === null) {
    // The verdicts never used the flag: they are what each row saw, so here they are the answer.
    view.prose(`kernel ${report.kernel}: copy-on-fork ${report.copyOnForkSource}; the verdicts below are what this kernel did`);
  } else {
    view.prose(`kernel ${report.kernel}: ${report.copyOnFork
      ? 'copy-on-fork: pinned anonymous pages are copied for the child, the parent keeps its page'
      : 'no copy-on-fork: pinned pages are shared copy-on-write; a parent write loses the device\'s page'}`);
    view.prose(`  (answer from ${report.copyOnForkSource})`);
  }
  if (report.verbsForkStatus !== null) view.prose(`libibverbs: ibv_is_fork_initialized() = ${report.verbsForkStatus}`);
  if (!report.pfnsVisible) view.prose('PFNs unavailable (need CAP_SYS_ADMIN): PFN columns show -; the data-path checks still ran');
  view.prose(`buffer: ${formatBytes(length)} requested per scenario, rounded up to the backing's page size (thp: 2 MiB); page size ${formatBytes(report.pageSize)}`);
  view.printTable(rows);
  const counts = new Map<VerdictId, number>();
  for (const { r } of rows) counts.set(r.verdict, (counts.get(r.verdict) ?? 0) + 1);
  view.prose(`${rows.length} scenario${rows.length === 1 ? '' : 's'}: ${[...counts].map(([v, n]) => `${n} ${v}`).join(', ')}`);
  for (const verdict of counts.keys()) {
    if (verdict !== 'skipped' && verdict !== 'error' && VERDICT_TEXT[verdict] !== verdict) view.prose(`  ${verdict}: ${VERDICT_TEXT[verdict]}`);
  }
  for (const x of rows) if (x.r.verdict === 'skipped' || x.r.verdict === 'error') view.prose(`  #${x.index} ${verdictWords(x.r)}`);
}

/** The body of a `fork --json` document (schema rdmactl.fork/1); `fields` from -o. */
export function forkReportJson(report: ForkReport, rows: readonly ForkRow[], length: number, fields: readonly Field<ForkRow>[] = FORK_FIELDS): { [key: string]: unknown } {
  return {
    kernel: report.kernel,
    copyOnFork: report.copyOnFork,
    copyOnForkSource: report.copyOnForkSource,
    verbsForkStatus: report.verbsForkStatus,
    pfnsVisible: report.pfnsVisible,
    pageSize: report.pageSize,
    size: length,
    scenarios: rows.map((row) => toJson(fields, row)),
  };
}


/** The default columns with their descriptions (from FORK_FIELDS: the one place they are written). */
function columnsHelp(): string {
  const shown = FORK_FIELDS.filter((f) => !f.extra);
  return `Columns: the defaults below; rdmactl fork -H lists them all, and the evidence (PFNs, the device
path) is one -o away, e.g. -o +parentPfnBefore,parentPfnAfter,deviceSeesParentWrite,parentSeesDeviceWrite.
${helpList(shown.map((f) => [f.label, f.description] as const))}
  PFNs need CAP_SYS_ADMIN; without it they are null ("PFNs unavailable") and JSON has pfnsVisible false.`;
}

function verdictsHelp(): string {
  return `Verdicts (JSON id, the words text output prints — what it means):\n${helpList(VERDICTS.map((v) => [v.id, `${v.words} — ${v.meaning}`] as const))}`;
}

function jsonHelp(): string {
  const keys = FORK_FIELDS.map((f) => f.key).join(', ');
  return wrapWords(`JSON (--json): {host, schema, kernel, copyOnFork, copyOnForkSource, verbsForkStatus, pfnsVisible, pageSize, size, scenarios: [{${keys}}]}; null where not applicable.`);
}

const HELP_AFTER = `
How a scenario runs:
  map the buffer (backing), apply the protection, register it (backend), fill it with a pre-fork
  pattern, fork a child that only sleeps, then the writer writes its own pattern: the parent with
  plain stores, the child through process_vm_writev (the kernel breaks copy-on-write for the child
  exactly as a store in the child would). With the child alive, rdmactl reads PFNs from
  /proc/<pid>/pagemap, the child's bytes with process_vm_readv, and for pinned backends uses the
  backend's own data path as the "device": uring does IORING_OP_WRITE_FIXED from the registered
  buffer to a memfd (the device reads memory) and IORING_OP_READ_FIXED from a memfd into it (the
  device writes memory); verbs does an RDMA READ from the MR into a bounce buffer and an RDMA WRITE
  from it into the MR over an RC queue pair connected to itself (loopback, path MTU = the port's max:
  the packets never reach the wire). Then the child is killed and reaped and the registration released.

Dimensions (comma lists, or all):
  --backend   plain (not registered: the baseline), mlock, uring (io_uring fixed buffers: the same
              long-term pin as ibv_reg_mr), verbs (ibv_reg_mr; needs an RDMA device)
  --protect   none, dontfork (MADV_DONTFORK), wipeonfork (MADV_WIPEONFORK), fork-init (ibv_fork_init, verbs)
  --writer    who writes after the fork: parent, child, both (parent first), none
  --backing   ${FORK_BACKINGS.join(', ')}
  --access    verbs rows register with local-write,remote-write,remote-read plus these flags;
              on-demand registers an ODP MR (nothing pinned; needs a device with ODP_SUPPORT, e.g. mlx5
              or rxe on recent kernels): on a device without it the rows are skipped with the reason
  Without any of them the default matrix runs (${DEFAULT_MATRIX.length} rows). With some, every combination of the given
  values runs, and unnamed dimensions take: backend ${SELECTION_DEFAULTS.backend.join(',')}, protect ${SELECTION_DEFAULTS.protection.join(',')},
  writer ${SELECTION_DEFAULTS.writer.join(',')}, backing ${SELECTION_DEFAULTS.backing.join(',')}. Rows that cannot run here (no device, no huge pages, not applicable)
  are listed as skipped with the reason; they never fail the run or an --expect.

${columnsHelp()}

${verdictsHelp()}

${jsonHelp()}

Examples:
  rdmactl fork                                        the default matrix
  rdmactl fork --backend uring --writer all           a pinned buffer, every writer
  rdmactl fork --backend uring,mlock --protect none,dontfork,wipeonfork --json
  rdmactl fork --backend uring --expect coherent      exit 5 unless every row is coherent (CI check)
  rdmactl fork --backend verbs --access on-demand     an ODP MR, through a real RDMA WRITE/READ
  rdmactl fork --backing thp,memfd,file-private --backend uring --size 1M
  rdmactl fork -rn -o backend,protection,verdict                   bare lines for scripts
  rdmactl fork --backend uring --json -o backend,verdict           only these keys per scenario`;

export function forkCommand(ctx: Context): Command {
  const command = new Command('fork')
    .summary('fork with registered memory and show what happens to the pages')
    .description('Answer "on this kernel, with this way of registering, what happens if my process forks?" by doing it: each scenario registers a buffer, forks, writes, and shows PFNs, what the parent, the child and the "device" see, and a verdict.')
    // The lists are checked as they are parsed: a bad value starts nothing, and -b's error can say
    // that -b is --backend here (the output option being --bytes).
    .addOption(completes(new Option('-b, --backend <list>', `backends: ${FORK_BACKENDS.join(', ')}`).argParser(choiceListArg(FORK_BACKENDS, '--backend')), commaListOf(FORK_BACKENDS)))
    .addOption(completes(new Option('-p, --protect <list>', `fork protections: ${PROTECTIONS.join(', ')}`).argParser(choiceListArg(PROTECTIONS, '--protect')), commaListOf(PROTECTIONS)))
    .addOption(completes(new Option('-w, --writer <list>', `who writes after the fork: ${WRITERS.join(', ')}`).argParser(choiceListArg(WRITERS, '--writer')), commaListOf(WRITERS)))
    .addOption(completes(new Option('--backing <list>', `what backs the buffer: ${FORK_BACKINGS.join(', ')}`).argParser(choiceListArg(FORK_BACKINGS, '--backing')), commaListOf(FORK_BACKINGS)))
    .option('-s, --size <size>', `buffer size per scenario (${SIZE_HELP}); default: 4 pages`)
    .option('--json', 'print one JSON document')
    .addOption(completes(new Option('-a, --access <flags>', 'verbs rows: extra ibv access flags on top of local-write,remote-write,remote-read (e.g. on-demand for an ODP MR)'), commaListOf(async () => Object.keys((await import('../engine/verbs/access.js')).ACCESS_FLAGS))))
    .addOption(completes(new Option('--expect <verdict>', `exit 5 unless every row that ran has this verdict: ${EXPECTABLE.join(', ')}`), oneOf(EXPECTABLE)))
    .addOption(new Option('--step-delay <ms>', 'testing: wait this long with each child alive').hideHelp())
    .addHelpText('after', HELP_AFTER)
    .action(async (flags: ForkFlags) => {
      const view = outputView(ctx, FORK_OUTPUT, flags);
      const selection = {
        backend: flags.backend,
        protection: flags.protect,
        writer: flags.writer,
        backing: flags.backing,
      };
      const { length, stepDelayMs, verbsAccess } = await parseRunFlags(flags, 'scenario');
      const expect = flags.expect;
      if (expect !== undefined && !(EXPECTABLE as readonly string[]).includes(expect)) {
        throw new UsageError(`invalid --expect '${expect}': valid values are ${EXPECTABLE.join(', ')}`);
      }
      const specs = buildMatrix(selection);
      const report = await withInterrupts((signal) => runMatrix(specs, { length, signal, stepDelayMs, verbsAccess }));
      const rows: ForkRow[] = report.scenarios.map((r, i) => ({ index: i + 1, r }));

      if (view.json) view.printDocument(forkReportJson(report, rows, length, view.fields));
      else printForkText(view, report, rows, length);

      const failed = rows.filter((x) => x.r.verdict === 'error');
      if (failed.length > 0) {
        throw new RdmactlError(`${failed.length} scenario${failed.length === 1 ? '' : 's'} failed: ${failed.map((x) => `${rowName(x)} (${x.r.reason ?? 'error'})`).join('; ')}`, EXIT.FAILURE);
      }
      if (expect !== undefined) {
        const off = rows.filter((x) => x.r.verdict !== 'skipped' && x.r.verdict !== expect);
        if (off.length > 0) {
          throw new RdmactlError(`expected ${expect}, but ${off.length} row${off.length === 1 ? '' : 's'} not: ${off.map((x) => `${rowName(x)} (${x.r.verdict})`).join(', ')}`, EXIT.EXPECTATION);
        }
      }
    });
  return addOutputOptions(command, ctx, FORK_OUTPUT);
}
