#!/usr/bin/env node
// npm run lab -- 'SHELL COMMAND': run a command as root inside a Soft-RoCE (rdma_rxe) VM.

import path from 'node:path';
import { CACHE_DIR, KERNELS, LabSetupError, REPO_DIR } from './kernel.mjs';
import { BOOT_TIMEOUT_S, DEFAULT_TIMEOUT_S, GUEST_CPUS, GUEST_MEMORY_MIB, MAX_NUMA_NODES, runInLab } from './vm.mjs';

const HELP = `Usage: npm run lab -- [options] [--] 'SHELL COMMAND'
       node lab/lab.mjs [options] [--] 'SHELL COMMAND'

Boots a Debian kernel with Soft-RoCE (rdma_rxe) under QEMU and runs SHELL COMMAND in it as root,
with /bin/sh -c, in this checkout's directory. The guest mounts the host's root filesystem
read-only over 9p and chroots into it, so it uses the host's node, node_modules, libibverbs and
iproute2. Before the command runs, lo and eth0 (10.0.2.15/24) are up and rxe0 exists
(rdma link add rxe0 type rxe netdev eth0). Only /tmp, /run, /dev/shm are writable (tmpfs),
and the checkout with --writable (changes vanish with the VM).
The command's stdout and stderr both arrive on stdout (a pipe, not a terminal); stdin is /dev/null;
lab messages go to stderr.
The exit status is the command's.

Options:
  --kernel NAME         which kernel to boot (default: $RDMACTL_LAB_KERNEL or stable), oldest to newest:
${Object.entries(KERNELS).map(([name, k]) => `                          ${name.padEnd(9)} ${k.describe}`).join('\n')}
  --timeout SECONDS     kill the VM after this long (default ${DEFAULT_TIMEOUT_S}); exit status 124
  --numa N              boot the guest with N NUMA nodes (1-${MAX_NUMA_NODES}; default $RDMACTL_LAB_NUMA or 1):
                        its ${GUEST_MEMORY_MIB} MiB split evenly, its ${GUEST_CPUS} CPUs dealt round-robin
                        (e.g. --numa 2 for rdmactl scenario migrate)
  --env NAME=VALUE      set a variable in the guest command's environment (repeatable)
  --refresh             resolve and download the kernel again (e.g. a newer sid kernel)
  -w, --writable        overlay the checkout with a tmpfs layer: writes to it (dist/, node_modules/.vite,
                        a default vitest run) succeed in the guest and vanish with the VM
  -v, --verbose         show the guest kernel console on stderr
  -q, --quiet           no lab messages on stderr (errors still shown)
  -h, --help            this text

Guest environment: PATH=${'/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'}, HOME=/tmp,
TMPDIR=/tmp, RDMACTL_LAB=1, RDMACTL_LAB_KERNEL_NAME (${Object.keys(KERNELS).join('|')}), RDMACTL_LAB_KERNEL_RELEASE
(uname -r), RDMACTL_LAB_ACCEL, RDMACTL_LAB_NUMA (nodes booted); host variables named RDMACTL_* are passed through as well.

Cache: ${path.relative(REPO_DIR, CACHE_DIR)}/ (git-ignored). The first run of each kernel resolves it
with apt-get against a private sources list (mirror taken from the host's /etc/apt sources), downloads
it with apt-get download and unpacks it with dpkg -x; nothing is installed on the host. The resolved
version is kept in ${path.relative(REPO_DIR, CACHE_DIR)}/kernels/NAME/kernel.json, so later runs do not
touch apt. The initramfs (busybox-static + kernel modules) is built there too. Clear everything with
  rm -rf ${path.relative(REPO_DIR, CACHE_DIR)}
or one kernel with rm -rf ${path.relative(REPO_DIR, CACHE_DIR)}/kernels/new (or use --refresh).

Environment variables:
  RDMACTL_LAB_KERNEL=NAME           default kernel (${Object.keys(KERNELS).join(', ')})
  RDMACTL_LAB_NUMA=N                default number of NUMA nodes (see --numa)
  RDMACTL_LAB_ACCEL=kvm|tcg         force the accelerator; by default KVM is used only if a one-time
                                    probe (cached in ${path.relative(REPO_DIR, CACHE_DIR)}/kvm-probe.json) booted the lab with it
  RDMACTL_LAB_CACHE=DIR             cache directory (default: ${path.relative(REPO_DIR, CACHE_DIR) || '.'})
  RDMACTL_LAB_MIRROR=URL            Debian archive mirror (default: from /etc/apt sources)
  RDMACTL_LAB_SECURITY_MIRROR=URL   Debian security mirror (default: from /etc/apt sources)
  RDMACTL_LAB_WRITABLE=1            same as --writable
  RDMACTL_LAB_BOOT_TIMEOUT=SECONDS   restart the VM (once) if the command has not started by then
                                    (default ${BOOT_TIMEOUT_S}; guards against a rare early-boot hang under TCG)
  RDMACTL_LAB_APPEND='ARGS'         extra guest kernel arguments (e.g. 'loglevel=7', with --verbose)
  RDMACTL_LAB_PVH=0                 boot the compressed bzImage, not the vmlinux extracted from it

Exit status: the command's; 3 when a host tool or the kernel cannot be had; 124 on timeout;
125 when the VM failed before reporting the command's status; 130/143 when interrupted;
141 when stdout was closed.
Host packages: qemu-system-x86 busybox-static kmod xz-utils zstd iproute2 (and ibverbs-utils
ibverbs-providers libibverbs1 for verbs work in the guest).
`;

function parseArgs(argv) {
  const o = { kernel: process.env.RDMACTL_LAB_KERNEL || 'stable', numa: Number(process.env.RDMACTL_LAB_NUMA || 1), timeout: DEFAULT_TIMEOUT_S, env: {}, refresh: false, verbose: false, quiet: false, command: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const eq = a.indexOf('=');
      if (a.startsWith('--') && eq > 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) throw new LabSetupError(`${a} needs a value (see --help)`);
      return argv[++i];
    };
    if (a === '--') {
      o.command.push(...argv.slice(i + 1));
      break;
    } else if (a === '-h' || a === '--help') o.help = true;
    else if (a === '--kernel' || a.startsWith('--kernel=')) o.kernel = value();
    else if (a === '--timeout' || a.startsWith('--timeout=')) o.timeout = Number(value());
    else if (a === '--numa' || a.startsWith('--numa=')) o.numa = Number(value());
    else if (a === '--env' || a.startsWith('--env=')) {
      const kv = value();
      const eq = kv.indexOf('=');
      if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(kv.slice(0, eq))) throw new LabSetupError(`--env wants NAME=VALUE, got "${kv}"`);
      o.env[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (a === '--refresh') o.refresh = true;
    else if (a === '-w' || a === '--writable') o.writable = true;
    else if (a === '-v' || a === '--verbose') o.verbose = true;
    else if (a === '-q' || a === '--quiet') o.quiet = true;
    else if (a.startsWith('-') && o.command.length === 0) throw new LabSetupError(`unknown option ${a} (see --help)`);
    else o.command.push(a);
  }
  if (!KERNELS[o.kernel]) throw new LabSetupError(`unknown kernel "${o.kernel}"; use stable or new`);
  if (!(o.timeout > 0)) throw new LabSetupError('--timeout wants a positive number of seconds');
  if (!Number.isInteger(o.numa) || o.numa < 1 || o.numa > MAX_NUMA_NODES) throw new LabSetupError(`--numa wants a whole number of nodes from 1 to ${MAX_NUMA_NODES}`);
  return o;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`lab: ${err.message}\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (opts.command.length === 0) {
    process.stderr.write("lab: no command given; try: npm run lab -- 'ibv_devices'  (see --help)\n");
    return 2;
  }
  const log = opts.quiet ? () => {} : (msg) => process.stderr.write(`lab: ${msg}\n`);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('RDMACTL_') && !k.startsWith('RDMACTL_LAB')));
  Object.assign(env, opts.env);

  // A closed stdout (e.g. `| head`) stops the VM instead of crashing and orphaning QEMU.
  const stdoutGone = new AbortController();
  process.stdout.on('error', () => stdoutGone.abort());
  const r = await runInLab({
    abortSignal: stdoutGone.signal,
    kernelName: opts.kernel,
    command: opts.command.join(' '),
    timeoutS: opts.timeout,
    env,
    log,
    verbose: opts.verbose,
    refresh: opts.refresh,
    writable: opts.writable || process.env.RDMACTL_LAB_WRITABLE === '1',
    numaNodes: opts.numa,
  });
  const what = `${opts.kernel} kernel ${r.kernel.release}, ${r.accel}${opts.numa > 1 ? `, ${opts.numa} NUMA nodes` : ''}`;
  if (r.signal === 'SIGPIPE') return 141;
  if (r.signal) {
    process.stderr.write(`lab: interrupted (${r.signal}); VM stopped\n`);
    return r.signal === 'SIGINT' ? 130 : 143;
  }
  if (r.bootHung) {
    process.stderr.write(`lab: the VM hung while booting (${what}): it did not reach the command within ${BOOT_TIMEOUT_S} s, ${r.attempts} times\n`);
    if (r.consoleTail) process.stderr.write(`lab: guest console (tail):\n${r.consoleTail}\n`);
    return 125;
  }
  if (r.timedOut) {
    process.stderr.write(`lab: timed out after ${opts.timeout} s (${what}); VM killed\n`);
    if (r.bootMs === null && r.consoleTail) process.stderr.write(`lab: guest console (tail):\n${r.consoleTail}\n`);
    return 124;
  }
  if (r.status === null) {
    process.stderr.write(`lab: the VM stopped before the command finished (${what})\n`);
    if (r.spawnError) process.stderr.write(`lab: ${r.spawnError.message}\n`);
    if (r.qemuStderr) process.stderr.write(`lab: qemu: ${r.qemuStderr}\n`);
    if (r.consoleTail) process.stderr.write(`lab: guest console (tail):\n${r.consoleTail}\n`);
    return 125;
  }
  log(`${what}: booted in ${(r.bootMs / 1000).toFixed(1)} s, total ${(r.totalMs / 1000).toFixed(1)} s, exit status ${r.status}`);
  return r.status;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    if (err instanceof LabSetupError) {
      process.stderr.write(`lab: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else if (err?.signal) {
      process.exitCode = err.signal === 'SIGINT' ? 130 : 143;
    } else {
      process.stderr.write(`lab: ${err?.stack || err}\n`);
      process.exitCode = 1;
    }
  },
);
