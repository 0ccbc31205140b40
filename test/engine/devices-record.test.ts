// The `rdmactl devices` record of one device from what opening and querying it gave: a value that
// was not read is null (`-` in text), never 0, and the reason is in `error`. This host has no RDMA
// device, so the readings are fixtures; test/lab/verbs-devices.test.ts checks a real unopenable
// device in the Soft-RoCE VM.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { DEVICE_FIELDS } from '../../src/commands/devices.js';
import { deviceInfo, type DeviceReading } from '../../src/engine/verbs/devices.js';
import type { IbvDeviceAttr } from '../../src/ffi/verbs/index.js';
import { PermissionError } from '../../src/lib/errors.js';
import { fieldText, toJson } from '../../src/lib/fields.js';

const LISTED = { name: 'rxe0', guid: '5054:00ff:fe12:3456', nodeType: 'InfiniBand channel adapter', node: '/dev/infiniband/uverbs0' };

/** An rxe-like ibv_query_device answer. */
const ATTR = {
  fw_ver: '0.0.0', node_guid: 0x5054_00ff_fe12_3456n, sys_image_guid: 0n, max_mr_size: 0xffff_ffff_ffff_ffffn,
  page_size_cap: 0xffff_f000n, vendor_id: 0xffffff, vendor_part_id: 0, hw_ver: 0, max_qp: 1048560, max_qp_wr: 1048576,
  device_cap_flags: 0, max_sge: 32, max_cq: 1048576, max_cqe: 32767, max_mr: 524287, max_pd: 1048576, max_mw: 0,
  max_srq: 917503, atomic_cap: 1, max_pkeys: 64, phys_port_cnt: 1,
} satisfies IbvDeviceAttr;

const PORT = { port: 1, state: 4, stateName: 'PORT_ACTIVE', physState: 5, activeMtu: 1024, maxMtu: 4096, linkLayer: 'Ethernet' as const, lid: 0, gidTableLength: 1024 };

/** What `ibv_open_device` on an unreadable /dev/infiniband/uverbs0 throws (objects.ts Device.open). */
const OPEN_DENIED = new PermissionError('cannot open RDMA device rxe0: ibv_open_device: Permission denied (EACCES)');

const schema = JSON.parse(readFileSync(new URL('../../schema/devices.json', import.meta.url), 'utf8')) as object;
const validateDevice = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).addSchema(schema)
  .compile({ $ref: 'urn:rdmactl:schema:devices:1#/definitions/device' });

function jsonOf(reading: DeviceReading) {
  const record = toJson(DEVICE_FIELDS, deviceInfo(LISTED, 'disabled', reading));
  expect(validateDevice(record), JSON.stringify(validateDevice.errors)).toBe(true);
  return record;
}

function textOf(reading: DeviceReading): Record<string, string> {
  const info = deviceInfo(LISTED, 'disabled', reading);
  return Object.fromEntries(DEVICE_FIELDS.map((f) => [f.key, fieldText(f, info)]));
}

const NOT_READ = ['fwVersion', 'maxMr', 'maxMrSize', 'pageSizeCap', 'pageSizes', 'maxQp', 'maxPd', 'odpSupported', 'odpGeneralCaps', 'odpRcCaps', 'odpUcCaps', 'odpUdCaps', 'ports'];

describe('deviceInfo: a device that could not be opened', () => {
  const failed: DeviceReading = { attr: null, odp: null, ports: null, failure: OPEN_DENIED, openFailure: null };

  it('JSON: every value it would have read is null (not 0), the names from the list stay, error says why', () => {
    const record = jsonOf(failed);
    expect(Object.fromEntries(NOT_READ.map((k) => [k, record[k]]))).toEqual(Object.fromEntries(NOT_READ.map((k) => [k, null])));
    expect(record).toMatchObject({ name: 'rxe0', guid: LISTED.guid, nodeType: LISTED.nodeType, forkInit: 'disabled' });
    expect(record['error']).toBe(OPEN_DENIED.message);
  });

  it('text: - where a value was not read (unknown for ODP), never 0', () => {
    const text = textOf(failed);
    for (const key of ['maxMr', 'maxMrSize', 'pageSizeCap', 'pageSizes', 'maxQp', 'maxPd', 'fwVersion', 'ports']) expect(text[key], key).toBe('-');
    expect(text['odpSupported']).toBe('unknown');
    expect(text['error']).toBe(OPEN_DENIED.message);
  });

  it('the record keeps vendor ids unread too', () => {
    const info = deviceInfo(LISTED, 'disabled', failed);
    expect([info.vendorId, info.vendorPartId, info.maxMrSize, info.pageSizeCap]).toEqual([null, null, null, null]);
  });
});

describe('deviceInfo: partial and full readings', () => {
  it('ports failed after the device query: the limits show, the ports are null, error says why', () => {
    const failure = new Error('ibv_query_port: port 1: Invalid argument (EINVAL)');
    const record = jsonOf({ attr: ATTR, odp: null, ports: null, failure, openFailure: null });
    expect(record).toMatchObject({ maxMr: 524287, maxMrSize: '18446744073709551615', pageSizeCap: '0xfffff000', maxQp: 1048560, maxPd: 1048576, ports: null, error: failure.message });
  });

  it('everything read: the kernel values, ports and ODP words, no error', () => {
    const odp = { general: ['odp'], rc: ['send', 'flush', '0x100'], uc: [], ud: ['send'], supported: true };
    const record = jsonOf({ attr: ATTR, odp, ports: [PORT], failure: null, openFailure: null });
    expect(record).toMatchObject({ fwVersion: '0.0.0', maxMr: 524287, odpSupported: true, odpRcCaps: ['send', 'flush', '0x100'], error: null });
    expect(record['ports']).toEqual([{ port: 1, state: 'PORT_ACTIVE', linkLayer: 'Ethernet', activeMtu: 1024, maxMtu: 4096, lid: 0, gidTableLength: 1024 }]);
    expect(textOf({ attr: ATTR, odp, ports: [PORT], failure: null, openFailure: null })['maxMr']).toBe('524287');
  });

  it('a thrown non-Error is still a one-line reason', () => {
    expect(deviceInfo(LISTED, 'enabled', { attr: null, odp: null, ports: null, failure: 'EIO', openFailure: null }).error).toBe('EIO');
  });
});
