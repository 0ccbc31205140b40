// A cgroup path → the systemd unit, container, Kubernetes pod and Slurm job it belongs to, by the
// naming conventions of the tools that create those cgroups. Pure: the patterns are data, matched one
// path component at a time; each name comes with the path prefix that is its cgroup, so a group's
// limits are read from the unit's / container's own directory. A path no pattern knows gets no names
// (callers show it as a path, never drop it).

export type ContainerRuntime = 'docker' | 'containerd' | 'cri-o' | 'podman' | 'kubernetes';
export type QosClass = 'guaranteed' | 'burstable' | 'besteffort';

export interface CgroupNames {
  /** Deepest systemd `.service` or `.scope` on the path, else the deepest `.slice`. */
  unit: { name: string; path: string } | null;
  container: { runtime: ContainerRuntime; id: string; path: string } | null;
  pod: { uid: string; qosClass: QosClass; path: string } | null;
  slurm: { jobId: string; step: string | null; path: string } | null;
}

const HEX_ID = '([0-9a-f]{64})';

interface ContainerPattern {
  runtime: ContainerRuntime;
  component: RegExp;
  /** The component before it must match this (cgroupfs drivers put bare ids under a parent directory). */
  parent?: RegExp;
}

// Container cgroup names. Sources:
//   docker-<id>.scope        Docker with the systemd cgroup driver (runc libcontainer/cgroups/systemd:
//                            unit name "<prefix>-<id>.scope", prefix "docker")
//   /docker/<id>             Docker with the cgroupfs driver (default --cgroup-parent "/docker")
//   cri-containerd-<id>.scope containerd's CRI plugin with the systemd driver (prefix "cri-containerd")
//   crio-<id>.scope          CRI-O (conmon's monitor is crio-conmon-<id>.scope, not the container)
//   libpod-<id>.scope        Podman with the systemd manager; /libpod_parent/libpod-<id> with cgroupfs
//   /kubepods/…/pod<uid>/<id> kubelet with the cgroupfs driver: the runtime is not in the name
const CONTAINER_PATTERNS: readonly ContainerPattern[] = [
  { runtime: 'docker', component: new RegExp(`^docker-${HEX_ID}\\.scope$`) },
  { runtime: 'containerd', component: new RegExp(`^cri-containerd-${HEX_ID}\\.scope$`) },
  { runtime: 'cri-o', component: new RegExp(`^crio-${HEX_ID}(?:\\.scope)?$`) },
  { runtime: 'podman', component: new RegExp(`^libpod-${HEX_ID}(?:\\.scope)?$`) },
  { runtime: 'docker', component: new RegExp(`^${HEX_ID}$`), parent: /^docker$/ },
  { runtime: 'kubernetes', component: new RegExp(`^${HEX_ID}$`), parent: /^pod[0-9a-f-]{36}$/ },
];

// Kubernetes pods (kubelet pkg/kubelet/cm: pod cgroups under the QoS cgroups). systemd driver:
// kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _ for ->.slice (guaranteed
// pods sit directly in kubepods.slice as kubepods-pod<uid>.slice); cgroupfs driver:
// /kubepods/burstable/pod<uid>, /kubepods/besteffort/pod<uid>, /kubepods/pod<uid>.
const POD_SYSTEMD = /^kubepods(?:-(burstable|besteffort))?-pod([0-9a-f_]{36})\.slice$/;
const POD_CGROUPFS = /^pod([0-9a-f-]{36})$/;

// Slurm (slurmd cgroup plugins): v1 /slurm/uid_<uid>/job_<id>/step_<id>/task_<n>; v2
// /system.slice/slurmstepd.scope/job_<id>/step_<id>/user/task_<n>. Steps are numbers or
// batch / extern / interactive.
const SLURM_JOB = /^job_(\d+)$/;
const SLURM_STEP = /^step_(\w+)$/;

// systemd unit types that own a cgroup (systemd.unit(5)); slices only group them.
const UNIT = /^.+\.(service|scope)$/;
const SLICE = /^.+\.slice$/;

/** The names a cgroup path carries. `path` is as /proc/PID/cgroup prints it. */
export function nameCgroup(path: string): CgroupNames {
  const components = path.split('/').filter(Boolean);
  const prefix = (i: number): string => `/${components.slice(0, i + 1).join('/')}`;
  const names: CgroupNames = { unit: null, container: null, pod: null, slurm: null };
  let slice: { name: string; path: string } | null = null;
  for (let i = 0; i < components.length; i++) {
    const component = components[i]!;
    const parent = i > 0 ? components[i - 1]! : '';
    if (UNIT.test(component)) names.unit = { name: component, path: prefix(i) };
    else if (SLICE.test(component)) slice = { name: component, path: prefix(i) };

    if (!names.container) {
      for (const pattern of CONTAINER_PATTERNS) {
        const match = pattern.component.exec(component);
        if (match && (!pattern.parent || pattern.parent.test(parent))) {
          names.container = { runtime: pattern.runtime, id: match[1]!, path: prefix(i) };
          break;
        }
      }
    }

    const systemdPod = POD_SYSTEMD.exec(component);
    if (systemdPod) {
      names.pod = { uid: systemdPod[2]!.replaceAll('_', '-'), qosClass: (systemdPod[1] as QosClass | undefined) ?? 'guaranteed', path: prefix(i) };
    } else {
      const cgroupfsPod = POD_CGROUPFS.exec(component);
      if (cgroupfsPod && components.slice(0, i).includes('kubepods')) {
        const qos = parent === 'burstable' || parent === 'besteffort' ? parent : 'guaranteed';
        names.pod = { uid: cgroupfsPod[1]!, qosClass: qos, path: prefix(i) };
      }
    }

    const job = SLURM_JOB.exec(component);
    if (job) names.slurm = { jobId: job[1]!, step: null, path: prefix(i) };
    const step = SLURM_STEP.exec(component);
    if (step && names.slurm && SLURM_JOB.test(parent)) names.slurm.step = step[1]!;
  }
  names.unit ??= slice;
  return names;
}

export type GroupBy = 'cgroup' | 'unit' | 'container';

/** What a process is grouped under for `--by`: a label and the cgroup path whose limits apply. */
export interface GroupKey {
  label: string;
  path: string;
}

/**
 * `--by unit`: the unit; `--by container`: the container, else its pod, else its Slurm job; a path
 * with no such name is its own group, labelled by the path.
 */
export function groupKey(path: string, by: GroupBy, names: CgroupNames = nameCgroup(path)): GroupKey {
  if (by === 'unit' && names.unit) return { label: names.unit.name, path: names.unit.path };
  if (by === 'container') {
    if (names.container) return { label: `${names.container.runtime}:${names.container.id.slice(0, 12)}`, path: names.container.path };
    if (names.pod) return { label: `pod:${names.pod.uid}`, path: names.pod.path };
    if (names.slurm) return { label: `slurm:job_${names.slurm.jobId}`, path: names.slurm.path };
  }
  return { label: path, path };
}
