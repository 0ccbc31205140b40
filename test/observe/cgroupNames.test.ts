// Every naming pattern, on paths of the shape the tools that create them use.
import { describe, expect, it } from 'vitest';
import { groupKey, nameCgroup } from '../../src/observe/cgroupNames.js';

const ID = '3f4e5c0d9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5';
const UID = '0b7c3f52-1a2b-4c3d-8e9f-0a1b2c3d4e5f';
const UID_ = UID.replaceAll('-', '_');

describe('nameCgroup', () => {
  it('systemd services, scopes and slices', () => {
    expect(nameCgroup('/system.slice/rdma-app.service').unit).toEqual({ name: 'rdma-app.service', path: '/system.slice/rdma-app.service' });
    expect(nameCgroup('/system.slice/rdma-app.service/worker').unit).toEqual({ name: 'rdma-app.service', path: '/system.slice/rdma-app.service' });
    expect(nameCgroup('/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope').unit!.name).toBe('run-r1.scope');
    expect(nameCgroup('/user.slice/user-1000.slice').unit).toEqual({ name: 'user-1000.slice', path: '/user.slice/user-1000.slice' });
    expect(nameCgroup('/').unit).toBeNull();
    expect(nameCgroup('/process_api/41df5c3c').unit).toBeNull();
  });

  it('docker: systemd driver scope and cgroupfs /docker/<id>', () => {
    expect(nameCgroup(`/system.slice/docker-${ID}.scope`)).toMatchObject({ container: { runtime: 'docker', id: ID, path: `/system.slice/docker-${ID}.scope` }, unit: { name: `docker-${ID}.scope` } });
    expect(nameCgroup(`/docker/${ID}`).container).toEqual({ runtime: 'docker', id: ID, path: `/docker/${ID}` });
    expect(nameCgroup(`/other/${ID}`).container).toBeNull();
  });

  it('containerd, cri-o and podman scopes; conmon is not the container', () => {
    expect(nameCgroup(`/system.slice/cri-containerd-${ID}.scope`).container).toMatchObject({ runtime: 'containerd', id: ID });
    expect(nameCgroup(`/machine.slice/crio-${ID}.scope`).container).toMatchObject({ runtime: 'cri-o', id: ID });
    expect(nameCgroup(`/machine.slice/crio-conmon-${ID}.scope`).container).toBeNull();
    expect(nameCgroup(`/machine.slice/libpod-${ID}.scope/container`).container).toEqual({ runtime: 'podman', id: ID, path: `/machine.slice/libpod-${ID}.scope` });
    expect(nameCgroup(`/libpod_parent/libpod-${ID}`).container).toMatchObject({ runtime: 'podman', id: ID });
  });

  it('Kubernetes, systemd driver: pod uid (underscores back to dashes) and QoS class', () => {
    const burstable = nameCgroup(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`);
    expect(burstable.pod).toEqual({ uid: UID, qosClass: 'burstable', path: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice` });
    expect(burstable.container).toMatchObject({ runtime: 'containerd', id: ID });
    expect(nameCgroup(`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${ID}.scope`).pod!.qosClass).toBe('besteffort');
    expect(nameCgroup(`/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`).pod).toMatchObject({ uid: UID, qosClass: 'guaranteed' });
  });

  it('Kubernetes, cgroupfs driver: /kubepods/<qos>/pod<uid>/<id>', () => {
    const names = nameCgroup(`/kubepods/burstable/pod${UID}/${ID}`);
    expect(names.pod).toEqual({ uid: UID, qosClass: 'burstable', path: `/kubepods/burstable/pod${UID}` });
    expect(names.container).toEqual({ runtime: 'kubernetes', id: ID, path: `/kubepods/burstable/pod${UID}/${ID}` });
    expect(nameCgroup(`/kubepods/besteffort/pod${UID}/crio-${ID}`).container).toMatchObject({ runtime: 'cri-o' });
    expect(nameCgroup(`/kubepods/pod${UID}/${ID}`).pod!.qosClass).toBe('guaranteed');
    expect(nameCgroup(`/elsewhere/pod${UID}`).pod).toBeNull();
  });

  it('Slurm jobs and steps, cgroup v1 and v2 layouts', () => {
    expect(nameCgroup('/slurm/uid_1000/job_4242/step_0/task_1').slurm).toEqual({ jobId: '4242', step: '0', path: '/slurm/uid_1000/job_4242' });
    const v2 = nameCgroup('/system.slice/slurmstepd.scope/job_77/step_batch/user/task_0');
    expect(v2.slurm).toEqual({ jobId: '77', step: 'batch', path: '/system.slice/slurmstepd.scope/job_77' });
    expect(v2.unit!.name).toBe('slurmstepd.scope');
    expect(nameCgroup('/system.slice/slurmstepd.scope/job_77').slurm!.step).toBeNull();
  });
});

describe('groupKey', () => {
  it('labels by unit / container / pod / job, and an unknown path by itself', () => {
    expect(groupKey('/system.slice/rdma-app.service/worker', 'unit')).toEqual({ label: 'rdma-app.service', path: '/system.slice/rdma-app.service' });
    expect(groupKey('/system.slice/rdma-app.service/worker', 'cgroup')).toEqual({ label: '/system.slice/rdma-app.service/worker', path: '/system.slice/rdma-app.service/worker' });
    expect(groupKey(`/docker/${ID}`, 'container')).toEqual({ label: `docker:${ID.slice(0, 12)}`, path: `/docker/${ID}` });
    expect(groupKey(`/kubepods/burstable/pod${UID}`, 'container').label).toBe(`pod:${UID}`);
    expect(groupKey('/slurm/uid_1/job_9/step_0', 'container')).toEqual({ label: 'slurm:job_9', path: '/slurm/uid_1/job_9' });
    expect(groupKey('/process_api/abc', 'container')).toEqual({ label: '/process_api/abc', path: '/process_api/abc' });
    expect(groupKey('/process_api/abc', 'unit').label).toBe('/process_api/abc');
  });
});
