// `rdmactl devices --json` against the lab's rxe0, checked with iproute2 (`rdma -j dev`, `rdma sys show`):
// ODP as ibv_devinfo reads it (absent in 5.10's and 6.1's rdma_rxe, present in 7.x); copy-on-fork as the
// kernel reports it, or unknown where its RDMA netlink has no such attribute (5.10).
// A user who cannot open the device's uverbs node sees it listed with every value it could not read
// as null (`-` in text), never 0, and the reason in error.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RXE_DEVICE, check, copyOnForkAttribute, inLab, json, labKernel, rdmaSys, run, rxeHasOdp, type CmdResult } from './helpers.js';
import { ODP_GENERAL_CAP_BITS, ODP_TRANSPORT_CAP_BITS, type CapBit } from '../../src/ffi/verbs/enums.js';
import { BIN, UNPRIVILEGED, labRuntime, parseJson, rdmactl } from './verbs-helpers.js';

/** The mask our words stand for: a named word's bit, or a hex word's value. */
function wordsMask(words: readonly string[], bits: readonly CapBit[]): bigint {
  let mask = 0n;
  for (const word of words) {
    const bit = bits.find((b) => b.name === word);
    if (bit === undefined && !/^0x[0-9a-f]+$/.test(word)) throw new Error(`unexpected ODP word ${word}`);
    mask |= bit === undefined ? BigInt(word) : BigInt(bit.value);
  }
  return mask;
}

/** ibv_devinfo's words for the ODP bits (its own spelling: SUPPORT_SRQ for srq-recv). */
const DEVINFO_ODP_WORDS: Record<string, bigint> = {
  ODP_SUPPORT: 0x1n, ODP_SUPPORT_IMPLICIT: 0x2n,
  SUPPORT_SEND: 0x1n, SUPPORT_RECV: 0x2n, SUPPORT_WRITE: 0x4n, SUPPORT_READ: 0x8n, SUPPORT_ATOMIC: 0x10n,
  SUPPORT_SRQ: 0x20n, SUPPORT_FLUSH: 0x40n, SUPPORT_ATOMIC_WRITE: 0x80n,
};

/** general/rc/uc/ud ODP masks from `ibv_devinfo -v` (an independent reading); null when it printed none. */
function devinfoOdpMasks(text: string): { general: bigint; rc: bigint; uc: bigint; ud: bigint } | null {
  const masks = new Map<string, bigint>();
  let section: string | null = null;
  for (const line of text.split('\n')) {
    const head = /^\t(general|rc|uc|ud|xrc)_odp_caps:\s*$/.exec(line);
    if (head) {
      section = head[1]!;
      masks.set(section, 0n);
      continue;
    }
    if (/^\t?\S/.test(line) && !/^\t{2,}/.test(line)) section = null;
    const word = line.trim();
    if (section === null || word === '' || word === 'NO SUPPORT') continue;
    const unknown = /^Unknown flags: (0x[0-9A-Fa-f]+)$/.exec(word);
    const value = unknown ? BigInt(unknown[1]!) : DEVINFO_ODP_WORDS[word];
    if (value === undefined) throw new Error(`ibv_devinfo: unexpected ODP line ${JSON.stringify(line)}`);
    masks.set(section, masks.get(section)! | value);
  }
  const [general, rc, uc, ud] = ['general', 'rc', 'uc', 'ud'].map((k) => masks.get(k));
  return general === undefined || rc === undefined || uc === undefined || ud === undefined ? null : { general, rc, uc, ud };
}

const schema = JSON.parse(readFileSync(new URL('../../schema/devices.json', import.meta.url), 'utf8')) as object;
const validateDevices = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);

interface DevicesJson {
  kernel: string;
  copyOnFork: boolean | null;
  copyOnForkSource: string;
  devices: Array<{
    name: string;
    guid: string;
    nodeType: string;
    fwVersion: string | null;
    maxMr: number | null;
    maxMrSize: string | null;
    pageSizeCap: string | null;
    pageSizes: string | null;
    maxQp: number | null;
    maxPd: number | null;
    odpSupported: boolean | null;
    odpGeneralCaps: string[] | null;
    odpRcCaps: string[] | null;
    odpUcCaps: string[] | null;
    odpUdCaps: string[] | null;
    forkInit: string;
    error: string | null;
    ports: Array<{ port: number; state: string; linkLayer: string }> | null;
  }>;
}

describe.skipIf(!inLab)(`devices on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  let report: DevicesJson;
  beforeAll(() => {
    const rt = labRuntime();
    try {
      report = parseJson<DevicesJson>(rdmactl(['devices', '--json'], rt.env), 'rdmactl devices --json');
    } finally {
      rt.cleanup();
    }
  });

  it('the document validates against schema/devices.json (a real device, its ports and ODP caps)', () => {
    expect(validateDevices(report), JSON.stringify(validateDevices.errors)).toBe(true);
    expect(report.devices.length).toBeGreaterThan(0);
  });

  it('lists rxe0 with its caps, as iproute2 sees it', () => {
    expect(report.kernel).toBe(labKernel.release);
    const rdmaDevs = json<Array<{ ifname: string; node_type?: string }>>(['rdma', '-j', 'dev']);
    expect(report.devices.map((d) => d.name).sort()).toEqual(rdmaDevs.map((d) => d.ifname).sort());
    const rxe = report.devices.find((d) => d.name === RXE_DEVICE)!;
    expect(rxe, JSON.stringify(report)).toBeDefined();
    expect(rxe.error).toBeNull();
    expect(rxe.maxMr).toBeGreaterThan(0);
    expect(BigInt(rxe.maxMrSize!)).toBeGreaterThan(64n << 20n);
    expect(rxe.pageSizeCap).toMatch(/^0x[0-9a-f]+$/);
    // 4 KiB pages are supported (bit 12 of page_size_cap).
    expect(BigInt(rxe.pageSizeCap!) & 0x1000n).toBe(0x1000n);
    const links = json<Array<{ ifname: string; port: number; state: string }>>(['rdma', '-j', 'link', 'show']);
    const link = links.find((l) => l.ifname.startsWith(`${RXE_DEVICE}/`) || l.ifname === RXE_DEVICE)!;
    expect(rxe.ports!.map((p) => p.port)).toContain(link.port);
    expect(rxe.ports!.find((p) => p.port === link.port)!.state.toLowerCase()).toBe(link.state.toLowerCase());
    expect(rxe.ports![0]!.linkLayer).toBe('Ethernet');
  });

  it('ODP words give back the masks ibv_devinfo -v prints (every bit named, or hex)', () => {
    const rxe = report.devices.find((d) => d.name === RXE_DEVICE)!;
    const devinfo = devinfoOdpMasks(check(['ibv_devinfo', '-v', '-d', RXE_DEVICE]));
    expect(devinfo, 'ibv_devinfo -v printed no odp caps').not.toBeNull();
    expect({
      general: wordsMask(rxe.odpGeneralCaps!, ODP_GENERAL_CAP_BITS),
      rc: wordsMask(rxe.odpRcCaps!, ODP_TRANSPORT_CAP_BITS),
      uc: wordsMask(rxe.odpUcCaps!, ODP_TRANSPORT_CAP_BITS),
      ud: wordsMask(rxe.odpUdCaps!, ODP_TRANSPORT_CAP_BITS),
    }).toEqual(devinfo);
    // Every bit a kernel sets today has a name: no hex word (7.x rxe sets flush 0x40 and atomic-write 0x80).
    expect([...rxe.odpGeneralCaps!, ...rxe.odpRcCaps!, ...rxe.odpUcCaps!, ...rxe.odpUdCaps!].filter((w) => w.startsWith('0x'))).toEqual([]);
  });

  it('ODP: present or absent as ibv_devinfo reads it from the kernel (rdma_rxe gained ODP in 6.x)', () => {
    const rxe = report.devices.find((d) => d.name === RXE_DEVICE)!;
    if (rxeHasOdp()) {
      expect(rxe.odpSupported).toBe(true);
      expect(rxe.odpGeneralCaps).toContain('odp');
      expect(rxe.odpRcCaps).toEqual(expect.arrayContaining(['send', 'recv', 'write', 'read']));
    } else {
      expect(rxe.odpSupported).toBe(false);
      expect(rxe.odpGeneralCaps).toEqual([]);
      expect(rxe.odpRcCaps).toEqual([]);
    }
  });

  it('copyOnFork matches rdma sys show, or is unknown where the kernel predates the attribute; libibverbs agrees', () => {
    const sys = rdmaSys();
    expect(['on', 'off']).toContain(sys['copy-on-fork']);
    if (copyOnForkAttribute() === 'absent') {
      // iproute2 prints "off" for a reply without the attribute (5.10): rdmactl must not repeat it.
      expect({ copyOnFork: report.copyOnFork, copyOnForkSource: report.copyOnForkSource })
        .toEqual({ copyOnFork: null, copyOnForkSource: 'unknown (kernel predates the attribute)' });
      const rt = labRuntime();
      try {
        const text = rdmactl(['devices'], rt.env);
        expect(text.stdout + text.stderr).toMatch(/copy-on-fork unknown \(kernel predates the attribute\)/);
      } finally {
        rt.cleanup();
      }
    } else {
      expect(report.copyOnFork).toBe(sys['copy-on-fork'] === 'on');
      expect(report.copyOnForkSource).toBe('rdma sys show');
    }
    const rxe = report.devices.find((d) => d.name === RXE_DEVICE)!;
    // ibv_is_fork_initialized() is IBV_FORK_UNNEEDED exactly when the kernel copies pinned pages at fork.
    expect(rxe.forkInit).toBe(report.copyOnFork ? 'unneeded' : 'disabled');
  });
});

/** The uverbs node of a device, found through sysfs (/sys/class/infiniband_verbs/uverbsN/ibdev). */
function uverbsNodeOf(device: string): string {
  const dir = '/sys/class/infiniband_verbs';
  const name = readdirSync(dir).find((n) => n.startsWith('uverbs') && existsSync(`${dir}/${n}/ibdev`) && readFileSync(`${dir}/${n}/ibdev`, 'utf8').trim() === device);
  if (name === undefined) throw new Error(`no uverbs node for ${device} under ${dir}`);
  return `/dev/infiniband/${name}`;
}

describe.skipIf(!inLab)(`devices for a user who cannot open ${RXE_DEVICE} (${labKernel.name || '?'})`, () => {
  let node = '';
  let mode = 0;
  let restored = false;
  let jsonRun: CmdResult;
  let textRun: CmdResult;
  let doctorRun: CmdResult;
  /** `doctor PID` run by root about a process of nobody's, while the node is 0600. */
  let doctorPidRun: CmdResult;
  let nobodyPid = 0;

  function restore(): void {
    if (node && !restored) chmodSync(node, mode);
    restored = true;
  }

  beforeAll(async () => {
    node = uverbsNodeOf(RXE_DEVICE);
    mode = statSync(node).mode & 0o7777;
    const rt = labRuntime();
    try {
      // The guest's own devtmpfs node (0666 from ib_uverbs): root only while these commands run.
      chmodSync(node, 0o600);
      jsonRun = rdmactl(['devices', '--json'], rt.env, UNPRIVILEGED);
      textRun = rdmactl(['devices', '-rn', '-o', 'name,maxMr,maxMrSize,pageSizeCap,maxQp,maxPd,odpSupported'], rt.env, UNPRIVILEGED);
      // The 4 MiB request must fit the user's RLIMIT_MEMLOCK so that the device is the only failure:
      // the limit every process inherits from init is the kernel's boot default, 64 KiB on 5.10 (doctor's
      // memlock.origin says so there), 8 MiB from 5.16 on. Root's shell sets 8 MiB (`ulimit -l` is in
      // KiB; dash sets soft and hard) before dropping to nobody.
      const limited8M = ['/bin/sh', '-c', 'ulimit -l 8192 && exec "$@"', 'sh', ...UNPRIVILEGED];
      doctorRun = run([...limited8M, process.execPath, BIN, 'doctor', '--size', '4M', '--backend', 'verbs', '--json'], { env: rt.env, timeoutMs: 300_000 });
      // rdmactl (root) opens the device itself; the question is whether nobody's process could.
      const nobody = spawn(limited8M[0]!, [...limited8M.slice(1), 'sleep', '300'], { stdio: 'ignore' });
      nobodyPid = nobody.pid!;
      try {
        for (let i = 0; i < 500 && !/^Uid:\s+65534\b/m.test(readFileSync(`/proc/${nobodyPid}/status`, 'utf8')); i++) await sleep(10);
        doctorPidRun = run([process.execPath, BIN, 'doctor', String(nobodyPid), '--size', '4M', '--backend', 'verbs', '--json'], { env: rt.env, timeoutMs: 300_000 });
      } finally {
        nobody.kill('SIGKILL');
      }
    } finally {
      restore();
      rt.cleanup();
    }
  });

  afterAll(restore);

  it('the device is still listed, exit 0, every value it could not read is null and error says why', () => {
    expect(statSync(node).mode & 0o7777).toBe(mode);
    const doc = parseJson<DevicesJson>(jsonRun, 'rdmactl devices --json (nobody, uverbs node 0600)');
    expect(validateDevices(doc), JSON.stringify(validateDevices.errors)).toBe(true);
    const rxe = doc.devices.find((d) => d.name === RXE_DEVICE)!;
    expect(rxe, JSON.stringify(doc)).toBeDefined();
    expect(rxe.error).toMatch(/EACCES|[Pp]ermission denied/);
    expect(rxe).toMatchObject({
      fwVersion: null, maxMr: null, maxMrSize: null, pageSizeCap: null, pageSizes: null, maxQp: null, maxPd: null,
      odpSupported: null, odpGeneralCaps: null, odpRcCaps: null, ports: null,
    });
    // What the list gives without opening the device is still there (ibv_devices reads the same).
    expect(rxe.guid).toMatch(/^[0-9a-f]{4}(:[0-9a-f]{4}){3}$/);
  });

  it('text: - for each value not read, never 0', () => {
    expect(textRun.status, textRun.stderr).toBe(0);
    const row = textRun.stdout.split('\n').find((l) => l.startsWith(`${RXE_DEVICE} `));
    expect(row, textRun.stdout).toBeDefined();
    expect(row!.split(/\s+/)).toEqual([RXE_DEVICE, '-', '-', '-', '-', '-', 'unknown']);
  });

  it('doctor: one finding, verbs.devices, with the node\'s real errno (EACCES, not libibverbs\' ENOENT) and its permissions; checks that need an open device skip', () => {
    const doc = JSON.parse(doctorRun.stdout) as { findings: Array<{ id: string; status: string; summary: string; reason: string | null; fix: string[]; evidence: Record<string, unknown> }>; prediction: { cause: string } };
    const failed = doc.findings.filter((f) => f.status === 'fail');
    expect(failed.map((f) => f.id), doctorRun.stdout).toEqual(['verbs.devices']);
    const devices = failed[0]!;
    expect(devices.summary).toBe(`${RXE_DEVICE}: cannot open ${node}: EACCES (mode 0600, owner uid 0 gid 0; this process: uid 65534, gids 65534): the device node's permissions refuse this user`);
    expect(devices.summary).not.toContain('ENOENT');
    expect(devices.evidence['devices']).toEqual([expect.objectContaining({ name: RXE_DEVICE, errno: 'EACCES', file: node, cause: 'permissions' })]);
    expect(devices.fix).toEqual([`chmod 0666 ${node} (a udev rule keeps it across reboots: KERNEL=="uverbs*", MODE="0666")`]);
    for (const id of ['verbs.ports', 'verbs.max-mr']) {
      expect(doc.findings.find((f) => f.id === id), id).toMatchObject({ status: 'skip', reason: `no device could be opened (${RXE_DEVICE}: EACCES; see verbs.devices)` });
    }
    expect(doc.prediction).toMatchObject({ cause: 'verbs.devices' });
  });

  it('doctor PID run by root, for nobody\'s process: verbs.devices says that process cannot open the node, though rdmactl could', () => {
    const doc = JSON.parse(doctorPidRun.stdout) as { findings: Array<{ id: string; status: string; summary: string; fix: string[]; evidence: Record<string, unknown> }>; prediction: { cause: string } };
    const devices = doc.findings.find((f) => f.id === 'verbs.devices')!;
    expect(devices.status, doctorPidRun.stdout).toBe('fail');
    expect(devices.summary).toBe(`${RXE_DEVICE}: pid ${nobodyPid} cannot open ${node} (mode 0600, owner uid 0 gid 0; pid ${nobodyPid}: uid 65534, gids 65534): the device node's permissions refuse its user`);
    expect(devices.evidence['devices']).toEqual([expect.objectContaining({ name: RXE_DEVICE, errno: null, file: node, cause: 'permissions', refusedFor: nobodyPid })]);
    expect(devices.fix).toEqual([`chmod 0666 ${node} (a udev rule keeps it across reboots: KERNEL=="uverbs*", MODE="0666")`]);
    // What rdmactl read from the device it opened is still true of the device.
    expect(doc.findings.find((f) => f.id === 'verbs.ports')).toMatchObject({ status: 'ok' });
    expect(doc.prediction).toMatchObject({ cause: 'verbs.devices' });
  });
});
