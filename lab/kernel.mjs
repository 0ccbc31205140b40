// Fetches a Debian kernel into the lab cache (never installs it on the host) and builds the
// initramfs that boots it. Everything lands under lab/cache/ and is reused on later runs.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { newcArchive } from './cpio.mjs';

export const LAB_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = path.dirname(LAB_DIR);
export const CACHE_DIR = process.env.RDMACTL_LAB_CACHE ? path.resolve(process.env.RDMACTL_LAB_CACHE) : path.join(LAB_DIR, 'cache');

/** A problem the user fixes by installing something or restoring network access (exit 3). */
export class LabSetupError extends Error {
  constructor(message) {
    super(message);
    this.name = 'LabSetupError';
    this.exitCode = 3;
  }
}

const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** What each kernel name means: suites of the Debian archive to resolve linux-image-amd64 in. */
// Ordered oldest to newest: help texts and test:lab list them in this order.
export const KERNELS = {
  bullseye: {
    describe: "Debian bullseye's kernel (linux-image-5.10.0-*-amd64), with its security updates",
    suites: (m) => [
      { uri: m.main, suite: 'bullseye' },
      { uri: m.main, suite: 'bullseye-updates' },
      ...(m.security ? [{ uri: m.security, suite: 'bullseye-security' }] : []),
    ],
  },
  stable: {
    describe: "Debian bookworm's kernel (linux-image-6.1.0-*-amd64)",
    suites: (m) => [
      { uri: m.main, suite: 'bookworm' },
      { uri: m.main, suite: 'bookworm-updates' },
      ...(m.security ? [{ uri: m.security, suite: 'bookworm-security' }] : []),
    ],
  },
  trixie: {
    describe: "Debian trixie's kernel (linux-image-6.12.*-amd64)",
    suites: (m) => [
      { uri: m.main, suite: 'trixie' },
      { uri: m.main, suite: 'trixie-updates' },
      ...(m.security ? [{ uri: m.security, suite: 'trixie-security' }] : []),
    ],
  },
  new: {
    describe: "the newest linux-image-amd64 in Debian sid (resolved once, then cached)",
    suites: (m) => [{ uri: m.main, suite: 'sid' }],
  },
};

// Modules the guest needs, in load order; dependencies are resolved with modprobe --show-depends.
// Optional ones are built into some kernels (virtio_pci in 7.x) or unneeded there (crc32_generic).
// On 5.10 (bullseye) both are modules and the list resolves unchanged (9p adds fscache there).
const MODULES = [
  { name: 'virtio_pci', optional: true },
  { name: '9pnet_virtio' },
  { name: '9p' },
  { name: 'virtio_net' },
  // Without crc32_generic, 6.1's rdma_rxe cannot init its crc32 and `rdma link add` fails.
  { name: 'crc32_generic', optional: true },
  { name: 'ib_uverbs' },
  // For --writable: an overlay (upper layer on tmpfs) over the read-only checkout.
  { name: 'overlay', optional: true },
  { name: 'rdma_rxe' },
  // /dev/infiniband/rdma_cm for librdmacm programs (rping, ib_write_bw -R); pulls in rdma_cm,
  // iw_cm, ib_cm and configfs through its dependencies.
  { name: 'rdma_ucm' },
  // The scratch disk (vm.mjs): a virtio block device with ext4 on it, so file-backed pages live in a
  // real disk file system's page cache (tmpfs/shmem pins behave differently). ext4's dependencies
  // (jbd2, mbcache, crc16, a crc32c) come with it; optional where built in.
  { name: 'virtio_blk', optional: true },
  { name: 'ext4', optional: true },
];

// ---------------------------------------------------------------------------------------------
// Host tools

function findExecutable(name, dirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
  const extra = (process.env.PATH || '').split(':').filter(Boolean);
  for (const dir of [...extra, ...dirs]) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {}
  }
  return null;
}

export function requireTool(name, aptPackage) {
  const p = findExecutable(name);
  if (!p) throw new LabSetupError(`${name} not found; install it with: apt-get install ${aptPackage}`);
  return p;
}

/** True when the ELF file has no program interpreter (i.e. is statically linked). */
function isStaticElf(file) {
  try {
    const buf = fs.readFileSync(file);
    if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2) return false;
    const phoff = Number(buf.readBigUInt64LE(0x20));
    const phentsize = buf.readUInt16LE(0x36);
    const phnum = buf.readUInt16LE(0x38);
    for (let i = 0; i < phnum; i++) if (buf.readUInt32LE(phoff + i * phentsize) === 3) return false; // PT_INTERP
    return true;
  } catch {
    return false;
  }
}

export function findStaticBusybox() {
  for (const p of ['/usr/bin/busybox', '/bin/busybox', '/usr/sbin/busybox', findExecutable('busybox')]) {
    if (p && isStaticElf(p)) return p;
  }
  throw new LabSetupError('a statically linked busybox was not found; install it with: apt-get install busybox-static');
}

// ---------------------------------------------------------------------------------------------
// Debian mirror, derived from the host's own apt sources

function readAptSources() {
  const entries = [];
  const files = [];
  if (fs.existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
  try {
    for (const f of fs.readdirSync('/etc/apt/sources.list.d').sort()) {
      if (f.endsWith('.list') || f.endsWith('.sources')) files.push(path.join('/etc/apt/sources.list.d', f));
    }
  } catch {}
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    if (file.endsWith('.sources')) {
      for (const para of text.split(/\n\s*\n/)) {
        const fields = {};
        let last = null;
        for (const line of para.split('\n')) {
          if (/^\s*#/.test(line) || !line.trim()) continue;
          const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
          if (m) fields[(last = m[1].toLowerCase())] = m[2].trim();
          else if (last && /^\s/.test(line)) fields[last] += ' ' + line.trim();
        }
        if (!fields.uris || (fields.enabled || 'yes').toLowerCase() === 'no') continue;
        if (fields.types && !fields.types.split(/\s+/).includes('deb')) continue;
        const signedBy = fields['signed-by'] && !fields['signed-by'].includes('BEGIN PGP') ? fields['signed-by'] : undefined;
        for (const uri of fields.uris.split(/\s+/)) entries.push({ uri, signedBy });
      }
    } else {
      for (const raw of text.split('\n')) {
        const line = raw.replace(/#.*/, '').trim();
        const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+\S+/.exec(line);
        if (!m) continue;
        const sb = /signed-by=(\S+)/.exec(m[1] || '');
        entries.push({ uri: m[2], signedBy: sb ? sb[1] : undefined });
      }
    }
  }
  return entries;
}

/** The host's Debian archive and security mirrors, or RDMACTL_LAB_MIRROR / RDMACTL_LAB_SECURITY_MIRROR. */
export function debianMirrors() {
  const sources = readAptSources();
  const pick = (re) => sources.find((s) => re.test(s.uri.replace(/\/+$/, '')));
  const main = process.env.RDMACTL_LAB_MIRROR || pick(/\/debian(\/\d{8}T\d{6}Z)?$/)?.uri;
  const security = process.env.RDMACTL_LAB_SECURITY_MIRROR || pick(/\/debian-security(\/\d{8}T\d{6}Z)?$/)?.uri;
  if (!main) {
    throw new LabSetupError(
      'no Debian archive mirror found in /etc/apt/sources.list{,.d}; set RDMACTL_LAB_MIRROR to one (an http URL ending in /debian)',
    );
  }
  const keyring = sources.find((s) => s.signedBy && fs.existsSync(s.signedBy) && /debian-archive/.test(s.signedBy))?.signedBy
    ?? (fs.existsSync(DEBIAN_KEYRING) ? DEBIAN_KEYRING : undefined);
  return { main: main.replace(/\/+$/, ''), security: security?.replace(/\/+$/, ''), keyring };
}

// ---------------------------------------------------------------------------------------------
// Resolving and fetching a kernel

function aptOptions(aptDir, sourcesFile) {
  return [
    '-o', `Dir::Etc::SourceList=${sourcesFile}`,
    '-o', 'Dir::Etc::SourceParts=/dev/null',
    '-o', `Dir::State::Lists=${path.join(aptDir, 'lists')}`,
    '-o', `Dir::Cache=${path.join(aptDir, 'cache')}`,
    '-o', 'Dir::State::status=/dev/null',
    '-o', 'APT::Architecture=amd64',
    '-o', 'APT::Architectures=amd64',
    '-o', 'APT::Sandbox::User=root',
    '-o', 'Debug::NoLocking=1',
  ];
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (r.error) throw r.error;
  return r;
}

function log(msg) {
  process.stderr.write(`lab: ${msg}\n`);
}

function readCachedKernel(dir) {
  try {
    const info = JSON.parse(fs.readFileSync(path.join(dir, 'kernel.json'), 'utf8'));
    if (fs.existsSync(path.join(dir, info.vmlinuz))) return { ...info, dir };
  } catch {}
  return null;
}

/** Runs fn holding a lock directory, so parallel lab runs do not download the same kernel twice. */
function withLock(lockDir, fn) {
  fs.mkdirSync(path.dirname(lockDir), { recursive: true });
  const deadline = Date.now() + 15 * 60_000;
  for (let said = false; ; ) {
    try {
      fs.mkdirSync(lockDir);
      fs.writeFileSync(path.join(lockDir, 'pid'), `${process.pid}\n`);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      let age = 0;
      let holderAlive = true;
      try {
        age = Date.now() - fs.statSync(lockDir).mtimeMs;
        process.kill(Number(fs.readFileSync(path.join(lockDir, 'pid'), 'utf8')), 0);
      } catch (e) {
        if (e.code === 'ESRCH') holderAlive = false;
      }
      if (!holderAlive || age > 15 * 60_000) {
        fs.rmSync(lockDir, { recursive: true, force: true }); // left by a killed run
        continue;
      }
      if (Date.now() > deadline) throw new LabSetupError(`timed out waiting for ${lockDir} (remove it if no lab run is downloading)`);
      if (!said) log(`waiting for another lab run to finish preparing the kernel (${lockDir})`);
      said = true;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lockDir, { recursive: true, force: true });
  }
}

/** Resolves, downloads and unpacks `name` into the cache unless it is there already. */
export function ensureKernel(name, { refresh = false } = {}) {
  const spec = KERNELS[name];
  if (!spec) throw new LabSetupError(`unknown kernel "${name}" (use one of: ${Object.keys(KERNELS).join(', ')})`);
  const dir = path.join(CACHE_DIR, 'kernels', name);
  const cached = !refresh && readCachedKernel(dir);
  if (cached) return cached;
  const before = Date.now();
  return withLock(path.join(CACHE_DIR, 'kernels', `.${name}.lock`), () => {
    // Someone else may have fetched it while we waited.
    const fresh = readCachedKernel(dir);
    if (fresh && (!refresh || Date.parse(fresh.resolvedAt) >= before)) return fresh;
    return downloadKernel(name, spec, dir);
  });
}

function downloadKernel(name, spec, dir) {

  requireTool('apt-get', 'apt');
  requireTool('dpkg', 'dpkg');
  const depmod = requireTool('depmod', 'kmod');
  const mirrors = debianMirrors();
  const aptDir = path.join(CACHE_DIR, 'apt', name);
  for (const d of ['lists/partial', 'cache/archives/partial']) fs.mkdirSync(path.join(aptDir, d), { recursive: true });
  const sourcesFile = path.join(aptDir, 'sources.list');
  const opt = mirrors.keyring ? ` [signed-by=${mirrors.keyring}]` : '';
  fs.writeFileSync(sourcesFile, spec.suites(mirrors).map((s) => `deb${opt} ${s.uri} ${s.suite} main\n`).join(''));
  const apt = aptOptions(aptDir, sourcesFile);

  log(`resolving the ${name} kernel: ${spec.describe}, from ${mirrors.main}`);
  const upd = run('apt-get', ['-q', ...apt, 'update']);
  const updOut = upd.stdout + upd.stderr;
  if (upd.status !== 0 || /^(E:|W: Failed to fetch)/m.test(updOut)) {
    throw new LabSetupError(
      `cannot download the ${name} kernel: apt-get update against ${mirrors.main} failed (no network to the Debian mirror?): ` +
        (updOut.split('\n').find((l) => /^(E:|W: Failed to fetch)/.test(l)) ?? `exit status ${upd.status}`).replace(/^\w+:\s*/, ''),
    );
  }
  const policy = run('apt-cache', [...apt, 'policy', 'linux-image-amd64']).stdout;
  const candidate = /Candidate:\s*(\S+)/.exec(policy)?.[1];
  if (!candidate || candidate === '(none)') {
    throw new LabSetupError(`cannot download the ${name} kernel: linux-image-amd64 has no candidate in ${sourcesFile}`);
  }
  const show = run('apt-cache', [...apt, 'show', `linux-image-amd64=${candidate}`]).stdout;
  const release = /linux-image-(\d\S*-amd64)\b/.exec(/^Depends:.*$/m.exec(show)?.[0] ?? '')?.[1];
  if (!release) throw new LabSetupError(`cannot download the ${name} kernel: cannot read linux-image-amd64's dependencies`);

  // From 7.x the image package is a meta package over linux-binary-* (vmlinuz) and linux-modules-*.
  const deps = run('apt-cache', [...apt, 'depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts',
    '--no-breaks', '--no-replaces', '--no-enhances', `linux-image-${release}`]).stdout;
  const wanted = new Set([`linux-image-${release}`]);
  for (const line of deps.split('\n')) {
    const pkg = line.trim();
    if (new RegExp(`^linux-(binary|modules|image)-${release.replace(/[.+]/g, '\\$&')}(-unsigned)?$`).test(pkg)) wanted.add(pkg);
  }

  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const stage = fs.mkdtempSync(path.join(path.dirname(dir), `.${name}-`));
  try {
    const debDir = path.join(stage, 'debs');
    fs.mkdirSync(debDir);
    log(`downloading ${[...wanted].join(', ')} (${candidate})`);
    const dl = run('apt-get', ['-q', ...apt, 'download', ...wanted], { cwd: debDir });
    if (dl.status !== 0) {
      throw new LabSetupError(`cannot download the ${name} kernel (${[...wanted].join(' ')}): ${dl.stderr.trim().split('\n').find((l) => /^E:/.test(l)) ?? `apt-get download exited with ${dl.status}`}`);
    }
    const root = path.join(stage, 'root');
    fs.mkdirSync(root);
    for (const deb of fs.readdirSync(debDir)) execFileSync('dpkg', ['-x', path.join(debDir, deb), root]);
    fs.rmSync(debDir, { recursive: true });
    // kmod (here) looks in ROOT/lib/modules; newer packages ship usr/lib/modules only.
    if (!fs.existsSync(path.join(root, 'lib')) && fs.existsSync(path.join(root, 'usr/lib'))) fs.symlinkSync('usr/lib', path.join(root, 'lib'));
    const modDir = path.join(root, 'lib/modules', release);
    if (!fs.existsSync(modDir)) throw new LabSetupError(`the ${name} kernel package has no modules for ${release}`);
    if (!fs.existsSync(path.join(modDir, 'modules.dep'))) {
      const r = run(depmod, ['-b', root, release]);
      if (r.status !== 0) throw new LabSetupError(`depmod failed for ${release}: ${r.stderr.trim()}`);
    }
    const vmlinuz = [path.join('root/boot', `vmlinuz-${release}`), path.join('root/lib/modules', release, 'vmlinuz')]
      .find((p) => fs.existsSync(path.join(stage, p)));
    if (!vmlinuz) throw new LabSetupError(`the ${name} kernel package has no vmlinuz for ${release}`);
    const info = { name, release, packageVersion: candidate, packages: [...wanted], vmlinuz, mirror: mirrors.main, resolvedAt: new Date().toISOString() };
    fs.writeFileSync(path.join(stage, 'kernel.json'), JSON.stringify(info, null, 2) + '\n');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.chmodSync(stage, 0o755);
    fs.renameSync(stage, dir);
    log(`cached ${name} kernel ${release} (${candidate})`);
    return { ...info, dir };
  } catch (err) {
    fs.rmSync(stage, { recursive: true, force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Initramfs

/** Where the guest mounts the scratch disk (ext4 on a virtio disk; under /run, which is the guest's own tmpfs). */
export const LAB_DISK_DIR = '/run/lab-disk';

/** The guest's /init. It never exits: it powers the VM off when the job is done. */
export const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
die() { echo "lab-init: $*" > /dev/console; echo "lab-init: $*" > /dev/ttyS1; poweroff -f; }
step() { read -r up _ < /proc/uptime; echo "lab-init: [$up] $*" > /dev/console; }
step modules
while read -r m; do
  insmod "/lib/modules/$m" || echo "lab-init: insmod $m failed" > /dev/console
done < /modules.list
for x in $(cat /proc/cmdline); do
  case "$x" in rdmactl.job=*) JOB="\${x#rdmactl.job=}" ;; esac
done
step network
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
step mount 9p
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose host /host || die "cannot mount the host's root over 9p"
cp "/host$JOB" /job.sh || die "cannot read the job script $JOB"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /host/tmp
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /host/run
mount --bind /proc /host/proc
mount --bind /sys /host/sys
# tracefs where a systemd machine has it (rdmactl trace and its lab tests use it).
mount -t tracefs nodev /host/sys/kernel/tracing || echo "lab-init: warning: cannot mount tracefs" > /dev/ttyS1
mount --bind /dev /host/dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=666 devpts /host/dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /host/dev/shm
cp /job.sh /host/run/rdmactl-job.sh
step mount disk
# The scratch disk vm.mjs attaches (formatted ext4 on the host for this boot); the job exports its path.
if [ -b /dev/vda ]; then
  mkdir -p /host${LAB_DISK_DIR}
  mount -t ext4 /dev/vda /host${LAB_DISK_DIR} && chmod 1777 /host${LAB_DISK_DIR} ||
    echo "lab-init: warning: cannot mount the scratch disk /dev/vda on ${LAB_DISK_DIR}" > /dev/ttyS1
else
  echo "lab-init: warning: no scratch disk (/dev/vda): virtio_blk missing?" > /dev/ttyS1
fi
step run job
stty -F /dev/ttyS1 raw -echo
# Through a pipe, so the command's stdout is not a terminal (as under CI).
chroot /host /bin/sh /run/rdmactl-job.sh < /dev/null 2>&1 | cat > /dev/ttyS1
poweroff -f
`;

function moduleFiles(kernel) {
  const root = path.join(kernel.dir, 'root');
  const modprobe = requireTool('modprobe', 'kmod');
  const files = [];
  for (const mod of MODULES) {
    const r = run(modprobe, ['-d', root, '-S', kernel.release, '--show-depends', mod.name]);
    if (r.status !== 0) {
      if (mod.optional) continue;
      throw new LabSetupError(`kernel ${kernel.release} lacks module ${mod.name}: ${r.stderr.trim()}`);
    }
    for (const line of r.stdout.split('\n')) {
      const m = /^insmod\s+(\S+)/.exec(line);
      if (m && !files.includes(m[1])) files.push(m[1]);
    }
  }
  return files;
}

/** Builds (or reuses) the initramfs for `kernel`; the file name hashes everything that goes in. */
export function ensureInitramfs(kernel) {
  const busybox = findStaticBusybox();
  const bbStat = fs.statSync(busybox);
  const files = moduleFiles(kernel);
  const hash = createHash('sha256')
    .update(INIT_SCRIPT)
    .update(JSON.stringify(files))
    .update(`${busybox}:${bbStat.size}:${bbStat.mtimeMs}`)
    .digest('hex')
    .slice(0, 12);
  const out = path.join(kernel.dir, `initramfs-${hash}.cpio`);
  if (fs.existsSync(out)) return out;

  const entries = [
    ...['bin', 'dev', 'proc', 'sys', 'host', 'lib', 'lib/modules', 'sbin', 'usr', 'usr/bin', 'usr/sbin'].map((name) => ({ name, type: 'dir' })),
    { name: 'dev/console', type: 'chardev', major: 5, minor: 1 },
    { name: 'bin/busybox', type: 'file', mode: 0o755, data: fs.readFileSync(busybox) },
    { name: 'init', type: 'file', mode: 0o755, data: INIT_SCRIPT },
  ];
  const names = [];
  for (const f of files) {
    let data = fs.readFileSync(f);
    let base = path.basename(f);
    if (base.endsWith('.xz')) {
      data = execFileSync(requireTool('xz', 'xz-utils'), ['-dc', f], { maxBuffer: 256 << 20 });
      base = base.slice(0, -3);
    } else if (base.endsWith('.zst')) {
      data = execFileSync(requireTool('zstd', 'zstd'), ['-dc', f], { maxBuffer: 256 << 20 });
      base = base.slice(0, -4);
    } else if (base.endsWith('.gz')) {
      data = execFileSync(requireTool('gzip', 'gzip'), ['-dc', f], { maxBuffer: 256 << 20 });
      base = base.slice(0, -3);
    }
    names.push(base);
    entries.push({ name: `lib/modules/${base}`, type: 'file', data });
  }
  entries.push({ name: 'modules.list', type: 'file', data: names.join('\n') + '\n' });
  for (const old of fs.readdirSync(kernel.dir)) if (/^initramfs-.*\.cpio$/.test(old)) fs.rmSync(path.join(kernel.dir, old), { force: true });
  const tmp = `${out}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, newcArchive(entries));
  fs.renameSync(tmp, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Uncompressed kernel for PVH boot: under TCG, the bzImage's own xz/zstd decompressor costs
// ~2 s of every boot. QEMU boots an ELF vmlinux directly when it carries the PVH entry note.

/** True when `buf` is an x86-64 ELF with a Xen PHYS32_ENTRY note (what QEMU's PVH loader needs). */
function hasPvhNote(buf) {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2) return false;
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (buf.readUInt32LE(ph) !== 4) continue; // PT_NOTE
    let off = Number(buf.readBigUInt64LE(ph + 8));
    const end = off + Number(buf.readBigUInt64LE(ph + 32));
    while (off + 12 <= end) {
      const namesz = buf.readUInt32LE(off);
      const descsz = buf.readUInt32LE(off + 4);
      const type = buf.readUInt32LE(off + 8);
      const name = buf.toString('latin1', off + 12, off + 12 + namesz).replace(/\0+$/, '');
      if (name === 'Xen' && type === 18) return true;
      off += 12 + Math.ceil(namesz / 4) * 4 + Math.ceil(descsz / 4) * 4;
    }
  }
  return false;
}

const PAYLOADS = [
  { magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), tool: 'xz', pkg: 'xz-utils', args: ['-dc', '--single-stream'] },
  { magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), tool: 'zstd', pkg: 'zstd', args: ['-dc'] },
  { magic: Buffer.from([0x1f, 0x8b, 0x08]), tool: 'gzip', pkg: 'gzip', args: ['-dc'] },
];

/**
 * The image QEMU should boot: kernel.dir/vmlinux (extracted once from the bzImage) when that works,
 * else the bzImage itself. RDMACTL_LAB_PVH=0 forces the bzImage.
 */
export function bootImage(kernel) {
  const bzImage = path.join(kernel.dir, kernel.vmlinuz);
  if (process.env.RDMACTL_LAB_PVH === '0') return bzImage;
  const out = path.join(kernel.dir, 'vmlinux');
  const marker = `${out}.unusable`;
  if (fs.existsSync(out)) return out;
  if (fs.existsSync(marker)) return bzImage;
  const image = fs.readFileSync(bzImage);
  let missingTool = false;
  for (const p of PAYLOADS) {
    const at = image.indexOf(p.magic);
    if (at < 0) continue;
    const tool = findExecutable(p.tool);
    if (!tool) {
      missingTool = true; // e.g. zstd for 7.x kernels: boot the bzImage, try again next time
      continue;
    }
    // The decompressors stop at (and may complain about) the bzImage's trailing bytes: judge the output.
    const r = spawnSync(tool, p.args, { input: image.subarray(at), maxBuffer: 1 << 30 });
    if (r.stdout && hasPvhNote(r.stdout)) {
      const tmp = `${out}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, r.stdout);
      fs.renameSync(tmp, out);
      return out;
    }
  }
  if (!missingTool) fs.writeFileSync(marker, 'no PVH-bootable vmlinux could be extracted; booting the bzImage\n');
  return bzImage;
}
