// The scenario engine: which rows a selection means, and running them. It probes the machine once,
// runs rows in order (a row that cannot run here is skipped with the reason; a row that throws is an
// 'error' row and the others still run), stops between rows when a signal arrived, and arms the fork
// watchdog for the whole run when a scenario forks children.

import { release as kernelRelease } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Backing } from '../engine/types.js';
import { checkpoint } from '../fork/interrupt.js';
import { armForkWatchdog, disarmForkWatchdog } from '../fork/watchdog.js';
import { UsageError } from '../lib/errors.js';
import { probeScenarioEnvironment } from './environment.js';
import { setUpRange, setupSkipReason, type RegisteredRange, type SetupOptions } from '../fork/registeredRange.js';
import { emptyRow } from './setup.js';
import type { ScenarioBackend, ScenarioCase, ScenarioDefinition, ScenarioEnvironment, ScenarioRow, ScenarioRunContext } from './types.js';

/** What the user named; an absent dimension takes the scenario's defaults. */
export interface ScenarioSelection {
  backend?: readonly ScenarioBackend[];
  backing?: readonly Backing[];
  variant?: readonly string[];
}

export interface ScenarioPlan {
  definition: ScenarioDefinition;
  cases: ScenarioCase[];
}

function distinct<T>(values: Iterable<T>): T[] {
  return [...new Set(values)];
}

/**
 * The rows of `def` for `selection`: its defaultCases when nothing is named, else every combination
 * of the named values and the defaults of the others. Values the scenario does not have are a usage
 * error when `strict` (one scenario named), else left out (`all`): a scenario that has none of the
 * named variants (or no variants at all) then has no rows.
 */
export function casesFor(def: ScenarioDefinition, selection: ScenarioSelection, strict: boolean): ScenarioCase[] {
  if (!selection.backend && !selection.backing && !selection.variant) return [...def.defaultCases];
  const check = <T extends string>(named: readonly T[] | undefined, valid: readonly T[], flag: string): T[] | undefined => {
    if (!named) return undefined;
    const bad = named.filter((v) => !valid.includes(v));
    if (strict && bad.length > 0) throw new UsageError(`scenario ${def.name} has no ${flag} ${bad.join(', ')}: valid values are ${valid.join(', ') || '(none)'}`);
    return named.filter((v) => valid.includes(v));
  };
  const backends = check(selection.backend, def.backends, '--backend') ?? def.selectionDefaults?.backend ?? distinct(def.defaultCases.map((c) => c.backend));
  const backings = check(selection.backing, def.backings, '--backing') ?? def.selectionDefaults?.backing ?? distinct(def.defaultCases.map((c) => c.backing));
  // A scenario without variants has none of the named ones: with all, --variant leaves it out.
  const variants: ReadonlyArray<string | null> = def.variants === null
    ? (selection.variant ? check(selection.variant, [], '--variant')! : [null])
    : check(selection.variant, def.variants, '--variant') ?? def.selectionDefaults?.variant ?? distinct(def.defaultCases.map((c) => c.variant));
  const out: ScenarioCase[] = [];
  for (const backend of backends) for (const backing of backings) for (const variant of variants) out.push({ backend, backing, variant });
  return out;
}

export interface EngineRunOptions extends Omit<ScenarioRunContext, 'env'> {}

export interface ScenarioRunReport {
  kernel: string;
  env: ScenarioEnvironment;
  rows: ScenarioRow[];
}

/** One row, never throwing except on an interrupt: skipped when inapplicable, 'error' when it throws. */
export async function runRow(def: ScenarioDefinition, c: ScenarioCase, ctx: ScenarioRunContext): Promise<ScenarioRow> {
  const started = performance.now();
  const inapplicable = def.notApplicable(c, ctx.env);
  let row: ScenarioRow;
  if (inapplicable) row = emptyRow(def.name, c, 'skipped', inapplicable, ctx.verbsAccess);
  else if (c.backend === 'verbs' && ctx.env.verbsUnavailable) row = emptyRow(def.name, c, 'skipped', ctx.env.verbsUnavailable, ctx.verbsAccess);
  else {
    try {
      row = await def.run(c, ctx);
    } catch (err) {
      if (err instanceof Error && err.name === 'InterruptedError') throw err;
      row = emptyRow(def.name, c, 'error', err instanceof Error ? err.message : String(err), ctx.verbsAccess);
    }
  }
  row.elapsedMs = Math.round((performance.now() - started) * 10) / 10;
  return row;
}

/** Run every plan's rows in order (each scenario's executionOrder within it; rows keep the plan order). */
export async function runScenarios(plans: readonly ScenarioPlan[], options: EngineRunOptions): Promise<ScenarioRunReport> {
  const forks = plans.some((p) => p.definition.forks && p.cases.length > 0);
  // Started first: the watchdog's start (a node process) overlaps the probes.
  const watchdog = forks ? armForkWatchdog() : null;
  let env: ScenarioEnvironment;
  try {
    env = await probeScenarioEnvironment(plans.some((p) => p.cases.some((c) => c.backend === 'verbs')));
    await watchdog;
  } catch (err) {
    if (watchdog) await watchdog.then(disarmForkWatchdog, () => undefined);
    throw err;
  }
  const ctx: ScenarioRunContext = { ...options, env };
  const rows: ScenarioRow[] = [];
  try {
    for (const { definition, cases } of plans) {
      const order = definition.executionOrder ? definition.executionOrder(cases) : cases.map((_, i) => i);
      const mine = new Array<ScenarioRow>(cases.length);
      for (const index of order) {
        await checkpoint(options.signal);
        mine[index] = await runRow(definition, cases[index]!, ctx);
      }
      rows.push(...mine);
    }
  } finally {
    if (watchdog) await disarmForkWatchdog();
  }
  return { kernel: kernelRelease(), env, rows };
}

/**
 * The frame of most rows: set up the range (a set-up failure that is the machine's → skipped with its
 * reason), run `body` with the row to fill in (observations, verdict, reason), release everything on
 * every path. `body` may throw; the engine turns that into an 'error' row.
 */
export async function withRange(
  scenario: string, c: ScenarioCase, ctx: ScenarioRunContext, options: SetupOptions,
  body: (range: RegisteredRange, row: ScenarioRow) => Promise<void> | void,
): Promise<ScenarioRow> {
  let range: RegisteredRange;
  try {
    range = await setUpRange(c, ctx, options);
  } catch (err) {
    const reason = setupSkipReason(err);
    if (reason === null) throw err;
    return emptyRow(scenario, c, 'skipped', reason, ctx.verbsAccess);
  }
  const row = emptyRow(scenario, c, 'error', null, ctx.verbsAccess);
  row.length = range.length;
  row.devicePath = range.devicePathText;
  try {
    await body(range, row);
  } finally {
    range.release();
  }
  return row;
}

/**
 * After a step's observation: tell a test (onStep) what is being looked at, pause (--step-delay), and
 * stop there if a signal arrived.
 */
export async function step(ctx: ScenarioRunContext, name: string, range: RegisteredRange | null): Promise<void> {
  if (ctx.onStep && range) {
    const live = range.registration && !range.registration.closed ? range.registration : null;
    await ctx.onStep(name, { pid: 'self', addr: range.addr, length: range.length, registration: live });
  }
  await checkpoint(ctx.signal, ctx.stepDelayMs);
}
