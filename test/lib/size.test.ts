import { describe, expect, it } from 'vitest';
import { formatBytes, parseDuration, parseSize } from '../../src/lib/size.js';
import { UsageError } from '../../src/lib/errors.js';

describe('parseSize', () => {
  it.each([
    ['4096', 4096], ['64K', 65536], ['64KiB', 65536], ['64kb', 65536], ['1.5G', 1610612736],
    ['2MB', 2097152], ['2 MiB', 2097152], ['1T', 1024 ** 4], ['.5K', 512],
  ])('%s → %d bytes (every suffix is a power of 1024)', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['0', '0K', '-1', '-64K', 'abc', '64X', '', '1.3', '99999999999999999999', '1e3', '64 K B', '0x10'])('rejects %j with a UsageError', (text) => {
    expect(() => parseSize(text)).toThrow(UsageError);
  });

  it('names the bad input and the accepted form in one line', () => {
    expect(() => parseSize('64X')).toThrow(/invalid size '64X': unknown unit 'X'/);
    expect(() => parseSize('99999999999T')).toThrow(/too large/);
  });
});

describe('parseDuration', () => {
  it.each([['500ms', 500], ['10s', 10_000], ['10', 10_000], ['2m', 120_000], ['1h', 3_600_000]])('%s → %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
  it.each(['0', '-1s', '10x', 's', '999999h'])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(UsageError);
  });
});

describe('formatBytes', () => {
  it('writes IEC units with one decimal, dropped when it is 0', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(65536)).toBe('64 KiB');
    expect(formatBytes(67108864)).toBe('64 MiB');
    expect(formatBytes(67108863)).toBe('64 MiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(2.28 * 1024 ** 3)).toBe('2.3 GiB');
    expect(formatBytes(475.8 * 1024 ** 2)).toBe('475.8 MiB');
    expect(formatBytes(-4096)).toBe('-4 KiB');
  });
  it('moves to the next unit when rounding reaches 1024', () => {
    expect(formatBytes(1024 * 1024 - 1)).toBe('1 MiB');
    expect(formatBytes(1023.9 * 1024)).toBe('1023.9 KiB');
  });
  it("writes lsblk's one-word form", () => {
    expect(formatBytes(0, 'compact')).toBe('0B');
    expect(formatBytes(512, 'compact')).toBe('512B');
    expect(formatBytes(1024 ** 2, 'compact')).toBe('1M');
    expect(formatBytes(2.28 * 1024 ** 3, 'compact')).toBe('2.3G');
    expect(formatBytes(3 * 1024 ** 4, 'compact')).toBe('3T');
  });
});
