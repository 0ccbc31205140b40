// Repeating a one-shot report every interval, like `free -s`, `systemd-cgtop -b`, `top -b -n`: the
// one loop behind `stat --interval`, `ls --interval` and `top --json`. Ticks sit on a fixed grid from
// the first sample (a slow sample never shifts the ones after it), a tick missed while a sample ran
// long is skipped rather than made up in a burst, and the stream ends quietly: after --count samples,
// at Ctrl-C / SIGTERM / SIGHUP (between samples, exit 0 as top(1) does), or when the reader of
// stdout goes (EPIPE: main turns the OutputError into exit 0).

import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { Context } from './context.js';
import { UsageError } from './errors.js';
import { untilSignal } from './hold.js';
import { DURATION_HELP, parseCount, parseDuration } from './size.js';

/** Shorter intervals would spend the machine on scanning /proc (a full scan is tens of ms). */
export const MIN_INTERVAL_MS = 100;

export interface WatchFlags {
  interval?: string;
  count?: string;
}

export interface WatchPlan {
  intervalMs: number;
  /** Samples before a normal end; null: until a signal or until the reader goes. */
  count: number | null;
}

/** Adds --interval and --count to a command that otherwise prints once (`-i` where it is free). */
export function addWatchOptions(command: Command): Command {
  const taken = (command.options as ReadonlyArray<{ short?: string }>).some((o) => o.short === '-i');
  return command
    .option(`${taken ? '' : '-i, '}--interval <duration>`, `repeat every interval until Ctrl-C, a time line before each sample (at least ${MIN_INTERVAL_MS}ms; ${DURATION_HELP})`)
    .option('--count <n>', 'with --interval: stop after N samples');
}

/** --interval and --count as typed; null when neither is given (print once). Throws UsageError. */
export function watchPlan(flags: WatchFlags): WatchPlan | null {
  if (flags.interval === undefined) {
    if (flags.count !== undefined) throw new UsageError(`--count needs --interval: add e.g. --interval 1s (without --interval the command prints once)`);
    return null;
  }
  const intervalMs = parseDuration(flags.interval, '--interval');
  if (intervalMs < MIN_INTERVAL_MS) throw new UsageError(`invalid --interval '${flags.interval}': at least ${MIN_INTERVAL_MS}ms`);
  return { intervalMs, count: flags.count === undefined ? null : parseCount(flags.count, '--count') };
}

/**
 * The tick to sample at after tick `current` ended `elapsedMs` after tick 0: the next one on the grid
 * that is still ahead. Ticks that passed while the sample ran are skipped (no burst to catch up).
 */
export function nextTickIndex(current: number, elapsedMs: number, intervalMs: number): number {
  return Math.max(current + 1, Math.floor(elapsedMs / intervalMs) + 1);
}

function twoDigits(n: number): string {
  return String(n).padStart(2, '0');
}

/** Local time with its UTC offset to the second, as `date -Iseconds` prints it: 2026-12-06T03:04:05+01:00. */
export function localIsoSeconds(date: Date): string {
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return `${date.getFullYear()}-${twoDigits(date.getMonth() + 1)}-${twoDigits(date.getDate())}`
    + `T${twoDigits(date.getHours())}:${twoDigits(date.getMinutes())}:${twoDigits(date.getSeconds())}`
    + `${sign}${twoDigits(Math.floor(abs / 60))}:${twoDigits(abs % 60)}`;
}

export interface SampleStamp {
  /** Spread first into a JSON document's body: {time} while repeating, nothing for a single run. */
  readonly json: { readonly time?: string };
}

/**
 * Prints once through `print` (no plan), or once per tick of `plan`. Text output gets a time line
 * before each sample and a blank line between samples; JSON output (one document per line) carries
 * the time in the document instead. `print` writes synchronously through ctx.stdout; its errors,
 * EPIPE included, end the loop and reach main.
 */
export async function eachSample(ctx: Context, plan: WatchPlan | null, json: boolean, print: (stamp: SampleStamp) => void | Promise<void>): Promise<void> {
  if (plan === null) {
    await print({ json: {} });
    return;
  }
  const signals = untilSignal();
  let stopped = false;
  const timer = new AbortController();
  void signals.signalled.then(() => {
    stopped = true;
    timer.abort();
  });
  try {
    const start = performance.now();
    for (let tick = 0, printed = 0; !stopped;) {
      const time = localIsoSeconds(new Date());
      // Output happens only here, between the waits: a signal (handled while we wait) never cuts a sample short.
      if (!json) ctx.stdout.write(`${printed > 0 ? '\n' : ''}${time}\n`);
      await print({ json: { time } });
      printed++;
      if (stopped || (plan.count !== null && printed >= plan.count)) return;
      tick = nextTickIndex(tick, performance.now() - start, plan.intervalMs);
      try {
        await sleep(Math.max(0, start + tick * plan.intervalMs - performance.now()), undefined, { signal: timer.signal });
      } catch {
        return; // a signal ended the wait
      }
    }
  } finally {
    signals.dispose();
  }
}
