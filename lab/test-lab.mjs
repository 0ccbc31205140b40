#!/usr/bin/env node
// npm run test:lab: boot each lab kernel once and run the test/lab suite inside it.

import { CACHE_DIR, KERNELS, LabSetupError } from './kernel.mjs';
import { factsCollector, keepFactsRecords, verdictSummary } from './facts.mjs';
import { MAX_NUMA_NODES, runInLab } from './vm.mjs';

// The plans, in one place. `four` (the default): the full suite on the oldest and the newest kernel,
// a declared subset on the middle ones (CI has 2 cores and a time budget; the middle kernels are
// bracketed): the fast files whose outcome depends on the kernel (device attributes, registration and
// memlock accounting, ODP, io_uring's charge, file-backed pins on ext4). `two`: the full suite on
// stable and new, the default until the full suite was green on bullseye (5.10).
export const FULL = 'the full suite';
export const MIDDLE_SUBSET = [
  'test/lab/smoke.test.ts',
  'test/lab/verbs-devices.test.ts',
  'test/lab/verbs-reg.test.ts',
  'test/lab/verbs-memlock.test.ts',
  'test/lab/verbs-odp.test.ts',
  'test/lab/uring-charge.test.ts',
  'test/lab/file-disk.test.ts',
  'test/lab/kernel-facts.test.ts',
];
export const PLANS = {
  two: [
    { kernel: 'stable', files: FULL },
    { kernel: 'new', files: FULL },
  ],
  four: [
    { kernel: 'bullseye', files: FULL },
    { kernel: 'stable', files: MIDDLE_SUBSET },
    { kernel: 'trixie', files: MIDDLE_SUBSET },
    { kernel: 'new', files: FULL },
  ],
};
export const DEFAULT_PLAN_NAME = 'four';

const describePlan = (plan) => plan.map((p) => `${p.kernel}: ${p.files === FULL ? FULL : p.files.map((f) => f.replace(/^test\/lab\//, '')).join(' ')}`);

const HELP = `Usage: npm run test:lab [-- [--plan NAME | --kernels LIST] [--numa N] [--timeout SECONDS] [-- VITEST ARGS...]]

Boots the Soft-RoCE lab VM once per kernel (see: npm run lab -- --help) and runs inside it, in this checkout:
  node node_modules/vitest/vitest.mjs run --config test/lab/vitest.config.ts --configLoader runner [FILES] [VITEST ARGS]
(the runner config loader because the guest cannot write the bundled config next to node_modules).
Without --kernels, a plan runs (--plan NAME; default ${DEFAULT_PLAN_NAME}):
${Object.entries(PLANS).map(([name, plan]) => `  ${name}:\n    ${describePlan(plan).join('\n    ')}`).join('\n')}
With --kernels, the full suite (or the VITEST ARGS) runs on each kernel listed; VITEST ARGS without
--kernels run on every kernel of the plan.
Tests see RDMACTL_LAB=1, RDMACTL_LAB_KERNEL_NAME (${Object.keys(KERNELS).join('|')}) and RDMACTL_LAB_KERNEL_RELEASE (uname -r).
Prints a per-kernel summary; exits non-zero if any kernel's suite failed or its kernel could not
be downloaded or booted.
  --kernels LIST      comma-separated kernel names, oldest to newest: ${Object.keys(KERNELS).join(', ')}
${Object.entries(KERNELS).map(([name, k]) => `                        ${name.padEnd(9)} ${k.describe}`).join('\n')}
  --plan NAME         ${Object.keys(PLANS).join(' or ')} (above); ignored with --kernels
  --numa N            NUMA nodes of the guest (default $RDMACTL_LAB_NUMA or 2: two nodes, so the
                      scenario migrate has somewhere to move pages; 1 boots without a NUMA topology)
  --timeout SECONDS   per-kernel limit for boot + suite (default 1800)
`;

function parseArgs(argv) {
  const o = { kernels: null, numa: Number(process.env.RDMACTL_LAB_NUMA || 2), timeout: 1800, vitestArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]);
    if (a === '--') {
      o.vitestArgs = argv.slice(i + 1);
      break;
    } else if (a === '-h' || a === '--help') o.help = true;
    else if (a === '--kernels' || a.startsWith('--kernels=')) o.kernels = String(value() ?? '').split(',').filter(Boolean);
    else if (a === '--plan' || a.startsWith('--plan=')) o.planName = String(value() ?? '');
    else if (a === '--timeout' || a.startsWith('--timeout=')) o.timeout = Number(value());
    else if (a === '--numa' || a.startsWith('--numa=')) o.numa = Number(value());
    else throw new Error(`unknown argument ${a} (see --help)`);
  }
  const planName = o.planName ?? DEFAULT_PLAN_NAME;
  if (!PLANS[planName]) throw new Error(`unknown plan "${planName}"; use ${Object.keys(PLANS).join(' or ')}`);
  if (o.kernels === null) o.plan = PLANS[planName].map((p) => ({ ...p, files: o.vitestArgs.length > 0 ? FULL : p.files }));
  else o.plan = o.kernels.map((kernel) => ({ kernel, files: FULL }));
  o.kernels = o.plan.map((p) => p.kernel);
  for (const k of o.kernels) if (!KERNELS[k]) throw new Error(`unknown kernel "${k}"; use ${Object.keys(KERNELS).join(', ')}`);
  if (o.kernels.length === 0) throw new Error('--kernels is empty');
  if (!(o.timeout > 0)) throw new Error('--timeout wants a positive number of seconds');
  if (!Number.isInteger(o.numa) || o.numa < 1 || o.numa > MAX_NUMA_NODES) throw new Error(`--numa wants a whole number of nodes from 1 to ${MAX_NUMA_NODES}`);
  return o;
}

const shq = (s) => (/^[\w./:=,@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** The last "Tests  ..." and "Test Files  ..." lines vitest printed. */
function vitestCounts(output) {
  const clean = output.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  const tests = [...clean.matchAll(/^\s*Tests\s+(.+?)\s*$/gm)].pop()?.[1];
  const files = [...clean.matchAll(/^\s*Test Files\s+(.+?)\s*$/gm)].pop()?.[1];
  return { tests, files };
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`test:lab: ${err.message}\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const commandFor = (files) => ['node', 'node_modules/vitest/vitest.mjs', 'run', '--config', 'test/lab/vitest.config.ts', '--configLoader', 'runner',
    ...(files === FULL ? [] : files), ...opts.vitestArgs]
    .map(shq)
    .join(' ');
  process.stdout.write(`test:lab plan${opts.vitestArgs.length > 0 ? ` (vitest args: ${opts.vitestArgs.join(' ')})` : ''}:\n  ${describePlan(opts.plan).join('\n  ')}\n`);
  const results = [];
  const facts = { collector: factsCollector(), kept: [] }; // kernel facts records (lab/facts.mjs)
  for (const { kernel: name, files } of opts.plan) {
    const command = commandFor(files);
    process.stdout.write(`\n=== test:lab: ${name} kernel${opts.numa > 1 ? `, ${opts.numa} NUMA nodes` : ''}, ${files !== FULL ? `subset: ${files.length} files` : opts.vitestArgs.length > 0 ? 'the vitest args' : FULL} ===\n`);
    let output = '';
    const row = { name, release: '?', ok: false, detail: '', scope: files !== FULL ? 'subset' : opts.vitestArgs.length > 0 ? 'args' : 'full' };
    results.push(row);
    try {
      const r = await runInLab({
        kernelName: name,
        command,
        timeoutS: opts.timeout,
        numaNodes: opts.numa,
        onOutput: (buf) => {
          process.stdout.write(buf);
          facts.collector.feed(buf);
          output += buf.toString('utf8');
          if (output.length > 4 << 20) output = output.slice(-(1 << 20));
        },
      });
      row.release = r.kernel.release;
      row.boot = r.bootMs;
      row.total = r.totalMs;
      row.accel = r.accel;
      const { tests, files } = vitestCounts(output);
      if (r.signal) {
        row.detail = `interrupted (${r.signal})`;
        results.interrupted = r.signal;
      } else if (r.bootHung) row.detail = `VM HUNG while booting (${r.attempts} attempts)`;
      else if (r.timedOut) row.detail = `TIMED OUT after ${opts.timeout} s`;
      else if (r.status === null) {
        row.detail = `VM died before the suite finished${r.attempts > 1 ? ' (after a restart while booting)' : ''}`;
        if (r.qemuStderr) process.stderr.write(`test:lab: qemu: ${r.qemuStderr}\n`);
        if (r.consoleTail) process.stderr.write(`test:lab: guest console (tail):\n${r.consoleTail}\n`);
      } else {
        row.ok = r.status === 0;
        row.detail = `${row.ok ? 'passed' : `FAILED (exit ${r.status})`}${tests ? ` — tests: ${tests}` : ''}${files ? `; files: ${files}` : ''}${r.attempts > 1 ? ` (the VM was restarted once while booting)` : ''}`;
      }
    } catch (err) {
      if (!(err instanceof LabSetupError)) throw err;
      row.detail = `NOT RUN: ${err.message.split('\n')[0]}`;
      process.stderr.write(`\n!!! test:lab: the ${name} kernel could not be prepared — its suite did NOT run:\n!!! ${err.message.replace(/\n/g, '\n!!! ')}\n`);
    }
    facts.kept.push(...keepFactsRecords(name, facts.collector.take(), CACHE_DIR));
    if (results.interrupted) break;
  }

  if (facts.kept.length > 0) process.stdout.write(`\n=== test:lab kernel facts (npm run docs:kernels writes docs/kernels.md) ===\n${verdictSummary(facts.kept)}`);
  process.stdout.write('\n=== test:lab summary ===\n');
  for (const r of results) {
    const timing = r.boot != null ? ` [${r.accel}, boot ${(r.boot / 1000).toFixed(1)} s, total ${(r.total / 1000).toFixed(1)} s]` : '';
    process.stdout.write(`${r.ok ? 'PASS' : 'FAIL'}  ${r.name.padEnd(8)} ${r.scope.padEnd(6)} ${r.release}${timing}: ${r.detail}\n`);
  }
  if (results.interrupted) return results.interrupted === 'SIGINT' ? 130 : 143;
  return results.every((r) => r.ok) && results.length === opts.kernels.length ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`test:lab: ${err?.stack || err}\n`);
    process.exitCode = 1;
  },
);
