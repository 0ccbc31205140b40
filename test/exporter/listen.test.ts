// --listen parsing and how listen failures become exit codes (pure: no socket).
import { describe, expect, it } from 'vitest';
import { DEFAULT_PORT, exposureWarning, listenError, parseListen } from '../../src/exporter/run.js';
import { EXIT, UsageError } from '../../src/lib/errors.js';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`listen ${code}`), { code });
}

describe('parseListen', () => {
  it('reads HOST:PORT, [IPv6]:PORT and :PORT (which stays on 127.0.0.1)', () => {
    expect(parseListen('127.0.0.1:10062')).toEqual({ host: '127.0.0.1', port: 10062 });
    expect(parseListen('0.0.0.0:9000')).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(parseListen('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(parseListen(':0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(DEFAULT_PORT).toBe(10062);
  });

  it('reads unix:PATH with the socket mode (0660 unless given); the path must be absolute', () => {
    expect(parseListen('unix:/run/rdmactl/exporter.sock')).toEqual({ path: '/run/rdmactl/exporter.sock', mode: 0o660 });
    expect(parseListen('unix:/run/rdmactl/exporter.sock', 0o600)).toEqual({ path: '/run/rdmactl/exporter.sock', mode: 0o600 });
    for (const bad of ['unix:', 'unix:exporter.sock', `unix:/${'a'.repeat(120)}`]) expect(() => parseListen(bad)).toThrow(UsageError);
  });

  it('warns for addresses other machines can reach, not for loopback or unix sockets', () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'fe80::1']) expect(exposureWarning({ host, port: 1 }), host).toMatch(/^warning: serving on /);
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(exposureWarning({ host, port: 1 }), host).toBeNull();
    expect(exposureWarning(parseListen(':10062'))).toBeNull();
    expect(exposureWarning({ path: '/run/rdmactl/exporter.sock', mode: 0o660 })).toBeNull();
  });

  it('refuses what is not HOST:PORT with a usage error naming the value', () => {
    for (const bad of ['localhost', '10062', '127.0.0.1:', '127.0.0.1:65536', '::1:80', 'host:port', '']) {
      expect(() => parseListen(bad)).toThrow(UsageError);
      expect(() => parseListen(bad)).toThrow(`invalid --listen '${bad}'`);
    }
  });
});

describe('listenError', () => {
  it('maps in use → 1, not permitted → 4, unknown host → 2', () => {
    expect(listenError(errno('EADDRINUSE'), 'x:1').exitCode).toBe(EXIT.FAILURE);
    expect(listenError(errno('EACCES'), 'x:1').exitCode).toBe(EXIT.PERMISSION);
    expect(listenError(errno('EPERM'), 'x:1').exitCode).toBe(EXIT.PERMISSION);
    expect(listenError(errno('ENOTFOUND'), 'x:1').exitCode).toBe(EXIT.USAGE);
    expect(listenError(errno('EADDRNOTAVAIL'), '10.9.9.9:1').message).toBe('cannot listen on 10.9.9.9:1: no such address on this machine');
  });
});
