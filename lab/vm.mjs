// Boots the lab VM under QEMU and runs one shell command in it.
//
// The guest shares the host's root filesystem read-only over 9p and chroots into it, so it runs
// this checkout with the host's node, libibverbs and iproute2. Two serial ports: ttyS0 carries the
// kernel console (kept out of the way), ttyS1 carries the command's stdout+stderr, followed by a
// marker with its exit status.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CACHE_DIR, LAB_DISK_DIR, REPO_DIR, LabSetupError, bootImage, ensureInitramfs, ensureKernel, requireTool } from './kernel.mjs';

export const DEFAULT_TIMEOUT_S = 600;
/** The guest must reach the command within this long (a busy host has needed ~40 s). */
export const BOOT_TIMEOUT_S = Number(process.env.RDMACTL_LAB_BOOT_TIMEOUT) || 90;
export const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** Checks the host tools the lab needs; throws LabSetupError naming the apt package. */
export function checkHostTools() {
  const qemu = requireTool('qemu-system-x86_64', 'qemu-system-x86');
  requireTool('rdma', 'iproute2');
  requireTool('ip', 'iproute2');
  const mkfs = requireTool('mkfs.ext4', 'e2fsprogs');
  return { qemu, mkfs };
}

function kvmOpenable() {
  try {
    fs.closeSync(fs.openSync('/dev/kvm', fs.constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
}

// The guest mounts tmpfs over these host directories, hiding a checkout that lives below them
// (e.g. a CI clone in /tmp): such a checkout gets a 9p share of its own, mounted back in place.
const GUEST_TMPFS_DIRS = ['/tmp', '/run', '/dev/shm'];

/** The checkout directory when the guest's tmpfs mounts would hide it, else null. */
export function hiddenCheckout(cwd) {
  return GUEST_TMPFS_DIRS.some((dir) => cwd === dir || cwd.startsWith(`${dir}/`)) ? cwd : null;
}

/** Guest memory in MiB; with --numa N it is split evenly between the N nodes. */
export const GUEST_MEMORY_MIB = 2048;
export const GUEST_CPUS = 2;
/** Most NUMA nodes the lab boots with (each needs a useful share of the guest's memory). */
export const MAX_NUMA_NODES = 8;

/**
 * QEMU arguments for `nodes` NUMA nodes: one RAM backend per node (the guest's memory split evenly)
 * and the CPUs dealt round-robin (with more nodes than CPUs, the last nodes have memory only).
 * One node: no arguments (QEMU's default machine has no NUMA topology).
 */
export function numaArgs(nodes, memoryMiB = GUEST_MEMORY_MIB, cpus = GUEST_CPUS) {
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NUMA_NODES) throw new LabSetupError(`--numa wants a whole number of nodes from 1 to ${MAX_NUMA_NODES}, not "${nodes}"`);
  if (nodes === 1) return [];
  if (memoryMiB % nodes !== 0) throw new LabSetupError(`${memoryMiB} MiB of guest memory does not split evenly into ${nodes} NUMA nodes`);
  const args = [];
  for (let node = 0; node < nodes; node++) {
    const mine = [];
    for (let cpu = node; cpu < cpus; cpu += nodes) mine.push(cpu);
    args.push('-object', `memory-backend-ram,id=lab-mem${node},size=${memoryMiB / nodes}M`);
    args.push('-numa', [`node,nodeid=${node}`, `memdev=lab-mem${node}`, ...mine.map((cpu) => `cpus=${cpu}`)].join(','));
  }
  return args;
}

/** Size of the guest's scratch disk (a sparse file: it costs only what the guest writes). */
export const DISK_MIB = 256;

/**
 * A fresh scratch disk for one boot: a sparse raw image in the cache, formatted ext4 on the host, so
 * no run sees another's files. The inode tables and journal are written here (no lazy init), so the
 * guest spends no emulated CPU finishing the format. The caller removes the file after the boot.
 */
export function makeScratchDisk(mkfs, nonce) {
  const dir = path.join(CACHE_DIR, 'disks');
  fs.mkdirSync(dir, { recursive: true });
  const image = path.join(dir, `disk-${nonce}.img`);
  const fd = fs.openSync(image, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.ftruncateSync(fd, DISK_MIB << 20);
  } finally {
    fs.closeSync(fd);
  }
  const r = spawnSync(mkfs, ['-q', '-F', '-L', 'rdmactl-lab', '-E', 'lazy_itable_init=0,lazy_journal_init=0,nodiscard', image], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    fs.rmSync(image, { force: true });
    throw new LabSetupError(`mkfs.ext4 could not format the lab's scratch disk ${image}: ${(r.stderr || String(r.error ?? r.status)).trim()}`);
  }
  return image;
}

function qemuArgs({ kernel, initrd, accel, jobPath, consolePath, verbose = false, memory = GUEST_MEMORY_MIB, smp = GUEST_CPUS, numaNodes = 1, checkoutShare = null, disk = null }) {
  const append = [
    'console=ttyS0', 'loglevel=3', 'edd=off', 'panic=-1', 'oops=panic', 'mitigations=off', 'nokaslr',
    'random.trust_cpu=on', 'cryptomgr.notests', 'clocksource=hpet', 'no_timer_check', 'audit=0', 'nowatchdog',
    '8250.nr_uarts=2', 'i8042.noaux', 'i8042.nokbd', 'i8042.nopnp', 'pci=lastbus=0',
    ...(process.env.RDMACTL_LAB_APPEND ? [process.env.RDMACTL_LAB_APPEND] : []),
    `rdmactl.job=${jobPath}`,
  ].join(' ');
  const args = [
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
    '-machine', 'pc', '-m', `${memory}M`, '-smp', String(smp), ...numaArgs(numaNodes, memory, smp),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', bootImage(kernel), '-initrd', initrd, '-append', append,
    '-chardev', `file,id=con,path=${consolePath}${verbose ? ',append=on' : ''}`, '-serial', 'chardev:con',
    '-chardev', 'stdio,id=out,signal=off', '-serial', 'chardev:out',
    '-virtfs', 'local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap',
    ...(checkoutShare ? ['-virtfs', `local,path=${checkoutShare},mount_tag=checkout,security_model=passthrough,readonly=on,multidevs=remap`] : []),
    '-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0,romfile=',
    // cache=unsafe: the image is thrown away after the boot, so flushes need not reach the host's disk.
    ...(disk ? ['-drive', `file=${disk},if=virtio,format=raw,cache=unsafe`] : []),
  ];
  if (fs.existsSync('/usr/share/qemu/qboot.rom')) args.push('-bios', 'qboot.rom');
  return args;
}

function jobScript({ command, kernel, kernelName, accel, env, cwd, nonce, writable, numaNodes = 1 }) {
  const exports = {
    PATH: GUEST_PATH,
    HOME: '/tmp',
    TMPDIR: '/tmp',
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    NPM_CONFIG_UPDATE_NOTIFIER: 'false',
    ...env,
    RDMACTL_LAB: '1',
    RDMACTL_LAB_KERNEL_NAME: kernelName,
    RDMACTL_LAB_KERNEL_PACKAGE: kernel.packageVersion,
    RDMACTL_LAB_ACCEL: accel,
    RDMACTL_LAB_NUMA: String(numaNodes),
  };
  for (const k of Object.keys(exports)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new LabSetupError(`not a valid environment variable name: "${k}"`);
  }
  return [
    '# Generated by lab/vm.mjs; runs as root inside the lab VM, chrooted into the host root.',
    ...Object.entries(exports).map(([k, v]) => `export ${k}=${shq(v)}`),
    'read -r RDMACTL_LAB_KERNEL_RELEASE < /proc/sys/kernel/osrelease; export RDMACTL_LAB_KERNEL_RELEASE',
    'umask 022',
    '# lo and eth0 (10.0.2.15/24) were brought up by the initramfs.',
    'rdma link add rxe0 type rxe netdev eth0 >/tmp/lab-setup.log 2>&1 ||',
    '  { echo "lab: warning: rdma link add rxe0 failed:"; cat /tmp/lab-setup.log; } >&2',
    ...(hiddenCheckout(cwd)
      ? [
          `# The checkout lives under a directory the guest covers with tmpfs: mount its own share there.`,
          `mkdir -p ${shq(cwd)} && mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose checkout ${shq(cwd)} ||`,
          `  { echo "lab: cannot mount the checkout at ${cwd}" >&2; printf '@@lab-exit-${nonce}:125@@'; exit 125; }`,
        ]
      : []),
    ...(writable
      ? [
          '# --writable: writes to the checkout land in a tmpfs upper layer and vanish with the VM.',
          'mkdir -p /tmp/.lab-overlay/upper /tmp/.lab-overlay/work &&',
          `  mount -t overlay overlay -o lowerdir=${shq(cwd)},upperdir=/tmp/.lab-overlay/upper,workdir=/tmp/.lab-overlay/work ${shq(cwd)} ||`,
          `  { echo "lab: cannot overlay ${cwd} (--writable)" >&2; printf '@@lab-exit-${nonce}:125@@'; exit 125; }`,
        ]
      : []),
    '# The scratch disk (ext4 on /dev/vda) that /init mounted, if it could.',
    `if grep -q ' ${LAB_DISK_DIR} ext4 ' /proc/self/mounts; then export RDMACTL_LAB_DISK=${shq(LAB_DISK_DIR)}; fi`,
    `cd ${shq(cwd)} || { printf '@@lab-exit-${nonce}:125@@'; exit 125; }`,
    `printf '@@lab-ready-${nonce}@@'`,
    `/bin/sh -c ${shq(command)}`,
    `printf '@@lab-exit-${nonce}:%s@@' "$?"`,
    '',
  ].join('\n');
}

/**
 * Low-level: boot the prepared kernel with `accel` and run `command`.
 * Resolves { status, timedOut, signal, bootMs, totalMs, consoleTail, qemuStderr }.
 */
function boot({ qemu, mkfs, kernel, kernelName, initrd, accel, command, timeoutS, bootTimeoutS = Infinity, env, cwd, onOutput, verbose, abortSignal, writable = false, numaNodes = 1 }) {
  const jobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rdmactl-lab-'));
  const jobPath = path.join(jobDir, 'job.sh');
  const consolePath = verbose ? '/dev/stderr' : path.join(jobDir, 'console.log');
  const nonce = randomBytes(8).toString('hex');
  fs.writeFileSync(jobPath, jobScript({ command, kernel, kernelName, accel, env, cwd, nonce, writable, numaNodes }));
  let disk;
  try {
    disk = makeScratchDisk(mkfs, nonce);
  } catch (err) {
    fs.rmSync(jobDir, { recursive: true, force: true });
    throw err;
  }

  const readyMark = `@@lab-ready-${nonce}@@`;
  const exitRe = new RegExp(`@@lab-exit-${nonce}:(\\d+)@@`);
  const exitPrefix = `@@lab-exit-${nonce}:`;
  const holdBack = exitPrefix.length + 8;

  const started = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - started) / 1e6;
  const child = spawn(qemu, qemuArgs({ kernel, initrd, accel, jobPath, consolePath, verbose, numaNodes, checkoutShare: hiddenCheckout(cwd), disk }), {
    stdio: ['ignore', 'pipe', verbose ? 'inherit' : 'pipe'],
  });

  return new Promise((resolve) => {
    let pending = '';
    let bootMs = null;
    let status = null;
    let timedOut = false;
    let signal = null;
    let qemuStderr = '';
    let done = false;

    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const onSignal = (sig) => {
      signal = sig;
      kill();
    };
    const onSigint = () => onSignal('SIGINT');
    const onSigterm = () => onSignal('SIGTERM');
    const onSighup = () => onSignal('SIGHUP');
    const onAbort = () => onSignal('SIGPIPE');
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
    process.on('SIGHUP', onSighup);
    process.on('exit', kill); // last resort (e.g. an uncaught exception): do not leave QEMU running
    abortSignal?.addEventListener('abort', onAbort);
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutS * 1000);
    let bootHung = false;
    const bootTimer = Number.isFinite(bootTimeoutS) && bootTimeoutS < timeoutS
      ? setTimeout(() => {
          if (bootMs !== null) return;
          bootHung = true;
          kill();
        }, bootTimeoutS * 1000)
      : null;

    child.stdout.setEncoding('latin1'); // byte-transparent: re-encoded as latin1 on the way out
    child.stdout.on('data', (chunk) => {
      if (status !== null) return;
      pending += chunk;
      for (;;) {
        const r = pending.indexOf(readyMark);
        if (r >= 0) {
          if (r > 0) onOutput(Buffer.from(pending.slice(0, r), 'latin1'));
          pending = pending.slice(r + readyMark.length);
          bootMs = ms();
          if (bootTimer) clearTimeout(bootTimer);
          continue;
        }
        const m = exitRe.exec(pending);
        if (m) {
          if (m.index > 0) onOutput(Buffer.from(pending.slice(0, m.index), 'latin1'));
          pending = '';
          status = Number(m[1]);
          kill(); // nothing left to save in the guest: all its writes went to tmpfs
          return;
        }
        break;
      }
      // Hold back a tail that might be the start of a marker split across chunks.
      let cut = pending.length;
      for (let i = Math.max(0, pending.length - holdBack); i < pending.length; i++) {
        if (pending[i] !== '@') continue;
        const tail = pending.slice(i);
        if (readyMark.startsWith(tail) || exitPrefix.startsWith(tail) ||
            (tail.startsWith(exitPrefix) && /^\d*@?$/.test(tail.slice(exitPrefix.length)))) {
          cut = i;
          break;
        }
      }
      if (cut > 0) {
        onOutput(Buffer.from(pending.slice(0, cut), 'latin1'));
        pending = pending.slice(cut);
      }
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d) => {
      if (qemuStderr.length < 64 * 1024) qemuStderr += d;
    });

    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (bootTimer) clearTimeout(bootTimer);
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
      process.off('SIGHUP', onSighup);
      process.off('exit', kill);
      abortSignal?.removeEventListener('abort', onAbort);
      if (pending && status === null) onOutput(Buffer.from(pending, 'latin1'));
      let consoleTail = '';
      if (!verbose) {
        try {
          consoleTail = fs.readFileSync(consolePath, 'utf8').replace(/\r/g, '').trimEnd().split('\n').slice(-25).join('\n');
        } catch {}
      }
      fs.rmSync(jobDir, { recursive: true, force: true });
      fs.rmSync(disk, { force: true });
      resolve({ status, timedOut, bootHung, signal, bootMs, totalMs: ms(), consoleTail, qemuStderr: qemuStderr.trim(), spawnError: err });
    };
    child.on('error', (err) => finish(err));
    child.on('close', () => finish());
  });
}

/** Picks the accelerator: RDMACTL_LAB_ACCEL, else KVM if a cached probe says it boots the lab, else TCG. */
async function chooseAccel({ qemu, mkfs, kernel, kernelName, initrd, log }) {
  const forced = process.env.RDMACTL_LAB_ACCEL;
  if (forced) {
    if (forced !== 'kvm' && forced !== 'tcg') throw new LabSetupError(`RDMACTL_LAB_ACCEL must be kvm or tcg, not "${forced}"`);
    return forced;
  }
  if (!kvmOpenable()) return 'tcg';
  const probeFile = path.join(CACHE_DIR, 'kvm-probe.json');
  const qst = fs.statSync(qemu);
  const key = `${os.release()} ${qemu}:${qst.size}:${qst.mtimeMs}`;
  try {
    const cached = JSON.parse(fs.readFileSync(probeFile, 'utf8'));
    if (cached.key === key) return cached.kvm ? 'kvm' : 'tcg';
  } catch {}
  log('probing whether KVM can boot the lab VM (once; the result is cached)…');
  const r = await boot({ qemu, mkfs, kernel, kernelName, initrd, accel: 'kvm', command: 'true', timeoutS: 8, env: {}, cwd: '/', onOutput: () => {}, verbose: false });
  const kvm = r.status === 0;
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const why = kvm ? undefined : r.timedOut ? 'no boot within 8 s' : (r.qemuStderr.split('\n')[0] || `exit status ${r.status}`);
  fs.writeFileSync(probeFile, JSON.stringify({ key, kvm, why, probedAt: new Date().toISOString(), bootMs: r.bootMs }, null, 2) + '\n');
  log(kvm ? `KVM works (booted in ${(r.bootMs / 1000).toFixed(1)} s)` : `KVM is not usable here (${why}); using TCG`);
  if (r.signal) throw Object.assign(new Error('interrupted'), { signal: r.signal });
  return kvm ? 'kvm' : 'tcg';
}

/**
 * Prepares the kernel (downloading it into lab/cache/ on first use), boots it, runs `command`
 * as root in the checkout's directory and streams its output through `onOutput`.
 */
export async function runInLab({
  kernelName = 'stable',
  command,
  timeoutS = DEFAULT_TIMEOUT_S,
  env = {},
  cwd = REPO_DIR,
  onOutput = (buf) => process.stdout.write(buf),
  log = (msg) => process.stderr.write(`lab: ${msg}\n`),
  verbose = false,
  refresh = false,
  abortSignal,
  writable = false,
  numaNodes = 1,
}) {
  numaArgs(numaNodes); // refuse a bad node count before anything is downloaded or booted
  const { qemu, mkfs } = checkHostTools();
  const kernel = ensureKernel(kernelName, { refresh });
  const initrd = ensureInitramfs(kernel);
  const accel = await chooseAccel({ qemu, mkfs, kernel, kernelName, initrd, log });
  // Rarely, a TCG guest hangs early in boot with nothing on the console, or panics in boot-time code
  // patching (seen once with sid 7.2: "Oops: int3" in sched_clock_cpu under multi-threaded TCG); a
  // fresh VM then boots fine. So a guest that hangs for BOOT_TIMEOUT_S, or dies, before it reaches
  // the command is restarted (once), and the log says so.
  const deadline = Date.now() + timeoutS * 1000;
  for (let attempt = 1; ; attempt++) {
    const left = (deadline - Date.now()) / 1000;
    const r = await boot({ qemu, mkfs, kernel, kernelName, initrd, accel, command, timeoutS: left, bootTimeoutS: BOOT_TIMEOUT_S, env, cwd, onOutput, verbose, abortSignal, writable, numaNodes });
    const diedBooting = r.bootMs === null && r.status === null && !r.timedOut && !r.bootHung && !r.spawnError;
    if ((r.bootHung || diedBooting) && attempt < 2 && !r.signal && left > BOOT_TIMEOUT_S + 30) {
      const what = r.bootHung ? `did not reach the command within ${BOOT_TIMEOUT_S} s` : 'died before reaching the command';
      log(`the VM ${what}; restarting it${r.consoleTail ? ` (console tail: ${r.consoleTail.split('\n').slice(-3).join(' | ')})` : ''}`);
      continue;
    }
    return { ...r, kernel, accel, attempts: attempt };
  }
}
