// The pure parts of doctor's cgroup checks: systemctl's LimitMEMLOCK output and each runtime's fix.
import { describe, expect, it } from 'vitest';
import { containerMemlockFix, parseSystemdLimits } from '../../src/doctor/attribution.js';

describe('doctor attribution helpers', () => {
  it('systemctl show -p LimitMEMLOCK -p LimitMEMLOCKSoft: bytes, infinity → null, absent or odd → undefined', () => {
    expect(parseSystemdLimits('LimitMEMLOCK=8388608\nLimitMEMLOCKSoft=65536\n')).toEqual({ hardBytes: 8388608, softBytes: 65536 });
    expect(parseSystemdLimits('LimitMEMLOCK=infinity\nLimitMEMLOCKSoft=infinity\n')).toEqual({ hardBytes: null, softBytes: null });
    expect(parseSystemdLimits('LimitMEMLOCK=\n')).toEqual({ hardBytes: undefined, softBytes: undefined });
    expect(parseSystemdLimits('LimitMEMLOCK=lots\nLimitMEMLOCKSoft=8388608')).toEqual({ hardBytes: undefined, softBytes: 8388608 });
  });

  it('each runtime gets its own fix, naming the container', () => {
    const id = 'ab'.repeat(32);
    expect(containerMemlockFix('docker', id)).toMatch(/^container abababababab \(docker\): recreate it with docker run --ulimit memlock=-1:-1/);
    expect(containerMemlockFix('podman', id)).toContain('podman run --ulimit memlock=-1:-1');
    expect(containerMemlockFix('cri-o', id)).toContain('default_ulimits = ["memlock=-1:-1"]');
    for (const runtime of ['containerd', 'kubernetes'] as const) {
      expect(containerMemlockFix(runtime, id)).toContain('/etc/systemd/system/containerd.service.d/memlock.conf');
      expect(containerMemlockFix(runtime, id)).toContain('LimitMEMLOCK=infinity');
    }
  });
});
