#!/usr/bin/env node
// npm run test:lab: boot each lab kernel once and run the test/lab suite inside it.

import { KERNELS, LabSetupError } from './kernel.mjs';
import { MAX_NUMA_NODES, runInLab } from './vm.mjs';

const HELP = `Usage: npm run test:lab [-- [--kernels stable,new] [--numa N] [--timeout SECONDS] [-- VITEST ARGS...]]

For each kernel (default: stable,new), boots the Soft-RoCE lab VM once (see: npm run lab -- --help)
and runs inside it, in this checkout:
  node node_modules/vitest/vitest.mjs run --config test/lab/vitest.config.ts --configLoader runner [VITEST ARGS]
(the runner config loader because the guest cannot write the bundled config next to node_modules).
Tests see RDMACTL_LAB=1, RDMACTL_LAB_KERNEL_NAME (stable|new) and RDMACTL_LAB_KERNEL_RELEASE (uname -r).
Prints a per-kernel summary; exits non-zero if any kernel's suite failed or its kernel could not
be downloaded or booted.
  --kernels LIST      comma-separated kernel names (${Object.keys(KERNELS).join(', ')})
  --numa N            NUMA nodes of the guest (default $RDMACTL_LAB_NUMA or 2: two nodes, so the
                      scenario migrate has somewhere to move pages; 1 boots without a NUMA topology)
  --timeout SECONDS   per-kernel limit for boot + suite (default 1800)
`;

function parseArgs(argv) {
  const o = { kernels: ['stable', 'new'], numa: Number(process.env.RDMACTL_LAB_NUMA || 2), timeout: 1800, vitestArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]);
    if (a === '--') {
      o.vitestArgs = argv.slice(i + 1);
      break;
    } else if (a === '-h' || a === '--help') o.help = true;
    else if (a === '--kernels' || a.startsWith('--kernels=')) o.kernels = String(value() ?? '').split(',').filter(Boolean);
    else if (a === '--timeout' || a.startsWith('--timeout=')) o.timeout = Number(value());
    else if (a === '--numa' || a.startsWith('--numa=')) o.numa = Number(value());
    else throw new Error(`unknown argument ${a} (see --help)`);
  }
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
  const command = ['node', 'node_modules/vitest/vitest.mjs', 'run', '--config', 'test/lab/vitest.config.ts', '--configLoader', 'runner', ...opts.vitestArgs]
    .map(shq)
    .join(' ');
  const results = [];
  for (const name of opts.kernels) {
    process.stdout.write(`\n=== test:lab: ${name} kernel${opts.numa > 1 ? `, ${opts.numa} NUMA nodes` : ''} ===\n`);
    let output = '';
    const row = { name, release: '?', ok: false, detail: '' };
    results.push(row);
    try {
      const r = await runInLab({
        kernelName: name,
        command,
        timeoutS: opts.timeout,
        numaNodes: opts.numa,
        onOutput: (buf) => {
          process.stdout.write(buf);
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
    if (results.interrupted) break;
  }

  process.stdout.write('\n=== test:lab summary ===\n');
  for (const r of results) {
    const timing = r.boot != null ? ` [${r.accel}, boot ${(r.boot / 1000).toFixed(1)} s, total ${(r.total / 1000).toFixed(1)} s]` : '';
    process.stdout.write(`${r.ok ? 'PASS' : 'FAIL'}  ${r.name.padEnd(6)} ${r.release}${timing}: ${r.detail}\n`);
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
