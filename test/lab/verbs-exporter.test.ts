// `rdmactl stat --format prometheus` (the exporter's metrics) against a real rxe0 MR: the device
// series come from the kernel MR table, max_mr from the device, copy_on_fork from `rdma sys show`,
// each checked against iproute2 and /proc read by the test.
import { beforeAll, describe, expect, it } from 'vitest';
import { RXE_DEVICE, check, copyOnForkAttribute, inLab, json, labKernel, rdmaSys } from './helpers.js';
import { holderScope, kernelMrs, MiB, rdmactl, vmPinOf, type RegRecord } from './verbs-helpers.js';

function samples(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((line) => {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line)!;
    const labels: Record<string, string> = {};
    for (const p of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]!] = p[2]!;
    return { name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) };
  });
}

describe.skipIf(!inLab)(`exporter metrics on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  const scope = holderScope();
  let rec: RegRecord;
  let scraped: ReturnType<typeof samples>;
  const value = (name: string, labels: Record<string, string> = {}) => {
    const found = scraped.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    expect(found, `${name}${JSON.stringify(labels)}`).toHaveLength(1);
    return found[0]!.value;
  };

  beforeAll(() => {
    rec = scope.detach(['reg', '8MiB', '--backend', 'verbs', '--detach', '--json'], 'reg --detach');
    const result = rdmactl(['stat', '--format', 'prometheus'], scope.env);
    expect(result.status, result.stderr).toBe(0);
    scraped = samples(result.stdout);
  });

  it('device series: MR count and bytes as the kernel MR table has them, max_mr from the device', () => {
    const table = kernelMrs().filter((mr) => mr.ifname === RXE_DEVICE);
    expect(table.some((mr) => mr.pid === rec.pid && mr.mrlen === 8 * MiB)).toBe(true);
    expect(value('rdmactl_device_mrs', { device: RXE_DEVICE })).toBe(table.length);
    expect(value('rdmactl_device_mr_bytes', { device: RXE_DEVICE })).toBe(table.reduce((sum, mr) => sum + mr.mrlen, 0));
    const attrs = json<Array<{ ifname: string }>>(['rdma', '-j', 'dev']);
    expect(attrs.map((d) => d.ifname)).toContain(RXE_DEVICE);
    // max_mr as libibverbs' own tool reports it.
    const maxMr = Number(/^\s*max_mr:\s*(\d+)$/m.exec(check(['ibv_devinfo', '-v', '-d', RXE_DEVICE]))?.[1]);
    expect(maxMr).toBeGreaterThan(0);
    expect(value('rdmactl_device_max_mrs', { device: RXE_DEVICE })).toBe(maxMr);
    expect(value('rdmactl_registration_source_available', { source: 'rdma' })).toBe(1);
    // The MR table read behind these series: real rdma, answered, not timed out, just now.
    expect(value('rdmactl_rdma_mr_table_last_read_success')).toBe(1);
    expect(value('rdmactl_rdma_mr_table_last_read_timed_out')).toBe(0);
    expect(Math.abs(value('rdmactl_rdma_mr_table_last_read_timestamp_seconds') - Date.now() / 1000)).toBeLessThan(120);
    expect(value('rdmactl_registrations', { source: 'rdma' })).toBe(kernelMrs().length);
  });

  it('the holder\'s pinned bytes equal its VmPin, and copy_on_fork matches rdma sys show', () => {
    expect(value('rdmactl_process_pinned_bytes', { pid: String(rec.pid) })).toBe(vmPinOf(rec.pid)! * 1024);
    const sys = rdmaSys();
    if (copyOnForkAttribute() === 'absent') {
      // A kernel before the attribute: iproute2 says "off" for nothing said; the gauge is left out.
      expect(() => value('rdmactl_copy_on_fork')).toThrow();
    } else expect(value('rdmactl_copy_on_fork')).toBe(sys['copy-on-fork'] === 'on' || sys['copy-on-fork'] === true ? 1 : 0);
  });
});
