// rdmactl scenario: every way the kernel threads say registered memory goes wrong (fork, munmap,
// munlock, …), each done for real and shown with the evidence gathered in that run, one row per
// scenario × backend × backing (× variant), each with a verdict from the scenario's own table.

import { Argument, Command, Option } from 'commander';
import { commaListOf, completes, oneOf } from '../lib/completionHints.js';
import { BACKINGS, type Backing } from '../engine/types.js';
import { EXIT, RdmactlError, UsageError } from '../lib/errors.js';
import type { Context } from '../lib/context.js';
import { toJson, type Field, type JsonValue } from '../lib/fields.js';
import { addOutputOptions, outputView, type OutputFlags } from '../lib/output.js';
import { SIZE_HELP, formatBytes } from '../lib/size.js';
import { withInterrupts } from '../fork/interrupt.js';
import { casesFor, runScenarios, type ScenarioPlan, type ScenarioRunReport } from '../scenario/engine.js';
import { SCENARIOS, scenarioByName } from '../scenario/registry.js';
import { summarizeObservations } from '../scenario/summary.js';
import { SCENARIO_BACKENDS, type ScenarioBackend, type ScenarioDefinition, type ScenarioRow } from '../scenario/types.js';
import { helpList, wrapWords } from '../lib/helpText.js';
import { parseChoiceList } from '../lib/choices.js';
import { parseRunFlags, type RunFlags } from '../scenario/runFlags.js';

interface ScenarioFlags extends OutputFlags, RunFlags {
  list?: boolean;
  backend?: string;
  backing?: string;
  variant?: string;
  size?: string;
  json?: boolean;
  expect?: string;
  stepDelay?: string;
  access?: string;
}

export interface ScenarioTableRow {
  index: number;
  row: ScenarioRow;
  evidence: string;
}

const COMMON_VERDICT_TEXT: Readonly<Record<string, string>> = { skipped: 'skipped', error: 'failed' };

function verdictWords(row: ScenarioRow): string {
  const def = scenarioByName(row.scenario);
  const words = def?.verdicts.find((v) => v.id === row.verdict)?.words ?? COMMON_VERDICT_TEXT[row.verdict] ?? row.verdict;
  return (row.verdict === 'skipped' || row.verdict === 'error') && row.reason ? `${words}: ${row.reason}` : words;
}

function observationsJson(row: ScenarioRow): JsonValue {
  return row.observations.map((o) => ({ ...o }) as { [key: string]: JsonValue });
}

export const SCENARIO_FIELDS: readonly Field<ScenarioTableRow>[] = [
  // Shown by default: the notes under the table and the error lines cite rows by this number.
  { key: 'index', label: '#', description: 'row number (the notes under the table cite it)', get: (x) => x.index },
  { key: 'scenario', label: 'SCENARIO', description: 'the scenario: fork, munmap, munlock, …', get: (x) => x.row.scenario },
  { key: 'variant', label: 'VARIANT', description: 'the scenario\'s variant (fork: protection/writer), null when it has one form', get: (x) => x.row.variant },
  { key: 'backend', label: 'BACKEND', description: 'how the buffer is registered: plain (not at all), mlock, uring, verbs', get: (x) => x.row.backend },
  { key: 'backing', label: 'BACKING', description: 'what backs the buffer: anon, thp, hugetlb, memfd, file-shared, file-private', get: (x) => x.row.backing },
  { key: 'length', label: 'SIZE', description: 'bytes registered (the size rounded up to the backing\'s page size); null when set-up failed', kind: 'bytes', get: (x) => x.row.length, extra: true },
  { key: 'pinned', label: 'PINNED', description: 'the registration pins pages (uring, verbs except on-demand)', kind: 'bool', get: (x) => x.row.pinned, extra: true },
  { key: 'onDemand', label: 'ON-DEMAND', description: 'a verbs on-demand (ODP) MR: nothing pinned', kind: 'bool', get: (x) => x.row.onDemand, extra: true },
  { key: 'devicePath', label: 'DEVICE-PATH', description: 'the data path used as the device, or why there is none', get: (x) => x.row.devicePath, extra: true, prose: true },
  {
    key: 'observations', label: 'OBSERVATIONS',
    description: 'one object per step: step, pinnedBytes, lockedBytes, pinsOutstanding, pfn, node, processSees, deviceReads, note',
    get: (x) => observationsJson(x.row), extra: true,
  },
  { key: 'verdict', label: 'VERDICT', description: 'an id from the scenario\'s verdict table (scenario --help), or skipped / error', get: (x) => x.row.verdict },
  { key: 'evidence', label: 'EVIDENCE', description: 'the evidence in one line (VmPin/VmLck across the steps, what the device read, …)', get: (x) => x.evidence, wrapAt: 26, prose: true },
  { key: 'verdictText', label: 'VERDICT-TEXT', description: 'the verdict in words, with the reason of a skip or failure', get: (x) => verdictWords(x.row), extra: true, prose: true },
  { key: 'reason', label: 'REASON', description: 'why a row was skipped or failed, or how the verdict was reached', get: (x) => x.row.reason, extra: true, prose: true },
  { key: 'elapsedMs', label: 'MS', description: 'milliseconds the row took', get: (x) => x.row.elapsedMs, extra: true },
];

const SCENARIO_OUTPUT = { name: 'scenario', fields: SCENARIO_FIELDS };

/** Every variant any scenario has (checked per scenario later). */
function allVariants(): string[] {
  return [...new Set(SCENARIOS.flatMap((s) => s.variants ?? []))];
}

function expectableOf(def: ScenarioDefinition): string[] {
  return def.verdicts.filter((v) => v.expectable).map((v) => v.id);
}

/** --expect VERDICT (every selected scenario) or SCENARIO=VERDICT,… ; unknown verdicts are usage errors. */
export function parseExpect(text: string, selected: readonly ScenarioDefinition[]): Map<string, string> {
  const out = new Map<string, string>();
  const check = (def: ScenarioDefinition, verdict: string): void => {
    const valid = expectableOf(def);
    if (!valid.includes(verdict)) throw new UsageError(`invalid --expect '${verdict}' for scenario ${def.name}: valid verdicts are ${valid.join(', ')}`);
    out.set(def.name, verdict);
  };
  const items = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`invalid --expect '${text}': VERDICT or SCENARIO=VERDICT,…`);
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq < 0) {
      for (const def of selected) check(def, item);
      continue;
    }
    const name = item.slice(0, eq);
    const def = selected.find((s) => s.name === name);
    if (!def) throw new UsageError(`invalid --expect '${item}': scenario ${name} is not selected (selected: ${selected.map((s) => s.name).join(', ')})`);
    check(def, item.slice(eq + 1));
  }
  return out;
}

/** A row as the notes under the table and the errors cite it: its # and the values of its columns. */
function rowName(x: ScenarioTableRow): string {
  return `#${x.index} ${x.row.scenario}${x.row.variant ? ` ${x.row.variant}` : ''} ${x.row.backend}/${x.row.backing}`;
}

/** The help text after the options: generated from each definition (summary, description, verdicts). */
function helpAfter(): string {
  const parts: string[] = ['', 'Scenarios:'];
  for (const def of SCENARIOS) {
    parts.push(wrapWords(`  ${def.name}: ${def.description}`, 100, '    '));
    parts.push(wrapWords(`    backends ${def.backends.join(',')}; backings ${def.backings.join(',')}${def.variants ? `; variants ${def.variants.length > 8 ? `${def.variants.slice(0, 6).join(',')},… (${def.variants.length})` : def.variants.join(',')}` : ''}; default rows ${def.defaultCases.length}`, 100, '      '));
    parts.push('    Verdicts:');
    parts.push(helpList(def.verdicts.map((v) => [v.id, `${v.words} — ${v.meaning}`] as const), '      '));
    parts.push('');
  }
  parts.push(`Every scenario: skipped (could not run here, with the reason; never fails the run or an --expect),
error (the row failed, with the reason; the run exits 1).

Rows: without --backend/--backing/--variant each scenario runs its default rows; with some, every
combination of the named values (the others take the scenario's defaults). With all, values a
scenario does not have are left out for it (--variant X runs only the scenarios that have X; no
row left is a usage error); with one scenario named they are a usage error.
Process and device reads are classified by pattern: pre-fork (the pattern written first, before the
event), parent-write (the process's later write; munmap: the new mapping), device-write, zeros,
mixed, unmapped (nothing mapped: /proc/PID/mem said EIO), failed (the device path refused).
Evidence column: VmPin/VmLck across the steps (16K→16K→0), what the device read in the short
words pre, parent, child, dev, "new map ≠ dev" (the device does not see the new mapping), dev ok or
dev⇄proc ok (each reads the other's write), PFN= (the first page kept its PFN); fork: P/C/D: what
parent, child and device read; refused: the call and its errno; readonly-private: PFN against the
page cache, reads after pwrite; truncate: file/process/device reads after the cut; overlap-lifetime:
VmPin with 2/1/0 handles, then the device through the last handle after munmap; exit: ms until the
pins were freed and until /proc/PID went, after SIGKILL; migrate: node of the first page
before→after, PFNs changed. Skipped and failed rows: the reason below the table, cited by the # column.
VmPin of verbs rows includes the device path's own bounce-buffer MR (as large as the row, at most
1 MiB): it is released with the registration.
Pins outstanding (nr_foll_pin_acquired − nr_foll_pin_released in /proc/vmstat) and meminfo Mlocked
are machine-wide: other processes move them too, so they are context and no verdict rests on them.
The kernel folds per-CPU deltas into vmstat only every vm.stat_interval; each step reads the pins
after folding them in (reading /proc/sys/vm/stat_refresh, root only), and leaves them out (null)
where it may not.

Columns: ${SCENARIO_FIELDS.filter((f) => !f.extra).map((f) => f.key).join(', ')} by default (rdmactl scenario -H: all).
${wrapWords(`JSON (--json): {host, schema, kernel, pfnsVisible, pageSize, memoryNodes, verbsUnavailable, size, access, scenarios: [{name, summary, verdicts}], rows: [{${SCENARIO_FIELDS.map((f) => f.key).join(', ')}}]}; --list prints {host, schema, scenarios: [{name, summary, description, backends, backings, variants, verdicts}]}.`)}

Examples:
  rdmactl scenario --list
  rdmactl scenario munmap --backend uring
  rdmactl scenario munlock --backend mlock,uring --json
  rdmactl scenario all --json --expect munmap=device-keeps-old-pages
  rdmactl scenario munmap --backend verbs --access on-demand
  rdmactl scenario fork --variant none/parent,dontfork/parent --backend uring`);
  return parts.join('\n');
}

function definitionJson(def: ScenarioDefinition, full: boolean): { [key: string]: JsonValue } {
  return {
    name: def.name,
    summary: def.summary,
    ...(full ? {
      description: def.description,
      backends: [...def.backends],
      backings: [...def.backings],
      variants: def.variants ? [...def.variants] : null,
    } : {}),
    verdicts: def.verdicts.map((v) => ({ id: v.id, words: v.words, meaning: v.meaning, expectable: v.expectable })),
  };
}

const LIST_FIELDS: readonly Field<ScenarioDefinition>[] = [
  { key: 'name', label: 'SCENARIO', description: 'name', get: (d) => d.name },
  { key: 'summary', label: 'DESCRIPTION', description: 'one line', get: (d) => d.summary, prose: true },
];

function evidenceOf(row: ScenarioRow): string {
  const def = scenarioByName(row.scenario);
  if (row.observations.length === 0) return ''; // skipped or failed: the reason follows the table
  return def?.evidence ? def.evidence(row) : summarizeObservations(row);
}

export function scenarioCommand(ctx: Context): Command {
  const names = SCENARIOS.map((s) => s.name);
  const command = new Command('scenario')
    .summary('what munmap, exit, truncate, migrate… do to registered memory')
    .description('Run each scenario for real — register, do the one thing (fork, munmap, exit, munlock, a second handle, a read-only private file, truncate, migrate), then read VmPin/VmLck, pins, PFNs, what the process and the device path see — one row per way of registering, each with a verdict derived from that evidence.')
    .addArgument(completes(new Argument('[name]', `a scenario (${names.join(', ')}) or all`), oneOf([...names, 'all'])))
    .option('-l, --list', 'list the scenarios, one line each')
    .addOption(completes(new Option('-b, --backend <list>', `backends: ${SCENARIO_BACKENDS.join(', ')}`), commaListOf(SCENARIO_BACKENDS)))
    .addOption(completes(new Option('--backing <list>', `what backs the buffer: ${BACKINGS.join(', ')}`), commaListOf(BACKINGS)))
    .addOption(completes(new Option('--variant <list>', 'the scenario\'s variants (fork: protection/writer, e.g. none/parent)'), commaListOf(allVariants())))
    .option('-s, --size <size>', `buffer size per row (${SIZE_HELP}); default: 4 pages`)
    .addOption(completes(new Option('-a, --access <flags>', 'verbs rows: extra ibv access flags on top of local-write,remote-write,remote-read (on-demand: an ODP MR)'), commaListOf(async () => Object.keys((await import('../engine/verbs/access.js')).ACCESS_FLAGS))))
    .option('--json', 'print one JSON document')
    .addOption(completes(new Option('--expect <verdicts>', 'exit 5 unless every row that ran has this verdict: VERDICT or SCENARIO=VERDICT,… (verdicts below)'), commaListOf([...new Set(SCENARIOS.flatMap(expectableOf))])))
    .addOption(new Option('--step-delay <ms>', 'testing: pause this long at each step').hideHelp())
    .addHelpText('after', helpAfter())
    .action(async (name: string | undefined, flags: ScenarioFlags) => {
      const view = outputView(ctx, SCENARIO_OUTPUT, flags);
      if (flags.list) {
        if (view.json) view.printDocument({ scenarios: SCENARIOS.map((d) => definitionJson(d, true)) });
        else view.printOther(LIST_FIELDS, SCENARIOS);
        return;
      }
      if (name === undefined) throw new UsageError(`name a scenario (${names.join(', ')}) or all, or --list`);
      const selected = name === 'all' ? [...SCENARIOS] : [scenarioByName(name)].filter((d) => d !== undefined);
      if (selected.length === 0) throw new UsageError(`unknown scenario '${name}': valid values are ${names.join(', ')}, all`);
      const selection = {
        backend: parseChoiceList<ScenarioBackend>(flags.backend, SCENARIO_BACKENDS, '--backend'),
        backing: parseChoiceList<Backing>(flags.backing, BACKINGS, '--backing'),
        variant: parseChoiceList<string>(flags.variant, name === 'all' ? allVariants() : (selected[0]!.variants ?? []), '--variant'),
      };
      const plans: ScenarioPlan[] = selected.map((definition) => ({ definition, cases: casesFor(definition, selection, name !== 'all') }))
        .filter((p) => p.cases.length > 0);
      if (plans.length === 0) {
        const having = selected.filter((d) => d.variants !== null)
          .map((d) => `${d.name}: ${d.variants!.length > 6 ? `${d.variants!.slice(0, 4).join(', ')}, … (${d.variants!.length})` : d.variants!.join(', ')}`);
        throw new UsageError(selection.variant
          ? `no scenario has --variant ${selection.variant.join(',')} with the backends and backings asked for; variants: ${having.join('; ')}`
          : 'no scenario has a row with the backends and backings asked for');
      }
      const { length, stepDelayMs, verbsAccess } = await parseRunFlags(flags, 'row');
      const expect = flags.expect !== undefined ? parseExpect(flags.expect, plans.map((p) => p.definition)) : null;
      const report: ScenarioRunReport = await withInterrupts((signal) => runScenarios(plans, { length, signal, stepDelayMs, verbsAccess }));
      const rows: ScenarioTableRow[] = report.rows.map((row, i) => ({ index: i + 1, row, evidence: evidenceOf(row) }));

      if (view.json) {
        view.printDocument({
          kernel: report.kernel,
          pfnsVisible: report.env.pfnsVisible,
          pageSize: report.env.pageSize,
          memoryNodes: [...report.env.memoryNodes],
          verbsUnavailable: report.env.verbsUnavailable,
          size: length,
          access: flags.access ?? null,
          scenarios: plans.map((p) => definitionJson(p.definition, false)),
          rows: rows.map((row) => toJson(view.fields, row)),
        });
      } else {
        view.prose(`kernel ${report.kernel}; ${formatBytes(length)} requested per row (rounded up to the backing's page size); page size ${formatBytes(report.env.pageSize)}`);
        if (!report.env.pfnsVisible) view.prose('PFNs unavailable (need CAP_SYS_ADMIN): the data-path checks still ran');
        view.printTable(rows);
        const counts = new Map<string, number>();
        for (const { row } of rows) counts.set(row.verdict, (counts.get(row.verdict) ?? 0) + 1);
        view.prose(wrapWords(`${rows.length} row${rows.length === 1 ? '' : 's'}: ${[...counts].map(([v, n]) => `${n} ${v}`).join(', ')}`, 100, '  '));
        const seen = new Set<string>();
        for (const { row } of rows) {
          const key = `${row.scenario} ${row.verdict}`;
          if (seen.has(key) || row.verdict === 'skipped' || row.verdict === 'error') continue;
          seen.add(key);
          view.prose(wrapWords(`  ${row.scenario} ${row.verdict}: ${verdictWords(row)}`, 100, '    '));
        }
        for (const x of rows) if (x.row.verdict === 'skipped' || x.row.verdict === 'error') view.prose(wrapWords(`  ${rowName(x)}: ${verdictWords(x.row)}`, 100, '    '));
      }

      const failed = rows.filter((x) => x.row.verdict === 'error');
      if (failed.length > 0) {
        throw new RdmactlError(`${failed.length} row${failed.length === 1 ? '' : 's'} failed: ${failed.map((x) => `${rowName(x)} (${x.row.reason ?? 'error'})`).join('; ')}`, EXIT.FAILURE);
      }
      if (expect) {
        const off = rows.filter((x) => x.row.verdict !== 'skipped' && expect.has(x.row.scenario) && x.row.verdict !== expect.get(x.row.scenario));
        if (off.length > 0) {
          throw new RdmactlError(`expected ${[...expect].map(([s, v]) => `${s}=${v}`).join(',')}, but ${off.length} row${off.length === 1 ? '' : 's'} not: ${off.map((x) => `${rowName(x)} (${x.row.verdict})`).join(', ')}`, EXIT.EXPECTATION);
        }
      }
    });
  return addOutputOptions(command, ctx, SCENARIO_OUTPUT);
}
