// `rdmactl devices --json` against the lab's rxe0, checked with iproute2 (`rdma -j dev`, `rdma sys show`):
// ODP is absent on the 6.1 kernel's rdma_rxe and present on 7.x; copy-on-fork comes from the kernel.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { RXE_DEVICE, inLab, json, kernelAtLeast, labKernel, rdmaSys } from './helpers.js';
import { labRuntime, parseJson, rdmactl } from './verbs-helpers.js';

interface DevicesJson {
  kernel: string;
  copyOnFork: boolean | null;
  copyOnForkSource: string;
  devices: Array<{
    name: string;
    nodeType: string;
    maxMr: number;
    maxMrSize: string;
    pageSizeCap: string;
    odpSupported: boolean | null;
    odpGeneralCaps: string[];
    odpRcCaps: string[];
    forkInit: string;
    error: string | null;
    ports: Array<{ port: number; state: string; linkLayer: string }>;
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
    const schema = JSON.parse(readFileSync(new URL('../../schema/devices.json', import.meta.url), 'utf8')) as object;
    const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
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
    expect(BigInt(rxe.maxMrSize)).toBeGreaterThan(64n << 20n);
    expect(rxe.pageSizeCap).toMatch(/^0x[0-9a-f]+$/);
    // 4 KiB pages are supported (bit 12 of page_size_cap).
    expect(BigInt(rxe.pageSizeCap) & 0x1000n).toBe(0x1000n);
    const links = json<Array<{ ifname: string; port: number; state: string }>>(['rdma', '-j', 'link', 'show']);
    const link = links.find((l) => l.ifname.startsWith(`${RXE_DEVICE}/`) || l.ifname === RXE_DEVICE)!;
    expect(rxe.ports.map((p) => p.port)).toContain(link.port);
    expect(rxe.ports.find((p) => p.port === link.port)!.state.toLowerCase()).toBe(link.state.toLowerCase());
    expect(rxe.ports[0]!.linkLayer).toBe('Ethernet');
  });

  it(`ODP: ${kernelAtLeast(7) ? 'present (rdma_rxe ODP since 6.x)' : 'absent on 6.1'}`, () => {
    const rxe = report.devices.find((d) => d.name === RXE_DEVICE)!;
    if (labKernel.name === 'new') {
      expect(rxe.odpSupported).toBe(true);
      expect(rxe.odpGeneralCaps).toContain('odp');
      expect(rxe.odpRcCaps).toEqual(expect.arrayContaining(['send', 'recv', 'write', 'read']));
    } else {
      expect(rxe.odpSupported).toBe(false);
      expect(rxe.odpGeneralCaps).toEqual([]);
      expect(rxe.odpRcCaps).toEqual([]);
    }
  });

  it('copyOnFork matches rdma sys show, and libibverbs calls fork protection unneeded', () => {
    const sys = rdmaSys();
    expect(['on', 'off']).toContain(sys['copy-on-fork']);
    expect(report.copyOnFork).toBe(sys['copy-on-fork'] === 'on');
    expect(report.copyOnForkSource).toBe('rdma sys show');
    const rxe = report.devices.find((d) => d.name === RXE_DEVICE)!;
    // ibv_is_fork_initialized() is IBV_FORK_UNNEEDED exactly when the kernel copies pinned pages at fork.
    expect(rxe.forkInit).toBe(report.copyOnFork ? 'unneeded' : 'disabled');
  });
});
